/**
 * How the APPEND connection's bytes are grouped into socket writes (write-gather.ts): on plain
 * TCP everything added goes in one write of the buffers themselves; on TLS, which copies a write
 * of several buffers before encrypting it, writes stay small and a large buffer goes alone.
 */
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { TLS_WRITE_BYTES, WriteGather } from '../../src/imap/write-gather.js';

/** A stream that records each write as the sizes of the buffers it carried. */
function recorder(highWaterMark = 16 * 1024): { s: Writable; writes: number[][]; views: Buffer[] } {
  const writes: number[][] = [];
  const views: Buffer[] = [];
  const keep = (c: Buffer | string): number => {
    if (Buffer.isBuffer(c)) views.push(c);
    return c.length;
  };
  const s = new Writable({
    highWaterMark,
    decodeStrings: false,
    write: (c: Buffer, _e, cb) => {
      writes.push([keep(c)]);
      cb();
    },
    writev: (cs, cb) => {
      writes.push(cs.map((c) => keep(c.chunk as Buffer)));
      cb();
    },
  });
  return { s, writes, views };
}

describe('on plain TCP', () => {
  it('everything added leaves in one write, as the buffers themselves', () => {
    const { s, writes, views } = recorder();
    const g = new WriteGather(s, false);
    const body = Buffer.alloc(300 * 1024, 'x');
    const mustWait = [g.add('P1 APPEND INBOX {307200+}\r\n'), g.add(body), g.add(' {3+}\r\n'), g.add('abc')];
    expect(mustWait).toEqual([false, false, false, false]);
    expect(writes).toEqual([]);
    g.flush();
    expect(writes).toEqual([[27, 300 * 1024, 7, 3]]);
    // Not a copy: the socket got the body's own memory.
    expect(views[0]).toBe(body);
    g.flush();
    expect(writes.length).toBe(1);
  });
});

describe('on TLS', () => {
  it('small pieces are gathered up to a bound, then leave, and the caller is told to wait for the drain', () => {
    const { s, writes } = recorder();
    const g = new WriteGather(s, true);
    const piece = Buffer.alloc(60 * 1024);
    const waits: boolean[] = [];
    for (let i = 0; i < 6; i++) waits.push(g.add(piece));
    // The fifth piece passes the bound: the five leave as one write; the sixth is held.
    expect(5 * piece.length).toBeGreaterThanOrEqual(TLS_WRITE_BYTES);
    expect(writes).toEqual([Array(5).fill(piece.length)]);
    expect(waits).toEqual([false, false, false, false, true, false]);
    g.flush();
    expect(writes.length).toBe(2);
  });

  it('a buffer of 64 KiB or more goes in a write of its own, after what was held', () => {
    const { s, writes, views } = recorder();
    const g = new WriteGather(s, true);
    const slab = Buffer.alloc(200 * 1024);
    g.add(' {204800+}\r\n');
    g.add(slab);
    g.add('\r\n');
    g.flush();
    expect(writes).toEqual([[12], [200 * 1024], [2]]);
    expect(views).toContain(slab);
  });

  it('never takes a buffer larger than one write whole', () => {
    expect(new WriteGather(recorder().s, true).largest).toBe(TLS_WRITE_BYTES);
    expect(new WriteGather(recorder().s, false).largest).toBe(Number.POSITIVE_INFINITY);
  });
});
