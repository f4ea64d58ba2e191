import { describe, expect, it } from 'vitest';
import { parseShard, selectShard, shardOf } from '../../src/app/shard.js';

const names = Array.from({ length: 1000 }, (_, i) => `user${i}@example.net`);

describe('--shard K/N', () => {
  it('parses K/N with K from 0, and refuses what is not a share', () => {
    expect(parseShard('0/4')).toEqual({ index: 0, count: 4 });
    expect(parseShard(' 3 / 4 ')).toEqual({ index: 3, count: 4 });
    expect(() => parseShard('4/4')).toThrow(/K must be less than N/);
    expect(() => parseShard('0/0')).toThrow(/N must be between 1/);
    expect(() => parseShard('/4')).toThrow(/write K\/N/);
    expect(() => parseShard('-1/4')).toThrow(/write K\/N/);
    expect(() => parseShard('1/4x')).toThrow(/write K\/N/);
  });

  it('splits a list into disjoint shards that together cover it', () => {
    for (const n of [1, 2, 3, 7, 20]) {
      const shards = Array.from({ length: n }, (_, k) => selectShard(names, (x) => x, { index: k, count: n }));
      const all = shards.flat();
      expect(all).toHaveLength(names.length);
      expect(new Set(all).size).toBe(names.length);
      // Roughly even: no shard gets twice its fair share of 1,000 names.
      for (const s of shards) expect(s.length).toBeLessThan((2 * names.length) / n + 1);
    }
  });

  it('keeps every account in its shard when the rows are reordered or the list grows', () => {
    const before = new Map(names.map((x) => [x, shardOf(x, 5)]));
    const shuffled = [...names].reverse().concat(['new1', 'new2']);
    for (let k = 0; k < 5; k++) {
      for (const x of selectShard(shuffled, (y) => y, { index: k, count: 5 }))
        if (before.has(x)) expect(before.get(x)).toBe(k);
    }
    // Pinned: a new release must not move accounts of a Job that is half done
    // (the first 48 bits of SHA-256 of the name, modulo N, computed independently).
    expect([shardOf('alice', 20), shardOf('bob', 20), shardOf('carol@example.net', 20)]).toEqual([2, 14, 18]);
  });
});
