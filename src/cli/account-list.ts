/**
 * Many accounts on one command line: `--accounts FILE.csv` rows become AccountJobs the same
 * way a config file's accounts do (cli/account.ts), then `--journal-dir` gives each account
 * its own journal (and so its own lock: the kernel lock on `<journal>.lock`), and `--shard`
 * keeps this process's share. The CSV parsing itself is config/account-list.ts; the batch
 * loop is app/batch.ts.
 */
import { join } from 'node:path';
import { selectShard, parseShard } from '../app/shard.js';
import { ACCOUNT_NAME_RE, loadAccountList, type ListedAccount } from '../config/account-list.js';
import { PopsyncError, isPopsyncError } from '../errors.js';
import type { SideFlags } from '../config/side-flags.js';
import type { AccountJob } from './account.js';
import { canonicalHost, journalDirEntry } from './journal-identity.js';
import { resolveImapEndpoint, resolvePop3Endpoint } from './endpoints.js';
import { makeDirs } from './make-dirs.js';

/** Connection flags that name one mailbox: meaningless for a list of them. */
const ONE_MAILBOX = ['url', 'host', 'port', 'user'] as const;
const PASSWORD_KEYS = ['passwordEnv', 'passwordFile', 'passwordCommand'] as const;

/**
 * The jobs of an account list: each row's source and destination URLs with the shared
 * connection flags (TLS, CA, --pop-auth, password options) applied to every row. `base` is
 * the job the flags alone describe (routing, batching, timeout), which every row starts from.
 */
export function listedAccountJobs(
  path: string,
  pop: SideFlags,
  imap: SideFlags,
  base: AccountJob,
  folderTyped: boolean,
): AccountJob[] {
  for (const [side, flags, opt] of [
    ['source', pop, '--pop'],
    ['destination', imap, '--imap'],
  ] as const) {
    const given = ONE_MAILBOX.filter((k) => flags[k] !== undefined);
    if (given.length > 0) {
      throw new PopsyncError(
        'usage',
        `--accounts gives each account its own ${side}: ${opt}${given[0] === 'url' ? '' : `-${given[0]}`} ` +
          `cannot apply to all of them`,
        {
          hint: `put the ${side} URL in the file's ${side} column`,
        },
      );
    }
  }
  const list = loadAccountList(path);
  const passwordOption = (f: SideFlags) => PASSWORD_KEYS.some((k) => f[k] !== undefined);
  if (list.passwordColumns.source && passwordOption(pop))
    throw new PopsyncError(
      'usage',
      `${path} has a source_password column: give the POP3 passwords one way only, not also --pop-password-...`,
    );
  if (list.passwordColumns.destination && passwordOption(imap))
    throw new PopsyncError(
      'usage',
      `${path} has a destination_password column: give the IMAP passwords one way only, not also --imap-password-...`,
    );
  return list.accounts.map((row) => {
    const rowPop: SideFlags = {
      ...pop,
      url: row.source,
      ...(row.sourcePassword !== undefined ? { password: row.sourcePassword } : {}),
    };
    const rowImap: SideFlags = {
      ...imap,
      url: row.destination,
      ...(row.destinationPassword !== undefined ? { password: row.destinationPassword } : {}),
    };
    // Checked now, so a typo in row 3,000 is exit 2 before any account runs, not a failure at the end.
    checkEndpoint(path, row, 'source', row.source, () => resolvePop3Endpoint(rowPop));
    checkEndpoint(path, row, 'destination', row.destination, () => resolveImapEndpoint(rowImap));
    return {
      ...base,
      input: { ...base.input, name: row.name, pop: rowPop, imap: rowImap },
      routing: row.folder !== undefined && !folderTyped ? { ...base.routing, defaultFolder: row.folder } : base.routing,
    };
  });
}

function checkEndpoint(
  path: string,
  row: ListedAccount,
  column: 'source' | 'destination',
  url: string,
  resolve: () => unknown,
): void {
  try {
    resolve();
  } catch (e) {
    if (!isPopsyncError(e)) throw e;
    const at = `${path} line ${row.line}, column ${column}`;
    // The URL's refusal explains itself by the command line (ps, shell history), which a list
    // file is not: here the password has a column of its own.
    if (/^[^:/?#]+:\/\/[^/?#@]*:[^/?#]*@/.test(url))
      throw new PopsyncError('usage', `${at}: the URL contains a password, which popsync never reads from a URL`, {
        hint: `give it in a ${column}_password column (keep the file 0600), or with a --*-password option for all`,
      });
    // The hint (e.g. the URL to write instead) applies to the row as it does to a flag.
    throw new PopsyncError(
      'usage',
      `${at}: ${e.message}`,
      e.context.hint === undefined ? {} : { hint: e.context.hint },
    );
  }
}

/** An account's name, which `--journal-dir` and `--shard` need: a file name and a hash key. */
function nameOf(job: AccountJob, index: number, what: string): string {
  const name = job.input.name;
  if (name === undefined)
    throw new PopsyncError('usage', `${what} needs every account to have a name; account ${index + 1} has none`, {
      hint: 'add name: to each account of the config file',
    });
  if (!ACCOUNT_NAME_RE.test(name))
    throw new PopsyncError(
      'usage',
      `${what}: account name "${name}" is not usable as a file name: letters, digits and . _ @ + - only`,
    );
  return name;
}

/**
 * `--journal-dir` and `--shard` applied to the jobs of a list or a config file. The folder is
 * created (0700: journals name every customer) only by commands that write journals.
 */
export function batchedJobs(
  jobs: AccountJob[],
  opts: Record<string, unknown>,
  o: { createJournalDir: boolean },
): AccountJob[] {
  let out = jobs;
  if (typeof opts.journalDir === 'string') {
    if (typeof opts.journal === 'string')
      throw new PopsyncError(
        'usage',
        'give --journal (one account) or --journal-dir (one journal per account), not both',
      );
    const dir = opts.journalDir;
    out = out.map((j, i) => ({
      ...j,
      input: {
        ...j.input,
        journal: join(dir, `${nameOf(j, i, '--journal-dir')}.sqlite`),
        journalOrigin: journalDirEntry(dir),
      },
    }));
    if (o.createJournalDir) {
      try {
        makeDirs(dir, 0o700);
      } catch (e) {
        throw new PopsyncError(
          'usage',
          `--journal-dir: cannot create ${dir} (${(e as NodeJS.ErrnoException).code ?? 'error'})`,
        );
      }
    }
  }
  if (typeof opts.shard === 'string') {
    const shard = parseShard(opts.shard);
    out.forEach((j, i) => {
      nameOf(j, i, '--shard');
    });
    out = selectShard(out, (j) => j.input.name!, shard);
  }
  return out;
}

/**
 * The hosts an account holds `--max-connections-per-host` slots on, keyed by side: a machine
 * that is both a source and a destination has a cap for each. A source that does not resolve
 * holds no slot; its run fails at once with its own message.
 */
export function hostKeys(job: AccountJob): string[] {
  const keys: string[] = [];
  try {
    keys.push(`pop3 ${canonicalHost(resolvePop3Endpoint(job.input.pop).host)}`);
  } catch {
    // reported by the run
  }
  try {
    const imap = resolveImapEndpoint(job.input.imap);
    keys.push(`imap ${canonicalHost(imap.host)}`);
    const mailbox = mailboxSlotLimit(job);
    if (mailbox !== undefined) keys.push(mailboxKey(imap.user, canonicalHost(imap.host)));
  } catch {
    // reported by the run
  }
  return keys;
}

/**
 * IMAP connections one account's run holds at most: imapflow's, its APPEND connections
 * (`--append-connections`, the provider's, else 1), and the streaming one a large message with a
 * NUL needs when the server has no BINARY (imap/writer.ts).
 */
function imapConnectionsPerRun(job: AccountJob): number {
  return 2 + (job.input.imap.appendConnections ?? job.limits?.provider?.appendConnections ?? 1);
}

function mailboxKey(user: string, host: string): string {
  return `imap-mailbox ${user}@${host}`;
}

/**
 * How many accounts may copy into one destination mailbox at once under its provider's
 * connection cap (Gmail: 15 per mailbox, 5 per run, so 3), or undefined when the provider states none.
 * Several POP3 boxes gathered into one Gmail account are the case this is for.
 */
export function mailboxSlotLimit(job: AccountJob): number | undefined {
  const cap = job.limits?.provider?.maxConnectionsPerMailbox;
  return cap == null ? undefined : Math.max(1, Math.floor(cap / imapConnectionsPerRun(job)));
}

/** Per-key limits of hostKeys' mailbox keys, for createHostSlots. */
export function mailboxSlotLimits(jobs: readonly AccountJob[]): Map<string, number> {
  const limits = new Map<string, number>();
  for (const job of jobs) {
    const n = mailboxSlotLimit(job);
    if (n === undefined) continue;
    try {
      const imap = resolveImapEndpoint(job.input.imap);
      limits.set(mailboxKey(imap.user, canonicalHost(imap.host)), n);
    } catch {
      // reported by the run
    }
  }
  return limits;
}
