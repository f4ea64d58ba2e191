/**
 * The bench's raw relay reads a pipelined run of RETR replies and must hand on each message as
 * soon as its terminator arrives, undone from dot-stuffing (RFC 1939 §3), at the least cost a
 * client can have: no copy of the bytes (a message is the slices of the chunks it arrived in),
 * no per-line work (only `\r\n.` is searched for, with indexOf). Kept apart from the sockets so
 * the chunk boundaries, which are where such a splitter goes wrong, are unit-tested.
 * The safe relay writes UIDL ahead of its RETRs (it keys its journal by UIDL); uidlReply()
 * takes that reply off the front of the stream.
 */

const CRLF = Buffer.from('\r\n');
const CRLF_DOT = Buffer.from('\r\n.');
const CR = 0x0d;
const LF = 0x0a;
const PLUS = 0x2b;

const LIST_END = Buffer.from('\r\n.\r\n');

/**
 * The UIDL listing at the start of `data` (one UIDL per message, in message-number order), and
 * where the bytes after it begin; null while its terminator has not arrived. Message numbers
 * start each line, so no line of the listing begins with a dot and the first CRLF.CRLF ends it
 * (for an empty listing, the status line's CRLF is its first half). Throws on `-ERR`.
 */
export function uidlReply(data: Buffer): { uidls: string[]; end: number } | null {
  const at = data.indexOf(LIST_END);
  if (at < 0) {
    if (data.length > 0 && data[0] !== PLUS) throw new Error(`UIDL refused: ${data.toString('latin1').trim()}`);
    return null;
  }
  const lines = data.toString('latin1', 0, at).split('\r\n');
  if (!lines[0]!.startsWith('+')) throw new Error(`UIDL refused: ${lines[0]}`);
  const uidls = lines.slice(1).map((l, i) => {
    const m = /^(\d+) (\S+)$/.exec(l);
    if (!m || Number(m[1]) !== i + 1) throw new Error(`UIDL line out of order: ${l}`);
    return m[2]!;
  });
  return { uidls, end: at + LIST_END.length };
}

/** Receives each message whole: its bytes are `parts` in order, `size` in all. */
export type OnMessage = (parts: Buffer[], size: number) => void;

export class RetrSplitter {
  /** Received bytes not decided yet: a partial status line, or a possible start of `\r\n.`. */
  private carry: Buffer | undefined;
  /** How many leading bytes of `carry` are not content (the status line's CRLF). */
  private carrySkip = 0;
  private inBody = false;
  private parts: Buffer[] = [];
  private size = 0;

  constructor(private readonly onMessage: OnMessage) {}

  /** Throws on a `-ERR` status line; the caller's stream is then useless. */
  push(chunk: Buffer): void {
    // A carry is a few bytes at a chunk's end (a CRLF, `\r\n.`) or a status line cut in two,
    // so the copy made here is rare.
    const data = this.carry === undefined ? chunk : Buffer.concat([this.carry, chunk]);
    let pos = 0;
    let emitFrom = this.carrySkip;
    this.carry = undefined;
    this.carrySkip = 0;
    for (;;) {
      if (!this.inBody) {
        const eol = data.indexOf(CRLF, pos);
        if (eol < 0) {
          if (pos < data.length) this.carry = data.subarray(pos);
          return;
        }
        if (data[pos] !== PLUS) throw new Error(`RETR refused: ${data.toString('latin1', pos, eol)}`);
        this.inBody = true;
        // The search starts at the status line's CRLF, so an empty message's `.\r\n` right
        // after it is found like any other terminator; that CRLF itself is not content.
        pos = eol;
        emitFrom = eol + 2;
        continue;
      }
      const hit = data.indexOf(CRLF_DOT, pos);
      if (hit < 0 || hit + 5 > data.length) {
        // Everything before a possible start of `\r\n.` is content; that start waits for more.
        let keep = hit;
        if (hit < 0) {
          const n = data.length;
          keep = n >= 2 && data[n - 2] === CR && data[n - 1] === LF ? n - 2 : data[n - 1] === CR ? n - 1 : n;
        }
        this.add(data, emitFrom, keep);
        if (keep < data.length) {
          this.carry = data.subarray(keep);
          this.carrySkip = Math.max(0, emitFrom - keep);
        }
        return;
      }
      // The CRLF before the dot ends a line of the message either way.
      this.add(data, emitFrom, hit + 2);
      if (data[hit + 3] === CR && data[hit + 4] === LF) {
        this.onMessage(this.parts, this.size);
        this.parts = [];
        this.size = 0;
        this.inBody = false;
        pos = hit + 5;
      } else {
        // A stuffed line: its first dot goes, the rest of the line is content.
        emitFrom = hit + 3;
        pos = hit + 3;
      }
    }
  }

  private add(data: Buffer, from: number, to: number): void {
    if (from >= to) return;
    this.parts.push(data.subarray(from, to));
    this.size += to - from;
  }
}
