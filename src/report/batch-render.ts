/**
 * A batch report (batch-report.ts) as a file: HTML for the people who sign the migration off
 * (batch-html.ts), CSV for a spreadsheet, JSON for scripts and `report merge`, and a text table
 * for anything else. Pure, like the plan renderers: same report, same text.
 */
import type { BatchFormat, BatchReport } from './batch-report.js';
import { renderBatchHtml } from './batch-html.js';
import { renderBatchTable } from './batch-text.js';
import { quote, textField } from './plan-csv.js';

export function renderBatch(report: BatchReport, format: BatchFormat): string {
  switch (format) {
    case 'html':
      return renderBatchHtml(report);
    case 'csv':
      return renderBatchCsv(report);
    case 'json':
      return `${JSON.stringify(report, null, 2)}\n`;
    case 'table':
      return renderBatchTable(report);
    default: {
      const never: never = format;
      throw new Error(`unknown batch report format: ${String(never)}`);
    }
  }
}

const BATCH_CSV_COLUMNS = [
  'name',
  'outcome',
  'exit_code',
  'command',
  'source',
  'destination',
  'listed',
  'listed_bytes',
  'new',
  'new_bytes',
  'copied',
  'copied_bytes',
  'adopted',
  'already_copied',
  'failed',
  'deleted',
  'started_at',
  'duration_ms',
  'error',
  // Last: a column added after the others, so spreadsheets reading columns by position still read.
  'one_imap_connection',
] as const;

/** RFC 4180 with CRLF, a row per account in the report's order; text guarded against formulas (plan-csv.ts). */
function renderBatchCsv(report: BatchReport): string {
  const num = (n: number | null) => (n === null ? '' : String(n));
  const rows = report.accounts.map((r) =>
    [
      textField(r.name),
      quote(r.outcome),
      num(r.exitCode),
      quote(r.command),
      textField(r.source),
      textField(r.destination),
      num(r.listed),
      num(r.listedBytes),
      num(r.new),
      num(r.newBytes),
      num(r.copied),
      num(r.copiedBytes),
      num(r.adopted),
      num(r.alreadyCopied),
      num(r.failed),
      num(r.deleted),
      textField(r.startedAt),
      num(r.durationMs),
      textField(r.error),
      textField(r.oneImapConnection),
    ].join(','),
  );
  return [BATCH_CSV_COLUMNS.join(','), ...rows].map((l) => `${l}\r\n`).join('');
}
