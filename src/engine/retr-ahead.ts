/**
 * How many RETRs the receiver (receiver.ts) keeps written ahead of the message it reads. Replies
 * wait in their bodies until read, within the session's bound on what is read ahead
 * (pop3/retr-body.ts RETR_READ_AHEAD_BYTES: the rest waits in the socket and the server); a
 * batch's count always goes ahead (as before this module), and beyond it more only while the
 * sizes LIST gave for all of them stay within RETRS_AHEAD_LIST_BYTES: small mail gets enough
 * commands in flight to cover a long round trip, larger mail keeps the count it had. A command
 * ahead costs its reply body's record until read (peak RSS +5 MB on 2,500 small messages).
 */
import { RETRS_AHEAD_LIST_BYTES, RETRS_AHEAD_MAX } from '../defaults.js';

export class RetrAhead {
  /** LIST bytes of the first i messages of the copy list, so any run of them is one subtraction. */
  private readonly before: Float64Array;

  constructor(
    sizes: readonly number[],
    /** The batch's message count: always allowed ahead. */
    private readonly messages: number,
    private readonly max = RETRS_AHEAD_MAX,
    private readonly bytes = RETRS_AHEAD_LIST_BYTES,
  ) {
    this.before = new Float64Array(sizes.length + 1);
    for (let i = 0; i < sizes.length; i++) this.before[i + 1] = this.before[i]! + sizes[i]!;
  }

  /**
   * The RETRs to keep ahead when the oldest not yet read is message `first` of the copy list (its
   * index): the most within the LIST byte bound and `max`, and never fewer than a batch's count.
   */
  target(first: number): number {
    const end = this.before.length - 1;
    const base = this.before[Math.min(first, end)]!;
    // The largest count whose sizes fit, by bisection over the running sums.
    let lo = 0;
    let hi = Math.min(this.max, end - Math.min(first, end));
    while (lo < hi) {
      const mid = Math.ceil((lo + hi) / 2);
      if (this.before[first + mid]! - base <= this.bytes) lo = mid;
      else hi = mid - 1;
    }
    return Math.max(this.messages, lo);
  }
}
