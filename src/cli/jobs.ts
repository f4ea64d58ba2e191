/**
 * How the commands that copy (migrate, sync) run their accounts: each account job resolved
 * and handed to the run use case (app/run-account.ts: the engine under the account lock, with
 * the job's routing); and a batch of jobs where one failing account is reported and the next
 * still runs, and the exit code is the worst any got (so cron sees it). Kept here so migrate
 * and sync differ only in what is really theirs.
 *
 * `--report` is written here too, after the engine returns and before the summary is printed;
 * a run that ends in an error (exit 2+) writes none, since it did not finish what it reports on.
 */
import type { ProgressEvent, ProgressListener, RunResult } from '../engine/types.js';
import { setMaxListeners } from 'node:events';
import { runBatch } from '../app/batch.js';
import { createHostSlots } from '../app/host-slots.js';
import { runAccount, type RunOptions } from '../app/run-account.js';
import { ExitCode, isPopsyncError } from '../errors.js';
import { resolveAccount, type AccountJob } from './account.js';
import { hostKeys, mailboxSlotLimits } from './account-list.js';
import type { OutputOptions, ParallelOptions } from './options.js';
import { describeError } from './exit.js';
import {
  buildBatchReport,
  rowFromError,
  rowFromRun,
  type BatchAccountRow,
  type BatchCommand,
} from '../report/batch-report.js';
import { startBatchScreen } from '../report/batch-screen.js';
import { BatchTally } from '../report/batch-view.js';
import { formatBytes, formatDuration } from '../report/summary.js';
import { colorAllowed } from './color.js';
import { writeBatchReport, writeRunReport, type BatchReportTarget, type ReportTarget } from './report-file.js';

/** Generous: two were seen per account running side by side. */
const INTERRUPT_LISTENERS_PER_ACCOUNT = 8;

/** What a command adds to the engine run beyond the account job itself. */
export type RunExtras = Omit<RunOptions, 'detail'> & {
  /** --report, --report-dir: where the per-message report of this account's run goes (several formats). */
  reports?: ReportTarget[];
  /** The account's name, put into its report. */
  name?: string;
};

/** One account of migrate or sync: resolved here, run by the use case, its reports written here. */
export async function runAccountJob(job: AccountJob, extras: RunExtras): Promise<RunResult> {
  const { reports = [], name, ...run } = extras;
  let result: RunResult;
  try {
    const account = await resolveAccount(job.input, { logger: extras.logger });
    result = await runAccount(account, job, { ...run, detail: reports.length > 0 });
  } catch (e) {
    // No exit code here: the command may still map it (sync: a connection failure is 75).
    extras.logger.info(
      {
        command: extras.command,
        outcome: 'error',
        kind: isPopsyncError(e) ? e.kind : 'internal',
        error: e instanceof Error ? e.message : String(e),
      },
      'result',
    );
    throw e;
  }
  extras.logger.info(resultFields(result), 'result');
  if (reports.length > 0) {
    try {
      await writeRunReport(result, reports, name);
      for (const r of reports) extras.logger.info({ path: r.path, format: r.format }, 'wrote the run report');
    } finally {
      // Per-message rows are for the report only: summaries and --json stay their usual size.
      delete result.messages;
    }
  }
  return result;
}

/**
 * The one log line per run and account that says how it ended (--log-file: what a person
 * greps for, and what a log shipper counts): the counts, not the per-message detail.
 */
function resultFields(r: RunResult): Record<string, unknown> {
  const failed = r.failed.length;
  return {
    command: r.command,
    outcome: failed > 0 || r.deletionRefused ? 'partial' : 'ok',
    exitCode: failed > 0 || r.deletionRefused ? ExitCode.partial : ExitCode.ok,
    source: r.source,
    destination: r.destination,
    listed: r.listed,
    copied: r.copied,
    copiedBytes: r.copiedBytes,
    alreadyCopied: r.alreadyCopied,
    // Copies found in the destination rather than made: without them a run that adopted a
    // whole mailbox would read as "copied 0, already copied 0".
    ...(r.reconciled > 0 ? { reconciled: r.reconciled } : {}),
    ...(r.adopted > 0 ? { adopted: r.adopted } : {}),
    failed,
    ...(r.deleted !== undefined ? { deleted: r.deleted } : {}),
    durationMs: r.durationMs,
  };
}

/**
 * Runs the jobs, `parallel` at once (app/batch.ts) within the per-host cap, in list order;
 * returns the worst exit code. One job alone throws as usual.
 */
export interface BatchRun extends ParallelOptions {
  signal?: AbortSignal;
  /**
   * A last line on stdout with the accounts' outcomes (batchTotal): 'always' (migrate), or
   * only when some account did not end 0 ('failures': sync, silent in cron when all is well).
   */
  total?: 'always' | 'failures';
  /** `--report FILE` with `--accounts`: one row per account, written when the batch has run. */
  report?: { command: BatchCommand; target: BatchReportTarget };
  /** The live batch view on stderr (batchView). */
  view?: BatchViewMode;
}

export interface BatchViewMode {
  command: string;
  /** A redrawn block on a terminal; else a plain line now and then. */
  tty: boolean;
}

/**
 * Whether a batch shows its live view, and how: only for a list or accounts side by side,
 * never with --json or --quiet or --no-progress; `ttyOnly` for sync, whose cron runs print
 * nothing unless something happened. The terminal block needs what the bars need (a width,
 * colour allowed); otherwise plain lines.
 */
export function batchView(
  o: OutputOptions,
  command: string,
  accounts: number,
  ttyOnly = false,
): BatchViewMode | undefined {
  if (accounts < 2 || o.json || o.quiet || !o.progress) return undefined;
  const tty = process.stderr.isTTY === true && (process.stderr.columns ?? 0) > 0 && colorAllowed(process.env, o.color);
  if (ttyOnly && !tty) return undefined;
  return { command, tty };
}

/** What runJobs hands each account's run besides its job. */
export interface AccountHooks {
  /** The run's result, for the batch report and the grand total. */
  result(r: RunResult): void;
  /** The batch view's ear for this account's progress events. */
  progress?: ProgressListener;
  /** false: the batch view has the terminal, the account draws no progress of its own. */
  ownProgress: boolean;
}

/** Both listeners, when there are two. */
export function tee(a: ProgressListener, b: ProgressListener | undefined): ProgressListener {
  return b === undefined
    ? a
    : (e) => {
        a(e);
        b(e);
      };
}

export async function runJobs(
  jobs: AccountJob[],
  one: (job: AccountJob, hooks: AccountHooks) => Promise<number>,
  batch: BatchRun = { parallel: 1, maxPerHost: 1 },
): Promise<number> {
  // Each running account listens for the interrupt a few times (cut connects, backoff sleeps,
  // lock waits) and stops listening when it ends, so the count is bounded by --parallel; past
  // Node's default of 10 it would warn "possible memory leak" on stderr of a healthy batch.
  if (batch.signal && batch.parallel > 1)
    setMaxListeners(Math.max(10, INTERRUPT_LISTENERS_PER_ACCOUNT * batch.parallel), batch.signal);
  const outcomes: AccountEnd[] = [];
  // Rows in list order whatever order the accounts end in.
  const rows = new Map<AccountJob, BatchAccountRow>();
  const command = batch.report?.command ?? 'migrate';
  const finishReport = async () => {
    if (!batch.report) return;
    const report = buildBatchReport(
      jobs.flatMap((j) => rows.get(j) ?? []),
      new Date(),
    );
    await writeBatchReport(report, batch.report.target);
  };
  const startedAt = Date.now();
  const tally = batch.view ? new BatchTally(batch.view.command, jobs.length, startedAt) : undefined;
  const screen =
    tally && batch.view
      ? startBatchScreen({ tally, tty: batch.view.tty, shared: process.stdout.isTTY ? [process.stdout] : [] })
      : undefined;
  const ended = (name: string, code: number) => {
    tally?.end(name, code);
    screen?.changed();
  };
  const mailboxLimits = mailboxSlotLimits(jobs);
  const worst = await runBatch({
    accounts: jobs,
    parallel: batch.parallel,
    ...(batch.parallel > 1
      ? {
          // A provider's cap on one mailbox's connections (Gmail: 15) bounds the accounts copying into it.
          slots: createHostSlots(batch.maxPerHost, (key) => mailboxLimits.get(key)),
          hostsOf: hostKeys,
        }
      : {}),
    ...(batch.signal ? { signal: batch.signal } : {}),
    run: async (job) => {
      const name = accountName(job);
      let result: RunResult | undefined;
      tally?.start(name);
      try {
        const code = await one(job, {
          result: (r) => {
            result = r;
          },
          ...(tally ? { progress: (e: ProgressEvent) => tally.event(name, e) } : {}),
          ownProgress: !batch.view?.tty,
        });
        ended(name, code);
        outcomes.push({ name, code, ...(result ? { result } : {}) });
        rows.set(
          job,
          result ? rowFromRun(name, result, code) : rowFromError(name, command, code, 'ended without a result'),
        );
        return code;
      } catch (e) {
        const interrupted = isPopsyncError(e) && e.kind === 'interrupted';
        const { code, message } = describeError(e);
        ended(name, code);
        if (!interrupted) rows.set(job, rowFromError(name, command, code, errorLine(e)));
        // One account alone reports through main.ts; with several, the others still run.
        if (jobs.length === 1 || interrupted) {
          screen?.stop();
          if (!interrupted) await finishReport();
          throw e;
        }
        process.stderr.write(`popsync: account ${name}:\n${message}`);
        outcomes.push({ name, code });
        return code;
      }
    },
  });
  screen?.stop();
  await finishReport();
  if (jobs.length > 1 && (batch.total === 'always' || (batch.total === 'failures' && worst !== ExitCode.ok)))
    process.stdout.write(`${batchTotal(outcomes, Date.now() - startedAt)}\n`);
  return worst;
}

/** An account's name in lines and reports: its own, else its source user. */
export function accountName(job: AccountJob): string {
  return job.input.name ?? job.input.pop.user ?? 'account';
}

/** The error of an account that stopped, on one line for a report row: what stderr said first. */
export function errorLine(e: unknown): string {
  if (isPopsyncError(e)) return e.context.hint ? `${e.message} (${e.context.hint})` : e.message;
  return 'internal error: see the message on stderr';
}

export interface AccountEnd {
  name: string;
  code: number;
  result?: RunResult;
}

/** Most names listed per outcome in the total line; the rest are counted. */
const NAMES_SHOWN = 10;

/**
 * The batch's last line: how many accounts ended how, and which did not end well, e.g.
 * `popsync: 8 accounts: 6 ok, 1 with failed messages (exit 1: bob), 1 exit 3 (carol)`.
 */
export function batchTotal(outcomes: readonly AccountEnd[], elapsedMs?: number): string {
  const byCode = new Map<number, string[]>();
  for (const o of outcomes) byCode.set(o.code, [...(byCode.get(o.code) ?? []), o.name]);
  const parts = [...byCode.entries()]
    .sort(([a], [b]) => a - b)
    .map(([code, names]) => {
      if (code === ExitCode.ok) return `${names.length} ok`;
      const shown =
        names.slice(0, NAMES_SHOWN).join(', ') +
        (names.length > NAMES_SHOWN ? ` and ${names.length - NAMES_SHOWN} more` : '');
      return code === ExitCode.partial
        ? `${names.length} with failed messages (exit 1: ${shown})`
        : `${names.length} exit ${code} (${shown})`;
    });
  const head = `popsync: ${outcomes.length} account${outcomes.length === 1 ? '' : 's'}: ${parts.join(', ')}`;
  if (elapsedMs === undefined) return head;
  // The grand total: what every account that ran to its end copied, and how long the batch took.
  let copied = 0;
  let bytes = 0;
  let adopted = 0;
  for (const o of outcomes) {
    copied += (o.result?.copied ?? 0) + (o.result?.reconciled ?? 0);
    bytes += o.result?.copiedBytes ?? 0;
    adopted += o.result?.adopted ?? 0;
  }
  const messages = `${copied} message${copied === 1 ? '' : 's'}`;
  // Copies found already in the destination (a new journal over filled mailboxes) were not
  // copied and their bytes are not in the figure, but without them the batch read "0 copied".
  const found = adopted > 0 ? `, ${adopted} found already in the destination (adopted),` : '';
  return `${head}; ${messages} copied (${formatBytes(bytes)})${found} in ${formatDuration(elapsedMs)}`;
}

/** Whether output names the account on every line: a list, or accounts running side by side. */
export function namesAccounts(opts: Record<string, unknown>): boolean {
  return typeof opts.accounts === 'string' || (typeof opts.parallel === 'number' && opts.parallel > 1);
}
