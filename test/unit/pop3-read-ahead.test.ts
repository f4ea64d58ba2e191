/**
 * ReadAhead: the byte bound over all of a session's RETR bodies (pop3/retr-body.ts). Each body
 * also has its own chunk bound, but only the body being filled can say so; replies that end
 * below it pile up one body each unless the bytes of all of them are counted together.
 */
import { describe, expect, it } from 'vitest';
import { ReadAhead, RetrBody } from '../../src/pop3/retr-body.js';

const bytes = (n: number): Buffer => Buffer.alloc(n, 0x61);

describe('ReadAhead (what a session reads ahead of its reader, in bytes)', () => {
  it('stops the socket when replies that each ended below their chunk bound reach it together', () => {
    let resumed = 0;
    const ahead = new ReadAhead(() => resumed++, 100);
    const [a, b, c] = [1, 2, 3].map(() => new RetrBody(() => undefined, 16, ahead)) as [RetrBody, RetrBody, RetrBody];
    expect(a.push(bytes(40))).toBe(true);
    a.end();
    expect(b.push(bytes(40))).toBe(true);
    b.end();
    // 120 bytes queued in three bodies of one chunk each: the bound, not any body's count, says stop.
    expect(c.push(bytes(40))).toBe(false);
    expect(resumed).toBe(0);
    // Reading resumes only at half the bound: one reply read (80 left) is not enough.
    expect(a.read()).toEqual(bytes(40));
    expect(resumed).toBe(0);
    expect(b.read()).toEqual(bytes(40));
    expect(resumed).toBe(1);
    expect(c.push(bytes(10))).toBe(true);
  });

  it('a body given up or failed gives its bytes back', () => {
    let resumed = 0;
    const ahead = new ReadAhead(() => resumed++, 100);
    const a = new RetrBody(() => undefined, 16, ahead);
    const b = new RetrBody(() => undefined, 16, ahead);
    expect(a.push(bytes(60))).toBe(true);
    expect(b.push(bytes(60))).toBe(false);
    a.destroy();
    // 60 left, above half the bound; reading b takes the rest.
    expect(resumed).toBe(0);
    expect(b.read()).toEqual(bytes(60));
    expect(resumed).toBe(1);
    expect(b.push(bytes(30))).toBe(true);
    b.fail(new Error('dropped'));
    // All given back: a new body may queue up to the bound again.
    const c = new RetrBody(() => undefined, 16, ahead);
    expect(c.push(bytes(99))).toBe(true);
  });

  it('a chunk handed straight to a waiting reader is not counted', async () => {
    const ahead = new ReadAhead(() => undefined, 100);
    const a = new RetrBody(() => undefined, 16, ahead);
    const waiting = a.read();
    expect(a.push(bytes(500))).toBe(true);
    expect(await waiting).toEqual(bytes(500));
    expect(a.push(bytes(50))).toBe(true);
  });
});
