/**
 * `popsync status`: what the journal says, per account: copied, pending, failed (with the
 * reasons), deleted from the source, the last run and the last error, and who holds the lock.
 * Read-only (Journal.inspect opens the file read-only and upgrades nothing), needs no password
 * and contacts no server, so it is safe to run while a sync is in progress.
 */
import { InvalidArgumentError, type Command } from 'commander';
import { hostname } from 'node:os';
import { PopsyncError } from '../../errors.js';
import { Journal, type JournalSnapshot, type MessageSummary, type RunRecord } from '../../journal/journal.js';
import { processAlive, type LockRecord } from '../../journal/lock.js';
import { formatDuration, printable } from '../../report/summary.js';
import { locateJournal, missingJournal, refuseDirectory, sameMailbox } from '../journal-identity.js';
import { resolvePop3Endpoint } from '../endpoints.js';
import { addAccountListOptions, addAccountOptions, sideFlags } from '../options.js';

export interface AccountStatus {
  account: string;
  /** In the destination by the journal's record: made by popsync or adopted. */
  copied: number;
  /**
   * Of `copied`, found already in the destination and adopted by the account's runs (v7 on),
   * not copied: a new journal over a filled destination otherwise showed every one as copied.
   */
  adopted: number;
  pending: { appending: number; deleting: number };
  failed: Array<{ uidl: string; error: string | null; attempts: number }>;
  deleted: number;
  lastRun: RunRecord | null;
  /** The last runs, newest first (at most `runs`, default DEFAULT_RUNS): what happened lately. */
  runs: RunRecord[];
  lastError: { at: string; error: string } | null;
  lock: Omit<LockRecord, 'token'> | null;
}

/** Runs `status` lists per account unless --runs says otherwise; the journal keeps every run. */
const DEFAULT_RUNS = 5;
/** What a snapshot holds (journal/readonly.ts reads the last 20). */
const MAX_RUNS = 20;

/**
 * Pure: the snapshot's message counts, failed messages and runs folded into what `status`
 * prints. Counts, not rows: SQLite counts (journal/readonly.ts) and status holds no message
 * but the failed ones it names, however many years of messages a journal records.
 */
export function summarise(
  account: string,
  messages: MessageSummary,
  runs: readonly RunRecord[],
  lock: LockRecord | null,
  listRuns = DEFAULT_RUNS,
  adoptedByRuns = 0,
): AccountStatus {
  const { counts } = messages;
  // A run stopped by SIGTERM recorded why, but that was asked for: not an error to show.
  const errored = runs.find((r) => r.error !== null && r.result !== 'interrupted');
  let holder: Omit<LockRecord, 'token'> | null = null;
  if (lock) {
    const { token: _token, ...rest } = lock;
    holder = rest;
  }
  const copied = counts.done + counts.deleting + counts.deleted;
  return {
    account,
    copied,
    // Runs count each adoption; a folder forgotten and adopted again is counted twice there,
    // once here.
    adopted: Math.min(adoptedByRuns, copied),
    pending: { appending: counts.appending, deleting: counts.deleting },
    failed: messages.failed.map((f) => ({ uidl: f.uidl, error: f.lastError, attempts: f.attempts })),
    deleted: counts.deleted,
    lastRun: runs[0] ?? null,
    runs: runs.slice(0, listRuns),
    lastError: errored ? { at: errored.finishedAt ?? errored.startedAt, error: errored.error! } : null,
    lock: holder,
  };
}

/** `name`: the source as given with --pop (`user@host:port`), as a run names it; else the journal key. */
export function formatStatus(path: string, s: AccountStatus, name = s.account): string {
  const lines = [`${printable(name)}  (journal ${printable(path)})`];
  const about = [
    ...(s.adopted > 0 ? [`${s.adopted} of them found already in the destination and adopted`] : []),
    ...(s.deleted > 0 ? [`${s.deleted} of them deleted from the source`] : []),
  ];
  lines.push(`  copied:   ${s.copied}${about.length > 0 ? ` (${about.join(', ')})` : ''}`);
  lines.push(
    `  pending:  ${s.pending.appending} being copied, ${s.pending.deleting} being deleted (settled by the next run)`,
  );
  lines.push(`  failed:   ${s.failed.length}`);
  for (const f of s.failed)
    lines.push(
      `    UIDL ${printable(f.uidl)} (${f.attempts} attempt${f.attempts === 1 ? '' : 's'}): ` +
        `${printable(f.error ?? 'no reason recorded')}`,
    );
  const r = s.lastRun;
  if (r === null) lines.push('  last run: none recorded');
  else {
    const outcome = r.result === null ? (s.lock ? 'running' : 'did not finish (killed?)') : r.result;
    lines.push(
      `  last run: ${r.startedAt} ${r.command}, ${outcome}` +
        (r.listed === null
          ? ''
          : ` (listed ${r.listed}, new ${r.newCount ?? 0}, copied ${r.copied ?? 0}${adoptedPart(r)}, ` +
            `failed ${r.failed ?? 0}, deleted ${r.deleted ?? 0})`),
    );
  }
  if (s.runs.length > 1) {
    lines.push('  runs, newest first:');
    for (const [i, run] of s.runs.entries()) lines.push(`    ${runLine(run, i === 0 && s.lock !== null)}`);
  }
  if (s.lastError) lines.push(`  last error: ${s.lastError.at}: ${printable(s.lastError.error)}`);
  if (s.lock)
    lines.push(
      `  lock:     held by pid ${s.lock.pid} on ${printable(s.lock.hostname)} (${s.lock.command} since ` +
        `${s.lock.startedAt}, heartbeat ${s.lock.heartbeatAt})`,
    );
  return lines.join('\n');
}

/**
 * Copies a run found already in the destination, when it found any: without them a run over a
 * destination that already held the mail read "new 2, copied 0" (journals from v7 on record them).
 */
function adoptedPart(r: RunRecord): string {
  return (r.adopted ?? 0) > 0 ? `, adopted ${r.adopted}` : '';
}

/**
 * One run on one line, within 80 columns for everyday counts:
 * "2026-11-29 16:40  sync     ok           copied 2 of 5 new, failed 0  1.2s".
 */
function runLine(r: RunRecord, running: boolean): string {
  const when = r.startedAt.slice(0, 16).replace('T', ' ');
  const outcome = r.result === null ? (running ? 'running' : 'killed?') : r.result;
  const counts =
    r.listed === null
      ? ''
      : `copied ${r.copied ?? 0} of ${r.newCount ?? 0} new${adoptedPart(r)}, failed ${r.failed ?? 0}` +
        ((r.deleted ?? 0) > 0 ? `, deleted ${r.deleted}` : '');
  const took = r.durationMs === null ? '' : `  ${formatDuration(r.durationMs)}`;
  return `${when}  ${printable(r.command).padEnd(7)}  ${outcome.padEnd(11)}  ${counts}${took}`.trimEnd();
}

export function registerStatus(program: Command): void {
  const cmd = program
    .command('status')
    .description(
      'Show what the journal records per account: copied, pending, failed with reasons, deleted, last run, ' +
        'last error. Reads only.',
    );
  addAccountOptions(cmd);
  addAccountListOptions(cmd);
  cmd.option('--json', 'print one JSON object on stdout');
  cmd.option(
    '--runs <n>',
    `how many of the last runs to list per account (at most ${MAX_RUNS})`,
    (v: string): number => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < 1 || n > MAX_RUNS)
        throw new InvalidArgumentError(`a whole number from 1 to ${MAX_RUNS}`);
      return n;
    },
    DEFAULT_RUNS,
  );
  cmd.action(async (opts: Record<string, unknown>, command: Command) => {
    if (typeof opts.accounts === 'string') {
      // One line per account of a list, and totals (status-list.ts).
      const { formatListStatus, listStatus, listTotals } = await import('../status-list.js');
      const items = await listStatus(opts, command);
      if (opts.json === true)
        process.stdout.write(JSON.stringify({ accounts: items, totals: listTotals(items) }) + '\n');
      else process.stdout.write(formatListStatus(items) + '\n');
      return;
    }
    if (typeof opts.journalDir === 'string' || typeof opts.shard === 'string')
      throw new PopsyncError('usage', '--journal-dir and --shard need --accounts FILE.csv');
    let path: string;
    let only: string | null = null;
    let given: string | undefined;
    const pop = sideFlags(opts, 'pop');
    const explicit = typeof opts.journal === 'string' ? opts.journal : undefined;
    if (pop.url !== undefined || pop.host !== undefined) {
      const endpoint = resolvePop3Endpoint(pop);
      given = endpoint.display;
      ({ path, sourceKey: only } = locateJournal(endpoint, explicit));
    } else if (explicit !== undefined) path = refuseDirectory(explicit);
    else throw new PopsyncError('usage', 'status needs --journal PATH or the source account (--pop URL)');

    const snap: JournalSnapshot | null = Journal.inspect(path);
    if (snap === null) throw missingJournal('status', path, explicit === undefined ? only : null);
    // --journal of one mailbox with --pop of another read 'no runs recorded yet', exit 0: as if
    // the named account had simply not run, when its runs are in a journal elsewhere.
    if (only !== null && snap.source !== null && !sameMailbox(only, snap.source))
      if (!snap.accounts.some((a) => a.account === only))
        // Named as a run names it (the source as given), as journal forget-folder does.
        throw new PopsyncError(
          'journal-bound',
          `journal ${path} belongs to source account ${snap.source}, not ${given ?? only}`,
          {
            account: given ?? only,
            hint: `leave out --journal for the default journal of ${only}, or give the --journal its runs were given`,
          },
        );
    // A row left by a run killed on this host names nobody: the kernel already freed its lock.
    const holding = (l: LockRecord | null) =>
      l !== null && l.hostname === hostname() && !processAlive(l.pid) ? null : l;
    const accounts = snap.accounts
      .filter((a) => only === null || a.account === only)
      .map((a) => summarise(a.account, a.messages, a.runs, holding(a.lock), opts.runs as number, a.adopted));
    if (opts.json === true)
      process.stdout.write(
        JSON.stringify({ journal: path, source: snap.source, schemaVersion: snap.schemaVersion, accounts }) + '\n',
      );
    else
      process.stdout.write(
        (accounts.length === 0
          ? `${printable(path)}: no runs recorded yet`
          : accounts.map((a) => formatStatus(path, a, given)).join('\n\n')) + '\n',
      );
  });
}
