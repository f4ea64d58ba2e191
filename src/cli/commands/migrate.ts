/**
 * `popsync migrate`: resolve endpoints and secrets, open the journal, run the engine, report.
 * Thin on purpose: every decision lives in engine/ and mapping/, every message to the user in
 * report/ and cli/exit.ts. Throws PopsyncError; never exits the process itself.
 */
import { mkdirSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { rootCertificates } from 'node:tls';
import { PopsyncError, isPopsyncError } from '../../errors.js';
import { runEngine } from '../../engine/run.js';
import type { RunResult } from '../../engine/types.js';
import { connectImap } from '../../imap/index.js';
import { Journal } from '../../journal/journal.js';
import type { Logger } from '../../log.js';
import { singleFolderRouter } from '../../mapping/route.js';
import { connectPop3 } from '../../pop3/index.js';
import { resolveImapEndpoint, resolvePop3Endpoint, type EndpointInput } from '../endpoints.js';
import { resolvePassword, type PasswordSource } from '../secrets.js';
import type { ProgressListener } from '../../engine/types.js';

export interface SideFlags extends EndpointInput {
  caFile?: string;
  passwordEnv?: string;
  passwordFile?: string;
}

export interface MigrateInput {
  pop: SideFlags;
  imap: SideFlags;
  journal?: string;
  folder: string;
  flags: string[];
  arrivalDate: boolean;
  batchMessages: number;
  batchBytes: number;
  timeoutSeconds: number;
  logger: Logger;
  progress?: ProgressListener;
  signal?: AbortSignal;
}

/** Where a journal goes when the user names none: one file per source account, like getmail's oldmail. */
export function defaultJournalPath(sourceDisplay: string, env: NodeJS.ProcessEnv = process.env): string {
  const base = env.XDG_STATE_HOME || join(homedir(), '.local', 'state');
  return join(base, 'popsync', `${sourceDisplay.replace(/[^A-Za-z0-9@._-]+/g, '_')}.sqlite`);
}

function readCa(path: string | undefined, flag: string): Array<string | Buffer> | undefined {
  if (path === undefined) return undefined;
  let pem: Buffer;
  try {
    pem = readFileSync(path);
  } catch (e) {
    throw new PopsyncError('usage', `cannot read ${flag} ${path}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
  }
  // `ca` replaces Node's bundled roots; keep them so a private CA adds trust instead of swapping it.
  return [...rootCertificates, pem];
}

function passwordSource(f: SideFlags): PasswordSource {
  return { ...(f.passwordEnv !== undefined ? { env: f.passwordEnv } : {}), ...(f.passwordFile !== undefined ? { file: f.passwordFile } : {}) };
}

export async function migrate(input: MigrateInput): Promise<RunResult> {
  const pop = resolvePop3Endpoint(input.pop);
  const imap = resolveImapEndpoint(input.imap);
  const popCa = readCa(input.pop.caFile, '--pop-ca-file');
  const imapCa = readCa(input.imap.caFile, '--imap-ca-file');
  const popPassword = await resolvePassword('pop3', passwordSource(input.pop), { logger: input.logger, account: pop.display });
  const imapPassword = await resolvePassword('imap', passwordSource(input.imap), { logger: input.logger, account: imap.display });

  const journalPath = input.journal ?? defaultJournalPath(pop.display);
  if (input.journal === undefined) {
    try {
      mkdirSync(dirname(journalPath), { recursive: true, mode: 0o700 });
    } catch (e) {
      throw new PopsyncError('usage', `cannot create the journal folder ${dirname(journalPath)}: ${String(e)}`, { hint: 'name a journal with --journal PATH' });
    }
  }
  input.logger.debug({ journal: journalPath }, 'journal');
  const journal = Journal.open(journalPath, { source: pop.display });
  const timeoutMs = input.timeoutSeconds * 1000;
  try {
    return await runEngine({
      command: 'migrate',
      account: pop.display,
      destination: imap.display,
      journal,
      openSource: () =>
        connectPop3({ ...pop, password: popPassword, timeoutMs, logger: input.logger.child({ side: 'pop3' }), ...(popCa ? { ca: popCa } : {}) }).catch((e: unknown) => {
          throw isPopsyncError(e) ? e.with({ account: pop.display }) : e;
        }),
      openSink: () =>
        connectImap({ ...imap, password: imapPassword, timeoutMs, logger: input.logger.child({ side: 'imap' }), ...(imapCa ? { ca: imapCa } : {}) }).catch((e: unknown) => {
          throw isPopsyncError(e) ? e.with({ account: imap.display }) : e;
        }),
      route: singleFolderRouter({ folder: input.folder, flags: input.flags, keepCopyDate: !input.arrivalDate }),
      logger: input.logger,
      batchMessages: input.batchMessages,
      batchBytes: input.batchBytes,
      ...(input.progress ? { progress: input.progress } : {}),
      ...(input.signal ? { signal: input.signal } : {}),
    });
  } finally {
    journal.close();
  }
}
