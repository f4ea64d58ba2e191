/**
 * Recognising copied rows under a server's new UIDLs: bounded work at mailbox scale, and the
 * same matches as the linear scan it replaced (kept here as the reference).
 */
import { describe, expect, it } from 'vitest';
import { matchRenumbered, type PoolEntry } from '../../src/engine/renumbered.js';
import { seeded } from '../support/seeded.js';

interface Listed {
  uidl: string;
  size: number;
  hash: string | undefined;
}

/** The matcher before the index: a scan of the pool per listed message, the match spliced out. */
function reference(pool: readonly PoolEntry[], listing: readonly Listed[]): Array<{ from: string; to: string }> {
  const left = [...pool];
  const out: Array<{ from: string; to: string }> = [];
  for (const m of listing) {
    if (left.length === 0) break;
    if (m.hash === undefined) continue;
    const i = left.findIndex((p) => p.hash === m.hash && (p.size === null || p.size === m.size));
    if (i < 0) continue;
    const [match] = left.splice(i, 1);
    out.push({ from: match!.key, to: m.uidl });
  }
  return out;
}

/**
 * A pool entry whose every read of `hash` or `size` is counted: each comparison of the matcher
 * reads one of them, so the count is its work. Past `budget` reads it throws, so a quadratic
 * matcher fails at once instead of running for minutes.
 */
function countedPool(entries: readonly PoolEntry[], budget: number): { pool: PoolEntry[]; reads: () => number } {
  let reads = 0;
  const read = <T>(v: T): T => {
    if (++reads > budget) throw new Error(`over ${budget} reads of pool entries: the matcher is not linear`);
    return v;
  };
  const pool = entries.map(
    (e): PoolEntry => ({
      key: e.key,
      get hash() {
        return read(e.hash);
      },
      get size() {
        return read(e.size);
      },
    }),
  );
  return { pool, reads: () => reads };
}

describe('matchRenumbered', () => {
  it('recognises 20,000 renumbered messages, listed in another order among 20,000 new, in linear work', () => {
    const n = 20_000;
    const entries: PoolEntry[] = [];
    for (let i = 0; i < n; i++) entries.push({ key: `old-${i}`, hash: `h-${i}`, size: i % 7 === 0 ? null : 1000 + i });
    // The server lists the copied messages in the opposite order, each after a new message that
    // matches no row (a scan per message reads the whole pool for each of those).
    const listing: Listed[] = [];
    for (let i = n - 1; i >= 0; i--) {
      listing.push({ uidl: `fresh-${i}`, size: 1000 + i, hash: `new-${i}` });
      listing.push({ uidl: `new-${i}`, size: 1000 + i, hash: `h-${i}` });
    }
    const budget = 4 * (entries.length + listing.length);
    const { pool, reads } = countedPool(entries, budget);
    const rekeys = matchRenumbered(pool, listing, (m) => m.hash);
    expect(rekeys).toHaveLength(n);
    expect(rekeys[0]).toEqual({ from: `old-${n - 1}`, to: `new-${n - 1}` });
    expect(rekeys.every((r) => r.from.slice(4) === r.to.slice(4))).toBe(true);
    expect(reads()).toBeLessThanOrEqual(budget);
  });

  it('matches exactly as the pool scan did: duplicate hashes, null and differing sizes, non-candidates', () => {
    const next = seeded(11);
    for (let round = 0; round < 3000; round++) {
      const hashes = 1 + next(4);
      const pool: PoolEntry[] = [];
      for (let i = next(25); i > 0; i--) {
        const size = next(4);
        pool.push({ key: `k${pool.length}`, hash: `h${next(hashes)}`, size: size === 3 ? null : 100 + size });
      }
      const listing: Listed[] = [];
      for (let i = next(30); i > 0; i--) {
        listing.push({
          uidl: `u${listing.length}`,
          size: 100 + next(3),
          hash: next(5) === 0 ? undefined : `h${next(hashes)}`,
        });
      }
      const before = structuredClone(pool);
      const got = matchRenumbered(pool, listing, (m) => m.hash);
      expect(got, `round ${round}`).toEqual(reference(before, listing));
    }
  });
});
