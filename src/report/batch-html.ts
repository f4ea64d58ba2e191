/**
 * A batch report as one self-contained page, in the plan page's style (plan-html.ts: no
 * script, nothing loaded, a CSP saying so, every string escaped through text()). Totals
 * first, then the accounts that did not end well, then every account: with a thousand rows
 * the failures must not hide at the bottom.
 */
import { batchFailures, type BatchAccountRow, type BatchReport } from './batch-report.js';
import { rowCounts, totalsText } from './batch-text.js';
import { STYLE, text } from './plan-html.js';
import { formatBytes, formatDuration } from './summary.js';

export function renderBatchHtml(report: BatchReport): string {
  const t = report.totals;
  const failed = batchFailures(report);
  const title = `popsync ${report.command} batch report`;
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${text(title)}: ${t.accounts} accounts</title>
<style>${STYLE}${BATCH_STYLE}</style>
</head>
<body>
<header>
<p class="kicker">${text(title)}</p>
<h1>${t.accounts} account${t.accounts === 1 ? '' : 's'}</h1>
<p class="meta">Generated <time datetime="${text(report.generatedAt)}">${text(report.generatedAt)}</time></p>
</header>
<main>
<section aria-labelledby="h-totals">
<h2 id="h-totals">Totals</h2>
<dl class="cards">
${cards(report)}
</dl>
<p>${text(totalsText(report))}</p>
</section>
<section aria-labelledby="h-fail">
<h2 id="h-fail">Accounts not ok: ${failed.length === 0 ? 'none' : failed.length}</h2>
${failed.length === 0 ? '<p>Every account ended with exit code 0.</p>' : failureTable(failed)}
</section>
<section aria-labelledby="h-accounts">
<h2 id="h-accounts">Every account</h2>
${accountTable(report)}
</section>
</main>
<footer>
<p>Made by <code>popsync ${text(report.command)} --report</code> (or <code>popsync report merge</code>).
Per-message details are in each account's report (<code>--report-dir</code>).
This page loads nothing from the network.</p>
</footer>
</body>
</html>
`;
}

function cards(report: BatchReport): string {
  const t = report.totals;
  const notOk = t.outcomes.partial + t.outcomes.error;
  return [
    card('Accounts', String(t.accounts), `${t.outcomes.ok} ok`, ''),
    card(
      'Not ok',
      String(notOk),
      `${t.outcomes.partial} with failed messages · ${t.outcomes.error} stopped`,
      notOk > 0 ? 'fail' : '',
    ),
    card('Listed', String(t.listed), formatBytes(t.listedBytes), ''),
    report.command === 'plan'
      ? card('To copy', String(t.new), formatBytes(t.newBytes), 'new')
      : card(
          'Copied',
          String(t.copied),
          formatBytes(t.copiedBytes) + (t.adopted > 0 ? ` · ${t.adopted} adopted (already there)` : ''),
          'new',
        ),
    card(
      report.command === 'plan' ? 'Would fail' : 'Failed messages',
      String(t.failed),
      `${t.alreadyCopied} already copied`,
      t.failed > 0 ? 'fail' : 'done',
    ),
  ].join('\n');
}

function card(label: string, value: string, detail: string, kind: string): string {
  const big = `<span class="big">${text(value)}</span><span class="detail">${text(detail)}</span>`;
  return `<div class="card${kind ? ` ${kind}` : ''}"><dt>${text(label)}</dt><dd>${big}</dd></div>`;
}

function failureTable(rows: readonly BatchAccountRow[]): string {
  const body = rows
    .map(
      (r) =>
        `<tr><th scope="row">${text(r.name)}</th><td class="num fail">${r.exitCode}</td>` +
        `<td class="free">${text(rowCounts(r))}</td></tr>`,
    )
    .join('\n');
  return `<table class="failures">
<thead><tr><th scope="col">Account</th><th scope="col" class="num">Exit</th>\
<th scope="col">What happened</th></tr></thead>
<tbody>
${body}
</tbody>
</table>`;
}

/** The outcome, and under it, for a run over one IMAP connection, that and why (the server's words). */
function outcomeCell(r: BatchAccountRow): string {
  const outcome = r.outcome === 'error' ? `exit ${r.exitCode}` : r.outcome;
  if (!r.oneImapConnection) return text(outcome);
  return `${text(outcome)}<span class="note">one IMAP connection: ${text(r.oneImapConnection)}</span>`;
}

function accountTable(report: BatchReport): string {
  const plan = report.command === 'plan';
  const head = plan
    ? ['Account', 'Outcome', 'Source', 'Destination', 'Listed', 'To copy', 'Bytes to copy', 'Already', 'Would fail']
    : [
        'Account',
        'Outcome',
        'Source',
        'Destination',
        'Listed',
        'Copied',
        'Bytes copied',
        'Adopted',
        'Already',
        'Failed',
        'Time',
      ];
  const num = (n: number | string) => `<td class="num">${typeof n === 'number' ? n : text(n)}</td>`;
  const rows = report.accounts.map((r) => {
    const cells = [
      `<th scope="row">${text(r.name)}</th>`,
      `<td${r.outcome === 'ok' ? '' : ' class="fail"'}>${outcomeCell(r)}</td>`,
      `<td class="endpoint">${text(r.source ?? '')}</td>`,
      `<td class="endpoint">${text(r.destination ?? '')}</td>`,
      num(r.listed),
      ...(plan
        ? [num(r.new), num(formatBytes(r.newBytes)), num(r.alreadyCopied), num(r.failed)]
        : [
            num(r.copied),
            num(formatBytes(r.copiedBytes)),
            num(r.adopted),
            num(r.alreadyCopied),
            num(r.failed),
            num(r.durationMs === null ? '' : formatDuration(r.durationMs)),
          ]),
    ];
    return `<tr>${cells.join('')}</tr>`;
  });
  const t = report.totals;
  const foot = plan
    ? [t.listed, t.new, formatBytes(t.newBytes), t.alreadyCopied, t.failed]
    : [t.listed, t.copied, formatBytes(t.copiedBytes), t.adopted, t.alreadyCopied, t.failed, ''];
  return `<table class="accounts">
<thead><tr>${head.map((h, i) => `<th scope="col"${i >= 4 ? ' class="num"' : ''}>${text(h)}</th>`).join('')}</tr></thead>
<tbody>
${rows.join('\n')}
</tbody>
<tfoot><tr><th scope="row">Total</th><td colspan="3">${t.accounts} accounts</td>${foot.map(num).join('')}</tr></tfoot>
</table>`;
}

/** Endpoints break anywhere: two columns of long user@host:port would push the counts off the page. */
const BATCH_STYLE = `
table.accounts td.endpoint { overflow-wrap: anywhere; font-size: 13px; }
table.accounts .note { display: block; font-size: 13px; overflow-wrap: anywhere; }
`;
