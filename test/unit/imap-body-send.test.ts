/**
 * Writing a message body to the APPEND socket must never wait for an event that already
 * happened: a link cut while the next piece was read from disk emitted 'close' before the
 * wait began, and the migration hung for good (no timer was left to notice).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { bodyPieces, sendPiece, whenDrained } from '../../src/imap/body.js';

/** A socket-like stream cut and closed before we write to it again. */
async function cutStream(): Promise<PassThrough> {
  const s = new PassThrough({ highWaterMark: 4 });
  s.on('error', () => {});
  s.destroy();
  await new Promise((r) => s.once('close', r));
  return s;
}

/** Settles the promise or reports that it still hangs once every pending callback has run. */
async function settles(p: Promise<void>): Promise<boolean> {
  let done = false;
  void p.then(() => {
    done = true;
  });
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
  return done;
}

describe('writing a body to a cut connection', () => {
  it('an in-memory piece does not wait for a drain that never comes', async () => {
    const s = await cutStream();
    const body = Buffer.alloc(64, 'x');
    expect(await settles(sendPiece(s, body, [body]))).toBe(true);
  });

  it('the closing CRLF does not wait either', async () => {
    const s = await cutStream();
    s.write('\r\n');
    expect(await settles(whenDrained(s))).toBe(true);
  });

  it('a piece of a spooled body settles through the write callback', async () => {
    const s = await cutStream();
    const fileBody = { file: '/nonexistent', size: 3, hasNul: false };
    expect(await settles(sendPiece(s, fileBody, [Buffer.from('abc')]))).toBe(true);
  });

  it('a live stream that had to buffer still waits for its drain', async () => {
    const s = new PassThrough({ highWaterMark: 4 });
    const body = Buffer.alloc(64, 'x');
    const p = sendPiece(s, body, [body]);
    expect(await settles(p)).toBe(false);
    s.resume(); // the reader takes the bytes: 'drain'
    expect(await settles(p)).toBe(true);
  });
});

describe('a body in memory goes in pieces', () => {
  it('is cut into views of at most 256 KiB that together are the message, without a copy', async () => {
    const body = Buffer.alloc(600 * 1024);
    for (let i = 0; i < body.length; i++) body[i] = i % 251;
    const pieces: Buffer[] = [];
    for await (const p of bodyPieces(body)) pieces.push(...p);
    expect(pieces.map((p) => p.length)).toEqual([256 * 1024, 256 * 1024, 88 * 1024]);
    // Views of the message's own memory: on TLS each piece is encrypted as it is written, so a
    // write of the whole message held a second (and third) copy of it outside the JS heap.
    for (const p of pieces) expect(p.buffer).toBe(body.buffer);
    expect(Buffer.concat(pieces).equals(body)).toBe(true);
  });

  it('the chunks a message arrived in are gathered into pieces of 256 KiB, cut where a piece fills', async () => {
    const whole = Buffer.alloc(700 * 1024);
    for (let i = 0; i < whole.length; i++) whole[i] = i % 253;
    const chunks: Buffer[] = [];
    for (let at = 0, n = 1; at < whole.length; at += n, n = (n * 7 + 3) % 90_001)
      chunks.push(whole.subarray(at, at + n));
    const pieces: Buffer[][] = [];
    for await (const p of bodyPieces({ chunks, size: whole.length, hasNul: false })) pieces.push([...p]);
    expect(pieces.map((p) => p.reduce((n, c) => n + c.length, 0))).toEqual([256 * 1024, 256 * 1024, 188 * 1024]);
    for (const p of pieces) for (const c of p) expect(c.buffer).toBe(whole.buffer);
    expect(Buffer.concat(pieces.flat()).equals(whole)).toBe(true);
  });

  it('a piece of several chunks leaves in one write', async () => {
    const writes: string[][] = [];
    const s = new Writable({
      write: (c: Buffer, _e, cb) => {
        writes.push([c.toString()]);
        cb();
      },
      writev: (cs, cb) => {
        writes.push(cs.map((c) => String(c.chunk)));
        cb();
      },
    });
    const piece = [Buffer.from('a'), Buffer.from('b'), Buffer.from('c')];
    await sendPiece(s, { chunks: piece, size: 3, hasNul: false }, piece);
    expect(writes).toEqual([['a', 'b', 'c']]);
  });
});

describe('a spooled body goes as the bytes its literal announced', () => {
  it('never more than its size, never fewer without an error', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'popsync-body-'));
    try {
      const file = join(dir, 'm');
      writeFileSync(file, Buffer.alloc(300 * 1024, 'y'));
      const sent = async (size: number): Promise<number> => {
        let n = 0;
        for await (const p of bodyPieces({ file, size, hasNul: false })) for (const c of p) n += c.length;
        return n;
      };
      expect(await sent(300 * 1024)).toBe(300 * 1024);
      // A file longer than announced: a byte past the literal would be read as our next command.
      expect(await sent(260 * 1024 + 5)).toBe(260 * 1024 + 5);
      await expect(sent(301 * 1024)).rejects.toThrow('holds 307200 bytes, expected 308224');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
