/**
 * The daily upload budget (`--daily-budget`, Gmail's 500 MB of IMAP upload a day): how much
 * this journal's copies used in the last 24 hours, whether the next messages fit, and when
 * enough of today's copies age out for them to fit. Pure arithmetic over (time, bytes) pairs.
 *
 * The window is rolling, not a calendar day: providers do not say when their day starts, and
 * a run that waits for old copies to leave the window can never exceed the limit in any 24
 * hours. The journal already keeps what this needs (every copy's size and copied_at), so the
 * count survives crashes and spans runs without a table of its own.
 */
import type { JournalIndexRow } from '../journal/types.js';

export const BUDGET_WINDOW_MS = 24 * 3600_000;

export interface Upload {
  /** Epoch milliseconds the copy was confirmed. */
  at: number;
  bytes: number;
}

/** The copies of `rows` confirmed within the window before `now`, oldest first. */
export function recentUploads(rows: Iterable<Pick<JournalIndexRow, 'copiedAt' | 'size'>>, now: Date): Upload[] {
  const since = now.getTime() - BUDGET_WINDOW_MS;
  const out: Upload[] = [];
  for (const r of rows) {
    if (r.copiedAt === null) continue;
    const at = Date.parse(r.copiedAt);
    if (Number.isFinite(at) && at > since && at <= now.getTime()) out.push({ at, bytes: r.size });
  }
  return out.sort((a, b) => a.at - b.at);
}

export class DailyBudget {
  private readonly uploads: Upload[];

  /** `uploads`: recentUploads() of the journal when the run starts. */
  constructor(
    readonly limit: number,
    uploads: readonly Upload[],
  ) {
    if (!Number.isSafeInteger(limit) || limit <= 0)
      throw new RangeError('a daily budget is a whole number of bytes above 0');
    this.uploads = [...uploads].sort((a, b) => a.at - b.at);
  }

  /** Bytes uploaded in the window ending at `now`. */
  used(now: number): number {
    let sum = 0;
    for (const u of this.uploads) if (u.at > now - BUDGET_WINDOW_MS) sum += u.bytes;
    return sum;
  }

  remaining(now: number): number {
    return Math.max(0, this.limit - this.used(now));
  }

  /** Counts a copy made now. */
  spend(bytes: number, now: number): void {
    this.uploads.push({ at: now, bytes });
  }

  /**
   * The earliest time at which `bytes` more fit: now if they do, else when enough of the
   * window's copies have aged out. Null when `bytes` alone is more than the whole budget.
   */
  resumeAt(bytes: number, now: number): number | null {
    if (bytes > this.limit) return null;
    const live = this.uploads.filter((u) => u.at > now - BUDGET_WINDOW_MS);
    let used = live.reduce((a, u) => a + u.bytes, 0);
    if (used + bytes <= this.limit) return now;
    for (const u of live) {
      used -= u.bytes;
      if (used + bytes <= this.limit) return u.at + BUDGET_WINDOW_MS;
    }
    return now;
  }

  /**
   * The longest prefix of `sizes` that fits now, as a count. Source order is kept (a message
   * that does not fit is not jumped over by smaller ones), so the copy stays in server order.
   */
  fittingPrefix(sizes: readonly number[], now: number): number {
    let left = this.remaining(now);
    let n = 0;
    for (const s of sizes) {
      if (s > left) break;
      left -= s;
      n++;
    }
    return n;
  }
}

/**
 * Days a copy of messages of `sizes` (in server order) needs under a budget of `limit` a day,
 * when `usedToday` of today's is spent: each day takes the messages that still fit, in order,
 * as runs do (DailyBudget.fittingPrefix). 0 when there is nothing to copy; a message larger
 * than the whole budget is never copied (the run fails it) and takes no day.
 */
export function daysNeeded(sizes: Iterable<number>, limit: number, usedToday: number): number {
  let days = 0;
  let left = 0;
  for (const s of sizes) {
    if (s > limit) continue;
    if (days === 0) {
      days = 1;
      left = Math.max(0, limit - usedToday);
    }
    if (s > left) {
      days++;
      left = limit;
    }
    left -= s;
  }
  return days;
}
