/**
 * How the POP3 connection reads its socket: the chunks, the pause and the end of a socket, either
 * through the socket's own stream ('data' events) or, for a socket opened with an arena
 * (net/connect.ts: plain TCP or implicit TLS), read straight into buffers of our own.
 *
 * Why: Node's TLS socket hands decrypted bytes over in pieces of at most 16 KiB (one TLS record),
 * each copied into a fresh buffer and pushed through the stream machinery: 17,000 pieces for the
 * bench's 270 MB typical mix where plain TCP gives 4,100 reads of 64 KiB. Every piece then costs
 * the decoder, the reply's queue and the engine a round of their own per-chunk work. With the
 * socket's onread option Node writes each piece into the buffer we name instead; naming the free
 * end of an arena each time puts consecutive pieces side by side, and what arrived in one turn of
 * the event loop is handed on as one view of it. Node copies each piece once either way; no
 * further copy is made here. (A bare TCP read of 128 MB over TLS: 151 ms of CPU through 'data'
 * events, 132 ms into arenas; the pieces then reach the decoder 64 KiB at a time.)
 *
 * Plain TCP reads up to 64 KiB at a time anyway; there the arena spares each read a fresh 64 KiB
 * buffer and the stream machinery ('data' events, push, flowing state): typical mix 1.43 vs 1.49 s
 * of CPU (lower in 4 of 5 pairs), each read still handed on at once (see the constructor).
 *
 * Node allows onread only where the TLS socket opens its own TCP connection, so a socket
 * upgraded by STLS is read through its stream as before (its plain socket's arena stops at the
 * STLS reply; TLS then reads the TCP handle itself). Copying its pieces into an arena was
 * tried: 2.38 vs 2.42 s of CPU on the typical mix (3 of 4 pairs lower) for 5-10 MB more peak RSS.
 *
 * The stream held what a paused reader had not taken, and ended (and closed) only after it was
 * taken. An arena does both itself: bytes that arrive after the reader said stop (the rest of
 * what one read decrypted) are kept and handed on at resume(), and the socket's close reaches
 * the reader only after them, so a reply that arrived whole is read whole even when the server
 * hung up right behind it.
 */
import type net from 'node:net';

/** An arena's size: the largest chunk handed on, as one plain TCP read (64 KiB) is today. */
export const ARENA_BYTES = 64 * 1024;

/**
 * Bytes read and not yet handed on past which reading stops until they are. TLS hands its pieces
 * on only at the next turn (setImmediate), and a reader whose queue is full takes one and pauses
 * again: without a bound, a reader that resumed set the socket reading again with what it had
 * not taken still held, and the arenas piled up. In one instrumented run over pop3s (30 messages
 * of 9.5 MB, each a batch of its own held in memory) all 26 restarts came with bytes held, up to
 * 8 MB, and up to 9 MB were held at once (18 MB in others); that is the peak RSS TLS had over
 * plaintext there (README, Memory). Plain TCP hands each read on as it comes and never holds
 * more than one. 1 MiB, not less: below it TLS reading (libuv reads up to 32 times 64 KiB a
 * turn) stops and starts often enough to cost CPU (at 256 KiB the typical mix over TLS took 1.34
 * against 1.31 s, higher in 5 of 5 pairs).
 */
export const HOLD_BYTES = 16 * ARENA_BYTES;

/** What the reader of a socket gets: every chunk, then the close, in that order. */
export interface ChunkSink {
  chunk(chunk: Buffer): void;
  close(): void;
}

export interface SocketChunks {
  /** Starts handing chunks to `sink`; chunks that arrived before are handed on first. */
  start(sink: ChunkSink): void;
  /** No more chunks or close for the sink; what still arrives is dropped. */
  stop(): void;
  pause(): void;
  resume(): void;
}

const arenas = new WeakMap<net.Socket, ReadArena>();

/** The onread option for a socket about to be opened, and what registers the socket with its arena. */
export function arenaOption(coalesce: boolean): { onread: net.OnReadOpts; bind: (socket: net.Socket) => void } {
  const arena = new ReadArena(coalesce);
  return {
    onread: { buffer: () => arena.room(), callback: (n: number) => arena.wrote(n) },
    bind: (socket) => {
      arena.socket = socket;
      arenas.set(socket, arena);
      socket.once('close', () => arena.closed());
    },
  };
}

/** How to read `socket`: through its arena when it was opened with one, else through its stream. */
export function socketChunks(socket: net.Socket): SocketChunks {
  return arenas.get(socket) ?? new StreamChunks(socket);
}

class StreamChunks implements SocketChunks {
  private sink: ChunkSink | null = null;
  private readonly onData = (chunk: Buffer): void => this.sink?.chunk(chunk);
  private readonly onClose = (): void => this.sink?.close();

  constructor(private readonly socket: net.Socket) {}

  start(sink: ChunkSink): void {
    this.sink = sink;
    this.socket.on('data', this.onData);
    this.socket.on('close', this.onClose);
  }

  stop(): void {
    this.sink = null;
    this.socket.off('data', this.onData);
    this.socket.off('close', this.onClose);
  }

  pause(): void {
    this.socket.pause();
  }

  resume(): void {
    this.socket.resume();
  }
}

class ReadArena implements SocketChunks {
  socket: net.Socket | null = null;
  private arena = Buffer.allocUnsafeSlow(ARENA_BYTES);
  /** Where Node writes next. */
  private at = 0;
  /** The start of what Node wrote into the current arena that was not handed on yet. */
  private from = 0;
  /** Views of earlier arenas not handed on yet (while paused, or before start()). */
  private held: Buffer[] = [];
  /** Bytes in `held`. */
  private heldBytes = 0;
  private sink: ChunkSink | null = null;
  /** 'waiting' until start(): what arrives is kept (a greeting), 'dropping' after stop(). */
  private state: 'waiting' | 'reading' | 'dropping' = 'waiting';
  private paused = false;
  /** The callback told Node to stop reading: it must be restarted. */
  private stopped = false;
  private flushing = false;
  private scheduled: NodeJS.Immediate | null = null;
  /** The socket closed. */
  private ended = false;

  /**
   * TLS: what one turn of the event loop decrypted is handed on as one chunk (its records side by
   * side). Plain TCP: each read (up to 64 KiB already) is handed on as it is written, as a 'data'
   * event would be: libuv reads a ready socket up to 32 times in one turn, and a reader that
   * pauses must stop the reading at the next read, not after 2 MB (pop3-flood's bound).
   */
  constructor(private readonly coalesce: boolean) {}

  /** onread's buffer: the arena's free end, or a new arena once this one is full. */
  room(): Buffer {
    if (this.at === this.arena.length) {
      if (this.at > this.from) {
        this.held.push(this.arena.subarray(this.from, this.at));
        this.heldBytes += this.at - this.from;
      }
      this.arena = Buffer.allocUnsafeSlow(ARENA_BYTES);
      this.at = 0;
      this.from = 0;
    }
    return this.arena.subarray(this.at);
  }

  /**
   * onread's callback: Node wrote `n` bytes at the free end. They are handed on once this turn
   * of the event loop has read what it will (one TLS read is several of these calls in a row).
   * False stops the socket's reading while nobody takes them, or while HOLD_BYTES wait for the
   * reader.
   */
  wrote(n: number): boolean {
    this.at += n;
    if (this.state === 'dropping') {
      this.from = this.at;
      return true;
    }
    if (this.state === 'reading' && !this.coalesce && !this.paused && !this.flushing && this.held.length === 0) {
      const chunk = this.arena.subarray(this.from, this.at);
      this.from = this.at;
      this.sink?.chunk(chunk);
      if (!this.paused || this.state !== 'reading') return true;
      this.stopped = true;
      return false;
    }
    if (this.state === 'reading') {
      this.schedule();
      if (!this.paused && this.pending() < HOLD_BYTES) return true;
    }
    this.stopped = true;
    return false;
  }

  start(sink: ChunkSink): void {
    this.sink = sink;
    this.state = 'reading';
    this.resume();
  }

  stop(): void {
    this.sink = null;
    this.state = 'dropping';
    this.held = [];
    this.heldBytes = 0;
    this.from = this.at;
    this.paused = false;
    this.restart();
  }

  pause(): void {
    this.paused = true;
  }

  resume(): void {
    this.paused = false;
    if (this.state !== 'reading') return;
    if (this.held.length > 0 || this.at > this.from || this.ended) this.schedule();
    this.restart();
  }

  /** The socket closed: its reader hears it once everything before it was handed on. */
  closed(): void {
    this.ended = true;
    if (this.state === 'reading') this.schedule();
  }

  private schedule(): void {
    if (this.scheduled === null) this.scheduled = setImmediate(this.flush);
  }

  /** Bytes read and not handed on yet. */
  private pending(): number {
    return this.heldBytes + this.at - this.from;
  }

  /** Reading again, unless the reader is paused or HOLD_BYTES still wait for it (flush restarts it). */
  private restart(): void {
    if (!this.stopped || this.paused || this.pending() >= HOLD_BYTES) return;
    this.stopped = false;
    this.socket?.resume();
  }

  private readonly flush = (): void => {
    this.scheduled = null;
    // A chunk's reader may resume() from inside chunk(): this loop goes on with the next one.
    if (this.flushing) return;
    this.flushing = true;
    try {
      while (this.sink !== null && !this.paused) {
        let chunk = this.held.shift();
        if (chunk === undefined) {
          if (this.at === this.from) break;
          chunk = this.arena.subarray(this.from, this.at);
          this.from = this.at;
        } else {
          this.heldBytes -= chunk.length;
        }
        this.sink.chunk(chunk);
      }
      if (this.sink !== null && !this.paused && this.ended && this.held.length === 0 && this.at === this.from) {
        const sink = this.sink;
        this.sink = null;
        sink.close();
      }
    } finally {
      this.flushing = false;
    }
    // Stopped while HOLD_BYTES waited: they are handed on now, unless the reader paused again.
    if (this.state === 'reading') this.restart();
  };
}
