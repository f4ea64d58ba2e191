/**
 * Which messages a run may remove from the POP3 source: a pure function of the listing, the
 * journal and the policy, so the safety rules are tested without a server.
 *
 * - Only rows the journal records 'done' (the IMAP server confirmed the copy) are candidates;
 *   'appending', 'failed' and anything unlisted never are.
 * - `afterDays` counts from the first confirmed copy (copied_at), like getmail's delete_after
 *   but measured from the copy, not from first sight.
 * - A per-run ceiling (`--max-delete N` or `P%` of the listing) refuses the whole deletion when
 *   exceeded, unless forced: a surprise like "delete 20,000 messages" should need a human, and
 *   deleting the first N of them would make the ceiling a silent rate limit instead of a guard.
 */
import { PopsyncError } from '../errors.js';
import type { JournalRow } from '../journal/types.js';
import type { ListedMessage } from './plan.js';

export type MaxDelete = { count: number } | { percent: number };

export interface DeletionPolicy {
  /** 0: delete as soon as the copy is confirmed. */
  afterDays: number;
  maxDelete: MaxDelete | null;
  force: boolean;
  /** Look the copy up in the destination (UID present, same size) just before DELE. */
  verify: boolean;
}

export interface DeletionCandidate {
  n: number;
  uidl: string;
  row: JournalRow;
}

export interface DeletionPlan {
  delete: DeletionCandidate[];
  /** Copied and listed, but younger than afterDays. */
  waiting: number;
  ceiling: number | null;
  /** Why nothing is deleted this run although candidates exist; null when not refused. */
  refused: string | null;
}

const DAY_MS = 86_400_000;

export function parseMaxDelete(v: string): MaxDelete {
  const m = /^(\d+)(%?)$/.exec(v.trim());
  if (!m)
    throw new PopsyncError(
      'usage',
      `--max-delete must be a count (100) or a percentage of the listing (10%), not ${JSON.stringify(v)}`,
    );
  const n = Number(m[1]);
  if (m[2] === '%') {
    if (n > 100) throw new PopsyncError('usage', '--max-delete percentage must be between 0% and 100%');
    return { percent: n };
  }
  return { count: n };
}

function ceilingOf(max: MaxDelete | null, listed: number): number | null {
  if (max === null) return null;
  return 'count' in max ? max.count : Math.floor((listed * max.percent) / 100);
}

export function planDeletion(
  listing: readonly ListedMessage[],
  rows: ReadonlyMap<string, JournalRow>,
  policy: DeletionPolicy,
  now: Date,
): DeletionPlan {
  const due: DeletionCandidate[] = [];
  let waiting = 0;
  for (const m of listing) {
    const row = m.uidl === '' ? undefined : rows.get(m.uidl);
    if (row?.state !== 'done' || row.copiedAt === null) continue;
    const copied = Date.parse(row.copiedAt);
    if (!Number.isFinite(copied)) continue;
    if (now.getTime() - copied >= policy.afterDays * DAY_MS) due.push({ n: m.n, uidl: m.uidl, row });
    else waiting++;
  }
  const ceiling = ceilingOf(policy.maxDelete, listing.length);
  if (ceiling !== null && due.length > ceiling && !policy.force) {
    const limit =
      policy.maxDelete && 'percent' in policy.maxDelete
        ? `${policy.maxDelete.percent}% of ${listing.length} listed = ${ceiling}`
        : String(ceiling);
    return {
      delete: [],
      waiting,
      ceiling,
      refused:
        `refusing to delete ${due.length} message${due.length === 1 ? '' : 's'} from the source: more ` +
        `than --max-delete allows (${limit}); nothing was deleted. Raise --max-delete or add --force`,
    };
  }
  return { delete: due, waiting, ceiling, refused: null };
}
