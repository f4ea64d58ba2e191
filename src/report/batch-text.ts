/**
 * A batch report in words: one account's line, the totals' line, and the text table
 * (`--report batch.txt`). Shared by the HTML page, which says the same things.
 */
import { batchFailures, type BatchAccountRow, type BatchReport } from './batch-report.js';
import { formatBytes, formatDuration, printable } from './summary.js';

/** What a row did, in words: the plan's "would copy", the run's "copied". */
export function rowCounts(r: BatchAccountRow): string {
  if (r.outcome === 'error') return `exit ${r.exitCode}: ${r.error ?? 'stopped'}`;
  const did =
    r.command === 'plan'
      ? `${r.new} to copy (${formatBytes(r.newBytes)}), ${r.failed} would fail`
      : `${r.copied} copied (${formatBytes(r.copiedBytes)})${adoptedText(r.adopted)}, ${r.failed} failed`;
  const deleted = r.deleted > 0 ? `, ${r.deleted} deleted` : '';
  return `${r.listed} listed, ${did}, ${r.alreadyCopied} already copied${deleted}${oneConnectionText(r)}`;
}

/** Why an account's run was slow, as its own summary's `one connection:` line says. */
function oneConnectionText(r: BatchAccountRow): string {
  return r.oneImapConnection ? `; one IMAP connection, one APPEND at a time: ${r.oneImapConnection}` : '';
}

/**
 * Copies found already in the destination, beside the copies made, when there were any: a
 * new journal over a filled destination otherwise read "0 copied, 0 already copied" of a
 * mailbox whose every message it accounted for.
 */
function adoptedText(adopted: number): string {
  return adopted > 0 ? `, ${adopted} adopted` : '';
}

export function totalsText(report: BatchReport): string {
  const t = report.totals;
  const outcomes = [
    `${t.outcomes.ok} ok`,
    ...(t.outcomes.partial > 0 ? [`${t.outcomes.partial} with failed messages`] : []),
    ...(t.outcomes.error > 0 ? [`${t.outcomes.error} stopped by an error`] : []),
  ].join(', ');
  const did =
    report.command === 'plan'
      ? `${t.new} messages to copy (${formatBytes(t.newBytes)}), ${t.failed} would fail`
      : `${t.copied} messages copied (${formatBytes(t.copiedBytes)})${adoptedText(t.adopted)}, ${t.failed} failed`;
  const accounts = `${t.accounts} account${t.accounts === 1 ? '' : 's'}`;
  return `${accounts} (${outcomes}); ${t.listed} listed, ${did}, ${t.alreadyCopied} already copied`;
}

/** Totals, then the failures, then every account: the order a reader wants them in. */
export function renderBatchTable(report: BatchReport): string {
  const lines = [`popsync ${report.command} batch report, ${report.generatedAt}`, `total: ${totalsText(report)}`];
  const failed = batchFailures(report);
  if (failed.length > 0) {
    lines.push('', `not ok (${failed.length}):`);
    for (const r of failed) lines.push(`  ${printable(r.name)}: ${printable(rowCounts(r))}`);
  }
  lines.push('', 'accounts:');
  const width = Math.min(32, Math.max(0, ...report.accounts.map((r) => r.name.length)));
  for (const r of report.accounts) {
    const time = r.durationMs === null ? '' : ` in ${formatDuration(r.durationMs)}`;
    lines.push(`  ${printable(r.name).padEnd(width)}  ${r.outcome.padEnd(7)}  ${printable(rowCounts(r))}${time}`);
  }
  return `${lines.join('\n')}\n`;
}
