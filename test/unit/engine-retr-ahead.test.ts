import { describe, expect, it } from 'vitest';
import { RETRS_AHEAD_LIST_BYTES, RETRS_AHEAD_MAX, RETRS_AHEAD_RATE } from '../../src/defaults.js';
import { RetrAhead, retrsAheadFor } from '../../src/engine/retr-ahead.js';

/** A round trip long enough for the most ahead (30 ms). */
const FAR = 30;

/** `count` messages of `size` LIST bytes each. */
const sized = (count: number, size: number): Array<{ size: number }> => Array.from({ length: count }, () => ({ size }));

describe('RETRs written ahead of the message read', () => {
  it('small mail on a distant link: up to the maximum, so a long round trip is covered', () => {
    const ahead = new RetrAhead(sized(2000, 1500), 100, FAR);
    expect(ahead.target(0)).toBe(RETRS_AHEAD_MAX);
    expect(RETRS_AHEAD_MAX * 1500).toBeLessThanOrEqual(RETRS_AHEAD_LIST_BYTES);
    // Near the end only what is left, but never below a batch's count.
    expect(ahead.target(1900)).toBe(100);
    expect(ahead.target(1750)).toBe(250);
  });

  it('small mail on loopback: a batch count, which covers a round trip many times over', () => {
    expect(new RetrAhead(sized(2000, 1500), 100, 0.2).target(0)).toBe(100);
    expect(new RetrAhead(sized(2000, 1500), 100, 0).target(0)).toBe(100);
  });

  it('larger mail on a distant link: beyond a batch count as many as fit the LIST byte bound', () => {
    expect(RETRS_AHEAD_LIST_BYTES).toBe(16 * 1024 * 1024);
    // 50 KB messages: 335 fit 16 MiB. With 1 MiB this was a batch's count, 100 messages a
    // round trip, which held the typical mix to a round trip per 100 at 30 ms.
    expect(new RetrAhead(sized(1000, 50_000), 100, FAR).target(0)).toBe(335);
    const sizes = [...sized(150, 1000), ...sized(500, 500_000)];
    // 150 small ones (150 KB) and 33 large (16.5 MB) within 16 MiB, not 34.
    expect(new RetrAhead(sizes, 100, FAR).target(0)).toBe(183);
    // Large ones only: 33 fit, but never fewer than a batch's count.
    expect(new RetrAhead(sizes, 100, FAR).target(150)).toBe(100);
  });

  it('larger mail on loopback: a batch count, whatever the LIST byte bound', () => {
    expect(new RetrAhead(sized(1000, 50_000), 100, 0.2).target(0)).toBe(100);
  });

  it('a custom bound: exactly the longest run whose sizes fit', () => {
    const ahead = new RetrAhead(
      [10, 20, 30, 40, 50].map((size) => ({ size })),
      1,
      FAR,
      10,
      60,
    );
    expect(ahead.target(0)).toBe(3);
    expect(ahead.target(2)).toBe(1);
    expect(ahead.target(5)).toBe(1);
  });
});

describe('how many RETRs a round trip needs', () => {
  it('covers the round trip at the rate popsync reads, with a quarter to spare', () => {
    // 30 ms at 10,000 a second is 300 in flight; topped up at three quarters, 400.
    expect(RETRS_AHEAD_RATE).toBe(10_000);
    expect(retrsAheadFor(30, 100, 1000)).toBe(400);
    expect(retrsAheadFor(15, 100, 1000)).toBe(200);
    expect(retrsAheadFor(30, 100, 1000, 5000)).toBe(200);
  });

  it('never fewer than a batch nor more than the maximum', () => {
    expect(retrsAheadFor(0, 100)).toBe(100);
    expect(retrsAheadFor(0.05, 100)).toBe(100);
    // Up to 7.5 ms a batch covers it.
    expect(retrsAheadFor(7.5, 100)).toBe(100);
    expect(retrsAheadFor(9, 100)).toBe(120);
    expect(retrsAheadFor(200, 100)).toBe(RETRS_AHEAD_MAX);
    expect(retrsAheadFor(30, 500)).toBe(500);
    expect(retrsAheadFor(-1, 100)).toBe(100);
  });

  it('a round trip not measured is taken as a long one', () => {
    expect(retrsAheadFor(Number.POSITIVE_INFINITY, 100)).toBe(RETRS_AHEAD_MAX);
    expect(retrsAheadFor(Number.NaN, 100)).toBe(RETRS_AHEAD_MAX);
  });
});
