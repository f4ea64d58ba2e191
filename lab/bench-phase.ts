/**
 * popsync's copy phase, timed from outside its process for the bench's like-for-like figure:
 * the raw and safe relays (bench-raw.ts) start their clocks after their logins, while popsync's
 * own figure is the whole process (start-up, logins, listing, planning, logout). Watching
 * popsync's connections through a relay (slow-proxy.ts: the delaying one at 30 ms, a
 * zero-delay one on loopback) needs nothing in the product: the phase runs from the first
 * RETR popsync writes to the last tagged OK of an APPEND as it reaches popsync. It leaves out
 * popsync's STAT/LIST/UIDL and planning, where the relays' clocks include their UIDL (written
 * with the RETRs, one round trip). Plaintext only: under TLS the relay sees no commands.
 */
import type { ProxyObserver } from './slow-proxy.js';

/** A tagged OK that answers an APPEND (or a MULTIAPPEND): Dovecot's, with or without UIDPLUS. */
const APPEND_OK = /^[^\s*+]+ OK\b.*(?:\[APPENDUID |append completed)/i;
const APPENDUID_SET = /\[APPENDUID \d+ ([\d:,]+)\]/i;
/** The longest partial server line kept between chunks: a tagged OK is far shorter. */
const MAX_CARRY = 4096;

/** How many UIDs an APPENDUID set ("7", "1:100", "3,5:9") names. */
function uidCount(set: string): number {
  let n = 0;
  for (const part of set.split(',')) {
    const [lo, hi] = part.split(':').map(Number);
    n += hi === undefined ? 1 : Math.abs(hi - lo!) + 1;
  }
  return n;
}

export class CopyPhase {
  private firstRetr: number | null = null;
  private lastAppendOk: number | null = null;
  /** Messages the APPEND replies seen so far confirmed by APPENDUID. */
  confirmed = 0;
  /** Tagged OKs to APPENDs seen so far. */
  appendOks = 0;
  private readonly carry = new Map<number, string>();

  /** `replyDelayMs`: how long the relay holds a server's chunk before popsync gets it. */
  constructor(private readonly replyDelayMs = 0) {}

  /** For the POP3 relay: the first RETR popsync writes (the relay sees it as it is written). */
  readonly pop3: ProxyObserver = (_conn, dir, chunk, at) => {
    if (this.firstRetr !== null || dir !== 'up') return;
    if (/(?:^|\n)RETR /.test(chunk.toString('latin1'))) this.firstRetr = at;
  };

  /** For the IMAP relay: every tagged OK to an APPEND, on any of popsync's connections. */
  readonly imap: ProxyObserver = (conn, dir, chunk, at) => {
    if (dir !== 'down') return;
    const lines = ((this.carry.get(conn) ?? '') + chunk.toString('latin1')).split('\r\n');
    this.carry.set(conn, lines.pop()!.slice(-MAX_CARRY));
    for (const line of lines) {
      if (!APPEND_OK.test(line)) continue;
      this.appendOks++;
      const set = APPENDUID_SET.exec(line)?.[1];
      if (set !== undefined) this.confirmed += uidCount(set);
      this.lastAppendOk = at + this.replyDelayMs;
    }
  };

  /** First RETR to last APPEND OK, in ms; null when either was not seen. */
  get ms(): number | null {
    return this.firstRetr === null || this.lastAppendOk === null ? null : this.lastAppendOk - this.firstRetr;
  }
}
