/**
 * How our APPEND connection (pipeline.ts) groups what it writes (command text, message heads,
 * body buffers, CRLFs) into socket writes.
 *
 * Why: every write is a trip through Node's Writable, the socket's write request and a syscall,
 * and with Nagle off each one leaves as its own TCP segment. Writing a command's pieces corked
 * per message, and a larger body in 256 KiB pieces with the head and CRLF apart, cost ~1,300
 * writes for the bench's typical mix. What the socket does with a write of many buffers decides
 * how far they can be gathered:
 *
 * - Plain TCP hands a corked write's buffers to the kernel as one writev of the buffers
 *   themselves: nothing is copied, and whatever the kernel does not take at once stays queued
 *   natively, still without a copy. So everything queued may go in one write (a batch's
 *   MULTIAPPENDs together), up to PLAIN_WRITE_BYTES.
 * - TLS copies a write of several buffers into one before encrypting it, and keeps the whole
 *   write's ciphertext until the kernel takes it: a write's size is held twice outside the JS
 *   heap. So a write is cut at TLS_WRITE_BYTES, and a buffer of at least TLS_ALONE_BYTES (a
 *   body's slab, 256 KiB at most) is written alone, encrypted where it lies. Writing 3.5 MB
 *   messages corked to a TLS socket raised the peak RSS by 8 MB; in 256 KiB pieces by 1 MB.
 *
 * Either way a write that left with the socket full returns true from add(): the caller waits
 * for the drain before adding more (the same backpressure as one write at a time). Nothing is
 * held across a wait: the caller calls flush() before it waits for anything else (a '+', a
 * reply, a spool file's next piece), else the server would never see what it is to answer.
 */
import type { Writable } from 'node:stream';

/** A plain socket's write: a batch (10 MB by default) in one, with room for a larger --batch-mb. */
const PLAIN_WRITE_BYTES = 16 * 1024 * 1024;
/** A TLS socket's write: small messages together, and at most this much encrypted ahead at once. */
export const TLS_WRITE_BYTES = 256 * 1024;
/** On TLS, a buffer this large goes in a write of its own, so it is not copied first. */
const TLS_ALONE_BYTES = 64 * 1024;

export class WriteGather {
  /** Bytes written since the socket was corked (strings counted by length: a bound, not a tally). */
  private held = 0;
  /** The largest buffer add() takes whole; a larger one is handed over in views of this size. */
  readonly largest: number;
  private readonly limit: number;
  private readonly alone: number;

  constructor(
    private readonly sock: Writable,
    tls: boolean,
  ) {
    this.limit = tls ? TLS_WRITE_BYTES : PLAIN_WRITE_BYTES;
    this.alone = tls ? TLS_ALONE_BYTES : Number.POSITIVE_INFINITY;
    this.largest = tls ? TLS_WRITE_BYTES : Number.POSITIVE_INFINITY;
  }

  /** Whether bytes are held corked, not yet handed to the socket. */
  get holding(): boolean {
    return this.held > 0;
  }

  /**
   * Adds `chunk` to the write being gathered (a string is sent as UTF-8). True when a write left
   * and the socket has more than it wants: wait for its drain before the next add(). `sent` is
   * called once the socket no longer needs the chunk (or failed with it).
   */
  add(chunk: Buffer | string, sent?: () => void): boolean {
    const n = chunk.length;
    if (n >= this.alone) {
      this.flush();
      this.sock.write(chunk, sent);
      return this.sock.writableNeedDrain;
    }
    if (this.held === 0) this.sock.cork();
    this.sock.write(chunk, sent);
    this.held += n;
    if (this.held < this.limit) return false;
    this.flush();
    return this.sock.writableNeedDrain;
  }

  /** Hands what is held to the socket, as one write. */
  flush(): void {
    if (this.held === 0) return;
    this.held = 0;
    this.sock.uncork();
  }
}
