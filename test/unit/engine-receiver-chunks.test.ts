import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { nextChunk } from '../../src/engine/receiver.js';

/** Reads a stream to its end as the receiver does. */
async function readAll(stream: Readable): Promise<string[]> {
  const out: string[] = [];
  for (let c = nextChunk(stream); ; c = nextChunk(stream)) {
    const chunk = c instanceof Promise ? await c : c;
    if (chunk === null) return out;
    out.push(chunk.toString());
  }
}

const objectStream = (): Readable => new Readable({ objectMode: true, read: () => undefined });

describe('nextChunk (the receiver reading a RETR stream without an async iterator)', () => {
  it('returns buffered chunks at once, waits for later ones, and ends with null', async () => {
    const s = objectStream();
    s.push(Buffer.from('a'));
    s.push(Buffer.from('b'));
    expect(nextChunk(s)).toEqual(Buffer.from('a'));
    const later = readAll(s);
    setTimeout(() => {
      s.push(Buffer.from('c'));
      setTimeout(() => s.push(null), 5);
    }, 5);
    expect(await later).toEqual(['b', 'c']);
  });

  it("fails with the stream's error, also when it comes while waiting", async () => {
    const s = objectStream();
    s.on('error', () => undefined);
    s.push(Buffer.from('a'));
    const read = readAll(s);
    setTimeout(() => s.destroy(new Error('link dropped')), 5);
    await expect(read).rejects.toThrow('link dropped');
  });

  it('fails with premature close when the stream is destroyed before its end, as for await did', async () => {
    const s = objectStream();
    const read = readAll(s);
    setTimeout(() => s.destroy(), 5);
    await expect(read).rejects.toMatchObject({ code: 'ERR_STREAM_PREMATURE_CLOSE' });
    const t = objectStream();
    t.push(Buffer.from('unread'));
    t.destroy();
    await expect(readAll(t)).rejects.toMatchObject({ code: 'ERR_STREAM_PREMATURE_CLOSE' });
  });
});
