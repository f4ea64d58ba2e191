/**
 * The plan for a terminal: plain aligned text, no colour (it is read in terminals, pasted into
 * mails and piped to `less`, where escape codes are noise). Sections: folders, how seen flags
 * and dates were decided, what would fail (capped; csv lists all), totals and the estimate.
 * A run report (`--report`) has the same sections, worded for what happened.
 *
 * Every string from the report goes through printable(): folder names, UIDLs and reasons come
 * from servers and mail, and a control character there could rewrite the user's screen.
 */

import type { PlanReport } from './plan-types.js';
import {
  failures,
  failuresHeading,
  folderCells,
  folderColumns,
  reportTitle,
  sortedCounts,
  totalCells,
  totalLines,
  failureReason,
} from './plan-stats.js';
import { formatBytes, printable } from './summary.js';

export interface PlanTableOptions {
  /** Failed messages listed before "and N more"; the rest are in `--format csv`. */
  maxFailures?: number;
}

export const DEFAULT_MAX_FAILURES = 20;

type Align = 'left' | 'right';

export function renderPlanTable(report: PlanReport, options: PlanTableOptions = {}): string {
  const maxFailures = options.maxFailures ?? DEFAULT_MAX_FAILURES;
  const t = report.totals;
  const out: string[] = [];
  out.push(`${reportTitle(report)}: ${cell(report.source)} -> ${cell(report.destination)}`);
  out.push(`generated ${cell(report.generatedAt)}`);

  out.push('', 'Folders');
  if (report.folders.length === 0) {
    out.push('  (no messages)');
  } else {
    // Two header lines ("already" over "copied") and long folder names shortened in the
    // middle keep a row within 80 columns; csv, json and html keep the names whole.
    const split = folderColumns(report).map(twoLines);
    const header = [
      ['', ...split.map((h) => h[0])],
      ['folder', ...split.map((h) => h[1])],
    ];
    const numbers = [...report.folders.map((f) => folderCells(f, report)), totalCells(t, report)];
    const others = [...header.map((h) => h.slice(1)), ...numbers];
    const used = columnWidths(others).reduce((a, w) => a + w + 2, 0);
    const room = Math.max(MIN_FOLDER_WIDTH, TERMINAL_WIDTH - 2 - used);
    const rows = numbers.map((n, i) => [
      i < report.folders.length ? shorten(cell(report.folders[i]!.folder), room) : 'total',
      ...n,
    ]);
    out.push(
      ...grid(header, ['left', 'right', 'right', 'right', 'right', 'right', report.run ? 'right' : 'left'], rows),
    );
  }

  out.push('', 'Seen flag decided by');
  out.push(...tally(report.seenSources, 'seen policy step'));
  out.push('', 'Arrival date from');
  out.push(...tally(report.dateSources, 'date source'));

  const failed = failures(report);
  out.push('', `${failuresHeading(report)}: ${failed.length === 0 ? 'none' : failed.length}`);
  if (failed.length > 0) {
    const shown = failed.slice(0, Math.max(0, maxFailures));
    const reason = (m: (typeof failed)[number]) => cell(failureReason(m, report.run !== undefined));
    out.push(
      ...grid(
        [['UIDL', 'size', 'reason']],
        ['left', 'right', 'left'],
        shown.map((m) => [cell(m.uidl), formatBytes(m.size), reason(m)]),
      ),
    );
    const more = failed.length - shown.length;
    if (more > 0) out.push(`  and ${more} more (--format csv lists all)`);
  }

  out.push('', 'Totals');
  out.push(
    ...grid(
      null,
      ['left', 'left'],
      totalLines(report).map(([k, v]) => [`${k}:`, cell(v)]),
    ),
  );
  return `${out.join('\n')}\n`;
}

function tally(counts: Readonly<Record<string, number>>, heading: string): string[] {
  const rows = sortedCounts(counts).map(([k, v]) => [cell(k), String(v)]);
  if (rows.length === 0) return ['  (none)'];
  return grid([[heading, 'messages']], ['left', 'right'], rows);
}

/** What the plan table is laid out for: the classic terminal. */
const TERMINAL_WIDTH = 80;
/** A folder column narrower than this says too little; the row may then run over. */
const MIN_FOLDER_WIDTH = 16;

/** "already copied" -> ["already", "copied"]; one word -> ["", word] (the lower line names it). */
function twoLines(h: string): [string, string] {
  const at = h.indexOf(' ');
  return at === -1 ? ['', h] : [h.slice(0, at), h.slice(at + 1)];
}

function columnWidths(rows: string[][]): number[] {
  const n = Math.max(0, ...rows.map((r) => r.length));
  return Array.from({ length: n }, (_, i) => Math.max(0, ...rows.map((r) => displayWidth(r[i] ?? ''))));
}

/** `s` within `width` columns, its middle replaced by "..." when it is longer. */
export function shorten(s: string, width: number): string {
  if (displayWidth(s) <= width) return s;
  const chars = [...s];
  const keep = width - 3;
  let head = '';
  let tail = '';
  for (let i = 0, j = chars.length - 1; ; ) {
    if (
      displayWidth(head) <= displayWidth(tail) &&
      i <= j &&
      displayWidth(head + chars[i]) + displayWidth(tail) <= keep
    )
      head += chars[i++];
    else if (i <= j && displayWidth(head) + displayWidth(chars[j] + tail) <= keep) tail = chars[j--] + tail;
    else break;
  }
  return `${head}...${tail}`;
}

/** One line per row, header lines (if any) first, two spaces of indent and of gutter; last column unpadded. */
function grid(header: string[][] | null, align: Align[], rows: string[][]): string[] {
  const all = header ? [...header, ...rows] : rows;
  const widths = align.map((_, i) => Math.max(0, ...all.map((r) => displayWidth(r[i] ?? ''))));
  return all.map((r) => {
    const cells = r.map((c, i) => {
      const last = i === r.length - 1;
      if (align[i] === 'right') return pad(c, widths[i]!, 'right');
      return last ? c : pad(c, widths[i]!, 'left');
    });
    return `  ${cells.join('  ')}`.trimEnd();
  });
}

function pad(s: string, width: number, align: Align): string {
  const fill = ' '.repeat(Math.max(0, width - displayWidth(s)));
  return align === 'right' ? fill + s : s + fill;
}

/** Tabs would break the alignment that printable() deliberately leaves them in for. */
function cell(s: string): string {
  return printable(s).replace(/\t/g, ' ');
}

/**
 * Terminal columns a string takes: combining marks none, East Asian wide and fullwidth
 * characters (the `日本語` folder) two. An approximation of UAX #11 good enough for names.
 */
export function displayWidth(s: string): number {
  let w = 0;
  for (const ch of s) {
    if (/\p{M}/u.test(ch) || ch === '\u200d') continue;
    w += isWide(ch.codePointAt(0)!) ? 2 : 1;
  }
  return w;
}

function isWide(cp: number): boolean {
  return (
    (cp >= 0x1100 && cp <= 0x115f) ||
    (cp >= 0x2e80 && cp <= 0xa4cf && cp !== 0x303f) ||
    (cp >= 0xac00 && cp <= 0xd7a3) ||
    (cp >= 0xf900 && cp <= 0xfaff) ||
    (cp >= 0xfe30 && cp <= 0xfe4f) ||
    (cp >= 0xff00 && cp <= 0xff60) ||
    (cp >= 0xffe0 && cp <= 0xffe6) ||
    (cp >= 0x1f300 && cp <= 0x1f64f) ||
    (cp >= 0x1f900 && cp <= 0x1f9ff) ||
    (cp >= 0x20000 && cp <= 0x3fffd)
  );
}
