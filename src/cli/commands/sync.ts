/**
 * `popsync sync`: the cron-grade incremental run. Same engine, options and journal as
 * `migrate`, with what a job run every few minutes for months needs:
 * - silence and exit 0 when nothing is new (fetchmail's exit 1 for "no mail" breaks cron);
 *   one summary line when something happened; one JSON object with --json;
 * - the account lock (exit 7 when another run holds it, or --wait);
 * - IMAP is contacted only when there is something to do there, so a no-op run is LIST+UIDL;
 * - connection failures are "try again later" (75): cron will run it again anyway;
 * - optional deletion from the source (engine/deletion.ts for the rules).
 */
import { dryRun } from './plan.js';
import { InvalidArgumentError, type Command } from 'commander';
import { now } from '../../engine/clock.js';
import { parseMaxDelete, type DeletionPolicy } from '../../engine/deletion.js';
import type { ProgressListener, RunResult } from '../../engine/types.js';
import { ExitCode, PopsyncError, isPopsyncError } from '../../errors.js';
import { SUMMARY_JSON_VERSION, formatBytes, formatFailure, printable } from '../../report/summary.js';
import { accountJobs, type AccountJob } from '../account.js';
import { batchView, namesAccounts, runAccountJob, runJobs, tee, type AccountHooks } from '../jobs.js';
import { addReportOptions, accountReportTargets, batchReportTarget, type ReportTarget } from '../report-file.js';
import { writeErrorJson } from '../exit.js';
import type { CommandContext } from '../context.js';
import { addEveryOption, everyIntervals, runEvery } from '../every.js';
import {
  addAccountListOptions,
  addAccountOptions,
  addConfigOptions,
  addLockOptions,
  addOutputOptions,
  addParallelOptions,
  addRoutingOptions,
  addTransferOptions,
  outputOptions,
  parallelOptions,
  type OutputOptions,
} from '../options.js';

function nonNegative(name: string) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isFinite(n) || n < 0) throw new InvalidArgumentError(`${name} must be a number of at least 0`);
    return n;
  };
}

function addDeletionOptions(cmd: Command): Command {
  return cmd
    .option('--delete', 'remove messages from the POP3 server once their copy is confirmed by the IMAP server')
    .option(
      '--delete-after-days <n>',
      'like --delete, but keep each message on the server N days after its first confirmed copy',
      nonNegative('--delete-after-days'),
    )
    .option(
      '--max-delete <n|p%>',
      'refuse to delete more than N messages (or P% of those listed) in one run; nothing is deleted then (exit 1)',
      parseMaxDelete,
    )
    .option('--force', 'delete even beyond --max-delete')
    .option(
      '--verify-before-delete',
      'just before DELE, compare the stored bytes of each copy (sha256) with the message copied; without it ' +
        'popsync checks UID, size and headers',
    );
}

/** The policy from the command line; null: the source is never modified. */
export function deletionPolicy(o: Record<string, unknown>): DeletionPolicy | null {
  const days = typeof o.deleteAfterDays === 'number' ? o.deleteAfterDays : null;
  if (o.delete !== true && days === null) {
    for (const flag of ['maxDelete', 'force', 'verifyBeforeDelete'] as const) {
      if (o[flag] !== undefined)
        throw new PopsyncError(
          'usage',
          `--${flag.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase())} only applies with --delete or --delete-after-days`,
        );
    }
    return null;
  }
  return {
    afterDays: days ?? 0,
    maxDelete: (o.maxDelete as DeletionPolicy['maxDelete'] | undefined) ?? null,
    force: o.force === true,
    verify: o.verifyBeforeDelete === true,
  };
}

/** Something a cron mail should say: a copy, a deletion, a failure, a refusal, a recognition. */
export function somethingHappened(r: RunResult): boolean {
  return (
    r.copied + r.reconciled > 0 ||
    r.deleted > 0 ||
    r.failed.length > 0 ||
    r.recognised > 0 ||
    r.reusedUidls.length > 0 ||
    !!r.deletionRefused ||
    needsAHuman(r)
  );
}

/** Copies found missing or changed before deleting: exit 1, like a failed message. */
function needsAHuman(r: RunResult): boolean {
  return r.copyProblems.length > 0;
}

/** One line, then one line per failure: what cron mails to its owner. */
export function formatSyncReport(r: RunResult): string {
  const copied = r.copied + r.reconciled;
  const parts = [
    `popsync: ${copied} new message${copied === 1 ? '' : 's'} copied (${formatBytes(r.copiedBytes)}) from ` +
      `${r.source} to ${r.destination}`,
  ];
  if (r.adopted > 0) parts.push(adoptedPhrase(r.adopted));
  if (r.deleted > 0) parts.push(`${r.deleted} deleted from the source`);
  if (r.recognised > 0)
    parts.push(`recognised ${r.recognised} message${r.recognised === 1 ? '' : 's'} under new UIDLs`);
  if (r.reusedUidls.length > 0)
    parts.push(`${r.reusedUidls.length} reused UIDL${r.reusedUidls.length === 1 ? '' : 's'} (new messages)`);
  if (r.failed.length > 0) parts.push(`${r.failed.length} failed`);
  const problems = r.copyProblems;
  if (problems.length > 0)
    parts.push(
      `${problems.length} cop${problems.length === 1 ? 'y' : 'ies'} missing or changed in the destination ` +
        `(kept on the source)`,
    );
  const lines = [parts.join(', ')];
  for (const f of r.failed) lines.push(`  ${formatFailure(f)}`);
  for (const p of problems) lines.push(`  UIDL ${printable(p.uidl)}: copy ${p.problem}: ${printable(p.detail)}`);
  if (r.deletionRefused) lines.push(`popsync: ${r.deletionRefused}`);
  return lines.join('\n');
}

/**
 * Copies a run found already in the destination (a new or lost journal) and recorded instead of
 * copying: the word migrate's summary uses, so the two commands account for them alike.
 */
function adoptedPhrase(n: number): string {
  return `${n} found already in the destination and adopted`;
}

/**
 * The --verbose line of a run that copied nothing. It accounts for every message listed: without
 * the adopted count, a new journal over a destination that already held the mail said
 * '2 listed, 0 already copied' and left the 2 unexplained.
 */
export function formatNothingNew(r: RunResult): string {
  const parts = [`${r.listed} listed`, `${r.alreadyCopied} already copied`];
  if (r.adopted > 0) parts.push(adoptedPhrase(r.adopted));
  return `popsync: nothing new on ${r.source} (${parts.join(', ')})`;
}

/** Progress only once there is something to copy: a no-op run shows nothing, even on a terminal. */
function gated(listener: ProgressListener): ProgressListener {
  let open = false;
  return (e) => {
    if (e.type === 'plan' && e.toCopy > 0) open = true;
    if (open) listener(e);
  };
}

async function syncOne(
  job: AccountJob,
  o: OutputOptions,
  deletion: DeletionPolicy | null,
  wait: number | undefined,
  ctx: CommandContext,
  reports: ReportTarget[],
  name?: string,
  hooks?: AccountHooks,
): Promise<number> {
  const own = hooks?.ownProgress !== false;
  const out = ctx.startOutput({ ...o, progress: own && o.progress && !o.quiet && process.stderr.isTTY === true }, name);
  try {
    const result = await runAccountJob(job, {
      command: 'sync',
      logger: out.logger,
      progress: tee(gated(out.progress), hooks?.progress),
      signal: ctx.signal,
      lazyDestination: true,
      reports,
      ...(name === undefined ? {} : { name }),
      deletion,
      now,
      ...(wait === undefined ? {} : { waitSeconds: wait }),
    }).catch((e: unknown) => {
      // Cron runs sync again in a few minutes: an unreachable server is "later", not "broken".
      // TLS and certificate failures keep their own kind (exit 4): waiting does not fix them.
      if (isPopsyncError(e) && e.kind === 'connection') {
        throw new PopsyncError(
          'temporary',
          e.message,
          { ...e.context, hint: e.context.hint ?? 'the next run will try again' },
          { cause: e.cause ?? e },
        );
      }
      throw e;
    });
    out.stop();
    hooks?.result(result);
    const happened = somethingHappened(result);
    const code =
      result.failed.length > 0 || result.deletionRefused || needsAHuman(result) ? ExitCode.partial : ExitCode.ok;
    if (o.json)
      process.stdout.write(
        JSON.stringify({
          version: SUMMARY_JSON_VERSION,
          ...(name !== undefined ? { name } : {}),
          ...result,
          ok: code === ExitCode.ok,
          exitCode: code,
        }) + '\n',
      );
    else if (
      happened ? !o.quiet || result.failed.length > 0 || !!result.deletionRefused || needsAHuman(result) : o.verbose
    ) {
      const text = happened ? formatSyncReport(result) : formatNothingNew(result);
      process.stdout.write(
        (name === undefined
          ? text
          : text
              .split('\n')
              .map((l) => `${name}: ${l}`)
              .join('\n')) + '\n',
      );
    }
    return code;
  } catch (e) {
    if (o.json) printJsonFailure(e, name);
    throw e;
  } finally {
    out.stop();
  }
}

function printJsonFailure(e: unknown, name?: string): void {
  writeErrorJson(e, 'sync', process.stdout, name);
}

export function registerSync(program: Command, ctx: CommandContext): void {
  const cmd = program
    .command('sync')
    .description(
      'Copy the messages the journal has not seen yet (for cron and timers): silent when there is nothing ' +
        'new, one line when there is.',
    );
  addConfigOptions(cmd);
  addAccountListOptions(cmd);
  addParallelOptions(cmd);
  addAccountOptions(cmd);
  addRoutingOptions(cmd);
  addTransferOptions(cmd);
  addOutputOptions(cmd);
  addLockOptions(cmd);
  addDeletionOptions(cmd);
  addReportOptions(cmd);
  addEveryOption(cmd);
  cmd.addHelpText(
    'after',
    // One line: cron takes no backslash continuation, so the account comes from a config file.
    '\nExample (crontab, every 5 minutes; a crontab entry is one line):\n' +
      '  */5 * * * * popsync sync --config ~/.config/popsync/alice.yml --quiet',
  );
  cmd.option('--dry-run', 'print the plan (what `popsync plan` prints; --json for its JSON) and change nothing');
  cmd.action(async (opts: Record<string, unknown>, command: Command) => {
    if (opts.dryRun === true) return dryRun(opts, command, ctx);
    const o = outputOptions(opts);
    try {
      const deletion = deletionPolicy(opts);
      const wait = typeof opts.wait === 'number' ? opts.wait : undefined;
      const jobs = await accountJobs(opts, command);
      const named = namesAccounts(opts);
      const position = new Map(jobs.map((j, i) => [j, i]));
      const one = (job: AccountJob, hooks?: AccountHooks) => {
        const where = { name: job.input.name, index: position.get(job)!, count: jobs.length };
        const reports = accountReportTargets(opts, where);
        return syncOne(job, o, deletion, wait, ctx, reports, named ? job.input.name : undefined, hooks);
      };
      const batchReport = batchReportTarget(opts);
      const every = everyIntervals(opts, jobs);
      const view = every ? undefined : batchView(o, 'sync', jobs.length, true);
      const batch = parallelOptions(opts);
      if (every && batch.parallel > 1)
        throw new PopsyncError('usage', '--every runs its accounts one after another: --parallel is for one-shot runs');
      // A batch report sums up one pass over the list; a loop never ends to write it.
      if (every && batchReport)
        throw new PopsyncError('usage', '--report with --accounts is the report of one pass: drop --every', {
          hint: "--report-dir writes each account's report after each of its runs",
        });
      process.exitCode = every
        ? await runEvery(jobs, every, one, ctx.signal, o, ctx.idle)
        : await runJobs(jobs, one, {
            ...batch,
            signal: ctx.signal,
            ...(named && !o.json ? { total: 'failures' as const } : {}),
            ...(batchReport ? { report: { command: 'sync' as const, target: batchReport } } : {}),
            ...(view ? { view } : {}),
          });
    } catch (e) {
      // Before any account ran (a bad config, a bad option combination), or the one account's error.
      if (o.json) printJsonFailure(e);
      throw e;
    }
  });
}
