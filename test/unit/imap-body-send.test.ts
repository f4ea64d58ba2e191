/**
 * Writing a message body to the APPEND socket must never wait for an event that already
 * happened: a link cut while the next piece was read from disk emitted 'close' before the
 * wait began, and the migration hung for good (no timer was left to notice).
 */
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { sendPiece, whenDrained } from '../../src/imap/body.js';

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
    expect(await settles(sendPiece(s, body, body))).toBe(true);
  });

  it('the closing CRLF does not wait either', async () => {
    const s = await cutStream();
    s.write('\r\n');
    expect(await settles(whenDrained(s))).toBe(true);
  });

  it('a piece of a spooled body settles through the write callback', async () => {
    const s = await cutStream();
    const fileBody = { file: '/nonexistent', size: 3, hasNul: false };
    expect(await settles(sendPiece(s, fileBody, Buffer.from('abc')))).toBe(true);
  });

  it('a live stream that had to buffer still waits for its drain', async () => {
    const s = new PassThrough({ highWaterMark: 4 });
    const body = Buffer.alloc(64, 'x');
    const p = sendPiece(s, body, body);
    expect(await settles(p)).toBe(false);
    s.resume(); // the reader takes the bytes: 'drain'
    expect(await settles(p)).toBe(true);
  });
});
