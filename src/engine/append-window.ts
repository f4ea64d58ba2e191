/**
 * How many received batches may be outstanding on the APPEND connection at once (copier.ts's
 * window): DEFAULT_APPEND_WINDOW always (one without UIDPLUS, see copier.ts), and more while what
 * they hold stays within what that many batches at the byte cap would, up to APPEND_WINDOW_MAX.
 *
 * Two batches per round trip held small mail to 200 messages per round trip: about 6,600 a
 * second at 30 ms, where the POP3 side brings more (engine/retr-ahead.ts) and popsync copies
 * about 10,000 a second on loopback. A batch of small mail is far below the byte cap (100
 * messages of a few KB against 10 MB), so a bound on bytes instead of batches lets several go
 * out per round trip, while batches near the cap (a typical mix closes most of them on their
 * count at several MB) stay two, as before. The memory bound does not move: the window's batches
 * are held batches, which engine/receive-ahead.ts bounds as it did (three batch caps, or three
 * batches), and the bytes outstanding on the connection stay within the two caps they could
 * reach before. A batch's bytes are counted as receive-ahead.ts counts them, each message at
 * least HELD_MESSAGE_FLOOR, so batches of tiny messages are not taken for nothing.
 *
 * At 30 ms, 5,000 small messages: the IMAP server had answered every APPEND written while more
 * were due 11 times, 23 with two batches; on loopback more outstanding buys nothing and held a
 * few MB more at the peak (10,000 small, 8 pairs: 97.9 MB against 94.5, within the runs' spread).
 */
import { APPEND_WINDOW_MAX, DEFAULT_APPEND_WINDOW } from '../defaults.js';
import { HELD_MESSAGE_FLOOR } from './receive-ahead.js';

/** What a batch holds while outstanding: its messages' bytes, each at least HELD_MESSAGE_FLOOR. */
export function outstandingBytes(items: ReadonlyArray<{ body: { wireSize: number } }>): number {
  let n = 0;
  for (const r of items) n += Math.max(r.body.wireSize, HELD_MESSAGE_FLOOR);
  return n;
}

/**
 * Whether one more batch may go out while `outstanding` are (their `bytes`): always below
 * `depth` (DEFAULT_APPEND_WINDOW with UIDPLUS, 1 without), and beyond it with UIDPLUS while fewer
 * than APPEND_WINDOW_MAX are and a whole batch cap more still fits within DEFAULT_APPEND_WINDOW
 * caps (the next batch's size is not known before it is taken).
 */
export function windowHasRoom(outstanding: ReadonlyArray<{ bytes: number }>, cap: number, depth: number): boolean {
  if (outstanding.length < depth) return true;
  if (depth < DEFAULT_APPEND_WINDOW || outstanding.length >= APPEND_WINDOW_MAX) return false;
  let bytes = 0;
  for (const w of outstanding) bytes += w.bytes;
  return bytes + cap <= DEFAULT_APPEND_WINDOW * cap;
}
