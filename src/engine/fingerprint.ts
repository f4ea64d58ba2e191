/**
 * The normalised content fingerprint: a hash that is equal for a message and its copy under
 * every rewrite an IMAP server is known to apply when it stores (or later serves) a message.
 * sha256 of the exact bytes proves a byte-exact copy; this proves "the same message, as that
 * server keeps it". Reconciliation, adoption, `verify` and verify-before-delete compare by it.
 *
 * The message is reduced to a canonical byte stream, which is hashed (sha256). Rules, each for
 * a server behaviour that was observed:
 *
 * 1. Every CR byte is dropped. Servers disagree about line ends: Dovecot stores a bare LF as
 *    CRLF, Courier strips a bare CR, others keep the message as given. Dropping CR maps CRLF,
 *    a bare LF and the remains of a stripped bare CR to the same stream, while the LF line
 *    structure still tells messages apart.
 * 2. NUL and 0x80 bytes are dropped. Dovecot stores NUL as 0x80, most other servers strip NUL;
 *    dropping both makes all three forms equal. (0x80 is also a legitimate 8-bit byte; losing
 *    it only weakens the hash for messages that differ in nothing else.)
 * 3. In the header block, every byte >= 0x80 and every 'X' is dropped. Cyrus with its Debian
 *    default `munge8bit` replaces each 8-bit header byte by 'X'; dropping both sides of that
 *    substitution makes the munged copy equal to its original. The header ends at the first
 *    empty line of the stream after rules 1 and 2, so both forms find the same end.
 * 4. Trailing LFs are dropped. A message without a final newline is stored with one (CRLF
 *    added), and some servers add another blank line.
 *
 * Works incrementally (update(chunk) ... digest()) with the same result however the bytes are
 * split, so 200 MB messages can be hashed as they stream through a temporary file.
 */
import { createHash, type Hash, hash } from 'node:crypto';

/** Bumped when a rule changes; stored fingerprints of another version are not comparable. */
const FINGERPRINT_VERSION = 1;

const CR = 0x0d;
const LF = 0x0a;
const NUL = 0x00;
const X = 0x58;
const LF_BLOCK = Buffer.alloc(64 * 1024, LF);
const EMPTY = Buffer.alloc(0);

/**
 * Output space shared by every Fingerprinter, up to this size (a larger chunk gets its own,
 * once). update() hashes what it wrote before it returns, so one buffer serves them all: one per
 * instance was 64 KB of garbage per message (hashing 3,000 typical messages peaked at 90 MB RSS
 * with it, 61 MB without).
 */
const SHARED_SCRATCH_BYTES = 2 * LF_BLOCK.length;
let shared: Buffer | null = null;

/**
 * Output up to this size is kept (copied out of the scratch space) rather than streamed into a
 * Hash, in case it is all the message has: digest() then hashes it in one call. Small mail
 * arrives in one or two socket chunks, and a Hash object per message cost more than its hashing.
 */
const KEPT_OUTPUT_BYTES = 16 * 1024;

/**
 * The Fingerprinter whose output so far, `kept`, is still where update() wrote it in the shared
 * space, lent rather than copied out: most small mail is one chunk, hashed by digest() before
 * anything writes there again, and a copy of every message's output was an allocation and a copy
 * each. Whatever writes there next (update(), of any Fingerprinter) first has the holder copy it.
 */
let holder: Fingerprinter | null = null;

function scratch(need: number, own: Buffer): Buffer {
  if (need > SHARED_SCRATCH_BYTES) return own.length >= need ? own : Buffer.allocUnsafe(need);
  shared ??= Buffer.allocUnsafe(SHARED_SCRATCH_BYTES);
  return shared;
}

export class Fingerprinter {
  /** Created once the output outgrows `kept`; until then the output so far is `kept`. */
  private hash: Hash | null = null;
  private kept: Buffer | null = null;
  private inHeader = true;
  /** The last byte that survived rules 1-2 was LF (detects the empty line ending the header). */
  private lastWasLf = true;
  /** LFs held back by rule 4 until a later byte proves they are not trailing. */
  private pendingLf = 0;
  private done = false;
  private nul = false;
  /** The last byte given was a CR: an LF starting the next chunk ends a CRLF. */
  private crLast = false;
  private bareLf = false;
  /**
   * Output space for chunks larger than the shared one, reused from chunk to chunk (hash.update
   * copies what it is given): a new buffer per chunk was as much garbage as the message itself,
   * and the process peaked that much higher.
   */
  private scratch: Buffer = EMPTY;

  update(chunk: Uint8Array): this {
    if (this.done) throw new Error('Fingerprinter.update after digest');
    // The shared space is about to be written: what it holds for someone is theirs to keep first.
    if (holder !== null) holder.ownKept();
    // State in locals: this loop sees every byte of 200 MB messages.
    let inHeader = this.inHeader;
    let lastWasLf = this.lastWasLf;
    let pendingLf = this.pendingLf;
    const crBefore = this.crLast;
    let bare = false;
    // Output is at most the LFs held back from earlier chunks plus this chunk; a longer run of
    // held-back LFs than LF_BLOCK goes to the hash in blocks, so memory stays bounded by the
    // chunk whatever the message holds.
    const need = chunk.length + Math.min(pendingLf, LF_BLOCK.length);
    const out = scratch(need, this.scratch);
    if (need > SHARED_SCRATCH_BYTES) this.scratch = out;
    const bytes = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length);
    let n = 0;
    let i = 0;
    // The body takes bodyFast(); the byte loop below handles the header (and a body after more
    // held-back LFs than the output space holds), and leaves as the body begins.
    let fast = !inHeader && pendingLf <= LF_BLOCK.length;
    for (; !fast && i < chunk.length; i++) {
      const c = chunk[i]!;
      if (c === CR || c === NUL || c === 0x80) {
        if (c === NUL) this.nul = true;
        continue; // rules 1 and 2
      }
      if (c === LF) {
        if (i === 0 ? !crBefore : chunk[i - 1] !== CR) bare = true;
        if (inHeader && lastWasLf) {
          inHeader = false;
          fast = pendingLf + 1 <= LF_BLOCK.length;
        }
        lastWasLf = true;
        pendingLf++;
        continue;
      }
      lastWasLf = false;
      if (inHeader && (c > 0x7f || c === X)) continue; // rule 3
      if (pendingLf > 0) {
        if (n + pendingLf + (chunk.length - i) > out.length) {
          this.emit(out.subarray(0, n));
          n = 0;
          for (; pendingLf > LF_BLOCK.length; pendingLf -= LF_BLOCK.length) this.emit(LF_BLOCK);
          this.emit(LF_BLOCK.subarray(0, pendingLf));
        } else {
          out.fill(LF, n, n + pendingLf);
          n += pendingLf;
        }
        pendingLf = 0;
      }
      out[n++] = c;
    }
    // The loop stopped just after the header's last LF (counted in pendingLf), or never ran.
    if (fast) {
      const body = bodyFast(bytes, i, out, n, pendingLf, lastWasLf, i === 0 ? crBefore : chunk[i - 1] === CR);
      ({ n, pendingLf, lastWasLf } = body);
      if (body.nul) this.nul = true;
      if (body.bareLf) bare = true;
    }
    if (chunk.length > 0) this.crLast = chunk[chunk.length - 1] === CR;
    this.bareLf = bare;
    this.inHeader = inHeader;
    this.lastWasLf = lastWasLf;
    this.pendingLf = pendingLf;
    if (n > 0) {
      if (out === shared && this.hash === null && this.kept === null && n <= KEPT_OUTPUT_BYTES) {
        // The first output, left where it is until something else writes there (see `holder`).
        this.kept = out.subarray(0, n);
        holder = this;
      } else this.emit(out.subarray(0, n));
    }
    return this;
  }

  /** `kept` lies in the shared space, which is to be written again: it becomes this one's own. */
  private ownKept(): void {
    this.kept = Buffer.from(this.kept!);
    holder = null;
  }

  /**
   * Whether a NUL byte was among those given so far. Every byte is either looked at by the loop
   * above or searched for NUL by bodyFast, so a caller needing to know (IMAP then needs a binary
   * literal) does not search every chunk again.
   */
  get sawNul(): boolean {
    return this.nul;
  }

  /**
   * Whether the chunk last given held an LF without a CR before it (the previous chunk's last
   * byte counts as before its first). Every LF is looked at, by the loop above or by bodyFast
   * (which finds each CR by its LF), so the receiver converts only the chunks that need it
   * (line-ends.ts) instead of searching every chunk for LFs once more.
   */
  get lastHadBareLf(): boolean {
    return this.bareLf;
  }

  /** Canonical output, in order: kept while small and the first, streamed into the hash after. */
  private emit(bytes: Buffer): void {
    if (this.hash !== null) {
      this.hash.update(bytes);
      return;
    }
    const kept = this.kept?.length ?? 0;
    if (kept + bytes.length <= KEPT_OUTPUT_BYTES) {
      // A copy: `bytes` may be the scratch space every Fingerprinter writes to. Small mail that
      // arrived in two socket chunks made a Hash object for its second; joining them is cheaper.
      this.kept = this.kept === null ? Buffer.from(bytes) : Buffer.concat([this.kept, bytes], kept + bytes.length);
      return;
    }
    this.hash = createHash('sha256');
    if (this.kept !== null) this.hash.update(this.kept);
    this.kept = null;
    this.hash.update(bytes);
  }

  /** Hex, prefixed with the version so that a changed rule set is never compared as equal. */
  digest(): string {
    this.done = true;
    const hex = this.hash?.digest('hex') ?? hash('sha256', this.kept ?? EMPTY, 'hex');
    if (holder === this) holder = null;
    this.kept = null;
    return `v${FINGERPRINT_VERSION}:${hex}`;
  }
}

/**
 * The byte loop's result for a body: the held-back LFs, then the body copied into `out` in one
 * piece and closed up in place over each byte rules 1 and 2 drop (a copyWithin per line between
 * CRs). Hashing was popsync's largest CPU cost, and per line this was the rest of it:
 * Buffer.copy into a separate buffer allocates a view per call on Node 20, and one copy per
 * line cost more than the sha256 itself (457 ms vs 155 ms on 260 MB of typical mail); one
 * native copy plus copyWithin per line costs 290 ms, sha256 included (hashing the CR-less
 * latin1 string from String#replaceAll, the other candidate, 317 ms). NUL and 0x80 are dropped
 * the same way, each found by a search of its own that runs again only once passed: a body
 * holding one (0x80 is in UTF-8's curly quotes and dashes) went through the byte loop whole,
 * some 2-4 times slower. The LFs that end the output are trailing so far (rule 4) and are held
 * back again. `nul`: a NUL was dropped.
 *
 * A CR is found by the LF after it, and the CRs left once those are dropped (a bare CR, or one
 * whose LF starts the next chunk) by one search of the output: searching each line for its LF
 * here tells the receiver whether the chunk holds a bare LF (`bareLf`) at no extra cost, where
 * searching for the CR left that to a second search of each line (line-ends.ts), ~40 ms per
 * 260 MB. `crBefore`: the byte before `from` (the previous chunk's last, at 0) was a CR.
 */
function bodyFast(
  chunk: Buffer,
  from: number,
  out: Buffer,
  n: number,
  pendingLf: number,
  lastWasLf: boolean,
  crBefore: boolean,
): { n: number; pendingLf: number; lastWasLf: boolean; nul: boolean; bareLf: boolean } {
  const before = n;
  out.fill(LF, n, n + pendingLf);
  n += pendingLf;
  const flushed = n;
  const end = n + chunk.copy(out, n, from);
  // A view ending with the copied bytes: indexOf must not run on into stale scratch bytes.
  const body = out.subarray(0, end);
  // The next of each dropped byte at or after the read position (`end`: none). Closing up only
  // writes below the read position, so what lies ahead, and these positions, stay as they were.
  let lf = next(body, LF, n, end);
  let nul = next(body, NUL, n, end);
  let high = next(body, 0x80, n, end);
  const sawNul = nul < end;
  let bareLf = false;
  for (let pos = n; ; ) {
    // Past the LFs with no CR of this body before them (`lf` is always beyond the read position,
    // so the byte before it is still the one received); `cr` is the CR of the next CRLF.
    while (lf < end && !(lf > flushed && body[lf - 1] === CR)) {
      if (lf > flushed || !crBefore) bareLf = true;
      lf = next(body, LF, lf + 1, end);
    }
    const cr = lf < end ? lf - 1 : end;
    const drop = cr < nul ? (cr < high ? cr : high) : nul < high ? nul : high;
    if (drop > pos) {
      if (n !== pos) body.copyWithin(n, pos, drop);
      n += drop - pos;
    }
    if (drop === end) break;
    pos = drop + 1;
    if (drop === cr) lf = next(body, LF, lf + 1, end);
    else if (drop === nul) nul = next(body, NUL, pos, end);
    else high = next(body, 0x80, pos, end);
  }
  n = dropCr(out, flushed, n);
  if (n === flushed) return { n: before, pendingLf, lastWasLf, nul: sawNul, bareLf }; // nothing but dropped bytes
  let trailing = 0;
  while (n - trailing > before && out[n - trailing - 1] === LF) trailing++;
  return { n: n - trailing, pendingLf: trailing, lastWasLf: trailing > 0, nul: sawNul, bareLf };
}

/** Closes `out[from, to)` up over each CR in it; returns the new end. Most chunks have none: one search. */
function dropCr(out: Buffer, from: number, to: number): number {
  const kept = out.subarray(0, to);
  let n = kept.indexOf(CR, from);
  if (n < 0) return to;
  for (let pos = n + 1; ; ) {
    const cr = next(kept, CR, pos, to);
    if (cr > pos) kept.copyWithin(n, pos, cr);
    n += cr - pos;
    if (cr === to) return n;
    pos = cr + 1;
  }
}

/** Where `byte` next is in `body` from `from` on; `end` when it is not. */
function next(body: Buffer, byte: number, from: number, end: number): number {
  const at = body.indexOf(byte, from);
  return at < 0 ? end : at;
}
