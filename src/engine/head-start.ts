/**
 * Receiving while the destination logs in. The IMAP side needs several round trips before it can
 * take anything (two connections: greeting, login, ID, NAMESPACE, on a distant or slow server
 * far more than POP3's listing), and receiving has no side effect on either server. So once the
 * copy list is known, the first messages' RETRs are written at once and their replies wait in
 * their streams; the copier's receiver then takes those streams first (`session`), exactly as
 * if it had written the RETRs itself, and nothing is journaled before the destination is ready.
 *
 * Only a prefix of the copy list goes ahead (the receiver reads replies in command order, so a
 * stream it does not take first would stall the ones behind it), bounded like one batch, and only
 * messages no larger than HEAD_START_MAX_MESSAGE: the destination's APPENDLIMIT is not known
 * before its login, and a larger message must not be downloaded only to be refused. (A server
 * whose limit is below that - none advertises one so small - gets those few messages fetched and
 * dropped, and failed as too large like the rest.) Streams hold what arrived until read; a full
 * one stops the socket (pop3/client.ts), so memory stays bounded whatever the server sends.
 */
import type { RetrBody } from '../pop3/index.js';
import type { Pop3Session } from '../pop3/types.js';
import type { ListedMessage } from './plan.js';

/** The largest message received before the destination's APPENDLIMIT is known. */
export const HEAD_START_MAX_MESSAGE = 1024 * 1024;

/**
 * The messages to receive before the destination is ready: the longest prefix of `wanted` within
 * one batch (count and bytes) and `budget` bytes, each at most `maxMessage`.
 */
export function headStartOf<T extends ListedMessage>(
  wanted: readonly T[],
  o: { messages: number; bytes: number; maxMessage: number; budget: number },
): T[] {
  const out: T[] = [];
  let bytes = 0;
  for (const m of wanted) {
    if (out.length >= o.messages || m.size > o.maxMessage || bytes + m.size > Math.min(o.bytes, o.budget)) break;
    out.push(m);
    bytes += m.size;
  }
  return out;
}

export class HeadStart {
  private readonly streams = new Map<number, RetrBody>();

  /** Writes the RETRs of `messages` now (pipelined where the server allows). */
  constructor(
    private readonly source: Pop3Session,
    messages: readonly ListedMessage[],
  ) {
    // Read by the receiver, or destroyed below.
    for (const m of messages) this.streams.set(m.n, source.retrStream(m.n));
  }

  /**
   * The session to copy `todo` from: its RETRs for messages already asked for return their
   * streams. Those `todo` no longer holds (the destination's size limit, the daily budget) are
   * dropped now, which keeps the session in step (their replies are read and discarded).
   */
  session(todo: readonly ListedMessage[]): Pop3Session {
    const keep = new Set(todo.map((m) => m.n));
    for (const [n, stream] of this.streams)
      if (!keep.has(n)) {
        stream.destroy();
        this.streams.delete(n);
      }
    if (this.streams.size === 0) return this.source;
    const source = this.source;
    const streams = this.streams;
    return {
      get greeting() {
        return source.greeting;
      },
      get capabilities() {
        return source.capabilities;
      },
      get pipelining() {
        return source.pipelining;
      },
      get roundTripMs() {
        return source.roundTripMs;
      },
      stat: () => source.stat(),
      list: () => source.list(),
      uidl: () => source.uidl(),
      top: (n, lines) => source.top(n, lines),
      retr: (n) => source.retr(n),
      retrStream: (n) => {
        const early = streams.get(n);
        if (early === undefined) return source.retrStream(n);
        streams.delete(n);
        return early;
      },
      dele: (n) => source.dele(n),
      rset: () => source.rset(),
      noop: () => source.noop(),
      quit: () => source.quit(),
      leave: () => source.leave(),
      destroy: () => source.destroy(),
    };
  }

  /** The destination failed or the run stopped: nothing received ahead is kept. */
  abandon(): void {
    for (const stream of this.streams.values()) stream.destroy();
    this.streams.clear();
  }
}
