/**
 * The plan use case (`popsync plan`, `migrate`/`sync --dry-run`): one account's run with its
 * side effects switched off (engine/preview.ts), turned into a PlanReport. The journal is only
 * looked at (Journal.peek: no lock taken, nothing written, no file created), the source is
 * asked LIST, UIDL and `TOP n 0` (never RETR, never DELE), the destination only what exists
 * (capabilities, SPECIAL-USE, STATUS; never CREATE or APPEND). The router and the inventory
 * step are the run's own (account.ts, engine/inventory.ts), so the plan says what the run does.
 */
import { previewRun } from '../engine/preview.js';
import { Journal, type MeasuredRate } from '../journal/journal.js';
import type { Logger } from '../log.js';
import { appendLimitOf, buildPlanReport } from '../report/plan-report.js';
import type { PlanReport } from '../report/plan-types.js';
import { formatBytes } from '../report/summary.js';
import { recentUploads } from '../engine/budget.js';
import { accountRouting, type AccountEndpoints, type AccountSettings } from './account.js';

/** Stated in the report when no --rate is given; a modest broadband upload. */
const DEFAULT_RATE_MB = 1;

/**
 * The rate the estimate uses: --rate when given, else what earlier runs of this account
 * measured (their servers and network, not a guess), else the stated assumption.
 */
export function rateFor(
  rateMBps: number | undefined,
  measured: () => MeasuredRate | null,
): { bytesPerSecond: number; basis: string } {
  if (rateMBps !== undefined) return { bytesPerSecond: rateMBps * 1024 * 1024, basis: `--rate ${rateMBps} MB/s` };
  const m = measured();
  if (m !== null) {
    const bps = (m.bytes / m.ms) * 1000;
    return {
      bytesPerSecond: bps,
      basis: `measured: ${m.runs} earlier run${m.runs === 1 ? '' : 's'}, ${formatBytes(Math.round(bps))}/s`,
    };
  }
  return {
    bytesPerSecond: DEFAULT_RATE_MB * 1024 * 1024,
    basis: `assumed ${DEFAULT_RATE_MB} MB/s (no --rate given; measure with a small migrate run)`,
  };
}

export interface PlanOptions {
  logger: Logger;
  /** --rate: megabytes per second for the estimate. */
  rateMBps?: number;
  now?: () => Date;
}

export async function planAccount(
  account: AccountEndpoints,
  settings: Pick<AccountSettings, 'routing' | 'limits'>,
  o: PlanOptions,
): Promise<PlanReport> {
  const at = (o.now ?? (() => new Date()))();
  const binding = { source: account.sourceKey };
  const { openSink, route } = accountRouting(settings.routing, account.openSink, () => at);
  const rows = Journal.peek(account.journalPath, binding, account.sourceKey) ?? new Map();
  // Under a daily budget: what the journal's copies of the last 24 hours already used of it.
  const daily = settings.limits?.dailyBudget ?? null;
  const usedToday = daily === null ? 0 : recentUploads(rows.values(), at).reduce((a, u) => a + u.bytes, 0);
  const preview = await previewRun({
    rows,
    openSource: account.openSource,
    openSink,
    route,
    logger: o.logger,
    now: at,
  });
  return buildPlanReport({
    source: account.pop.display,
    destination: account.imap.display,
    generatedAt: at,
    listing: preview.listing,
    plan: preview.plan,
    rows: preview.rows,
    routed: preview.routed,
    existingFolders: preview.existingFolders,
    // The provider's published limit stands in when the server does not advertise one.
    appendLimit: appendLimitOf(preview.capabilities) ?? settings.limits?.appendLimit ?? null,
    skipLargerThan: settings.routing.skipLargerThan ?? null,
    rate: cappedRate(
      rateFor(o.rateMBps, () => Journal.measuredRate(account.journalPath, binding, account.sourceKey)),
      settings.limits?.maxRate ?? null,
    ),
    budget: daily === null ? null : { bytesPerDay: daily.bytes, basis: daily.basis, usedToday },
  });
}

/** A run never goes faster than --max-rate: the estimate does not either. */
function cappedRate(
  rate: { bytesPerSecond: number; basis: string },
  maxRate: number | null,
): { bytesPerSecond: number; basis: string } {
  return maxRate !== null && maxRate < rate.bytesPerSecond
    ? { bytesPerSecond: maxRate, basis: `--max-rate ${formatBytes(maxRate)}/s` }
    : rate;
}
