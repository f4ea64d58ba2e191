/**
 * The plan is data (changesets' idea): a pure function of what the POP3 server lists and what
 * the journal holds, with a reason per message. The real run executes it; a dry run prints it.
 * No I/O here, so every decision is unit-tested without sockets.
 */
import type { JournalIndexRow } from '../journal/types.js';

export interface ListedMessage {
  /** Message number in this POP3 session. */
  n: number;
  uidl: string;
  /** LIST size: a hint (servers may count LF line ends), never the literal length. */
  size: number;
}

export type SkipReason = 'already-copied';
export type InvalidReason = 'duplicate-uidl' | 'no-uidl';

export interface Plan {
  /** In server order. `retry` is true when an earlier attempt failed or was lost. */
  copy: Array<ListedMessage & { retry: boolean }>;
  skip: Array<ListedMessage & { reason: SkipReason }>;
  /** Messages we cannot identify safely, reported as failures and never copied. */
  invalid: Array<ListedMessage & { reason: InvalidReason }>;
}

export function joinListing(sizes: Array<{ n: number; size: number }>, uidls: Array<{ n: number; uidl: string }>): ListedMessage[] {
  const byN = new Map(uidls.map((u) => [u.n, u.uidl]));
  return sizes.map((s) => ({ n: s.n, size: s.size, uidl: byN.get(s.n) ?? '' }));
}

export function planCopy(listing: ListedMessage[], rows: ReadonlyMap<string, JournalIndexRow>): Plan {
  const plan: Plan = { copy: [], skip: [], invalid: [] };
  const seen = new Map<string, number>();
  for (const m of listing) seen.set(m.uidl, (seen.get(m.uidl) ?? 0) + 1);
  for (const m of listing) {
    if (m.uidl === '') {
      plan.invalid.push({ ...m, reason: 'no-uidl' });
    } else if ((seen.get(m.uidl) ?? 0) > 1) {
      // Two messages under one UIDL cannot both be tracked; copying either risks a duplicate or a loss.
      plan.invalid.push({ ...m, reason: 'duplicate-uidl' });
    } else {
      const row = rows.get(m.uidl);
      // A copy exists in every state from 'done' on; 'deleting'/'deleted' rows are no exception.
      if (row !== undefined && (row.state === 'done' || row.state === 'deleting' || row.state === 'deleted')) plan.skip.push({ ...m, reason: 'already-copied' });
      else plan.copy.push({ ...m, retry: row !== undefined });
    }
  }
  return plan;
}

/**
 * skip_larger_than: the messages of a copy list over the limit, judged on the LIST size so
 * the run decides before RETR (no body fetched for a message it will not copy) and `plan`,
 * which never fetches bodies, judges the same number. Not journaled: the next run judges
 * again for the cost of a LIST line, and raising the limit copies them without a reset.
 */
export function splitBySizeRule<T extends ListedMessage>(copy: T[], limit: number | null): { copy: T[]; over: T[] } {
  if (limit === null) return { copy, over: [] };
  const over = copy.filter((m) => m.size > limit);
  return over.length === 0 ? { copy, over } : { copy: copy.filter((m) => m.size <= limit), over };
}

/** The reason a report gives: "over the size rule (25 MiB)", the limit in the unit it was written in. */
export function sizeRuleReason(limit: number): string {
  for (const [unit, n] of [['GiB', 1024 ** 3], ['MiB', 1024 ** 2], ['KiB', 1024]] as const) {
    if (limit >= n && limit % n === 0) return `over the size rule (${limit / n} ${unit})`;
  }
  return `over the size rule (${limit} bytes)`;
}
