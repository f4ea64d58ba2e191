/**
 * `sync --every`: one process that keeps syncing, for people replacing Gmail's "check mail from
 * other accounts" with a container or a systemd service instead of a cron line.
 *
 * Each account has its own due time. A cycle that finished (exit 0 or 1) makes the account due
 * one interval after that cycle *started*, so "every 5m" means every five minutes, not five
 * minutes of idleness after each copy. A "try again later" cycle (75: the server said so or
 * could not be reached; 7: another run holds the account) waits longer each time it repeats,
 * up to a bound, counted from its end. Anything else needs a human (bad password, certificate,
 * journal, UIDVALIDITY, a bug): that account leaves the rotation, the others go on, and the
 * process exits with the worst such code when none is left, so a service manager sees it.
 *
 * A little jitter (±10%) keeps many accounts, or many installations, off the same second.
 *
 * The schedule is pure (nextDue); the loop only sleeps and calls the cycle it is given, so it
 * knows nothing about POP3, IMAP or printing: the command runs one ordinary `sync` per cycle,
 * which prints its own line when it moved something and records the run in the journal (what
 * `popsync status` shows as the last run).
 */
import { ExitCode } from '../errors.js';

/** ±10% of the delay. */
const JITTER = 0.1;
/** Backoff for repeated "try again later" never waits longer than this (unless the interval itself is longer). */
const MAX_BACKOFF_MS = 3_600_000;
/** ... nor more than this many intervals. */
const MAX_BACKOFF_FACTOR = 16;

export type CycleOutcome = 'done' | 'later' | 'stop';

/** What a cycle's exit code means for the schedule. */
export function outcomeOf(code: number): CycleOutcome {
  if (code === ExitCode.ok || code === ExitCode.partial) return 'done';
  if (code === ExitCode.temporary || code === ExitCode.locked) return 'later';
  return 'stop';
}

export interface CycleTimes {
  startedAt: number;
  endedAt: number;
  outcome: Exclude<CycleOutcome, 'stop'>;
  /** "later" outcomes in a row before this cycle. */
  laterStreak: number;
  intervalMs: number;
  /** A number in [0, 1): 0.5 is no jitter. */
  random: number;
}

/** When the account is due next, and its "later" streak after this cycle. Pure. */
export function nextDue(c: CycleTimes): { dueAt: number; laterStreak: number } {
  const jitter = 1 + JITTER * (2 * c.random - 1);
  if (c.outcome === 'done') return { dueAt: c.startedAt + Math.round(c.intervalMs * jitter), laterStreak: 0 };
  const streak = c.laterStreak + 1;
  const cap = Math.max(c.intervalMs, Math.min(c.intervalMs * MAX_BACKOFF_FACTOR, MAX_BACKOFF_MS));
  const wait = Math.min(c.intervalMs * 2 ** (streak - 1), cap);
  return { dueAt: c.endedAt + Math.round(wait * jitter), laterStreak: streak };
}

export interface Clock {
  now(): number;
  /** Resolves after `ms`, or early when `signal` aborts; never rejects. */
  sleep(ms: number, signal: AbortSignal): Promise<void>;
}

const realClock: Clock = {
  now: () => Date.now(),
  sleep: (ms, signal) =>
    new Promise<void>((resolve) => {
      if (signal.aborted) return resolve();
      const done = () => {
        clearTimeout(timer);
        signal.removeEventListener('abort', done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      signal.addEventListener('abort', done, { once: true });
    }),
};

interface DaemonAccount<A> {
  account: A;
  /** For the lines the loop prints. */
  name: string;
  intervalMs: number;
}

export interface DaemonOptions<A> {
  accounts: ReadonlyArray<DaemonAccount<A>>;
  /** One sync of one account; resolves with its exit code (the caller has reported any error). */
  cycle(account: A): Promise<number>;
  /** Aborted by SIGTERM/SIGINT: the cycle in flight finishes the batches it is storing, then the loop returns. */
  signal: AbortSignal;
  /** A line for stderr: an account backing off ('later') or leaving the rotation ('stopped'). */
  notify(line: string, kind: 'later' | 'stopped'): void;
  clock?: Clock;
  random?: () => number;
}

/**
 * Runs until the signal aborts (returns 0, or the worst code of an account that left) or until
 * every account has left the rotation (returns the worst code).
 */
export async function runDaemon<A>(o: DaemonOptions<A>): Promise<number> {
  const clock = o.clock ?? realClock;
  const random = o.random ?? Math.random;
  const start = clock.now();
  const live = o.accounts.map((a, order) => ({ ...a, order, dueAt: start, laterStreak: 0 }));
  let worst: number = ExitCode.ok;
  while (live.length > 0 && !o.signal.aborted) {
    const next = live.reduce((a, b) => (b.dueAt < a.dueAt || (b.dueAt === a.dueAt && b.order < a.order) ? b : a));
    const wait = next.dueAt - clock.now();
    if (wait > 0) {
      // Node fires a longer timer after 1 ms; the loop sleeps again for the rest.
      await clock.sleep(Math.min(wait, 0x7fffffff), o.signal);
      continue;
    }
    const startedAt = clock.now();
    const code = await o.cycle(next.account);
    // A cycle cut short by SIGTERM ends in 130: the stop was asked for, so it is not a failure.
    if (o.signal.aborted) break;
    const outcome = outcomeOf(code);
    if (outcome === 'stop') {
      worst = Math.max(worst, code);
      live.splice(live.indexOf(next), 1);
      const others =
        live.length === 0
          ? ''
          : live.length === 1
            ? '; 1 other account goes on'
            : `; ${live.length} other accounts go on`;
      o.notify(`popsync: ${next.name}: stopped syncing this account (exit ${code})${others}`, 'stopped');
      continue;
    }
    const due = nextDue({
      startedAt,
      endedAt: clock.now(),
      outcome,
      laterStreak: next.laterStreak,
      intervalMs: next.intervalMs,
      random: random(),
    });
    next.dueAt = due.dueAt;
    next.laterStreak = due.laterStreak;
    if (outcome === 'later')
      o.notify(`popsync: ${next.name}: trying again in ${formatDelay(due.dueAt - clock.now())}`, 'later');
  }
  return worst;
}

/** `45s`, `4m 10s`, `1h 5m`: for the backoff line. */
export function formatDelay(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return s % 60 === 0 ? `${s / 60}m` : `${Math.floor(s / 60)}m ${s % 60}s`;
  const m = Math.round(s / 60);
  return m % 60 === 0 ? `${m / 60}h` : `${Math.floor(m / 60)}h ${m % 60}m`;
}
