/**
 * `sync --every DURATION` (or `every:` in the config): the command-line side of the long-running
 * mode in app/daemon.ts. It decides whether a sync keeps running and how often per account,
 * and turns each cycle's outcome into an exit code the schedule understands: an error is
 * printed here exactly as a one-shot `sync` prints it (cli/exit.ts), and the loop goes on.
 */
import { InvalidArgumentError, type Command } from 'commander';
import { runDaemon } from '../app/daemon.js';
import { MAX_INTERVAL_DAYS, MIN_INTERVAL_MS, parseInterval } from '../config/units.js';
import { PopsyncError } from '../errors.js';
import type { AccountJob } from './account.js';
import { resolvePop3Endpoint } from './endpoints.js';
import { describeError } from './exit.js';
import type { OutputOptions } from './options.js';

export function addEveryOption(cmd: Command): Command {
  return cmd.option(
    '--every <duration>',
    `keep running: sync each account every DURATION (5m, 90s, 1h; at least ${MIN_INTERVAL_MS / 1000}s), with ` +
      `±10% jitter and a longer wait after "try again later"; SIGTERM/SIGINT finish the batches being stored ` +
      'and exit 0',
    (v: string): number => {
      const ms = parseInterval(v);
      if (ms === null)
        throw new InvalidArgumentError(
          `write e.g. 5m, 90s or 300 (seconds), at least ${MIN_INTERVAL_MS / 1000}s and at most ` +
            `${MAX_INTERVAL_DAYS} days`,
        );
      return ms;
    },
  );
}

/**
 * Each job's interval when this sync keeps running, or null for a one-shot sync: --every for
 * every account, else the config's `every:`, which then every account must have.
 */
export function everyIntervals(opts: Record<string, unknown>, jobs: readonly AccountJob[]): number[] | null {
  if (typeof opts.every === 'number') return jobs.map(() => opts.every as number);
  if (!jobs.some((j) => j.everyMs !== undefined)) return null;
  const missing = jobs.filter((j) => j.everyMs === undefined);
  if (missing.length > 0) {
    throw new PopsyncError('usage', `every: is set for some accounts but not for ${missing.map(jobName).join(', ')}`, {
      hint: 'set every: under defaults: or on each account, or pass --every',
    });
  }
  return jobs.map((j) => j.everyMs!);
}

/** The account's name, else its source as user@host:port, for the loop's own lines. */
function jobName(job: AccountJob): string {
  if (job.input.name !== undefined) return job.input.name;
  try {
    return resolvePop3Endpoint(job.input.pop).display;
  } catch {
    // A source that does not resolve fails its first cycle with its own message.
    return job.input.pop.user ?? 'account';
  }
}

/** Runs `one` for each job on its interval until SIGTERM/SIGINT; returns the exit code. */
export async function runEvery(
  jobs: readonly AccountJob[],
  intervals: readonly number[],
  one: (job: AccountJob) => Promise<number>,
  signal: AbortSignal,
  o: OutputOptions,
  idle: { between: boolean } = { between: false },
): Promise<number> {
  const several = jobs.length > 1;
  const code = await runDaemon({
    accounts: jobs.map((job, i) => ({ account: job, name: jobName(job), intervalMs: intervals[i]! })),
    signal,
    cycle: async (job) => {
      idle.between = false;
      try {
        return await one(job);
      } catch (e) {
        const { code, message } = describeError(e);
        // SIGTERM's own line was printed by main.ts; the cycle's "interrupted" adds nothing.
        if (!signal.aborted) process.stderr.write(several ? `popsync: account ${jobName(job)}:\n${message}` : message);
        return code;
      } finally {
        idle.between = true;
      }
    },
    notify: (line, kind) => {
      if (!o.quiet || kind === 'stopped') process.stderr.write(line + '\n');
    },
  });
  if (signal.aborted) {
    // Stopped by SIGTERM/SIGINT: a connect the interrupt abandoned may hold its socket until
    // --timeout, and a service manager waits for us. Journal and lock are closed by now.
    await new Promise<void>((resolve) => process.stdout.write('', () => process.stderr.write('', () => resolve())));
    process.exit(code);
  }
  return code;
}
