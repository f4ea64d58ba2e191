/**
 * The plan as GitHub-flavoured markdown, for pasting into a ticket: a heading, tables for
 * folders, seen and date sources and failures (capped like the terminal table), totals and the
 * estimate.
 *
 * Cells hold text from strangers: `|` would split a cell, a newline would end the table, and
 * `<img>`, `*`, `[x](y)` would render as markup in the tracker. Text goes through printable()
 * (control characters, newlines included, become visible escapes) and then has the markdown
 * punctuation that acts mid-line backslash-escaped (CommonMark allows it for any ASCII
 * punctuation; `#`, `-`, `+` only act at a line start, where report text never stands, and
 * escaping them would make the raw text unreadable). `$` is escaped for GitHub's math.
 */

import type { PlanReport } from './plan-types.js';
import { DEFAULT_MAX_FAILURES } from './plan-table.js';
import {
  estimateText,
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

export interface PlanMarkdownOptions {
  /** Failed messages listed before "and N more". */
  maxFailures?: number;
}

export function renderPlanMarkdown(report: PlanReport, options: PlanMarkdownOptions = {}): string {
  const maxFailures = options.maxFailures ?? DEFAULT_MAX_FAILURES;
  const t = report.totals;
  const out: string[] = [];
  out.push(`## ${reportTitle(report)}: ${md(report.source)} → ${md(report.destination)}`, '');
  out.push(`Generated ${md(report.generatedAt)}.`, '');

  out.push('### Folders', '');
  out.push(
    ...table(['Folder', ...folderColumns(report).map(capitalise)], report.run ? 'lrrrrrr' : 'lrrrrrl', [
      ...report.folders.map((f) => [md(f.folder), ...folderCells(f, report)]),
      ['**Total**', ...totalCells(t, report).map((c) => (c === '' ? '' : `**${c}**`))],
    ]),
    '',
  );

  out.push('### Seen flag decided by', '');
  out.push(
    ...table(
      ['Seen policy step', 'Messages'],
      'lr',
      sortedCounts(report.seenSources).map(([k, v]) => [md(k), String(v)]),
    ),
    '',
  );
  out.push('### Arrival date from', '');
  out.push(
    ...table(
      ['Date source', 'Messages'],
      'lr',
      sortedCounts(report.dateSources).map(([k, v]) => [md(k), String(v)]),
    ),
    '',
  );

  const failed = failures(report);
  out.push(`### ${failuresHeading(report)}: ${failed.length === 0 ? 'none' : failed.length}`, '');
  if (failed.length > 0) {
    const shown = failed.slice(0, Math.max(0, maxFailures));
    out.push(
      ...table(
        ['#', 'UIDL', 'Size', 'Folder', 'Subject', 'Reason'],
        'rlrlll',
        shown.map((m) => [
          String(m.n),
          code(m.uidl),
          formatBytes(m.size),
          md(m.folder),
          md(m.subject ?? ''),
          md(failureReason(m, report.run !== undefined)),
        ]),
      ),
    );
    const more = failed.length - shown.length;
    if (more > 0) out.push('', `…and ${more} more (\`--format csv\` lists all).`);
    out.push('');
  }

  out.push('### Totals', '');
  if (report.run) {
    for (const [k, v] of totalLines(report)) out.push(`- ${capitalise(k)}: ${md(v)}`);
    return `${out.join('\n')}\n`;
  }
  out.push(`- **${t.messages}** messages, ${formatBytes(t.bytes)}`);
  out.push(
    `- **${t.new}** new (${formatBytes(t.newBytes)}), ${t.retry} retry, ${t.alreadyCopied} already copied, ` +
      `${t.wouldFail} would fail`,
  );
  out.push(`- Estimate: ${md(estimateText(report))}`);
  return `${out.join('\n')}\n`;
}

/** A table needs at least one body row to render as one; an empty tally gets a dash row. */
function table(header: string[], align: string, rows: string[][]): string[] {
  const body = rows.length > 0 ? rows : [header.map(() => '—')];
  const rule = [...align].map((a) => (a === 'r' ? '---:' : ':---'));
  return [header, rule, ...body].map((r) => `| ${r.join(' | ')} |`);
}

function capitalise(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}

/** Text for a cell: visible control characters, then markdown punctuation escaped. */
export function md(s: string): string {
  return printable(s).replace(/[\\`*_[\]<>|~&$]/g, (c) => `\\${c}`);
}

/**
 * UIDLs in code spans read better and keep their exact characters; a span cannot escape its
 * backticks, so it is fenced with more backticks than it contains, and `|` still needs its
 * backslash because GFM splits table cells before parsing spans.
 */
function code(s: string): string {
  const text = printable(s).replace(/\|/g, '\\|');
  const longest = Math.max(0, ...(text.match(/`+/g) ?? []).map((r) => r.length));
  const fence = '`'.repeat(longest + 1);
  const pad = text.startsWith('`') || text.endsWith('`') ? ' ' : '';
  return `${fence}${pad}${text}${pad}${fence}`;
}
