/**
 * The plan as one self-contained HTML page, for the person who signs off a migration: it is
 * mailed around and opened offline, so it loads nothing (no external CSS, JS, fonts or images;
 * styles inline, charts inline SVG computed here, no script at all). A Content-Security-Policy
 * meta repeats that promise to the browser, so even a mistake in escaping could neither run a
 * script nor fetch anything.
 *
 * Every string from the report is untrusted (subjects, senders, folder names, UIDLs and reasons
 * come from strangers and servers) and goes through text(): printable() for control and bidi
 * characters, then HTML escaping. Nothing from the report is ever placed unescaped, including
 * inside SVG and attributes.
 *
 * A run report (`migrate`/`sync --report`) is the same page worded for what happened: cards,
 * folder columns, chart segments and the failure table say copied / failed / skipped.
 */

import type { PlanMessage, PlanReport } from './plan-types.js';
import {
  type Bucket,
  bytesPerYear,
  estimateText,
  failures,
  failuresHeading,
  folderCells,
  folderColumns,
  reportTitle,
  sizeHistogram,
  sortedCounts,
  totalCells,
  failureReason,
} from './plan-stats.js';
import { formatBytes, printable } from './summary.js';

export function renderPlanHtml(report: PlanReport): string {
  const route = `${report.source} → ${report.destination}`;
  const failed = failures(report);
  const allCopied = report.run ? 'Every listed message is in the destination.' : 'Every message can be copied.';
  const title = reportTitle(report);
  const kicker =
    (report.name === undefined ? '' : `account ${report.name} · `) +
    (report.run
      ? `popsync ${report.run.command} report · what the run did`
      : 'popsync migration plan · dry run, nothing was written');
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="${text(title)}">
<title>${text(title)}: ${text(route)}</title>
<style>${STYLE}</style>
</head>
<body>
<header>
<p class="kicker">${text(kicker)}</p>
<h1><span class="endpoint">${text(report.source)}</span>
<span class="arrow" aria-label="to">→</span>
<span class="endpoint">${text(report.destination)}</span></h1>
<p class="meta">Generated
<time datetime="${text(report.generatedAt)}">${text(readableTime(report.generatedAt))}</time></p>
</header>
<main>
<section aria-labelledby="h-summary">
<h2 id="h-summary">Summary</h2>
<dl class="cards">
${cards(report)}
</dl>
</section>
<section aria-labelledby="h-folders">
<h2 id="h-folders">Folders</h2>
${folderTable(report)}
${folderChart(report)}
</section>
<section aria-labelledby="h-dist" class="charts">
<h2 id="h-dist">Mailbox by year and size</h2>
${vbarChart(
  'chart-years',
  'Bytes per year',
  'Total size of the messages by the year of their arrival date; unknown: no usable date, the server will ' +
    'stamp the time of copy.',
  bytesPerYear(report.messages),
  (b) => b.bytes,
  (b) => `${formatBytes(b.bytes)} in ${plural(b.messages, 'message')}`,
  'bytes',
)}
${vbarChart(
  'chart-sizes',
  'Message sizes',
  'Number of messages per size range (log-spaced, 4× per step).',
  sizeHistogram(report.messages),
  (b) => b.messages,
  (b) => `${plural(b.messages, 'message')}, ${formatBytes(b.bytes)}`,
  'count',
)}
</section>
<section aria-labelledby="h-decided" class="pair">
<h2 id="h-decided">How flags and dates were decided</h2>
${tallyTable('Seen flag decided by', 'Seen policy step', report.seenSources)}
${tallyTable('Arrival date (INTERNALDATE) from', 'Date source', report.dateSources)}
</section>
<section aria-labelledby="h-fail">
<h2 id="h-fail">${failuresHeading(report)}: ${failed.length === 0 ? 'none' : failed.length}</h2>
${failed.length === 0 ? `<p>${allCopied}</p>` : failureTable(failed, report.run !== undefined)}
</section>
</main>
<footer>
<p>${
    report.run
      ? `Made by <code>popsync ${report.run.command} --report</code> at the end of the run: what it copied, ` +
        `found already copied, and did not copy. This page loads nothing from the network.`
      : 'Made by <code>popsync plan</code>. A dry run: only UIDL, LIST and headers were read; nothing was ' +
        'written to the journal or the destination. This page loads nothing from the network.'
  }</p>
</footer>
</body>
</html>
`;
}

/** HTML-escaped, with control and bidi characters made visible first. */
export function text(s: string): string {
  return printable(s).replace(/[&<>"']/g, (c) => ENTITIES[c]!);
}

const ENTITIES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

function cards(report: PlanReport): string {
  const t = report.totals;
  if (report.run) {
    const notCopied = (t.failed ?? 0) + (t.skippedByRule ?? 0);
    return [
      card('Messages', String(t.messages), formatBytes(t.bytes)),
      card('Copied', String(t.copied ?? 0), formatBytes(t.copiedBytes ?? 0), 'new'),
      card('Already copied', String(t.alreadyCopied), 'before this run', 'done'),
      card(
        'Not copied',
        String(notCopied),
        `${t.failed ?? 0} failed · ${t.skippedByRule ?? 0} skipped by rule`,
        (t.failed ?? 0) > 0 ? 'fail' : '',
      ),
      card('Transfer', estimateText(report), ''),
    ].join('\n');
  }
  return [
    card('Messages', String(t.messages), formatBytes(t.bytes)),
    card('New', String(t.new), `${formatBytes(t.newBytes)}${t.retry > 0 ? ` · ${t.retry} retry` : ''}`, 'new'),
    card('Already copied', String(t.alreadyCopied), 'in the journal', 'done'),
    card('Would fail', String(t.wouldFail), t.wouldFail === 0 ? 'none' : 'see below', t.wouldFail > 0 ? 'fail' : ''),
    card('Estimated time', ...estimateParts(report)),
  ].join('\n');
}

function card(label: string, value: string, detail: string, kind = ''): string {
  return (
    `<div class="card${kind ? ` ${kind}` : ''}"><dt>${text(label)}</dt><dd><span ` +
    `class="big">${text(value)}</span><span class="detail">${text(detail)}</span></dd></div>`
  );
}

/** "about 3 min" big, "at 400.0 KiB/s (basis: …)" small; texts without a rate stay whole. */
function estimateParts(report: PlanReport): [string, string] {
  const full = estimateText(report);
  const cut = full.indexOf(' at ');
  return cut === -1 ? [full, ''] : [full.slice(0, cut), full.slice(cut + 1)];
}

/** "2025-03-01 10:00:00 UTC" for an ISO UTC stamp; anything else shown as it came. */
function readableTime(iso: string): string {
  const m = /^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2}:\d{2})(?:\.\d+)?Z$/.exec(iso);
  return m ? `${m[1]} ${m[2]} UTC` : iso;
}

function folderTable(report: PlanReport): string {
  if (report.run) return runFolderTable(report);
  const t = report.totals;
  const rows = report.folders
    .map(
      (f) =>
        `<tr><th scope="row">${text(f.folder)}</th>${num(f.messages)}<td class="num">${formatBytes(f.bytes)}</td>` +
        `${num(f.new)}${num(f.alreadyCopied)}${num(f.wouldFail, f.wouldFail > 0 ? 'fail' : '')}` +
        `<td>${f.exists ? 'exists' : '<span class="created">will be created</span>'}</td></tr>`,
    )
    .join('\n');
  return `<table class="folders">
<caption>Messages per destination folder</caption>
<thead><tr><th scope="col">Folder</th><th scope="col" class="num">Messages</th><th scope="col" class="num">Bytes</th>
<th scope="col" class="num">New</th><th scope="col" class="num">Already copied</th>
<th scope="col" class="num">Would fail</th><th scope="col">On destination</th></tr></thead>
<tbody>
${rows}
</tbody>
<tfoot><tr><th scope="row">Total</th>${num(t.messages)}<td class="num">${formatBytes(t.bytes)}</td>
${num(t.new)}${num(t.alreadyCopied)}${num(t.wouldFail)}<td></td></tr></tfoot>
</table>`;
}

/** The run's columns, from the same cells the text formats print. */
function runFolderTable(report: PlanReport): string {
  const row = (cells: string[]) => cells.map((c) => `<td class="num">${text(c)}</td>`).join('');
  const head = folderColumns(report)
    .map((c) => `<th scope="col" class="num">${text(c.charAt(0).toUpperCase() + c.slice(1))}</th>`)
    .join('');
  const rows = report.folders
    .map((f) => `<tr><th scope="row">${text(f.folder)}</th>${row(folderCells(f, report))}</tr>`)
    .join('\n');
  return `<table class="folders">
<caption>Messages per destination folder</caption>
<thead><tr><th scope="col">Folder</th>${head}</tr></thead>
<tbody>
${rows}
</tbody>
<tfoot><tr><th scope="row">Total</th>${row(totalCells(report.totals, report))}</tr></tfoot>
</table>`;
}

function num(n: number, cls = ''): string {
  return `<td class="num${cls ? ` ${cls}` : ''}">${n}</td>`;
}

function tallyTable(caption: string, heading: string, counts: Readonly<Record<string, number>>): string {
  const rows = sortedCounts(counts);
  const body =
    rows.length === 0
      ? '<tr><td colspan="2">none</td></tr>'
      : rows.map(([k, v]) => `<tr><th scope="row"><code>${text(k)}</code></th>${num(v)}</tr>`).join('\n');
  return `<table class="tally">
<caption>${text(caption)}</caption>
<thead><tr><th scope="col">${text(heading)}</th><th scope="col" class="num">Messages</th></tr></thead>
<tbody>
${body}
</tbody>
</table>`;
}

function failureTable(failed: PlanMessage[], run: boolean): string {
  const why = (m: PlanMessage) => failureReason(m, run);
  const rows = failed
    .map(
      (m) =>
        `<tr><td class="num">${m.n}</td><th scope="row"><code>${text(m.uidl)}</code></th><td ` +
        `class="num">${formatBytes(m.size)}</td><td>${text(m.folder)}</td><td ` +
        `class="free">${text(m.subject ?? '')}</td><td class="free">${text(m.from ?? '')}</td><td ` +
        `class="free">${text(why(m))}</td></tr>`,
    )
    .join('\n');
  return `<table class="failures">
<caption>${run ? 'Messages this run did not copy, and why' : 'Messages that would not be copied, and why'}</caption>
<thead><tr><th scope="col" class="num">#</th><th scope="col">UIDL</th><th scope="col" class="num">Size</th>
<th scope="col">Folder</th><th scope="col">Subject</th><th scope="col">From</th><th scope="col">Reason</th></tr></thead>
<tbody>
${rows}
</tbody>
</table>`;
}

// ---- charts: inline SVG, sized in viewBox units and scaled by CSS to the page width ----

const CHART_W = 960;
type SegmentKey = 'new' | 'retry' | 'done' | 'fail';
const PLAN_SEGMENTS: readonly { key: SegmentKey; label: string; cls: string }[] = [
  { key: 'new', label: 'new', cls: 'seg-new' },
  { key: 'retry', label: 'retry', cls: 'seg-retry' },
  { key: 'done', label: 'already copied', cls: 'seg-done' },
  { key: 'fail', label: 'would fail', cls: 'seg-fail' },
];
/** A run: copied, already copied, failed, and skipped on purpose (drawn in the retry colour). */
const RUN_SEGMENTS: readonly { key: SegmentKey; label: string; cls: string }[] = [
  { key: 'new', label: 'copied', cls: 'seg-new' },
  { key: 'retry', label: 'skipped by rule', cls: 'seg-retry' },
  { key: 'done', label: 'already copied', cls: 'seg-done' },
  { key: 'fail', label: 'failed', cls: 'seg-fail' },
];

/**
 * One horizontal bar per folder, largest first, stacked by what would happen (a run: what
 * happened) to its messages. A plan folder's `new` includes its retries, drawn apart.
 */
function folderChart(report: PlanReport): string {
  const SEGMENTS = report.run ? RUN_SEGMENTS : PLAN_SEGMENTS;
  const folders = [...report.folders].sort((a, b) => b.messages - a.messages || (a.folder < b.folder ? -1 : 1));
  const row = 26;
  const top = 34;
  const labelChars = Math.min(34, Math.max(6, ...folders.map((f) => [...f.folder].length)));
  const labelW = Math.round(labelChars * 7.4) + 16;
  const valueW = 64;
  const plotW = CHART_W - labelW - valueW;
  const max = Math.max(1, ...folders.map((f) => f.messages));
  const height = top + Math.max(1, folders.length) * row + 8;

  const legend = SEGMENTS.map(
    (s, i) =>
      `<g transform="translate(${labelW + i * 150},8)"><rect class="${s.cls}" width="12" height="12" ` +
      `rx="2"/><text x="18" y="10.5">${s.label}</text></g>`,
  ).join('');
  const bars = folders
    .map((f, i) => {
      const y = top + i * row;
      const retry = f.retry ?? 0;
      const parts: Record<SegmentKey, number> = report.run
        ? { new: f.copied ?? 0, retry: f.skippedByRule ?? 0, done: f.alreadyCopied, fail: f.failed ?? 0 }
        : // `new` includes retries in plan-report.ts; clamped so a report that counted them apart draws the same bar.
          {
            new: Math.max(0, Math.min(f.new, f.messages - retry - f.alreadyCopied - f.wouldFail)),
            retry,
            done: f.alreadyCopied,
            fail: f.wouldFail,
          };
      let x = labelW;
      const segs = SEGMENTS.map((s) => {
        const w = (parts[s.key] / max) * plotW;
        const r =
          parts[s.key] > 0
            ? `<rect class="${s.cls}" x="${fx(x)}" y="${y + 4}" width="${fx(Math.max(w, 1))}" height="${row - 8}"/>`
            : '';
        x += w;
        return r;
      }).join('');
      const tip = report.run
        ? `${f.folder}: ${plural(f.messages, 'message')} (${f.copied ?? 0} copied, ${f.alreadyCopied} ` +
          `already copied, ${f.failed ?? 0} failed, ${f.skippedByRule ?? 0} skipped by rule)`
        : `${f.folder}: ${plural(f.messages, 'message')} (${f.new} new, ${f.alreadyCopied} already copied, ` +
          `${f.wouldFail} would fail)`;
      return (
        `<g class="bar"><title>${text(tip)}</title><text class="label" x="${labelW - 8}" ` +
        `y="${y + row / 2 + 4}" text-anchor="end">${text(ellipsis(f.folder, 34))}</text>${segs}<text ` +
        `class="value" x="${fx(x + 6)}" y="${y + row / 2 + 4}">${f.messages}</text></g>`
      );
    })
    .join('\n');
  const empty =
    folders.length === 0 ? `<text x="${CHART_W / 2}" y="${top + 16}" text-anchor="middle">no messages</text>` : '';
  return svg(
    'chart-folders',
    'Messages per folder',
    describe(folders.map((f) => `${f.folder}: ${f.messages}`)),
    height,
    `${legend}\n${bars}${empty}`,
  );
}

/**
 * Vertical bars on a 0-based axis with round gridlines (binary units for bytes, so the axis
 * reads 50.0 MiB, not 47.7). Value labels sit on the bars only when there is room; every bar
 * has its exact value in a <title> (tooltip, screen reader).
 */
function vbarChart(
  id: string,
  title: string,
  description: string,
  buckets: Bucket[],
  value: (b: Bucket) => number,
  tip: (b: Bucket) => string,
  kind: 'bytes' | 'count',
): string {
  const tick = kind === 'bytes' ? formatBytes : (n: number) => String(n);
  const left = 78;
  const right = 12;
  const top = 22;
  const plotW = CHART_W - left - right;
  const plotH = 230;
  const slot = plotW / Math.max(1, buckets.length);
  const barW = Math.max(2, slot * 0.72);
  const rotate = slot < 44;
  // Rotated labels hang below the axis by about their length times sin 45°.
  const bottom = rotate ? 24 + Math.max(...buckets.map((b) => [...b.label].length)) * 5.5 : 34;
  const height = Math.round(top + plotH + bottom);
  const showValues = slot >= 64;
  const scale = niceScale(Math.max(0, ...buckets.map(value)), kind);

  const gridLines: string[] = [];
  for (let v = 0; v <= scale.top + scale.step / 2; v += scale.step) {
    const y = top + plotH - (v / scale.top) * plotH;
    gridLines.push(
      `<line class="grid" x1="${left}" x2="${CHART_W - right}" y1="${fx(y)}" y2="${fx(y)}"/><text ` +
        `class="tick" x="${left - 6}" y="${fx(y + 4)}" text-anchor="end">${text(tick(v))}</text>`,
    );
  }
  const bars = buckets
    .map((b, i) => {
      const v = value(b);
      const h = (v / scale.top) * plotH;
      const x = left + i * slot + (slot - barW) / 2;
      const y = top + plotH - h;
      const cx = left + i * slot + slot / 2;
      const labelY = top + plotH + 16;
      const label = rotate
        ? `<text class="label" transform="translate(${fx(cx + 4)},${labelY}) rotate(-45)" ` +
          `text-anchor="end">${text(b.label)}</text>`
        : `<text class="label" x="${fx(cx)}" y="${labelY}" text-anchor="middle">${text(b.label)}</text>`;
      const valueText =
        showValues && v > 0
          ? `<text class="value" x="${fx(cx)}" y="${fx(y - 5)}" text-anchor="middle">${text(tick(v))}</text>`
          : '';
      return (
        `<g class="bar"><title>${text(`${b.label}: ${tip(b)}`)}</title><rect class="seg-new" ` +
        `x="${fx(x)}" y="${fx(y)}" width="${fx(barW)}" height="${fx(h)}"/>${valueText}${label}</g>`
      );
    })
    .join('\n');
  const axis = `<line class="axis" x1="${left}" x2="${CHART_W - right}" y1="${top + plotH}" y2="${top + plotH}"/>`;
  return svg(
    id,
    title,
    `${description} ${describe(buckets.map((b) => `${b.label}: ${tip(b)}`))}`,
    height,
    `${gridLines.join('')}\n${bars}\n${axis}`,
  );
}

/**
 * Axis top and gridline step: about four steps of 1, 2, 2.5 or 5 times a power of ten, in
 * the binary unit the largest value is shown in (bytes) or in whole messages (count).
 */
export function niceScale(max: number, kind: 'bytes' | 'count'): { top: number; step: number } {
  const unit = kind === 'bytes' && max >= 1024 ? 1024 ** Math.min(4, Math.floor(Math.log(max) / Math.log(1024))) : 1;
  if (max <= 0) return { top: 4 * unit, step: unit };
  const scaled = max / unit;
  const raw = scaled / 4;
  const p = 10 ** Math.floor(Math.log10(raw));
  let step = 10 * p;
  for (const m of [1, 2, 2.5, 5]) {
    if (m * p >= raw && (kind === 'bytes' || Number.isInteger(m * p))) {
      step = m * p;
      break;
    }
  }
  if (kind === 'count') step = Math.max(1, step);
  return { top: Math.ceil(scaled / step - 1e-9) * step * unit, step: step * unit };
}

function svg(id: string, title: string, description: string, height: number, body: string): string {
  return `<figure class="chart">
<figcaption>${text(title)}</figcaption>
<svg id="${id}" role="img" aria-labelledby="${id}-title ${id}-desc"
viewBox="0 0 ${CHART_W} ${height}" width="${CHART_W}" height="${height}">
<title id="${id}-title">${text(title)}</title>
<desc id="${id}-desc">${text(description)}</desc>
${body}
</svg>
</figure>`;
}

/** The values in words for screen readers, shortened for folder lists that run into hundreds. */
function describe(items: string[]): string {
  const shown = items.slice(0, 24).join('; ');
  return items.length > 24 ? `${shown}; and ${items.length - 24} more.` : `${shown}.`;
}

function ellipsis(s: string, max: number): string {
  const chars = [...s];
  return chars.length <= max ? s : `${chars.slice(0, max - 1).join('')}…`;
}

function plural(n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? '' : 's'}`;
}

/** Coordinates to one decimal: exact enough for pixels, and the page stays small. */
function fx(n: number): string {
  return String(Math.round(n * 10) / 10);
}

export const STYLE = `
:root { --ink: #1d2330; --muted: #5b6475; --line: #d8dde6; --zebra: #f5f7fa;
  --new: #2f6db5; --retry: #d99a1e; --done: #9aa3b2; --fail: #c8372d; }
* { box-sizing: border-box; }
html { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
body { margin: 0 auto; max-width: 1100px; padding: 24px 32px 48px; color: var(--ink); background: #fff;
  font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans", "DejaVu Sans", sans-serif; }
header { border-bottom: 2px solid var(--ink); padding-bottom: 12px; margin-bottom: 8px; }
.kicker { margin: 0; color: var(--muted); text-transform: uppercase; letter-spacing: .06em; font-size: 12px; }
h1 { margin: 6px 0 4px; font-size: 24px; line-height: 1.25; overflow-wrap: anywhere; }
h1 .arrow { color: var(--muted); font-weight: 400; padding: 0 4px; }
h2 { font-size: 18px; margin: 28px 0 10px; padding-bottom: 4px; border-bottom: 1px solid var(--line); }
.meta { margin: 0; color: var(--muted); }
.cards { display: grid; grid-template-columns: repeat(5, 1fr); gap: 12px; margin: 0; }
.card { border: 1px solid var(--line); border-radius: 6px; padding: 10px 12px; border-top: 4px solid var(--line); }
.card.new { border-top-color: var(--new); }
.card.done { border-top-color: var(--done); }
.card.fail { border-top-color: var(--fail); }
.card dt { font-size: 12px; color: var(--muted); text-transform: uppercase; letter-spacing: .04em; }
.card dd { margin: 2px 0 0; }
.card .big { display: block; font-size: 24px; font-weight: 600; font-variant-numeric: tabular-nums; }
.card.fail .big { color: var(--fail); }
.card .detail { display: block; font-size: 12px; color: var(--muted); overflow-wrap: anywhere; }
table { border-collapse: collapse; width: 100%; margin: 8px 0 16px; font-size: 14px; }
caption { text-align: left; font-weight: 600; padding: 4px 0; caption-side: top; }
th, td { padding: 5px 8px; border-bottom: 1px solid var(--line); text-align: left; vertical-align: top;
  overflow-wrap: break-word; }
thead th { border-bottom: 2px solid var(--ink); font-size: 13px; }
tbody th { font-weight: 500; }
tbody tr:nth-child(even) { background: var(--zebra); }
tfoot th, tfoot td { font-weight: 700; border-top: 2px solid var(--ink); border-bottom: 0; }
.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.fail { color: var(--fail); font-weight: 600; }
.created { color: var(--new); font-weight: 600; }
code { font: 13px/1.3 ui-monospace, "DejaVu Sans Mono", monospace; }
.pair { display: grid; grid-template-columns: 1fr 1fr; column-gap: 32px; }
.pair h2 { grid-column: 1 / -1; }
.pair table { align-self: start; }
/* Free text may break anywhere so one endless subject cannot push the table off the page;
   UIDLs and folder names keep whole words, or they wrap into unreadable fragments. */
table.failures td.free { overflow-wrap: anywhere; }
table.failures td.free:nth-of-type(4) { min-width: 12em; }
figure.chart { margin: 8px 0 20px; }
figcaption { font-weight: 600; padding: 4px 0; }
svg { display: block; width: 100%; height: auto; font: 12px system-ui, "DejaVu Sans", sans-serif; fill: var(--ink); }
svg .label { fill: var(--ink); }
svg .value, svg .tick { fill: var(--muted); font-variant-numeric: tabular-nums; }
svg .grid { stroke: var(--line); stroke-width: 1; }
svg .axis { stroke: var(--ink); stroke-width: 1; }
.seg-new { fill: var(--new); } .seg-retry { fill: var(--retry); }
.seg-done { fill: var(--done); } .seg-fail { fill: var(--fail); }
footer { margin-top: 32px; padding-top: 8px; border-top: 1px solid var(--line); color: var(--muted); font-size: 12px; }
@media (max-width: 760px) {
  .cards { grid-template-columns: repeat(2, 1fr); } .pair { display: block; } body { padding: 16px; }
}
@media print {
  @page { margin: 12mm; }
  body { max-width: none; padding: 0; font-size: 10pt; }
  h2 { break-after: avoid; }
  figure.chart, .card, tr { break-inside: avoid; }
  thead { display: table-header-group; }
  tbody tr:nth-child(even) { background: none; }
}
`;
