/**
 * `--max-rate BYTES/s`: an upper bound on the average upload rate, for servers and links that
 * must not be saturated. Each upload reserves its bytes' worth of time on a schedule before it
 * is sent; the wait is how far the schedule runs ahead of the clock, less one second of burst
 * (so a run that starts, or resumes after a pause, sends its first second at once). When an
 * upload starts T seconds in, what went before it is at most rate x (T + 1 s) bytes, whatever
 * the batch sizes (the upload itself adds at most one batch, about a second at the rate).
 *
 * Pure: the clock is a parameter and the caller does the sleeping, so the arithmetic is tested
 * without waiting.
 */
const BURST_MS = 1000;

export class RateLimiter {
  /** When the bytes reserved so far will have been sent at the rate (epoch ms). */
  private due = -Infinity;

  constructor(readonly bytesPerSecond: number) {
    if (!Number.isFinite(bytesPerSecond) || bytesPerSecond <= 0)
      throw new RangeError('a rate is a number of bytes per second above 0');
  }

  /** Reserves `bytes` at time `now`; returns how many ms to wait before sending them. */
  reserve(bytes: number, now: number): number {
    const start = Math.max(this.due, now - BURST_MS);
    this.due = start + (bytes / this.bytesPerSecond) * 1000;
    return Math.max(0, Math.ceil(start - now));
  }

  /**
   * Gives back a reservation of `bytes` that was never sent (a batch withdrawn before it was
   * written): the schedule is a sum of the bytes reserved, so the uploads after it are due as if
   * it had never been reserved. Kept, they waited for bytes the server never got, and a pass
   * that ended with a batch prepared charged that batch twice, once more when it was sent.
   */
  giveBack(bytes: number): void {
    this.due -= (bytes / this.bytesPerSecond) * 1000;
  }
}
