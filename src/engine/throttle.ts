/**
 * Waiting when a server says "later, after N ms" (Microsoft 365: `NO Request is throttled.
 * Suggested Backoff Time: 12345 milliseconds`). Within bounds the run waits as told and goes
 * on; beyond them it stops with exit 75 and the time to run again, because a server that keeps
 * asking for pauses is better left alone than hammered, and cron will come back. Pure: the
 * supervisor (run.ts) sleeps and reconnects.
 */
export interface ThrottleBounds {
  /** Longest single pause the run takes; a longer request ends the run at once. */
  maxWaitMs: number;
  /** Longest total of pauses in one run. */
  totalMs: number;
}

/** Defaults: Microsoft's suggestions are seconds to a few minutes; an hour of pausing is a stop. */
const DEFAULT_THROTTLE: ThrottleBounds = { maxWaitMs: 5 * 60_000, totalMs: 15 * 60_000 };

/**
 * Every pause counts at least this much: each one costs a reconnect, and a server answering
 * "0 milliseconds" forever must still run into the total bound.
 */
export const MIN_PAUSE_MS = 1000;

export type ThrottleDecision = { wait: number } | { stop: string; resumeAt: number };

export class ThrottleBudget {
  private waited = 0;
  private pauses = 0;

  constructor(readonly bounds: ThrottleBounds = DEFAULT_THROTTLE) {}

  /** What to do about a request to wait `askedMs` at `now` (epoch ms). */
  decide(askedMs: number, now: number): ThrottleDecision {
    const asked = Math.max(MIN_PAUSE_MS, Math.ceil(askedMs));
    if (asked > this.bounds.maxWaitMs)
      return {
        stop:
          `the server asked for a pause of ${seconds(asked)}, ` +
          `more than the ${seconds(this.bounds.maxWaitMs)} popsync waits at once`,
        resumeAt: now + asked,
      };
    if (this.waited + asked > this.bounds.totalMs)
      return {
        stop:
          `the server asked for pauses ${this.pauses + 1} times ` +
          `(${seconds(this.waited)} waited already, at most ${seconds(this.bounds.totalMs)} per run)`,
        resumeAt: now + asked,
      };
    this.waited += asked;
    this.pauses++;
    return { wait: asked };
  }

  /** Total pause taken so far (for the run's summary). */
  get waitedMs(): number {
    return this.waited;
  }

  /** Pauses taken so far. */
  get times(): number {
    return this.pauses;
  }
}

function seconds(ms: number): string {
  return ms < 1000 ? `${ms} ms` : `${Math.round(ms / 100) / 10} s`;
}
