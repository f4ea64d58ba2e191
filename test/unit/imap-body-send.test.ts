/**
 * Writing a message body to the APPEND socket must never wait for an event that already
 * happened: a link cut while the next piece was read from disk emitted 'close' before the
 * wait began, and the migration hung for good (no timer was left to notice).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
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
  it('a wait for the drain after the closing CRLF settles at once', async () => {
    const s = await cutStream();
    s.write('\r\n');
    expect(await settles(whenDrained(s))).toBe(true);
  });

  it('a piece of a spooled body settles through the write callback', async () => {
    const s = await cutStream();
    expect(await settles(sendPiece(s, Buffer.from('abc')))).toBe(true);
  });

  it('a live stream that had to buffer still waits for its drain', async () => {
    const s = new PassThrough({ highWaterMark: 4 });
    s.write(Buffer.alloc(64, 'x'));
    const p = whenDrained(s);
    expect(await settles(p)).toBe(false);
    s.resume(); // the reader takes the bytes: 'drain'
    expect(await settles(p)).toBe(true);
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
        for await (const p of bodyPieces({ file, size, hasNul: false })) n += p.length;
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
