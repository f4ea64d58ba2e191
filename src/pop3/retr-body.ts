/**
 * The body of one RETR reply on its way from the connection to its reader: the chunks the
 * decoder gave (framing.ts), queued until read, with backpressure on the socket.
 *
 * Why not a node Readable: one was made per RETR, and per message it cost its construction, an
 * 'error' listener, four more listeners and a promise whenever the reader waited, and per chunk
 * the stream's push and read machinery (nextTick scheduling, 'readable' events). The reader
 * takes chunks in order and needs none of that: read() hands over a queued chunk at once, and a
 * promise only when none has arrived yet.
 *
 * Backpressure: push() says false once `maxChunks` are queued, and the connection stops reading
 * its socket (TCP then stops the server); a read() that makes room again calls `room`, which
 * resumes it. The bound is in chunks, each at most one socket read, as the Readable's was.
 *
 * A body given up by its reader (destroy) still takes what arrives and drops it, so the
 * connection reads the rest of the reply and stays in step with the commands behind it.
 */
import { PopsyncError } from '../errors.js';

/**
 * Chunks queued for the reader before the socket is paused. Counted in bytes at Node's default
 * (16 KiB), one socket read (up to 64 KiB) was over it, so every read paused the socket and the
 * reader's next read() resumed it. Counted in chunks, the socket runs on while the reader keeps
 * up, and a reader that stops (a full batch waiting) still stops the socket, with about this
 * many chunks (each at most one socket read) queued.
 */
export const RETR_STREAM_CHUNKS = 16;

/**
 * Body bytes a session's RETR replies may hold queued and unread, all bodies together, before
 * the socket is paused (and read again once half of them were). The chunk bound above is per
 * body and only the body being filled says false: a reply that ended below it was held whole
 * and decoding went on into the next, so a server answering a batch's worth of RETRs written
 * ahead at once (100 by default, up to 512 with --batch-messages) filled one body per message,
 * beyond the bound engine/receive-ahead.ts keeps (test/protocol/pop3-flood: 47 MiB held of 480 KB
 * messages, the whole 281 MiB mailbox with 512 in flight). One message that stays in memory
 * (DEFAULT_SPILL_BYTES) is still read ahead, so the head start (engine/head-start.ts) and a
 * batch waiting for the destination keep a few MB received.
 */
export const RETR_READ_AHEAD_BYTES = 4 * 1024 * 1024;

/** The bytes queued in a session's bodies, against RETR_READ_AHEAD_BYTES. */
export class ReadAhead {
  private bytes = 0;
  /** add() said false: `room` is called once the reader has taken half of the bound. */
  private over = false;

  constructor(
    private readonly room: () => void,
    private readonly limit = RETR_READ_AHEAD_BYTES,
  ) {}

  /** False when the socket should pause. */
  add(n: number): boolean {
    this.bytes += n;
    if (this.bytes < this.limit) return true;
    this.over = true;
    return false;
  }

  take(n: number): void {
    this.bytes -= n;
    if (this.over && this.bytes <= this.limit / 2) {
      this.over = false;
      this.room();
    }
  }
}

interface Waiter {
  resolve: (chunk: Buffer | null) => void;
  reject: (e: Error) => void;
}

export class RetrBody implements AsyncIterable<Buffer> {
  /**
   * The chunk queued first while nothing else is: most bodies are one chunk, and an array per
   * body, its storage allocated at the first push, was garbage for every message. Read before
   * `queue`, which holds the chunks behind it and exists only while there are any.
   */
  private one: Buffer | null = null;
  private queue: Buffer[] | null = null;
  /** Index of the next chunk to read in `queue` (shift() per chunk moved the rest each time). */
  private head = 0;
  private ended = false;
  private error: Error | null = null;
  private gaveUp = false;
  /** push() said false: the socket is paused until the reader makes room. */
  private full = false;
  private waiter: Waiter | null = null;
  /** Bytes queued here, counted in `ahead`. */
  private bytes = 0;

  constructor(
    /** Called when a reader made room after push() said false (or gave up): resume the socket. */
    private readonly room: () => void,
    private readonly maxChunks = RETR_STREAM_CHUNKS,
    /** The session's byte bound over all its bodies. */
    private readonly ahead?: ReadAhead,
  ) {}

  /** The reader gave up (destroy()). */
  get destroyed(): boolean {
    return this.gaveUp;
  }

  /** Chunks queued and not yet read; for tests. */
  get queued(): number {
    return (this.one === null ? 0 : 1) + (this.queue === null ? 0 : this.queue.length - this.head);
  }

  /** Producer: the next decoded chunk. False when the reader is this far behind: stop reading. */
  push(chunk: Buffer): boolean {
    if (this.gaveUp || this.error !== null) return true;
    const w = this.waiter;
    if (w !== null) {
      this.waiter = null;
      w.resolve(chunk);
      return true;
    }
    if (this.queue !== null) this.queue.push(chunk);
    else if (this.one === null) this.one = chunk;
    else this.queue = [chunk];
    this.bytes += chunk.length;
    const within = this.ahead?.add(chunk.length) ?? true;
    if (this.queued < this.maxChunks) return within;
    this.full = true;
    return false;
  }

  /** Producer: the reply ended (its terminator was read). */
  end(): void {
    if (this.gaveUp || this.error !== null) return;
    this.ended = true;
    const w = this.waiter;
    this.waiter = null;
    w?.resolve(null);
  }

  /**
   * Producer: the reply failed (-ERR, a drop, a ceiling). The reader gets the error next, before
   * any chunk still queued: the message is incomplete whatever arrived of it.
   */
  fail(e: Error): void {
    if (this.gaveUp || this.error !== null || this.ended) return;
    this.error = e;
    this.drop();
    const w = this.waiter;
    this.waiter = null;
    w?.reject(e);
  }

  /**
   * The next chunk, null at the end of the body; a promise only when none has arrived yet. Fails
   * with the reply's error, or when the body was destroyed before its end.
   */
  read(): Buffer | null | Promise<Buffer | null> {
    if (this.error !== null) return Promise.reject(this.error);
    let chunk = this.one;
    if (chunk !== null) this.one = null;
    else if (this.queue !== null) {
      chunk = this.queue[this.head++]!;
      if (this.head === this.queue.length) {
        this.queue = null;
        this.head = 0;
      }
    }
    if (chunk !== null) {
      this.bytes -= chunk.length;
      this.ahead?.take(chunk.length);
      if (this.full && this.queued < this.maxChunks) {
        this.full = false;
        this.room();
      }
      return chunk;
    }
    if (this.ended) return null;
    if (this.gaveUp) return Promise.reject(abandoned());
    if (this.waiter !== null) return Promise.reject(new PopsyncError('internal', 'RETR body read twice at once'));
    return new Promise((resolve, reject) => {
      this.waiter = { resolve, reject };
    });
  }

  /** The reader gives up: what is queued and what still arrives is dropped, the socket resumed. */
  destroy(): void {
    if (this.gaveUp) return;
    this.gaveUp = true;
    this.drop();
    const w = this.waiter;
    this.waiter = null;
    w?.reject(abandoned());
  }

  async *[Symbol.asyncIterator](): AsyncIterator<Buffer> {
    try {
      for (;;) {
        const next = this.read();
        const chunk = next instanceof Promise ? await next : next;
        if (chunk === null) return;
        yield chunk;
      }
    } finally {
      // A loop left early (break, throw) leaves the rest of the reply to be read and dropped, and
      // what is queued, also of a reply that has ended, no longer counts against the session.
      if (!this.ended || this.queued > 0) this.destroy();
    }
  }

  private drop(): void {
    this.one = null;
    this.queue = null;
    this.head = 0;
    this.ahead?.take(this.bytes);
    this.bytes = 0;
    if (this.full) {
      this.full = false;
      this.room();
    }
  }
}

function abandoned(): PopsyncError {
  return new PopsyncError('internal', 'RETR body read after it was given up');
}
