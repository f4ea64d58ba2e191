/**
 * Case 2 of identity.ts: copied rows no longer listed, recognised under the new UIDLs a server
 * gave them (a renumbering). Pure, so its cost can be counted whatever the mailbox holds.
 */

/** A copied row no longer listed under its key, with the header hash and LIST size journaled. */
export interface PoolEntry {
  key: string;
  hash: string;
  /** Null when the row predates LIST sizes: then the hash alone decides. */
  size: number | null;
}

/** Pool positions in pool order; those before `head` are taken. */
interface Queue {
  at: number[];
  head: number;
}

/**
 * For each candidate in listing order (`hashOf` gives its header hash, or undefined when it is
 * not a candidate), the first pool entry in pool order with that hash and a null or equal
 * size; each entry is taken at most once. Returns the re-keys, from the row's key to the UIDL.
 *
 * A scan of the pool per listed message was quadratic in the mailbox (a renumbered mailbox of
 * 20,000 read pool entries 400 million times). Every entry of one hash and one size matches
 * the same messages, so the first untaken of them is the head of their queue, and the first
 * match overall is the earlier of two heads: that size's and the null size's.
 */
export function matchRenumbered<M extends { uidl: string; size: number }>(
  pool: readonly PoolEntry[],
  listing: readonly M[],
  hashOf: (m: M) => string | undefined,
): Array<{ from: string; to: string }> {
  const out: Array<{ from: string; to: string }> = [];
  const byHash = new Map<string, Map<number | null, Queue>>();
  for (let i = 0; i < pool.length; i++) {
    const { hash, size } = pool[i]!;
    let bySize = byHash.get(hash);
    if (bySize === undefined) {
      bySize = new Map();
      byHash.set(hash, bySize);
    }
    const q = bySize.get(size);
    if (q === undefined) bySize.set(size, { at: [i], head: 0 });
    else q.at.push(i);
  }
  let left = pool.length;
  for (const m of listing) {
    if (left === 0) break;
    const hash = hashOf(m);
    if (hash === undefined) continue;
    const bySize = byHash.get(hash);
    if (bySize === undefined) continue;
    const sized = bySize.get(m.size);
    const unsized = bySize.get(null);
    const a = next(sized);
    const b = next(unsized);
    if (a < 0 && b < 0) continue;
    const i = b < 0 || (a >= 0 && a < b) ? a : b;
    (i === a ? sized : unsized)!.head++;
    left--;
    out.push({ from: pool[i]!.key, to: m.uidl });
  }
  return out;
}

/** The queue's first untaken pool position, or -1. */
function next(q: Queue | undefined): number {
  return q === undefined || q.head === q.at.length ? -1 : q.at[q.head]!;
}
