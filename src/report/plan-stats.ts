/**
 * The few numbers the plan renderers derive from a PlanReport rather than print as they are:
 * bytes per year, the size histogram, source tallies in a fixed order, the failure list and
 * the wording of the time estimate. One place, so the terminal table, the markdown and the
 * HTML page can never disagree about a bucket edge or a rounding.
 *
 * Pure: no I/O, no clock; everything comes from the report.
 */

import type { PlanFolder, PlanMessage, PlanReport } from './plan-types.js';
import { formatBytes } from './summary.js';

export interface Bucket {
  label: string;
  messages: number;
  bytes: number;
}

/** Year label for messages without a usable INTERNALDATE (the server will stamp the copy time). */
const UNKNOWN_YEAR = 'unknown';

const KIB = 1024;
const MIB = 1024 * KIB;

/**
 * Log-spaced (×4) so one chart shows both the 2 KiB notification and the 30 MiB scan; the
 * interesting edges (providers' APPENDLIMITs of 10–50 MiB) fall near the top buckets.
 * Upper bounds are exclusive.
 */
export const SIZE_BUCKETS: readonly { label: string; below: number }[] = [
  { label: '<4K', below: 4 * KIB },
  { label: '4–16K', below: 16 * KIB },
  { label: '16–64K', below: 64 * KIB },
  { label: '64–256K', below: 256 * KIB },
  { label: '256K–1M', below: MIB },
  { label: '1–4M', below: 4 * MIB },
  { label: '4–16M', below: 16 * MIB },
  { label: '≥16M', below: Number.POSITIVE_INFINITY },
];

/** Every bucket, empty ones included: a histogram with missing bars reads as a different scale. */
export function sizeHistogram(messages: readonly PlanMessage[]): Bucket[] {
  const out = SIZE_BUCKETS.map((b) => ({ label: b.label, messages: 0, bytes: 0 }));
  for (const m of messages) {
    const i = SIZE_BUCKETS.findIndex((b) => m.size < b.below);
    const bucket = out[i === -1 ? out.length - 1 : i]!;
    bucket.messages++;
    bucket.bytes += m.size;
  }
  return out;
}

/**
 * The year as written in the ISO INTERNALDATE (the sender's or server's own offset), not
 * converted to UTC or local time: a message stamped 31 Dec 23:30 +01:00 belongs to that year
 * for whoever reads it, and the result must not depend on the machine's time zone.
 */
export function yearOf(internalDate: string | null): string {
  if (internalDate === null) return UNKNOWN_YEAR;
  const m = /^(\d{4})-\d{2}-\d{2}/.exec(internalDate);
  return m ? m[1]! : UNKNOWN_YEAR;
}

/**
 * Bytes and messages per year, oldest first, 'unknown' last. Years without mail between the
 * first and the last get empty buckets so the bars form an honest time axis, unless the empty
 * years would outnumber the real ones: a lone clamped date from 1980 next to 2015–2025 would
 * otherwise turn the chart into thirty empty slots.
 */
export function bytesPerYear(messages: readonly PlanMessage[]): Bucket[] {
  const byYear = new Map<string, Bucket>();
  for (const m of messages) {
    const label = yearOf(m.internalDate);
    let b = byYear.get(label);
    if (!b) {
      b = { label, messages: 0, bytes: 0 };
      byYear.set(label, b);
    }
    b.messages++;
    b.bytes += m.size;
  }
  const years = [...byYear.keys()]
    .filter((k) => k !== UNKNOWN_YEAR)
    .map(Number)
    .sort((a, b) => a - b);
  const labels: string[] = years.map(String);
  if (years.length > 0) {
    const first = years[0]!;
    const last = years[years.length - 1]!;
    const missing = last - first + 1 - years.length;
    if (missing <= years.length) {
      labels.length = 0;
      for (let y = first; y <= last; y++) labels.push(String(y));
    }
  }
  if (byYear.has(UNKNOWN_YEAR)) labels.push(UNKNOWN_YEAR);
  return labels.map((label) => byYear.get(label) ?? { label, messages: 0, bytes: 0 });
}

/**
 * A tally map as rows, largest first, ties by name: the order must not depend on the order
 * the planner happened to insert keys, or two plans of the same mailbox would diff.
 */
export function sortedCounts(counts: Readonly<Record<string, number>>): [string, number][] {
  return Object.entries(counts).sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
}

/** The report of a real run (`--report`), as opposed to a plan. */
function isRunReport(report: PlanReport): boolean {
  return report.run !== undefined;
}

/** "popsync plan", "popsync migrate report": the first words of every format. */
export function reportTitle(report: PlanReport): string {
  return report.run ? `popsync ${report.run.command} report` : 'popsync plan';
}

/** Statuses listed under the failure heading: what was (or would be) not copied. */
const NOT_COPIED: ReadonlySet<PlanMessage['status']> = new Set(['would-fail', 'failed', 'skipped-by-rule']);

/** Messages that would not be copied (a run: were not), in POP3 order (the order a user can check them in). */
export function failures(report: PlanReport): PlanMessage[] {
  return report.messages.filter((m) => NOT_COPIED.has(m.status)).sort((a, b) => a.n - b.n);
}

/** Why one message is listed there; a run report also says whether it failed or was skipped on purpose. */
export function failureReason(m: PlanMessage, run: boolean): string {
  const said = m.serverResponse ? ` (server said: ${m.serverResponse})` : '';
  return `${run ? `${m.status}: ` : ''}${m.reason ?? ''}${said}`;
}

/** "Would fail" for a plan; a run says what happened. */
export function failuresHeading(report: PlanReport): string {
  return isRunReport(report) ? 'Not copied' : 'Would fail';
}

/**
 * "about 4 min at 12.0 MiB/s (basis: …)". Rounded on purpose: the rate is a measurement of
 * another run, and second precision would promise what nobody can keep.
 */
export function estimateText(report: PlanReport): string {
  const e = report.estimate;
  if (report.run) {
    const bytes = report.run.copiedBytes;
    const secs = report.run.durationMs / 1000;
    const rate = secs > 0 && bytes > 0 ? ` at ${formatBytes(Math.round(bytes / secs))}/s` : '';
    return `${formatBytes(bytes)} copied in ${formatSeconds(secs)}${rate}`;
  }
  if (report.totals.newBytes === 0 && report.totals.new === 0 && report.totals.retry === 0) return 'nothing to copy';
  const b = report.budget;
  const days = b
    ? `; ${b.days} day${b.days === 1 ? '' : 's'} at ${formatBytes(b.bytesPerDay)} a day (${b.basis}` +
      `${b.usedToday > 0 ? `, ${formatBytes(b.usedToday)} used in the last 24 hours` : ''})`
    : '';
  if (e === null) return `no estimate (no transfer rate measured yet)${days}`;
  return `${approxDuration(e.seconds)} at ${formatBytes(Math.round(e.bytesPerSecond))}/s (basis: ${e.basis})${days}`;
}

/** A run's measured duration, to the second: unlike an estimate it is a fact. */
function formatSeconds(s: number): string {
  const whole = Math.round(s);
  if (whole < 60) return `${whole} s`;
  const m = Math.floor(whole / 60);
  return m < 60
    ? `${m} min ${String(whole % 60).padStart(2, '0')} s`
    : `${Math.floor(m / 60)} h ${String(m % 60).padStart(2, '0')} min`;
}

/** "under a minute", "about 4 min", "about 2 h 05 min". */
export function approxDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return 'unknown time';
  if (seconds < 60) return 'under a minute';
  const minutes = Math.round(seconds / 60);
  if (minutes < 60) return `about ${minutes} min`;
  const h = Math.floor(minutes / 60);
  return `about ${h} h ${String(minutes % 60).padStart(2, '0')} min`;
}

/**
 * The numeric columns of the folder table (after the name), shared by the text formats so
 * they list the same facts in the same order; each format escapes the name its own way.
 * A plan says what would happen, a run report what did.
 */
const FOLDER_COLUMNS = ['messages', 'bytes', 'new', 'already copied', 'would fail', 'destination'] as const;
const RUN_FOLDER_COLUMNS = ['messages', 'bytes', 'copied', 'already copied', 'failed', 'skipped by rule'] as const;

export function folderColumns(report: PlanReport): readonly string[] {
  return isRunReport(report) ? RUN_FOLDER_COLUMNS : FOLDER_COLUMNS;
}

export function folderCells(f: PlanFolder, report?: PlanReport): string[] {
  if (report && isRunReport(report)) {
    return [
      String(f.messages),
      formatBytes(f.bytes),
      String(f.copied ?? 0),
      String(f.alreadyCopied),
      String(f.failed ?? 0),
      String(f.skippedByRule ?? 0),
    ];
  }
  return [
    String(f.messages),
    formatBytes(f.bytes),
    String(f.new),
    String(f.alreadyCopied),
    String(f.wouldFail),
    f.exists ? 'exists' : 'created',
  ];
}

/** The same columns for the total row; 'destination' has no total. */
export function totalCells(t: PlanReport['totals'], report?: PlanReport): string[] {
  if (report && isRunReport(report)) {
    return [
      String(t.messages),
      formatBytes(t.bytes),
      String(t.copied ?? 0),
      String(t.alreadyCopied),
      String(t.failed ?? 0),
      String(t.skippedByRule ?? 0),
    ];
  }
  return [String(t.messages), formatBytes(t.bytes), String(t.new), String(t.alreadyCopied), String(t.wouldFail), ''];
}

/** The totals section as label/value pairs, shared by the table and markdown. */
export function totalLines(report: PlanReport): [string, string][] {
  const t = report.totals;
  if (isRunReport(report)) {
    return [
      ['messages', `${t.messages}, ${formatBytes(t.bytes)}`],
      ['copied', `${t.copied ?? 0}, ${formatBytes(t.copiedBytes ?? 0)}`],
      ['already copied', String(t.alreadyCopied)],
      ['failed', String(t.failed ?? 0)],
      ['skipped by rule', String(t.skippedByRule ?? 0)],
      ['transfer', estimateText(report)],
    ];
  }
  return [
    ['messages', `${t.messages}, ${formatBytes(t.bytes)}`],
    ['new', `${t.new}, ${formatBytes(t.newBytes)}`],
    ['retry', String(t.retry)],
    ['already copied', String(t.alreadyCopied)],
    ['would fail', String(t.wouldFail)],
    ['estimate', estimateText(report)],
  ];
}
