/**
 * The arena a POP3 socket is read into (src/net/read-arena.ts), driven as Node drives it: onread's
 * buffer() names where the next bytes go, callback(n) says n bytes went there. A stand-in socket
 * records resume() (the restart after the callback said stop) and emits 'close'.
 */
import { EventEmitter } from 'node:events';
import type net from 'node:net';
import { describe, expect, it } from 'vitest';
import { ARENA_BYTES, arenaOption, type ChunkSink, HOLD_BYTES, socketChunks } from '../../src/net/read-arena.js';

/** `coalesce`: TLS's mode, a turn's pieces handed on as one; else each read at once (plain TCP). */
function setup(coalesce = true) {
  const { onread, bind } = arenaOption(coalesce);
  const socket = Object.assign(new EventEmitter(), { resumes: 0 });
  (socket as unknown as { resume: () => void }).resume = () => void socket.resumes++;
  bind(socket as unknown as net.Socket);
  const chunks = socketChunks(socket as unknown as net.Socket);
  const buffer = onread.buffer as () => Buffer;
  let next = buffer();
  /** Node's side: `text` decrypted into the named buffer, in pieces as large as it allows. */
  const arrive = (text: string): boolean[] => {
    const said: boolean[] = [];
    for (let b = Buffer.from(text); b.length > 0; ) {
      const n = Math.min(b.length, next.length);
      b.copy(next, 0, 0, n);
      said.push(onread.callback(n, next) !== false);
      next = buffer();
      b = b.subarray(n);
    }
    return said;
  };
  const got: string[] = [];
  const sink: ChunkSink = { chunk: (c) => void got.push(c.toString()), close: () => void got.push('<close>') };
  return { socket, chunks, arrive, got, sink };
}

const turn = (): Promise<void> => new Promise((r) => setImmediate(r));

/** A reader that takes one chunk per resume() and pauses at once, as one whose queue is full. */
function pausingReader(sink: ChunkSink, chunks: { pause(): void }): ChunkSink {
  return {
    chunk: (c) => {
      sink.chunk(c);
      chunks.pause();
    },
    close: sink.close,
  };
}

describe('ReadArena', () => {
  it('what arrives in one turn is handed on as one chunk, in the next', async () => {
    const { chunks, arrive, got, sink } = setup();
    chunks.start(sink);
    expect(arrive('+OK ')).toEqual([true]);
    expect(arrive('hello\r\n')).toEqual([true]);
    expect(got).toEqual([]);
    await turn();
    expect(got).toEqual(['+OK hello\r\n']);
  });

  it('bytes before start() (a greeting that came early) are kept, reading stopped, then handed on', async () => {
    const { socket, chunks, arrive, got, sink } = setup();
    expect(arrive('+OK ready\r\n')).toEqual([false]);
    await turn();
    expect(got).toEqual([]);
    chunks.start(sink);
    expect(socket.resumes).toBe(1);
    await turn();
    expect(got).toEqual(['+OK ready\r\n']);
  });

  it('an arena that fills is handed on whole and the next one continues it, nothing lost or reordered', async () => {
    const { chunks, arrive, got, sink } = setup();
    chunks.start(sink);
    const a = 'a'.repeat(ARENA_BYTES - 3);
    arrive(a);
    arrive('bcdef');
    await turn();
    expect(got).toEqual([`${a}bcd`, 'ef']);
  });

  it('paused: bytes still arriving are kept and reading stopped; resume() hands them on, then the close', async () => {
    const { socket, chunks, arrive, got, sink } = setup();
    const reader = pausingReader(sink, chunks);
    chunks.start(reader);
    arrive('one');
    await turn();
    expect(got).toEqual(['one']);
    // The rest of what one read decrypted comes even though the reader said stop.
    expect(arrive('two')).toEqual([false]);
    socket.emit('close');
    await turn();
    expect(got).toEqual(['one']);
    chunks.resume();
    expect(socket.resumes).toBe(1);
    await turn();
    expect(got).toEqual(['one', 'two']);
    chunks.resume();
    await turn();
    expect(got).toEqual(['one', 'two', '<close>']);
  });

  it('TLS: reading stops once HOLD_BYTES wait to be handed on, and starts again once they were', async () => {
    const { socket, chunks, arrive, got, sink } = setup();
    chunks.start(sink);
    // One arena at a time, as Node's reads fill them: the last of HOLD_BYTES stops the reading.
    const arenas = HOLD_BYTES / ARENA_BYTES;
    const said = arrive('x'.repeat(HOLD_BYTES + ARENA_BYTES));
    expect(said).toEqual([...Array<boolean>(arenas - 1).fill(true), false, false]);
    expect(socket.resumes).toBe(0);
    await turn();
    expect(got.join('').length).toBe(HOLD_BYTES + ARENA_BYTES);
    expect(socket.resumes).toBe(1);
  });

  it('TLS: a reader that resumes while HOLD_BYTES are held gets them before the socket reads on', async () => {
    const { socket, chunks, arrive, got, sink } = setup();
    const reader = pausingReader(sink, chunks);
    chunks.start(reader);
    arrive('first');
    await turn();
    expect(got).toEqual(['first']);
    // What a read decrypts after the pause is kept, and the reading stopped.
    expect(arrive('y'.repeat(HOLD_BYTES + ARENA_BYTES)).every((go) => !go)).toBe(true);
    let resumed = 0;
    while (got.length < HOLD_BYTES / ARENA_BYTES + 2) {
      chunks.resume();
      if (socket.resumes > 0) break;
      resumed++;
      await turn();
    }
    // Restarted only once fewer than HOLD_BYTES were held: two arenas' worth handed on first.
    expect(resumed).toBe(2);
    expect(got.slice(1).join('').length).toBe(2 * ARENA_BYTES - 'first'.length);
    expect(socket.resumes).toBe(1);
  });

  it('after stop() nothing reaches the reader and the socket reads on to its end', async () => {
    const { socket, chunks, arrive, got, sink } = setup();
    chunks.start(sink);
    arrive('late');
    chunks.stop();
    expect(arrive('more')).toEqual([true]);
    socket.emit('close');
    await turn();
    expect(got).toEqual([]);
  });

  it('plain TCP: each read is handed on as it is written; a pause inside stops the reading at that read', async () => {
    const { socket, chunks, arrive, got, sink } = setup(false);
    let pauseAt = 'two';
    const reader: ChunkSink = {
      chunk: (c) => {
        sink.chunk(c);
        if (c.toString() === pauseAt) chunks.pause();
      },
      close: sink.close,
    };
    chunks.start(reader);
    expect(arrive('one')).toEqual([true]);
    expect(got).toEqual(['one']);
    expect(arrive('two')).toEqual([false]);
    // What still comes (libuv's next read in the same turn) is kept, in order, and the close after it.
    expect(arrive('three')).toEqual([false]);
    socket.emit('close');
    await turn();
    expect(got).toEqual(['one', 'two']);
    pauseAt = '';
    chunks.resume();
    expect(socket.resumes).toBe(1);
    await turn();
    expect(got).toEqual(['one', 'two', 'three', '<close>']);
  });
});
