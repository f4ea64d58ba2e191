import { describe, expect, it } from 'vitest';
import { RETRS_AHEAD_LIST_BYTES, RETRS_AHEAD_MAX } from '../../src/defaults.js';
import { RetrAhead } from '../../src/engine/retr-ahead.js';

describe('RETRs written ahead of the message read', () => {
  it('small mail: up to the maximum, so a long round trip is covered', () => {
    const ahead = new RetrAhead(new Array(2000).fill(1500), 100);
    expect(ahead.target(0)).toBe(RETRS_AHEAD_MAX);
    expect(RETRS_AHEAD_MAX * 1500).toBeLessThanOrEqual(RETRS_AHEAD_LIST_BYTES);
    // Near the end only what is left, but never below a batch's count.
    expect(ahead.target(1900)).toBe(100);
    expect(ahead.target(1750)).toBe(250);
  });

  it('larger mail: a batch count, as before, beyond it only within the LIST byte bound', () => {
    expect(new RetrAhead(new Array(1000).fill(50_000), 100).target(0)).toBe(100);
    const sizes = [...new Array(150).fill(1000), ...new Array(500).fill(500_000)];
    // 150 small ones (150 KB) and one large within 1 MiB, not two.
    expect(new RetrAhead(sizes, 100).target(0)).toBe(151);
    expect(new RetrAhead(sizes, 100).target(100)).toBe(100);
  });

  it('a custom bound: exactly the longest run whose sizes fit', () => {
    const ahead = new RetrAhead([10, 20, 30, 40, 50], 1, 10, 60);
    expect(ahead.target(0)).toBe(3);
    expect(ahead.target(2)).toBe(1);
    expect(ahead.target(5)).toBe(1);
  });
});
