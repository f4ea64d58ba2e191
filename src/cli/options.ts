/**
 * Option sets shared by the commands that act on an account (migrate, sync, plan, status), so
 * every command spells an option the same way and documents it the same way, and the
 * commander-shaped values are turned into typed input in one place.
 */
import { InvalidArgumentError, Option, type Command } from 'commander';
import { PROVIDER_NAMES } from '../config/providers.js';
import { MAX_TIMEOUT_SECONDS, parseRate, parseSize, SEEN_STEP_RE } from '../config/units.js';
import {
  DEFAULT_BATCH_MB,
  DEFAULT_BATCH_MESSAGES,
  DEFAULT_FOLDER,
  DEFAULT_RECONNECT_ATTEMPTS,
  DEFAULT_TIMEOUT_SECONDS,
  MAX_APPEND_CONNECTIONS,
} from '../defaults.js';
import { flagProblem, folderNameProblem } from '../mapping/rules.js';
import type { SideFlags } from '../config/side-flags.js';
import { IMAP_AUTH, POP3_AUTH } from './endpoints.js';
import type { LogFormat } from './logger.js';

function positiveInt(name: string) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError(`${name} must be a whole number above 0`);
    return n;
  };
}

function nonNegativeInt(name: string) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError(`${name} must be a whole number, 0 or more`);
    return n;
  };
}

/** --wait, shared by every command that takes the account lock (migrate, sync). */
export function addLockOptions(cmd: Command): Command {
  return cmd.option(
    '--wait <seconds>',
    'when another run holds the account, or another process keeps its journal busy, wait up to this long ' +
      'instead of exiting 7',
    (v: string): number => {
      const n = Number(v);
      if (!Number.isFinite(n) || n < 0) throw new InvalidArgumentError('--wait must be a number of at least 0');
      return n;
    },
  );
}

function timeoutSeconds(v: string): number {
  const n = positiveInt('--timeout')(v);
  if (n > MAX_TIMEOUT_SECONDS)
    throw new InvalidArgumentError(`--timeout must be at most ${MAX_TIMEOUT_SECONDS} seconds (24 days)`);
  return n;
}

function folderName(v: string): string {
  const bad = folderNameProblem(v);
  if (bad !== null) throw new InvalidArgumentError(bad);
  return v;
}

// No default value: commander printed a default of [] as "(default: [])" in --help.
const collectFlag = (v: string, prev: string[] | undefined): string[] => {
  const bad = flagProblem(v);
  if (bad !== null) throw new InvalidArgumentError(bad);
  return [...(prev ?? []), v];
};

function addSide(cmd: Command, side: 'pop' | 'imap', label: string, scheme: string): void {
  cmd
    .option(`--${side} <url>`, `${label} account as a URL, e.g. ${scheme}://user@host[:port] (no password in it)`)
    .option(`--${side}-host <host>`, `${label} host (overrides the URL)`)
    .option(`--${side}-port <port>`, `${label} port`)
    .option(`--${side}-user <user>`, `${label} user name`)
    .addOption(
      new Option(`--${side}-tls <mode>`, `${label} connection security; 'none' sends the password in clear`).choices([
        'implicit',
        'starttls',
        'none',
      ]),
    )
    .option(`--${side}-ca-file <path>`, `trust this CA (PEM) for ${label}, on top of the system CAs`)
    .option(`--${side}-insecure`, `do NOT verify the ${label} server's TLS certificate (dangerous)`)
    .option(`--${side}-password-env <name>`, `read the ${label} password from this environment variable`)
    .option(
      `--${side}-password-file <path>`,
      `read the ${label} password from this file (one trailing newline is ignored)`,
    )
    .option(
      `--${side}-oauth2-token-command <cmd>`,
      `run this shell command for every ${label} login; its first output line is an OAuth2 access token (no password)`,
    )
    .option(
      `--${side}-admin-user <name>`,
      `log in as this admin (with the admin's password) on behalf of the URL's user (SASL PLAIN authzid)`,
    );
}

/** A config file instead of (or under) the flags; see cli/account.ts accountJobs for precedence. */
export function addConfigOptions(cmd: Command): Command {
  return cmd
    .option('--config <file>', 'read accounts, rules and settings from this YAML file (flags given too override it)')
    .option('--account <name>', 'with --config: only this account (its name, or its position from 1)');
}

/** Source, destination, secrets and journal: what identifies the work. */
export function addAccountOptions(cmd: Command): Command {
  addSide(cmd, 'pop', 'POP3 source', 'pop3s');
  cmd.addOption(new Option('--pop-auth <method>', 'POP3 login method').choices([...POP3_AUTH]).default('auto'));
  addSide(cmd, 'imap', 'IMAP destination', 'imaps');
  cmd.addOption(
    new Option(
      '--provider <name>',
      "the destination is this service: its IMAP host unless given, and its published limits (README 'Providers')",
    ).choices([...PROVIDER_NAMES]),
  );
  cmd.addOption(
    new Option('--imap-auth <method>', 'IMAP login method (default auto: from what the server offers)').choices([
      ...IMAP_AUTH,
    ]),
  );
  cmd.option('--journal <path>', 'state journal (SQLite); default ~/.local/state/popsync/<user@host>.sqlite');
  cmd.option(
    '--timeout <seconds>',
    `network inactivity timeout (at most ${MAX_TIMEOUT_SECONDS})`,
    timeoutSeconds,
    DEFAULT_TIMEOUT_SECONDS,
  );
  return cmd;
}

/** How copies look: folder, flags, arrival date. */
export function addRoutingOptions(cmd: Command): Command {
  return cmd
    .option(
      '--folder <name>',
      "destination folder, UTF-8, '/' between levels; created when missing",
      folderName,
      DEFAULT_FOLDER,
    )
    .option(
      '--flag <flag>',
      'add this flag or keyword to every copy (repeatable), e.g. \\Seen or $Migrated; \\Deleted and \\Recent ' +
        'are refused',
      collectFlag,
    )
    .option(
      '--no-arrival-date',
      'give copies the copy time as arrival date instead of the date from their Received:/Date: headers',
    )
    .option(
      '--seen <steps>',
      'which copies arrive read, a chain whose first deciding step wins: status-header (the default: a Status: ' +
        'header with R), older-than:30d, all, none (everything unread); comma-separated',
      seenSteps,
    );
}

/** `--seen status-header,older-than:30d,none`: checked here so a typo is exit 2 before connecting. */
function seenSteps(v: string): string[] {
  const steps = v.split(',').map((s) => s.trim());
  const bad = steps.find((s) => !SEEN_STEP_RE.test(s));
  if (bad !== undefined)
    throw new InvalidArgumentError(`unknown seen step "${bad}": use status-header, older-than:30d, all or none`);
  return steps;
}

function rateArg(v: string): number {
  const n = parseRate(v);
  if (n === null) throw new InvalidArgumentError('--max-rate must be bytes per second above 0, e.g. 2M or 512KB/s');
  return n;
}

function budgetArg(v: string): number {
  const n = parseSize(v);
  if (n === null || n <= 0) throw new InvalidArgumentError('--daily-budget must be a size above 0, e.g. 500MB or 2G');
  return n;
}

function appendConnectionsArg(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > MAX_APPEND_CONNECTIONS)
    throw new InvalidArgumentError(`--append-connections must be a whole number from 1 to ${MAX_APPEND_CONNECTIONS}`);
  return n;
}

/** Batching: how much is fetched before it is appended; and how fast and how much may go up. */
export function addTransferOptions(cmd: Command): Command {
  return cmd
    .option('--max-rate <bytes/s>', 'upload at most this much per second on average, e.g. 2M (binary units)', rateArg)
    .option(
      '--daily-budget <size>',
      'upload at most this much in any 24 hours, counted across runs; at the limit the run stops with exit 75',
      budgetArg,
    )
    .option(
      '--batch-messages <n>',
      'messages fetched per pipelined batch',
      positiveInt('--batch-messages'),
      DEFAULT_BATCH_MESSAGES,
    )
    .option(
      '--batch-mb <n>',
      'megabytes fetched per batch (bounds memory)',
      positiveInt('--batch-mb'),
      DEFAULT_BATCH_MB,
    )
    .option(
      '--append-connections <n>',
      `APPEND connections at most, one per destination folder, opened as further folders come (default 1, ` +
        `at most ${MAX_APPEND_CONNECTIONS}; a provider may set its own)`,
      appendConnectionsArg,
    )
    .option(
      '--reconnect-attempts <n>',
      'after a dropped connection, reconnect up to this many times in a row without progress (backoff 1 s, 2 ' +
        's, 4 s ... 30 s)',
      nonNegativeInt('--reconnect-attempts'),
      DEFAULT_RECONNECT_ATTEMPTS,
    );
}

export function addOutputOptions(cmd: Command): Command {
  return cmd
    .option('--json', 'print the summary as one JSON object on stdout')
    .option('--no-progress', 'no spinner or progress bars')
    .option('-q, --quiet', 'print nothing unless something failed')
    .option('-v, --verbose', 'log protocol steps to stderr (passwords are never logged)')
    .option(
      '--log-file <path>',
      'also write a debug log to this file (mode 0600, its missing folders 0700): text lines, one result line ' +
        'per run and account',
    )
    .addOption(
      new Option('--log-format <format>', 'the --log-file lines: text, or json for log shippers')
        .choices(['text', 'json'])
        .default('text'),
    );
}

export interface OutputOptions {
  json: boolean;
  progress: boolean;
  /** false after --no-color (main.ts gives every command the option); NO_COLOR is read in context.ts. */
  color: boolean;
  quiet: boolean;
  verbose: boolean;
  logFile?: string;
  logFormat?: LogFormat;
}

export function outputOptions(o: Record<string, unknown>): OutputOptions {
  return {
    json: o.json === true,
    progress: o.progress !== false,
    color: o.color !== false,
    quiet: o.quiet === true,
    verbose: o.verbose === true,
    ...(typeof o.logFile === 'string' ? { logFile: o.logFile } : {}),
    ...(o.logFormat === 'json' ? { logFormat: 'json' as const } : {}),
  };
}

export function sideFlags(o: Record<string, unknown>, side: 'pop' | 'imap'): SideFlags {
  const f: SideFlags = {};
  const str = (k: string) => (typeof o[k] === 'string' ? (o[k] as string) : undefined);
  const set = <K extends keyof SideFlags>(key: K, v: SideFlags[K] | undefined) => {
    if (v !== undefined) f[key] = v;
  };
  set('url', str(side));
  set('host', str(`${side}Host`));
  set('port', str(`${side}Port`));
  set('user', str(`${side}User`));
  set('tls', str(`${side}Tls`));
  set('caFile', str(`${side}CaFile`));
  set('passwordEnv', str(`${side}PasswordEnv`));
  set('passwordFile', str(`${side}PasswordFile`));
  set('oauth2TokenCommand', str(`${side}Oauth2TokenCommand`));
  set('adminUser', str(`${side}AdminUser`));
  if (o[`${side}Insecure`] === true) f.insecure = true;
  if (side === 'imap') set('provider', str('provider'));
  if (side === 'imap' && typeof o.appendConnections === 'number') f.appendConnections = o.appendConnections;
  set('auth', str(`${side}Auth`));
  return f;
}

/** Many accounts (README "Many accounts"): a CSV list, one journal each, a share of the list. */
export function addAccountListOptions(cmd: Command): Command {
  return cmd
    .option(
      '--accounts <file.csv>',
      'the accounts from a CSV file with a header row naming its columns: name, source, destination, ' +
        'and optionally source_password, destination_password, folder',
    )
    .option(
      '--journal-dir <dir>',
      'one journal per account in this folder, named <name>.sqlite (with --accounts, or --config with named accounts)',
    )
    .option(
      '--shard <K/N>',
      'only the accounts whose name hashes to share K of N (K from 0), e.g. --shard "$JOB_COMPLETION_INDEX/20"',
    );
}

/** How many accounts run at once, and how hard they may lean on one server. */
export function addParallelOptions(cmd: Command): Command {
  return cmd
    .option('--parallel <n>', 'run this many accounts at once', positiveInt('--parallel'), 1)
    .option(
      '--max-connections-per-host <n>',
      'at most this many accounts at once on each source host and on each destination host',
      positiveInt('--max-connections-per-host'),
      4,
    );
}

export interface ParallelOptions {
  parallel: number;
  maxPerHost: number;
}

export function parallelOptions(o: Record<string, unknown>): ParallelOptions {
  return {
    parallel: typeof o.parallel === 'number' ? o.parallel : 1,
    maxPerHost: typeof o.maxConnectionsPerHost === 'number' ? o.maxConnectionsPerHost : 4,
  };
}
