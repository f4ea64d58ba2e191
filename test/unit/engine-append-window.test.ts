import { describe, expect, it } from 'vitest';
import { APPEND_WINDOW_MAX, DEFAULT_APPEND_WINDOW } from '../../src/defaults.js';
import { outstandingBytes, windowHasRoom } from '../../src/engine/append-window.js';
import { HELD_MESSAGE_FLOOR } from '../../src/engine/receive-ahead.js';

const MB = 1024 * 1024;
const CAP = 10 * MB;
const batches = (...bytes: number[]) => bytes.map((b) => ({ bytes: b }));

describe('the APPEND window', () => {
  it('always has room for DEFAULT_APPEND_WINDOW batches, whatever their size', () => {
    expect(DEFAULT_APPEND_WINDOW).toBe(2);
    expect(windowHasRoom([], CAP, 2)).toBe(true);
    expect(windowHasRoom(batches(CAP + 4 * MB), CAP, 2)).toBe(true);
  });

  it('batches near the byte cap (a typical mix): two, as before', () => {
    expect(windowHasRoom(batches(8.7 * MB, 8.7 * MB), CAP, 2)).toBe(false);
    expect(windowHasRoom(batches(5.1 * MB, 5 * MB), CAP, 2)).toBe(false);
    // Two of 5 MB leave a whole cap: a third may go, within two caps.
    expect(windowHasRoom(batches(5 * MB, 5 * MB), CAP, 2)).toBe(true);
  });

  it('small mail: up to APPEND_WINDOW_MAX batches, still within two caps', () => {
    const small = 100 * HELD_MESSAGE_FLOOR;
    for (let n = 2; n < APPEND_WINDOW_MAX; n++)
      expect(windowHasRoom(batches(...new Array(n).fill(small)), CAP, 2), `${n} outstanding`).toBe(true);
    expect(windowHasRoom(batches(...new Array(APPEND_WINDOW_MAX).fill(small)), CAP, 2)).toBe(false);
  });

  it('without UIDPLUS (depth 1): one batch, however small', () => {
    expect(windowHasRoom([], CAP, 1)).toBe(true);
    expect(windowHasRoom(batches(100), CAP, 1)).toBe(false);
  });

  it('whatever is outstanding, what it holds stays within two caps plus the message closing the last', () => {
    // Every sequence of batch sizes a receiver can close (each at most a cap plus one message).
    const sizes = [HELD_MESSAGE_FLOOR * 100, 3 * MB, 6 * MB, CAP, CAP + 4 * MB];
    for (const a of sizes)
      for (const b of sizes) {
        const out = batches(a, b);
        for (const c of sizes) {
          if (!windowHasRoom(out, CAP, 2)) break;
          out.push({ bytes: c });
        }
        const held = out.reduce((x, w) => x + w.bytes, 0);
        expect(held, `${a} ${b}`).toBeLessThanOrEqual(Math.max(a + b, DEFAULT_APPEND_WINDOW * CAP + 4 * MB));
      }
  });

  it("counts a batch's messages at least HELD_MESSAGE_FLOOR each, as the receive bound does", () => {
    const body = (wireSize: number) => ({ body: { wireSize } });
    expect(outstandingBytes([body(20), body(5000)])).toBe(HELD_MESSAGE_FLOOR + 5000);
  });
});
