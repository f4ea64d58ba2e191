/**
 * Memory for the bodies of received batches, reused from one batch to the next instead of left
 * to the garbage collector.
 *
 * Why: a message kept in the Buffers its socket reads arrived in lives as long as its batch,
 * hundreds of milliseconds, so those Buffers outlive the young generation and are freed only by
 * a full GC, which V8 runs when memory outside its heap has grown by some tens of MB. Beside the
 * batches held live (at most three batch caps, receive-ahead.ts) as much again lay dead, how
 * much depending on when the GC got to run, and the process's RSS kept that high-water mark:
 * on the typical mix with TLS (3,000 messages, 260 MB) peaks of 141-167 MB where the batches
 * held never reached 35 MB. Copied on arrival into slabs, a read dies young (a minor GC frees
 * it), and the slabs of a batch go back to the pool when the batch is released, so bodies take
 * what is held at most, whenever the GC runs: 129-137 MB in the same runs.
 *
 * A batch's bytes may be written down an APPEND connection until its replies are in: its slabs
 * are reused only once the caller knows every APPEND of it was answered (Arena.recycle()). An
 * arena never recycled is left to the garbage collector, as the socket's Buffers were.
 */
import { readsDied } from './scavenge.js';

/** One slab: few views per message, and the half-filled last slab of a batch wastes little. */
export const SLAB_BYTES = 256 * 1024;

export class SlabPool {
  private readonly free: Buffer[] = [];

  /** `keep`: free slabs kept for reuse at most; more given back are left to the garbage collector. */
  constructor(private readonly keep: number) {}

  take(): Buffer {
    return this.free.pop() ?? Buffer.allocUnsafeSlow(SLAB_BYTES);
  }

  give(slabs: readonly Buffer[]): void {
    for (const s of slabs) if (this.free.length < this.keep) this.free.push(s);
  }

  /** Free slabs held; for tests. */
  get spare(): number {
    return this.free.length;
  }
}

/** Where one batch is received: bytes are copied in one after another, handed out as views. */
export class Arena {
  private readonly slabs: Buffer[] = [];
  private at = SLAB_BYTES;
  private recycled = false;

  constructor(private readonly pool: SlabPool) {}

  /** A place to come back to: rewind() frees everything copied since. */
  mark(): { slab: number; at: number } {
    return { slab: this.slabs.length, at: this.at };
  }

  /**
   * mark() as one number, rewound to by rewindTo(): a message's mark was an object for every
   * message received, though only one that spills or is abandoned ever goes back to it.
   */
  get position(): number {
    return this.slabs.length * (SLAB_BYTES + 1) + this.at;
  }

  /**
   * Copies `chunk` into the arena and adds its views to `out`: one view, or across a slab's end
   * two or more. A view that continues `out`'s last one in the same slab extends it instead, so
   * a message received in many socket reads is held as one view per slab: hashed in one call and
   * written in one piece (TLS copies a write of several buffers into one before encrypting it).
   * The views stay valid until recycle(), or until rewind() to a mark taken before them.
   */
  /**
   * copy() into a new array, for a message's first chunk: made as `[view]` when the chunk fits
   * in one slab (most mail), whose storage is one slot, where a push into an empty array
   * allocated 17, held for as long as the batch.
   */
  copied(chunk: Buffer): Buffer[] {
    if (chunk.length === 0 || chunk.length > SLAB_BYTES - (this.at === SLAB_BYTES ? 0 : this.at)) {
      const out: Buffer[] = [];
      this.copy(chunk, out);
      return out;
    }
    if (this.at === SLAB_BYTES) {
      this.slabs.push(this.pool.take());
      this.at = 0;
    }
    const slab = this.slabs[this.slabs.length - 1]!;
    slab.set(chunk, this.at);
    const view = slab.subarray(this.at, this.at + chunk.length);
    this.at += chunk.length;
    readsDied(chunk.length);
    return [view];
  }

  copy(chunk: Buffer, out: Buffer[]): void {
    for (let from = 0; from < chunk.length; ) {
      if (this.at === SLAB_BYTES) {
        this.slabs.push(this.pool.take());
        this.at = 0;
      }
      const slab = this.slabs[this.slabs.length - 1]!;
      const n = Math.min(chunk.length - from, SLAB_BYTES - this.at);
      // TypedArray#set, not Buffer#copy: on Node 20 copy() checks its arguments in JS and makes
      // a view of the source for every call, 0.2-0.3 µs a message against 0.1 (most small mail
      // is one chunk, copied whole).
      slab.set(from === 0 && n === chunk.length ? chunk : chunk.subarray(from, from + n), this.at);
      const last = out[out.length - 1];
      if (last !== undefined && last.buffer === slab.buffer && last.byteOffset + last.length === this.at) {
        out[out.length - 1] = slab.subarray(last.byteOffset, this.at + n);
      } else {
        out.push(slab.subarray(this.at, this.at + n));
      }
      this.at += n;
      from += n;
    }
    // Copied, the read is garbage: freed by the next scavenge, which this may run (scavenge.ts).
    readsDied(chunk.length);
  }

  /**
   * Gives back what was copied since `m`, for a message that went to a spool file instead: its
   * views must no longer be used (they were written out first).
   */
  rewind(m: { slab: number; at: number }): void {
    this.pool.give(this.slabs.splice(m.slab));
    this.at = m.at;
  }

  /** rewind() to a `position`. */
  rewindTo(position: number): void {
    const slab = Math.floor(position / (SLAB_BYTES + 1));
    this.rewind({ slab, at: position - slab * (SLAB_BYTES + 1) });
  }

  /** The batch's bytes are no longer read by anyone: its slabs go back to the pool. */
  recycle(): void {
    if (this.recycled) return;
    this.recycled = true;
    this.pool.give(this.slabs.splice(0));
    this.at = SLAB_BYTES;
  }
}
