/**
 * The dry-run report as a pure function: what the POP3 server lists, what the journal holds,
 * how the router (the same one `migrate` uses) routes each message from its headers, which
 * folders exist, and the server's APPENDLIMIT, in; a PlanReport out. No I/O, so every rule of
 * the report is a unit test; `popsync plan` only gathers the inputs.
 *
 * Counting conventions: `new`/`newBytes` of a folder and `totals.newBytes` cover everything the
 * next run would copy (new and retried messages); `totals.new` counts only never-tried ones,
 * `totals.retry` the others. Seen and date sources are tallied over the messages that would be
 * copied, since that is what the person signing off decides on.
 */
import type { RoutedHead } from '../engine/preview.js';
import { invalidReasonText, sizeRuleReason, type ListedMessage, type Plan } from '../engine/plan.js';
import type { JournalRow } from '../journal/types.js';
import type { PlanMessage, PlanReport } from './plan-types.js';
import { tallyMessages } from './plan-tally.js';
import { daysNeeded } from '../engine/budget.js';
import { unlistedCopies } from '../engine/content-match.js';

/** A message routed from its header block (the dry run's RoutedHead), as the report shows it. */
export type RoutedMessage = RoutedHead;

export interface PlanInput {
  source: string;
  destination: string;
  generatedAt: Date;
  listing: ListedMessage[];
  plan: Plan;
  rows: ReadonlyMap<string, JournalRow>;
  /** By message number: routed from `TOP n 0`, or the reason the headers could not be read. */
  routed: ReadonlyMap<number, RoutedMessage | { error: string }>;
  existingFolders: ReadonlySet<string>;
  /** APPENDLIMIT from the destination's capabilities, in bytes; null when not advertised. */
  appendLimit: number | null;
  /** skip_larger_than in bytes, judged on the LIST size as the real run judges it; null: no rule. */
  skipLargerThan?: number | null;
  rate: { bytesPerSecond: number; basis: string } | null;
  /** The daily upload budget and what the journal's copies of the last 24 hours used of it. */
  budget?: { bytesPerDay: number; usedToday: number; basis: string } | null;
}

export function buildPlanReport(i: PlanInput): PlanReport {
  const status = new Map<number, { status: PlanMessage['status']; reason: string | null }>();
  for (const m of i.plan.invalid) status.set(m.n, { status: 'would-fail', reason: invalidReasonText(m) });
  for (const m of i.plan.skip) status.set(m.n, { status: 'already-copied', reason: null });
  for (const m of i.plan.copy) {
    const row = i.rows.get(m.uidl);
    status.set(
      m.n,
      m.retry
        ? { status: 'retry', reason: row?.lastError ?? 'an earlier copy was interrupted or refused' }
        : { status: 'new', reason: null },
    );
  }

  // Copied rows missing from the listing: a message whose headers cannot be read may be one of
  // them, which only its downloaded content tells (engine/content-match.ts).
  const unlisted = unlistedCopies(new Set(i.listing.map((m) => m.uidl)), i.rows.values()).length;
  const byContent =
    `; ${unlisted} copied message${unlisted === 1 ? ' is' : 's are'} no longer listed under ` +
    `${unlisted === 1 ? 'its UIDL' : 'their UIDLs'}, so the run compares its content with ` +
    `${unlisted === 1 ? 'that copy' : 'theirs'} once downloaded and copies it only if none matches`;

  const messages: PlanMessage[] = i.listing.map((m) => {
    const st = status.get(m.n) ?? { status: 'would-fail' as const, reason: 'not planned' };
    const row = i.rows.get(m.uidl);
    const r = i.routed.get(m.n);
    const base = { n: m.n, uidl: m.uidl, size: m.size };
    if (st.status === 'already-copied' && row) {
      // Not fetched again: the journal says where it went and how.
      const p = row.provenance;
      return {
        ...base,
        subject: null,
        from: null,
        messageId: row.messageId,
        folder: row.folder ?? '',
        folderRule: p?.folderRule ?? null,
        flags: p?.flags ?? [],
        seenSource: p?.seenSource ?? null,
        internalDate: p?.internalDate ?? null,
        dateSource: p?.dateSource ?? 'unknown',
        status: st.status,
        reason: null,
      };
    }
    let { status: s, reason } = st;
    // Judged on the LIST size, as the run judges before any RETR: readable headers or not.
    const limit = i.skipLargerThan ?? null;
    if ((s === 'new' || s === 'retry') && limit !== null && m.size > limit) {
      s = 'would-fail';
      reason = sizeRuleReason(limit);
    } else if ((s === 'new' || s === 'retry') && i.appendLimit !== null && m.size > i.appendLimit) {
      s = 'would-fail';
      reason = `larger than the destination's APPENDLIMIT (${m.size} > ${i.appendLimit} bytes)`;
    }
    if (!r || 'error' in r) {
      const unread = r && 'error' in r ? r.error : 'headers not read';
      return {
        ...base,
        subject: null,
        from: null,
        messageId: null,
        folder: '',
        folderRule: null,
        flags: [],
        seenSource: null,
        internalDate: null,
        dateSource: 'unknown',
        // The run reads the headers from the message it downloads (RETR), so a refused TOP
        // hides only where it goes, not whether it is copied.
        status: s,
        reason:
          s === 'would-fail'
            ? reason
            : `${unread}; the run routes it once it has downloaded it${s === 'new' && unlisted > 0 ? byContent : ''}`,
      };
    }
    return {
      ...base,
      subject: r.subject,
      from: r.from,
      messageId: r.messageId,
      folder: r.routing.folder,
      folderRule: r.routing.folderRule,
      flags: r.routing.flags,
      seenSource: r.routing.seenSource,
      internalDate: r.routing.internalDate?.toISOString() ?? null,
      dateSource: r.routing.dateSource,
      status: s,
      reason,
    };
  });

  const { totals, folders, seenSources, dateSources } = tallyMessages(messages, {
    exists: (f) => i.existingFolders.has(f),
    run: false,
  });

  return {
    version: 1,
    generatedAt: i.generatedAt.toISOString(),
    source: i.source,
    destination: i.destination,
    totals,
    folders,
    seenSources,
    dateSources,
    estimate: i.rate
      ? {
          bytesPerSecond: i.rate.bytesPerSecond,
          seconds: Math.ceil(totals.newBytes / i.rate.bytesPerSecond),
          basis: i.rate.basis,
        }
      : null,
    ...(i.budget
      ? {
          budget: {
            ...i.budget,
            days: daysNeeded(
              messages.filter((m) => m.status === 'new' || m.status === 'retry').map((m) => m.size),
              i.budget.bytesPerDay,
              i.budget.usedToday,
            ),
          },
        }
      : {}),
    messages,
  };
}

/** The run judges APPENDLIMIT with the same function (engine/plan.ts). */
export { appendLimitOf } from '../engine/plan.js';
