/**
 * One message as it arrives from RETR, reduced on the way to what the copy needs: its size,
 * sha256, whether it holds a NUL (IMAP then needs a binary literal), the head (the part of the
 * header block anything ever parses, mapping/headers.ts) and the bytes themselves, as APPEND
 * sends them (a bare LF made CRLF on the way, line-ends.ts; the hashes are of the source) - in memory
 * while small, in a spool file (spool.ts) once it has grown past `spillAt`. So a message costs
 * at most `spillAt` bytes of memory plus the head however large it is or claims to be, and
 * nothing is hashed or parsed twice.
 */
import { createHash, type Hash, hash } from 'node:crypto';
import { HEADER_PARSE_LIMIT } from '../mapping/headers.js';
import { Fingerprinter } from './fingerprint.js';
import { BareLfToCrlf } from './line-ends.js';
import type { ChunkedBody } from '../imap/types.js';
import type { Arena } from './slabs.js';
import type { Spool, SpoolFile } from './spool.js';

/** headerBlockEnd() peeks two bytes past the limit to recognise a blank line ending on it. */
const HEAD_BYTES = HEADER_PARSE_LIMIT + 2;

/** A spilled message's bytes are gathered up to this much (or `spillAt`, if less) per write. */
const SPOOL_WRITE_BYTES = 1024 * 1024;

export interface ReceivedBody {
  /** Bytes received: the source message, which `sha256` and `fingerprint` describe. */
  size: number;
  /** Bytes APPEND sends, held in `bytes` or `file`: `size` plus the CR added to each bare LF (line-ends.ts). */
  wireSize: number;
  sha256: string;
  /** The normalised content fingerprint (fingerprint.ts): recognises the copy after a server rewrote it. */
  fingerprint: string;
  hasNul: boolean;
  /** The first bytes of the message, enough for every header parse (HEADER_PARSE_LIMIT). */
  head: Buffer;
  /**
   * The whole message as sent (bare LF made CRLF) when it stayed in memory, in the chunks it
   * arrived in (joining them copied every byte, only for APPEND to write them out in pieces
   * again); null when it is in `file`.
   */
  bytes: ChunkedBody | null;
  /** The spool file holding the whole message; null when it is in `bytes`. */
  file: string | null;
}

const CR = 0x0d;
const LF = 0x0a;

/**
 * A collector's chunks before the first arrives, never added to: an empty array per message was
 * garbage, and pushing the first chunk into it allocated storage for 17.
 */
const NO_CHUNKS: Buffer[] = Object.freeze([]) as unknown as Buffer[];

/**
 * The head of a message held as `chunks` (`held` bytes), without joining them: the first
 * HEAD_BYTES, or a shorter prefix that holds the whole header block. Every parse of a head
 * (headerBlockEnd and what builds on it, the adopter's headerComplete) stops at the blank
 * line that ends the block, so any prefix reaching past it reads the same; joining up to
 * HEAD_BYTES copied up to 1 MiB of every message that arrived in more than one chunk.
 */
export function headOf(chunks: readonly Buffer[], held: number): Buffer {
  const first = chunks[0] ?? Buffer.alloc(0);
  // The chunk itself when it is no longer than a head: a view of all of it was one more object
  // per message, held as long as its batch.
  if (first.length <= HEAD_BYTES && chunks.length === 1) return first;
  if (chunks.length === 1 || first.length >= HEAD_BYTES) return first.subarray(0, HEAD_BYTES);
  const end = headerEndAcross(chunks);
  if (end >= 0 && end <= first.length) return first;
  return Buffer.concat(chunks, end >= 0 ? end : Math.min(held, HEAD_BYTES));
}

/**
 * headerBlockEnd() (mapping/headers.ts) over the chunks as if joined, when it finds the blank
 * line: the offset just past it; -1 when there is none within HEADER_PARSE_LIMIT.
 */
function headerEndAcross(chunks: readonly Buffer[]): number {
  let base = 0;
  for (let c = 0; c < chunks.length && base < HEADER_PARSE_LIMIT; c++) {
    const chunk = chunks[c]!;
    const within = Math.min(chunk.length, HEADER_PARSE_LIMIT - base);
    for (let i = chunk.indexOf(LF); i >= 0 && i < within; i = chunk.indexOf(LF, i + 1)) {
      const next = byteAt(chunks, c, i + 1);
      if (next === LF) return base + i + 2;
      if (next === CR && byteAt(chunks, c, i + 2) === LF) return base + i + 3;
    }
    base += chunk.length;
  }
  return -1;
}

/** The byte `at` bytes into the chunks from chunk `c` on; undefined past their end. */
function byteAt(chunks: readonly Buffer[], c: number, at: number): number | undefined {
  while (c < chunks.length && at >= chunks[c]!.length) at -= chunks[c++]!.length;
  return chunks[c]?.[at];
}

export class BodyCollector {
  /**
   * The sha256 of the source bytes, streamed only once it has to be: while nothing was spooled
   * and no bare LF was converted, the chunks held are the source bytes, and finish() hashes
   * them in one call. Most mail is small and CRLF: a Hash object per message was a fifth of
   * what setting up a message cost.
   */
  private hash: Hash | null = null;
  private readonly fingerprint = new Fingerprinter();
  private readonly crlf = new BareLfToCrlf();
  private wireSize = 0;
  /** The chunks held; NO_CHUNKS until the first arrives (add()). */
  private chunks: Buffer[] = NO_CHUNKS;
  private held = 0;
  private size = 0;
  private hasNul = false;
  private head: Buffer | null = null;
  /** A spilled message's head holds its whole header block, or HEAD_BYTES. */
  private headDone = false;
  private file: SpoolFile | null = null;
  /** Where the arena stood before this message (Arena.position): a message that spills gives its bytes back. */
  private readonly mark: number | undefined;

  constructor(
    private readonly spool: Spool,
    private readonly spillAt: number,
    /** Where the bytes held in memory are copied (slabs.ts); without one, the chunks themselves are kept. */
    private readonly arena?: Arena,
    /**
     * The server listed the message past `spillAt`: it goes to the spool file from its first
     * megabyte instead of its first `spillAt` bytes, and nothing of it is copied into the arena
     * first. Copied there only to be written out and given back, the first 4 MB of each spilled
     * message cost 84 of the typical mix's 260 MB of slab copies. Only a hint, which costs no
     * memory: a claim too small spills at `spillAt` as before; a claim too large (the message
     * ends before its first write) has its chunks copied into the arena as it ends (finishHeld),
     * as they would have been on arrival. Kept as they came, they are views of the connection's
     * 64 KiB read arenas (net/read-arena.ts), and each held its whole arena, neighbours' bytes
     * and all, for as long as its batch: a server listing every other message at 50 MB made
     * popsync hold its batches twice over (47 MiB of Buffers for 24 MiB received, pop3-flood).
     */
    private readonly listedLarge = false,
  ) {
    this.mark = arena?.position;
  }

  /** Bytes received so far. */
  get received(): number {
    return this.size;
  }

  /** Bytes of this message held in memory right now. */
  get inMemory(): number {
    return this.held + (this.head?.length ?? 0);
  }

  /**
   * Takes the next chunk; a promise only when it wrote to the spool file. Awaiting an async
   * add() made a promise per chunk for every message, and most never spill.
   */
  add(chunk: Buffer): Promise<void> | null {
    if (chunk.length === 0) return null;
    this.size += chunk.length;
    this.fingerprint.update(chunk);
    // Found by the fingerprint's own scan, not by searching the chunk once more.
    this.hasNul = this.fingerprint.sawNul;
    const wire = this.crlf.convert(chunk, this.fingerprint.lastHadBareLf);
    if (this.hash === null && wire !== chunk) this.hash = this.hashOfHeld();
    this.hash?.update(chunk);
    chunk = wire;
    this.wireSize += chunk.length;
    if (this.file && !this.headDone) {
      // Spilled before the header block was complete: keep filling the head.
      const head = this.head!;
      this.setHead([head, chunk.subarray(0, HEAD_BYTES - head.length)], head.length + chunk.length);
    }
    if (this.file === null && this.arena !== undefined && !this.listedLarge) {
      if (this.chunks === NO_CHUNKS) this.chunks = this.arena.copied(chunk);
      else this.arena.copy(chunk, this.chunks);
    } else if (this.chunks === NO_CHUNKS) this.chunks = [chunk];
    else this.chunks.push(chunk);
    this.held += chunk.length;
    if (
      this.file || this.listedLarge ? this.held >= Math.min(this.spillAt, SPOOL_WRITE_BYTES) : this.held > this.spillAt
    ) {
      return this.write();
    }
    return null;
  }

  private async write(): Promise<void> {
    if (!this.file) {
      // The chunks held, this one included, are source bytes: nothing was converted yet.
      this.hash ??= this.hashOfHeld();
      await this.spill();
      await this.flush();
      // Written out: the arena's copies of them are free again, and what follows goes to the file.
      if (this.mark !== undefined) this.arena!.rewindTo(this.mark);
      return;
    }
    await this.flush();
  }

  /** A streaming sha256 of the chunks held, which must be the source bytes so far. */
  private hashOfHeld(): Hash {
    const h = createHash('sha256');
    for (const c of this.chunks) h.update(c);
    return h;
  }

  /**
   * Moves what is held to a spool file, keeping only the head in memory. What is held goes out
   * as the pieces it arrived in: joining them first cost a spillAt-sized copy per large message.
   */
  private async spill(): Promise<void> {
    this.setHead(this.chunks, this.held);
    this.file = await this.spool.create();
  }

  /**
   * The head of a spilled message, copied out of `chunks` (`held` bytes): up to the end of its
   * header block, as headOf() gives for one in memory. Cut at HEAD_BYTES instead, every spilled
   * message held 1 MiB beside its file for as long as its batch, and left it to a full GC
   * (21 of the typical mix's 3,000 messages spill: 21 MiB, none of it counted in the bound).
   */
  private setHead(chunks: readonly Buffer[], held: number): void {
    const end = headerEndAcross(chunks);
    this.head = Buffer.concat(chunks, end >= 0 ? end : Math.min(held, HEAD_BYTES));
    this.headDone = end >= 0 || this.head.length >= HEAD_BYTES;
  }

  /** Writes what is held to the spool file in one write (one per socket chunk was ~2,000 per 126 MB). */
  private async flush(): Promise<void> {
    const chunks = this.chunks;
    this.chunks = NO_CHUNKS;
    this.held = 0;
    if (chunks.length > 0) await this.file!.writev(chunks);
  }

  /** Whether the message went to a spool file: finish() then has writes to await, finishHeld() is not for it. */
  get spilled(): boolean {
    return this.file !== null;
  }

  async finish(): Promise<ReceivedBody> {
    if (this.file) {
      const fingerprint = this.fingerprint.digest();
      const sha256 = this.hash!.digest('hex');
      await this.flush();
      await this.file.close();
      return {
        size: this.size,
        wireSize: this.wireSize,
        sha256,
        fingerprint,
        hasNul: this.hasNul,
        head: this.head!,
        bytes: null,
        file: this.file.path,
      };
    }
    return this.finishHeld();
  }

  /** finish() of a message that stayed in memory, which has nothing to wait for. */
  finishHeld(): ReceivedBody {
    if (this.listedLarge && this.arena !== undefined) {
      // Listed large, it kept its socket chunks for a write that never came (see listedLarge).
      const chunks = this.chunks;
      this.chunks = [];
      for (const c of chunks) this.arena.copy(c, this.chunks);
    }
    const fingerprint = this.fingerprint.digest();
    // Unconverted and in memory, the chunks held are the source's bytes: most mail is one chunk,
    // hashed in one call.
    let sha256: string;
    if (this.hash !== null) sha256 = this.hash.digest('hex');
    else if (this.chunks.length === 1) sha256 = hash('sha256', this.chunks[0]!, 'hex');
    else sha256 = this.hashOfHeld().digest('hex');
    // A message of no bytes is handed an array of its own: NO_CHUNKS is never given out.
    const chunks = this.chunks === NO_CHUNKS ? [] : this.chunks;
    const head = headOf(chunks, this.held);
    this.chunks = NO_CHUNKS;
    return {
      size: this.size,
      wireSize: this.wireSize,
      sha256,
      fingerprint,
      hasNul: this.hasNul,
      head,
      bytes: { chunks, size: this.wireSize, hasNul: this.hasNul },
      file: null,
    };
  }

  /** The message will not be used: drop what is held and its spool file. */
  async abandon(): Promise<void> {
    this.chunks = NO_CHUNKS;
    this.held = 0;
    if (this.file === null && this.mark !== undefined) this.arena!.rewindTo(this.mark);
    const f = this.file;
    this.file = null;
    if (f) {
      await f.close().catch(() => undefined);
      await this.spool.discard(f.path);
    }
  }
}
