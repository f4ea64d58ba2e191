/**
 * `--shard K/N`: which accounts of a list this process takes, so N processes (a Kubernetes
 * Indexed Job's pods, K = $JOB_COMPLETION_INDEX) share a list with no coordinator. The share
 * is decided by a hash of the account's name alone, not its row: sorting or extending the
 * spreadsheet between a killed pod and its retry must not move an account to another shard,
 * where a second process could copy it while the first one's retry does too. (The journal's
 * account lock would still stop that on one volume; the stable split keeps it from arising.)
 */
import { createHash } from 'node:crypto';
import { PopsyncError } from '../errors.js';

export interface Shard {
  index: number;
  count: number;
}

/** At most this many shards: far beyond any Job's parallelism, low enough to catch a typo. */
const MAX_SHARDS = 100_000;

/** "K/N" with 0 <= K < N; a usage error otherwise. */
export function parseShard(text: string): Shard {
  const m = /^\s*(\d+)\s*\/\s*(\d+)\s*$/.exec(text);
  if (!m)
    throw new PopsyncError(
      'usage',
      `--shard ${text}: write K/N, e.g. 0/4 (K counts from 0, as JOB_COMPLETION_INDEX does)`,
    );
  const index = Number(m[1]);
  const count = Number(m[2]);
  if (count < 1 || count > MAX_SHARDS)
    throw new PopsyncError('usage', `--shard ${text}: N must be between 1 and ${MAX_SHARDS}`);
  if (index >= count)
    throw new PopsyncError('usage', `--shard ${text}: K must be less than N (K counts from 0 to N-1)`);
  return { index, count };
}

/** The shard an account name belongs to: the first 48 bits of its SHA-256, modulo N. */
export function shardOf(name: string, count: number): number {
  const h = createHash('sha256').update(name, 'utf8').digest();
  return h.readUIntBE(0, 6) % count;
}

/** The items whose name falls in `shard`, in their order. */
export function selectShard<T>(items: readonly T[], nameOf: (item: T) => string, shard: Shard): T[] {
  return items.filter((i) => shardOf(nameOf(i), shard.count) === shard.index);
}
