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
  /**
   * Why this message has no usable key although the server has UIDL: its UIDL breaks RFC 1939,
   * or it is shared with other messages and TOP could not tell them apart. A server fault for
   * this message, reported with these words.
   */
  fault?: string;
}

export type InvalidReason = 'duplicate-uidl' | 'no-uidl' | 'unusable-uidl';

export interface Plan {
  /** In server order. `retry` is true when an earlier attempt failed or was lost. */
  copy: Array<ListedMessage & { retry: boolean }>;
  /**
   * Already copied (a journal row from 'done' on), the listing's own objects: this is every
   * message of a run with nothing new (20,000 for a large mailbox every few minutes), and
   * nothing reads more of them than what the listing says.
   */
  skip: ListedMessage[];
  /** Messages we cannot identify safely, reported as failures and never copied. */
  invalid: Array<ListedMessage & { reason: InvalidReason }>;
}

export function joinListing(
  sizes: Array<{ n: number; size: number }>,
  uidls: Array<{ n: number; uidl: string; fault?: string }>,
): ListedMessage[] {
  const out: ListedMessage[] = new Array(sizes.length);
  // Servers answer LIST and UIDL in the same order: then the two are paired by position, without
  // a map of every message, and checked for it in the same pass (this runs before the first RETR
  // of every run, for every message, unoptimised: each pass over the listing is ~1 ms at 10,000).
  // The same message numbers at the same positions, rising (so none is listed twice), or the
  // pairing starts again by number.
  if (sizes.length === uidls.length) {
    let i = 0;
    for (; i < sizes.length; i++) {
      const s = sizes[i]!;
      const u = uidls[i]!;
      if (s.n !== u.n || (i > 0 && s.n <= sizes[i - 1]!.n)) break;
      // Inline, not listed(): a call per message costs as much again, unoptimised.
      out[i] =
        u.fault === undefined
          ? { n: s.n, size: s.size, uidl: u.uidl }
          : { n: s.n, size: s.size, uidl: u.uidl, fault: u.fault };
    }
    if (i === sizes.length) return out;
  }
  const byN = new Map(uidls.map((u) => [u.n, u]));
  for (let i = 0; i < sizes.length; i++) out[i] = listed(sizes[i]!, byN.get(sizes[i]!.n));
  return out;
}

function listed(s: { n: number; size: number }, u: { uidl: string; fault?: string } | undefined): ListedMessage {
  return u === undefined
    ? { n: s.n, size: s.size, uidl: '' }
    : u.fault === undefined
      ? { n: s.n, size: s.size, uidl: u.uidl }
      : { n: s.n, size: s.size, uidl: u.uidl, fault: u.fault };
}

/** What a report says about a message the plan cannot identify. */
export function invalidReasonText(m: ListedMessage & { reason: InvalidReason }): string {
  switch (m.reason) {
    case 'unusable-uidl':
      return m.fault ?? 'the server gave this message a UIDL popsync cannot use';
    case 'no-uidl':
      return 'the server gave this message no UIDL, so a copy could not be tracked';
    case 'duplicate-uidl':
      return `the server listed UIDL ${m.uidl} for more than one message`;
  }
}

/**
 * Listings identification found to hold each key once (identity.ts): planCopy does not look for
 * keys listed twice again, a set of every key (10,000 before every run's first RETR) built to
 * find none.
 */
const keysListedOnce = new WeakSet<readonly ListedMessage[]>();

/** Said by identification of a listing whose keys other than '' are each listed once. */
export function markKeysListedOnce(listing: readonly ListedMessage[]): void {
  keysListedOnce.add(listing);
}

const NO_KEYS: ReadonlySet<string> = new Set();

export function planCopy(listing: ListedMessage[], rows: ReadonlyMap<string, JournalIndexRow>): Plan {
  const plan: Plan = { copy: [], skip: [], invalid: [] };
  // '' is never looked up below: it is 'no-uidl' before the keys listed twice are asked.
  const dup = keysListedOnce.has(listing) ? NO_KEYS : listedTwice(listing);
  // Indexed, as in listedTwice: run once per pass, unoptimised, where a for-of is an iterator
  // result object per message.
  for (let i = 0; i < listing.length; i++) {
    const m = listing[i]!;
    if (m.fault !== undefined) {
      plan.invalid.push({ ...m, reason: 'unusable-uidl' });
    } else if (m.uidl === '') {
      plan.invalid.push({ ...m, reason: 'no-uidl' });
    } else if (dup.has(m.uidl)) {
      // Two messages under one UIDL cannot both be tracked; copying either risks a duplicate or a loss.
      plan.invalid.push({ ...m, reason: 'duplicate-uidl' });
    } else {
      const row = rows.get(m.uidl);
      // A copy exists in every state from 'done' on; 'deleting'/'deleted' rows are no exception.
      // Written out rather than spread: one shape, and a third of this function's time at 10,000.
      if (row !== undefined && (row.state === 'done' || row.state === 'deleting' || row.state === 'deleted'))
        plan.skip.push(m);
      else plan.copy.push({ n: m.n, uidl: m.uidl, size: m.size, retry: row !== undefined });
    }
  }
  return plan;
}

/** Keys the listing holds more than once. */
function listedTwice(listing: readonly ListedMessage[]): Set<string> {
  const seen = new Set<string>();
  const dup = new Set<string>();
  for (let i = 0; i < listing.length; i++) {
    const m = listing[i]!;
    if (seen.has(m.uidl)) dup.add(m.uidl);
    else seen.add(m.uidl);
  }
  return dup;
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
  return `over the size rule (${exactSize(limit)})`;
}

/** "1 byte", "0 bytes", "1000 bytes": --daily-budget 1 said "larger than the daily budget (1 bytes)". */
function byteCount(bytes: number): string {
  return `${bytes} byte${bytes === 1 ? '' : 's'}`;
}

/** A limit in the largest binary unit that holds it whole ("34 MiB"), else in bytes. */
export function exactSize(bytes: number): string {
  for (const [unit, n] of [
    ['GiB', 1024 ** 3],
    ['MiB', 1024 ** 2],
    ['KiB', 1024],
  ] as const) {
    if (bytes >= n && bytes % n === 0) return `${bytes / n} ${unit}`;
  }
  return byteCount(bytes);
}

/** A measured amount, one decimal in the largest binary unit it reaches ("476.8 MiB"). */
export function roughSize(bytes: number): string {
  for (const [unit, n] of [
    ['GiB', 1024 ** 3],
    ['MiB', 1024 ** 2],
    ['KiB', 1024],
  ] as const) {
    if (bytes >= n) return `${(bytes / n).toFixed(1)} ${unit}`;
  }
  return byteCount(bytes);
}

/** APPENDLIMIT=n from IMAP capabilities (RFC 7889); a bare APPENDLIMIT (per-folder limits) gives null. */
export function appendLimitOf(capabilities: Iterable<string>): number | null {
  for (const c of capabilities) {
    const m = /^APPENDLIMIT=(\d+)$/i.exec(c);
    if (m) return Number(m[1]);
  }
  return null;
}
