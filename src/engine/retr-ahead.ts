/**
 * How many RETRs the receiver (receiver.ts) keeps written ahead of the message it reads. Replies
 * wait in their bodies until read, within the session's bound on what is read ahead
 * (pop3/retr-body.ts RETR_READ_AHEAD_BYTES: the rest waits in the socket and the server); a
 * batch's count always goes ahead, and beyond it more only where the link needs them and while
 * the sizes LIST gave for all of them stay within RETRS_AHEAD_LIST_BYTES.
 *
 * Where the link needs them: the commands in flight must cover a round trip at the rate popsync
 * reads (retrsAheadFor). The round trip is the one the POP3 connection measured on its own
 * replies before the copy began (pop3/connection.ts roundTripMs), so a distant server gets up to
 * RETRS_AHEAD_MAX and loopback keeps a batch's count: there 400 ahead only held more replies
 * (10,000 small messages: about 4% more wall time and 9 MB more peak RSS) while 100 already
 * covered a round trip hundreds of times over. The rate is popsync's own ceiling on small mail
 * (RETRS_AHEAD_RATE), not one measured in the run: a rate measured while too few commands were in
 * flight would be held down by that very shortage, and larger mail is bounded by the LIST bytes.
 */
import { RETRS_AHEAD_LIST_BYTES, RETRS_AHEAD_MAX, RETRS_AHEAD_RATE } from '../defaults.js';

/**
 * The RETRs to keep ahead on a link whose round trip is `roundTripMs`: enough to cover it at
 * `rate` messages a second with a quarter to spare (the receiver tops them up once a quarter were
 * read, so three quarters is the least in flight), never fewer than a batch's `messages` nor more
 * than `max`. A round trip not measured (NaN, Infinity: no reply timed) is taken as a long one:
 * a distant server loses most, and the LIST byte bound holds either way.
 */
export function retrsAheadFor(
  roundTripMs: number,
  messages: number,
  max = RETRS_AHEAD_MAX,
  rate = RETRS_AHEAD_RATE,
): number {
  if (!Number.isFinite(roundTripMs)) return Math.max(messages, max);
  const cover = Math.ceil((Math.max(0, roundTripMs) / 1000) * rate * (4 / 3));
  return Math.max(messages, Math.min(max, cover));
}

export class RetrAhead {
  /**
   * LIST bytes of the first i messages of the copy list, so any run of them is one subtraction;
   * null on a link near enough to keep a batch's count, which never asks (a pass over every
   * message to copy, before the first RETR, for nothing).
   */
  private readonly before: Float64Array | null = null;
  /** The most ahead on this link (retrsAheadFor). */
  private readonly max: number;

  constructor(
    /** The copy list, in order (each message's LIST size). */
    todo: ReadonlyArray<{ readonly size: number }>,
    /** The batch's message count: always allowed ahead. */
    private readonly messages: number,
    /** The POP3 connection's measured round trip (ms); 0 keeps a batch's count. */
    roundTripMs: number,
    max = RETRS_AHEAD_MAX,
    private readonly bytes = RETRS_AHEAD_LIST_BYTES,
  ) {
    this.max = retrsAheadFor(roundTripMs, messages, max);
    if (this.max <= messages) return;
    const before = new Float64Array(todo.length + 1);
    for (let i = 0; i < todo.length; i++) before[i + 1] = before[i]! + todo[i]!.size;
    this.before = before;
  }

  /**
   * The RETRs to keep ahead when the oldest not yet read is message `first` of the copy list (its
   * index): the most within the LIST byte bound and the link's count, and never fewer than a
   * batch's count.
   */
  target(first: number): number {
    // A link this near keeps a batch's count ahead, whatever the sizes: asked once per message
    // received, the search below was for a count known before it ran.
    const before = this.before;
    if (before === null) return this.messages;
    const end = before.length - 1;
    const base = before[Math.min(first, end)]!;
    // The largest count whose sizes fit, by bisection over the running sums.
    let lo = 0;
    let hi = Math.min(this.max, end - Math.min(first, end));
    while (lo < hi) {
      const mid = Math.ceil((lo + hi) / 2);
      if (before[first + mid]! - base <= this.bytes) lo = mid;
      else hi = mid - 1;
    }
    return Math.max(this.messages, lo);
  }
}
