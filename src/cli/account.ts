/**
 * One resolved account: where to read, where to write, with which secrets, which journal.
 * Every command that acts on an account (migrate, sync, plan, status) starts from this, so
 * flags and a config file meet here and nowhere else. Resolving reads password sources and CA
 * files but opens no connection: connections are opened by `openSource`/`openSink`, which the
 * engine calls (and calls again after a drop).
 */
import { mkdirSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { rootCertificates } from 'node:tls';
import { PopsyncError, isPopsyncError } from '../errors.js';
import { connectImap } from '../imap/index.js';
import type { ImapSink } from '../imap/types.js';
import type { Logger } from '../log.js';
import { connectPop3 } from '../pop3/index.js';
import type { Pop3Session } from '../pop3/types.js';
import { resolveImapEndpoint, resolvePop3Endpoint, type EndpointInput, type ImapEndpoint, type Pop3Endpoint } from './endpoints.js';
import { resolvePassword, type PasswordSource } from './secrets.js';

export interface SideFlags extends EndpointInput {
  caFile?: string;
  passwordEnv?: string;
  passwordFile?: string;
  passwordCommand?: string;
}

export interface AccountInput {
  /** A name for reports; the source's "user@host:port" when not given (config files name accounts). */
  name?: string;
  pop: SideFlags;
  imap: SideFlags;
  journal?: string;
  timeoutSeconds: number;
}

export interface ResolvedAccount {
  name: string;
  /**
   * The source mailbox's identity, "user@host": the journal's binding and row key. Not the
   * port or TLS mode, which are how we reach it: switching 110+STLS to 995 must not make every
   * message look new.
   */
  sourceKey: string;
  pop: Pop3Endpoint;
  imap: ImapEndpoint;
  journalPath: string;
  openSource(): Promise<Pop3Session>;
  openSink(): Promise<ImapSink>;
}

/** Where a journal goes when the user names none: one file per source mailbox, like getmail's oldmail. */
export function defaultJournalPath(sourceKey: string, env: NodeJS.ProcessEnv = process.env): string {
  const base = env.XDG_STATE_HOME || join(homedir(), '.local', 'state');
  return join(base, 'popsync', `${sourceKey.replace(/[^A-Za-z0-9@._-]+/g, '_')}.sqlite`);
}

function readCa(path: string | undefined, what: string): Array<string | Buffer> | undefined {
  if (path === undefined) return undefined;
  let pem: Buffer;
  try {
    pem = readFileSync(path);
  } catch (e) {
    throw new PopsyncError('usage', `cannot read the ${what} CA file ${path}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
  }
  // `ca` replaces Node's bundled roots; keep them so a private CA adds trust instead of swapping it.
  return [...rootCertificates, pem];
}

function passwordSource(f: SideFlags): PasswordSource {
  const s: PasswordSource = {};
  if (f.passwordEnv !== undefined) s.env = f.passwordEnv;
  if (f.passwordFile !== undefined) s.file = f.passwordFile;
  if (f.passwordCommand !== undefined) s.command = f.passwordCommand;
  return s;
}

export function sourceKeyOf(pop: { user: string; host: string }): string {
  const host = pop.host.toLowerCase();
  return `${pop.user}@${host.includes(':') ? `[${host}]` : host}`;
}

export interface ResolveOptions {
  logger: Logger;
  /** plan reads nothing it would write: it skips creating the journal's folder. */
  createJournalDir?: boolean;
}

export async function resolveAccount(input: AccountInput, o: ResolveOptions): Promise<ResolvedAccount> {
  const pop = resolvePop3Endpoint(input.pop);
  const imap = resolveImapEndpoint(input.imap);
  const popCa = readCa(input.pop.caFile, 'POP3');
  const imapCa = readCa(input.imap.caFile, 'IMAP');
  const popPassword = await resolvePassword('pop3', passwordSource(input.pop), { logger: o.logger, account: pop.display });
  const imapPassword = await resolvePassword('imap', passwordSource(input.imap), { logger: o.logger, account: imap.display });

  const journalPath = input.journal ?? defaultJournalPath(sourceKeyOf(pop));
  if (input.journal === undefined && o.createJournalDir !== false) {
    try {
      mkdirSync(dirname(journalPath), { recursive: true, mode: 0o700 });
    } catch (e) {
      throw new PopsyncError('usage', `cannot create the journal folder ${dirname(journalPath)}: ${String(e)}`, { hint: 'name a journal with --journal PATH' });
    }
  }
  const timeoutMs = input.timeoutSeconds * 1000;
  const tag = (display: string) => (e: unknown) => {
    throw isPopsyncError(e) && e.context.account === undefined ? e.with({ account: display }) : e;
  };
  return {
    name: input.name ?? pop.display,
    sourceKey: sourceKeyOf(pop),
    pop,
    imap,
    journalPath,
    openSource: () =>
      connectPop3({ ...pop, password: popPassword, timeoutMs, logger: o.logger.child({ side: 'pop3' }), ...(popCa ? { ca: popCa } : {}) }).catch(tag(pop.display)),
    openSink: () =>
      connectImap({ ...imap, password: imapPassword, timeoutMs, logger: o.logger.child({ side: 'imap' }), ...(imapCa ? { ca: imapCa } : {}) }).catch(tag(imap.display)),
  };
}
