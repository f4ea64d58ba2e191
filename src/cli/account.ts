/**
 * One resolved account: where to read, where to write, with which secrets, which journal.
 * Every command that acts on an account (migrate, sync, plan, status) starts from this, so
 * flags and a config file meet here and nowhere else. Resolving reads password sources and CA
 * files but opens no connection: connections are opened by `openSource`/`openSink`, which the
 * engine calls (and calls again after a drop).
 */
import type { Command } from 'commander';
import { readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import {
  appendConnectionsProblem,
  missingLoginProblem,
  providerProfile,
  refusedFolderProblem,
  transferLimits,
  type TransferLimits,
} from '../config/providers.js';
import { BUILTIN, configuredAccounts, seenStepOf, type RoutingOverrides } from '../config/resolve.js';
import type { SideFlags } from '../config/side-flags.js';
import { PopsyncError, isPopsyncError } from '../errors.js';
import { explainConnectFailure, portMismatchWarning, type ConnectTarget } from '../connect-hints.js';
import type { RoutingSpec } from '../mapping/rules.js';
import type { ImapSink } from '../imap/types.js';
import type { Logger } from '../log.js';
import { connectPop3, warmPop3 } from '../pop3/index.js';
import { warmImap } from '../imap/socket-target.js';
import type { Pop3Learnt, Pop3Session } from '../pop3/types.js';
import { batchedJobs, listedAccountJobs } from './account-list.js';
import { wasGreeted } from '../net/greeted.js';
import { tlsProbeVerdict } from '../net/tls-probe.js';
import { checkJournalFolder, configJournal, locateJournal, type JournalOrigin } from './journal-identity.js';
import {
  checkConfigUrls,
  cleartextWarning,
  optionName,
  resolveImapEndpoint,
  resolvePop3Endpoint,
  type ImapEndpoint,
  type Pop3Endpoint,
  type Side,
} from './endpoints.js';
import { sideFlags } from './options.js';
import { resolvePassword, type PasswordSource } from './secrets.js';
import { tokenFromCommand } from './token-command.js';
import { makeDirs } from './make-dirs.js';

export interface AccountInput {
  /** A name for reports; the source's "user@host:port" when not given (config files name accounts). */
  name?: string;
  pop: SideFlags;
  imap: SideFlags;
  journal?: string;
  /** Where `journal` was written, when not --journal (a config file's key). */
  journalOrigin?: JournalOrigin;
  timeoutSeconds: number;
}

export interface ResolvedAccount {
  name: string;
  /**
   * The source mailbox's identity, "user@host": the journal's binding and row key
   * (journal-identity.ts: canonical host, user as typed, port and TLS mode left out).
   */
  sourceKey: string;
  pop: Pop3Endpoint;
  imap: ImapEndpoint;
  journalPath: string;
  openSource(): Promise<Pop3Session>;
  openSink(): Promise<ImapSink>;
  /** Opens the sockets openSource (and openSink) take first; returns what closes those not taken. */
  warmUp(o: { destination: boolean }): () => void;
}

function readCa(path: string | undefined, what: string): Array<string | Buffer> | undefined {
  if (path === undefined) return undefined;
  let pem: Buffer;
  try {
    pem = readFileSync(path);
  } catch (e) {
    throw new PopsyncError(
      'usage',
      `cannot read the ${what} CA file ${path}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`,
    );
  }
  // Only the extra CA: the protocol clients add it to the system roots themselves.
  return [pem];
}

function passwordSource(f: SideFlags): PasswordSource {
  const s: PasswordSource = {};
  if (f.passwordEnv !== undefined) s.env = f.passwordEnv;
  if (f.passwordFile !== undefined) s.file = f.passwordFile;
  if (f.passwordCommand !== undefined) s.command = f.passwordCommand;
  return s;
}

export interface ResolveOptions {
  logger: Logger;
  /** plan reads nothing it would write: it skips creating the journal's folder. */
  createJournalDir?: boolean;
  /**
   * false: the command never connects to the POP3 server (verify), so no POP3 password is
   * asked for and openSource refuses. The POP3 user and host still name the journal.
   */
  source?: boolean;
}

/** Connection warnings already printed: `sync --every` resolves its accounts every cycle. */
const warnedCleartext = new Set<string>();

/**
 * What an account's POP3 connections learnt of its server (a CAPA it will not have before its
 * greeting), by the account's input: `sync --every` resolves its accounts again every cycle,
 * from the same inputs, and each cycle's first connection would otherwise learn it again (for a
 * server silent to such a CAPA, a wait of seconds per cycle). Weak: gone with the input.
 */
const popLearntOf = new WeakMap<AccountInput, Pop3Learnt>();

/**
 * Why an account's IMAP server allows it one connection (imap/writer.ts ImapOptions
 * .oneConnection), by the account's input as popLearntOf: decided once for the life of the
 * process, not per cycle of `sync --every`, which would otherwise be refused a login and print
 * a warning every cycle. A new process asks again: the server's limit may have changed.
 */
const oneImapConnectionOf = new WeakMap<AccountInput, { reason: string | null }>();

export async function resolveAccount(input: AccountInput, o: ResolveOptions): Promise<ResolvedAccount> {
  const pop = resolvePop3Endpoint(input.pop);
  const imap = resolveImapEndpoint(input.imap);
  for (const w of [
    o.source === false ? null : cleartextWarning('pop3', pop),
    cleartextWarning('imap', imap),
    // A port of the other kind is warned about as a likely typo of the scheme (pop3:// for
    // pop3s://), not when the mode was written out: a user who runs plain POP3 on 995 behind a
    // proxy on purpose read the same warning on every run, and --quiet hid everything else too.
    // A wrong mode given by name still fails to connect, with the port's hint (connect-hints.ts).
    o.source === false || pop.tlsNamed ? null : portMismatchWarning({ protocol: 'POP3', ...pop }),
    imap.tlsNamed ? null : portMismatchWarning({ protocol: 'IMAP', ...imap }),
  ]) {
    if (w === null || warnedCleartext.has(w)) continue;
    warnedCleartext.add(w);
    o.logger.warn(w);
  }
  const popCa = readCa(input.pop.caFile, 'POP3');
  const imapCa = readCa(input.imap.caFile, 'IMAP');
  if (o.source !== false) checkLoginInput('pop3', input.pop, pop.auth);
  checkLoginInput('imap', input.imap, imap.auth);
  const missing =
    input.imap.provider === undefined
      ? null
      : missingLoginProblem(providerProfile(input.imap.provider), {
          password: input.imap.password !== undefined || Object.keys(passwordSource(input.imap)).length > 0,
          token: input.imap.oauth2TokenCommand !== undefined,
        });
  if (missing !== null)
    throw new PopsyncError('usage', missing, {
      hint:
        'e.g. popsync auth login --provider microsoft, then ' +
        "--imap-oauth2-token-command 'popsync auth token microsoft'",
    });
  const popToken = input.pop.oauth2TokenCommand;
  const imapToken = input.imap.oauth2TokenCommand;
  // With a token command there is no password to ask for: the token is fetched at each login.
  const popPassword =
    o.source === false
      ? null
      : popToken !== undefined
        ? ''
        : (input.pop.password ??
          (await resolvePassword('pop3', passwordSource(input.pop), { logger: o.logger, account: pop.display })));
  const imapPassword =
    imapToken !== undefined
      ? ''
      : (input.imap.password ??
        (await resolvePassword('imap', passwordSource(input.imap), { logger: o.logger, account: imap.display })));

  const { path: journalPath, sourceKey } = locateJournal(pop, input.journal, process.env, input.journalOrigin);
  // Commands that create journals (migrate, sync) check a given path's folder first; plan and
  // verify only read one, and say so when there is none.
  if (input.journal !== undefined && o.createJournalDir !== false && o.source !== false)
    checkJournalFolder(journalPath, input.journalOrigin);
  if (input.journal === undefined && o.createJournalDir !== false) {
    try {
      makeDirs(dirname(journalPath), 0o700);
    } catch (e) {
      throw new PopsyncError('usage', `cannot create the journal folder ${dirname(journalPath)}: ${String(e)}`, {
        hint: 'name a journal with --journal PATH',
      });
    }
  }
  const timeoutMs = input.timeoutSeconds * 1000;
  // The account's sinks (one per reconnect, per cycle) learn once that the server allows one connection.
  let oneConnection = oneImapConnectionOf.get(input);
  if (oneConnection === undefined) {
    oneConnection = { reason: null };
    oneImapConnectionOf.set(input, oneConnection);
  }
  const tag = (display: string, target: ConnectTarget) => (raw: unknown) => {
    const probe = tlsProbeVerdict(target.host, target.port);
    const greeted = wasGreeted(target.protocol, target.host, target.port);
    const e = explainConnectFailure(raw, { ...target, greeted, ...(probe === undefined ? {} : { tlsProbe: probe }) });
    throw isPopsyncError(e) && e.context.account === undefined ? e.with({ account: display }) : e;
  };
  // What a POP3 connection learns of the server (a CAPA it refuses before its greeting) holds
  // for every connection the account makes: reconnects and later cycles need not learn it again.
  let popLearnt = popLearntOf.get(input);
  if (popLearnt === undefined) {
    popLearnt = {};
    popLearntOf.set(input, popLearnt);
  }
  return {
    name: input.name ?? pop.display,
    sourceKey,
    pop,
    imap,
    journalPath,
    openSource: () =>
      popPassword === null
        ? Promise.reject(new PopsyncError('internal', 'this command does not connect to the POP3 server'))
        : connectPop3({
            ...pop,
            password: popPassword,
            ...(popToken !== undefined ? { accessToken: () => tokenFromCommand('pop3', popToken) } : {}),
            ...(input.pop.adminUser !== undefined ? { adminUser: input.pop.adminUser } : {}),
            timeoutMs,
            logger: o.logger.child({ side: 'pop3' }),
            ...(popCa ? { ca: popCa } : {}),
            learnt: popLearnt,
          }).catch(tag(pop.display, { protocol: 'POP3', ...pop, timeoutMs })),
    warmUp: ({ destination }) => {
      const closers = [
        popPassword === null ? () => undefined : warmPop3({ ...pop, ...(popCa ? { ca: popCa } : {}) }),
        destination ? warmImap({ ...imap, timeoutMs, ...(imapCa ? { ca: imapCa } : {}) }) : () => undefined,
      ];
      return () => {
        for (const close of closers) close();
      };
    },
    // Loaded on first use: imapflow is a sixth of start-up, and a no-op sync never needs it.
    openSink: async () =>
      (await import('../imap/index.js'))
        .connectImap({
          ...imap,
          password: imapPassword,
          ...(imapToken !== undefined ? { accessToken: () => tokenFromCommand('imap', imapToken) } : {}),
          ...(input.imap.adminUser !== undefined ? { adminUser: input.imap.adminUser } : {}),
          ...(input.imap.appendConnections !== undefined ? { appendConnections: input.imap.appendConnections } : {}),
          oneConnection,
          timeoutMs,
          logger: o.logger.child({ side: 'imap' }),
          ...(imapCa ? { ca: imapCa } : {}),
        })
        .catch(tag(imap.display, { protocol: 'IMAP', ...imap, timeoutMs })),
  };
}

const TOKEN_AUTH = new Set(['xoauth2', 'oauthbearer']);

/**
 * Login options that cannot work together are refused before anything connects (exit 2): a
 * token and a password, a token method without a token command, an admin login other than
 * SASL PLAIN (the only mechanism that names the user to act for).
 */
export function checkLoginInput(side: Side, f: SideFlags, auth: string | undefined): void {
  const opt = (s: string): string => optionName(side, s);
  const passwords = (['passwordEnv', 'passwordFile', 'passwordCommand', 'password'] as const).filter(
    (k) => f[k] !== undefined,
  );
  if (f.oauth2TokenCommand !== undefined) {
    if (passwords.length > 0)
      throw new PopsyncError(
        'usage',
        `${opt('oauth2-token-command')} replaces the password: give it or a password option, not both`,
      );
    if (f.adminUser !== undefined)
      throw new PopsyncError('usage', `${opt('admin-user')} logs in with the admin's password, not an access token`);
    if (auth !== undefined && auth !== 'auto' && !TOKEN_AUTH.has(auth))
      throw new PopsyncError('usage', `${opt('auth')} ${auth} takes a password, not an access token`, {
        hint: `use ${opt('auth')} xoauth2 or oauthbearer (or auto) with ${opt('oauth2-token-command')}`,
      });
  } else if (auth !== undefined && TOKEN_AUTH.has(auth)) {
    throw new PopsyncError('usage', `${opt('auth')} ${auth} needs an access token`, {
      hint: `give ${opt('oauth2-token-command')} CMD (oauth2_token_command in a config file)`,
    });
  }
  if (f.adminUser !== undefined && auth !== undefined && auth !== 'auto' && auth !== 'plain')
    throw new PopsyncError('usage', `${opt('admin-user')} needs ${opt('auth')} plain (or auto), not ${auth}`, {
      hint: 'only SASL PLAIN carries the user to act for (authzid)',
    });
}

/** One account's work as a command runs it: who to connect to, how to route, how to batch. */
export interface AccountJob {
  input: AccountInput;
  routing: RoutingSpec;
  batchMessages: number;
  batchBytes: number;
  reconnectAttempts: number;
  /** The config's `every:` for this account (sync keeps running); --every beats it. */
  everyMs?: number;
  /** Rate, daily budget and the provider's rules (config/providers.ts); absent: none. */
  limits?: TransferLimits;
}

/** The ways to give one side's secret: one only, so a flag replaces all of a config's. */
const PASSWORD_KEYS = ['passwordEnv', 'passwordFile', 'passwordCommand', 'oauth2TokenCommand'] as const;

/** Config values for one side with the flags given on the command line on top. */
function mergeSide(config: SideFlags, flags: SideFlags): SideFlags {
  // A password source on the command line replaces the config's: there is only ever one.
  const base: SideFlags = { ...config };
  if (PASSWORD_KEYS.some((k) => flags[k] !== undefined)) for (const k of PASSWORD_KEYS) delete base[k];
  // A URL on the command line is a new endpoint: host/port/user/tls from the config would mix two servers.
  if (flags.url !== undefined) for (const k of ['host', 'port', 'user', 'tls'] as const) delete base[k];
  return { ...base, ...flags };
}

/**
 * The accounts a command acts on, from its options. Without --config: one account from the
 * flags. With --config: the file's accounts (or the one --account picks), where a flag the
 * user typed beats the account's key, which beats `defaults:`, which beats the built-in
 * default. Connection flags (--pop..., --imap..., --journal) only make sense for one account.
 */
export async function accountJobs(
  opts: Record<string, unknown>,
  cmd: Pick<Command, 'getOptionValueSource'>,
  o: { createJournalDir?: boolean } = {},
): Promise<AccountJob[]> {
  const jobs = (await unbatchedJobs(opts, cmd)).map(withProvider);
  // --journal-dir and --shard (account-list.ts) apply to a CSV list and a config file alike.
  return typeof opts.journalDir === 'string' || typeof opts.shard === 'string'
    ? batchedJobs(jobs, opts, { createJournalDir: o.createJournalDir !== false })
    : jobs;
}

async function unbatchedJobs(
  opts: Record<string, unknown>,
  cmd: Pick<Command, 'getOptionValueSource'>,
): Promise<AccountJob[]> {
  const typed = (key: string) => cmd.getOptionValueSource(key) === 'cli';
  const overrides: RoutingOverrides = {
    folder: typed('folder') ? (opts.folder as string) : undefined,
    flags: typed('flag') ? (opts.flag as string[]) : undefined,
    arrivalDate: typed('arrivalDate') ? (opts.arrivalDate as boolean) : undefined,
    seen: typed('seen') ? (opts.seen as string[]) : undefined,
    batchMessages: typed('batchMessages') ? (opts.batchMessages as number) : undefined,
    batchMb: typed('batchMb') ? (opts.batchMb as number) : undefined,
    timeoutSeconds: typed('timeout') ? (opts.timeout as number) : undefined,
    reconnectAttempts: typed('reconnectAttempts') ? (opts.reconnectAttempts as number) : undefined,
    maxRate: typeof opts.maxRate === 'number' ? opts.maxRate : undefined,
    dailyBudget: typeof opts.dailyBudget === 'number' ? opts.dailyBudget : undefined,
  };
  const pop = sideFlags(opts, 'pop');
  const imap = sideFlags(opts, 'imap');
  // --pop-auth has a default ('auto'): only a typed one counts as a flag here.
  if (!typed('popAuth')) delete pop.auth;
  const journal = typeof opts.journal === 'string' ? opts.journal : undefined;

  if (typeof opts.accounts === 'string' && typeof opts.config === 'string')
    throw new PopsyncError('usage', 'give --accounts FILE.csv or --config FILE, not both');
  if (typeof opts.config !== 'string') {
    if (typeof opts.account === 'string') throw new PopsyncError('usage', '--account needs --config FILE');
    if (typeof opts.accounts !== 'string' && (typeof opts.journalDir === 'string' || typeof opts.shard === 'string')) {
      throw new PopsyncError(
        'usage',
        `${typeof opts.shard === 'string' ? '--shard' : '--journal-dir'} needs a list of accounts: ` +
          `--accounts FILE.csv or --config FILE`,
      );
    }
    if (opts.popAuth !== undefined) pop.auth = opts.popAuth as string;
    const flagsJob: AccountJob = {
      input: {
        pop,
        imap,
        ...(journal !== undefined ? { journal } : {}),
        timeoutSeconds: overrides.timeoutSeconds ?? (opts.timeout as number | undefined) ?? BUILTIN.timeoutSeconds,
      },
      routing: {
        rules: [],
        defaultFolder: (opts.folder as string | undefined) ?? BUILTIN.folder,
        flags: (opts.flag as string[] | undefined) ?? [],
        seen: ((opts.seen as string[] | undefined) ?? BUILTIN.seen).map(seenStepOf),
        arrivalDate: opts.arrivalDate !== false,
      },
      batchMessages: (opts.batchMessages as number | undefined) ?? BUILTIN.batchMessages,
      batchBytes: ((opts.batchMb as number | undefined) ?? BUILTIN.batchMb) * 1024 * 1024,
      reconnectAttempts: (opts.reconnectAttempts as number | undefined) ?? BUILTIN.reconnectAttempts,
      limits: transferLimits(null, overrides),
    };
    if (typeof opts.accounts === 'string') {
      if (journal !== undefined)
        throw new PopsyncError(
          'usage',
          '--journal names one journal: with --accounts, use --journal-dir DIR (one journal per account)',
        );
      return listedAccountJobs(opts.accounts, pop, imap, flagsJob, typed('folder'));
    }
    return [flagsJob];
  }

  // yaml and zod load only for a config file: a flags-only cron run does not pay for them.
  const { loadConfigFile } = await import('../config/load.js');
  const loaded = loadConfigFile(opts.config);
  const accounts = configuredAccounts(loaded, overrides, typeof opts.account === 'string' ? opts.account : undefined);
  const connectionFlags = Object.keys(pop).length + Object.keys(imap).length + (journal !== undefined ? 1 : 0);
  if (connectionFlags > 0 && accounts.length > 1) {
    throw new PopsyncError(
      'usage',
      `${loaded.path} has ${accounts.length} accounts: connection flags (--pop..., --imap..., --journal) ` +
        `apply to one account only`,
      {
        hint: 'pick one with --account NAME, or put the setting in the config file',
      },
    );
  }
  return accounts.map((a) => {
    checkConfigUrls(loaded, a.index, {
      ...(pop.url === undefined ? { pop: a.pop.url } : {}),
      ...(imap.url === undefined ? { imap: a.imap.url } : {}),
    });
    const j = journal ?? a.journal;
    return {
      input: {
        ...(a.name !== null ? { name: a.name } : {}),
        pop: mergeSide(a.pop, pop),
        imap: mergeSide(a.imap, imap),
        ...(j !== undefined ? { journal: j } : {}),
        ...(journal === undefined && a.journal !== undefined ? { journalOrigin: configJournal(loaded, a.index) } : {}),
        timeoutSeconds: a.timeoutSeconds,
      },
      routing: a.routing,
      batchMessages: a.batchMessages,
      batchBytes: a.batchMb * 1024 * 1024,
      reconnectAttempts: a.reconnectAttempts,
      ...(a.everyMs !== undefined ? { everyMs: a.everyMs } : {}),
      limits: transferLimits(null, a),
    };
  });
}

/**
 * The provider profile of a job's destination, applied: its IMAP host when the user gave
 * neither a URL nor a host, its published limits under the user's own (config/providers.ts),
 * and a refusal (exit 2, before any connection) of a folder the provider forbids.
 */
function withProvider(job: AccountJob): AccountJob {
  const name = job.input.imap.provider;
  if (name === undefined) return job;
  const profile = providerProfile(name);
  const imap: SideFlags = { ...job.input.imap };
  if (imap.url === undefined && imap.host === undefined) imap.host = profile.imap.host;
  if (imap.appendConnections === undefined && profile.appendConnections !== null)
    imap.appendConnections = profile.appendConnections;
  const tooMany = appendConnectionsProblem(profile, imap.appendConnections ?? 1);
  if (tooMany !== null)
    throw new PopsyncError('usage', `--append-connections: ${tooMany}`, {
      ...(job.input.name !== undefined ? { account: job.input.name } : {}),
    });
  const r = job.routing;
  for (const folder of [r.defaultFolder, ...r.rules.map((x) => x.folder)]) {
    const bad = refusedFolderProblem(profile, folder);
    if (bad !== null)
      throw new PopsyncError('usage', bad, {
        ...(job.input.name !== undefined ? { account: job.input.name } : {}),
        folder,
      });
  }
  const own = job.limits;
  const user = {
    ...(own?.maxRate != null ? { maxRate: own.maxRate } : {}),
    ...(own?.dailyBudget != null ? { dailyBudget: own.dailyBudget.bytes } : {}),
  };
  return { ...job, input: { ...job.input, imap }, limits: transferLimits(profile, user) };
}
