/**
 * The batch report (`--report FILE` with `--accounts`, `report merge`): rows from runs, plans
 * and errors, totals, the merge of several shards (accounts once, the latest report winning,
 * totals recomputed), what is refused as "not a popsync report", and the renderers: failures
 * first, every string escaped, CSV guarded against formulas.
 */
import { describe, expect, it } from 'vitest';
import { batchFormatFor, batchReportTarget, reportTarget } from '../../src/cli/report-file.js';
import { emptyRunResult } from '../../src/engine/recorder.js';
import type { RunResult } from '../../src/engine/types.js';
import {
  BATCH_REPORT_KIND,
  type BatchReport,
  buildBatchReport,
  mergeBatchReports,
  parseBatchReport,
  rowFromError,
  rowFromRun,
} from '../../src/report/batch-report.js';
import { renderBatch } from '../../src/report/batch-render.js';

function run(copied: number, failed = 0): RunResult {
  return {
    ...emptyRunResult('migrate', 'alice@pop.example.net:995', 'alice@imap.example.net:993', '2026-11-29T10:00:00.000Z'),
    listed: copied + failed + 1,
    listedBytes: 1000 * (copied + failed + 1),
    copied,
    copiedBytes: 1000 * copied,
    alreadyCopied: 1,
    reconciled: 0,
    failed: Array.from({ length: failed }, (_, i) => ({
      n: i + 1,
      uidl: `u${i}`,
      size: 1000,
      folder: 'INBOX',
      reason: 'too big',
      serverResponse: null,
    })),
    durationMs: 1500,
  };
}

const at = (s: string) => new Date(`2026-11-29T${s}Z`);

describe('batch report', () => {
  it('one row per account, names and outcomes; totals add the rows up', () => {
    const r = buildBatchReport(
      [
        rowFromRun('alice', run(3), 0),
        rowFromRun('bob', run(1, 2), 1),
        rowFromError('carol', 'migrate', 3, 'login refused'),
      ],
      at('10:00:00'),
    );
    expect(r).toMatchObject({ kind: BATCH_REPORT_KIND, version: 1, command: 'migrate' });
    expect(r.accounts.map((a) => [a.name, a.outcome, a.exitCode])).toEqual([
      ['alice', 'ok', 0],
      ['bob', 'partial', 1],
      ['carol', 'error', 3],
    ]);
    expect(r.totals).toMatchObject({
      accounts: 3,
      outcomes: { ok: 1, partial: 1, error: 1 },
      copied: 4,
      copiedBytes: 4000,
      failed: 2,
      listed: 4 + 4,
    });
  });

  it('a copy the rerun of a killed run confirmed is counted once, as copied, not also as already copied', () => {
    // The engine: reconciled 2 (found in the destination), and those 2 settled before planning
    // are in alreadyCopied too, with the one copied by the killed run itself.
    const r = { ...run(0), listed: 3, listedBytes: 3000, reconciled: 2, alreadyCopied: 3 };
    expect(rowFromRun('alice', r, 0)).toMatchObject({ listed: 3, copied: 2, alreadyCopied: 1 });
    expect(rowFromRun('bob', { ...run(2), reconciled: 0 }, 0)).toMatchObject({
      listed: 3,
      copied: 2,
      alreadyCopied: 1,
    });
  });

  it('copies a new journal found already in the destination are adopted, said apart from copied', () => {
    // 30 listed, all adopted: the row read "0 copied, 0 already copied" and accounted for none.
    const adopting = { ...run(0), listed: 30, listedBytes: 30_000, alreadyCopied: 0, adopted: 30 };
    const r = buildBatchReport([rowFromRun('alice', adopting, 0), rowFromRun('bob', run(2), 0)], at('10:00:00'));
    expect(r.accounts[0]).toMatchObject({ listed: 30, copied: 0, copiedBytes: 0, adopted: 30, alreadyCopied: 0 });
    expect(r.totals).toMatchObject({ copied: 2, copiedBytes: 2000, adopted: 30 });
    const table = renderBatch(r, 'table');
    expect(table.split('\n')[1]).toBe(
      'total: 2 accounts (2 ok); 33 listed, 2 messages copied (2.0 KiB), 30 adopted, 0 failed, 1 already copied',
    );
    expect(table).toContain('alice  ok       30 listed, 0 copied (0 B), 30 adopted, 0 failed, 0 already copied');
    const csv = renderBatch(r, 'csv').split('\r\n');
    expect(csv[0]).toContain(',copied,copied_bytes,adopted,already_copied,');
    expect(csv[1]).toContain(',0,0,30,0,');
    const html = renderBatch(r, 'html');
    expect(html).toContain('<th scope="col" class="num">Adopted</th>');
    expect(html).toContain('30 adopted (already there)');
  });

  it('a report written before rows counted adoption is merged with adopted 0', () => {
    const r = buildBatchReport([rowFromRun('alice', run(1), 0)], at('10:00:00'));
    const { adopted: _adopted, ...older } = r.accounts[0]!;
    const parsed = parseBatchReport(JSON.stringify({ ...r, accounts: [older] })) as BatchReport;
    expect(parsed.accounts[0]!.adopted).toBe(0);
    const bad = { ...r, accounts: [{ ...r.accounts[0], adopted: -1 }] };
    expect((parseBatchReport(JSON.stringify(bad)) as { problem: string }).problem).toBe(
      'account 1: alice: adopted is not a number of 0 or more',
    );
  });

  it('an account that ran over one IMAP connection says so and why, in every format; older reports read null', () => {
    const why = 'the server refused a second IMAP connection for this user: NO [UNAVAILABLE] Too many <conns>';
    const slow = { ...run(2), oneImapConnection: why };
    const r = buildBatchReport(
      [rowFromRun('alice', slow, 0), rowFromRun('bob', run(1), 0), rowFromError('carol', 'migrate', 4, 'gone')],
      at('10:00:00'),
    );
    expect(r.accounts.map((a) => a.oneImapConnection)).toEqual([why, null, null]);
    const json = JSON.parse(renderBatch(r, 'json')) as BatchReport;
    expect(json.accounts[0]!.oneImapConnection).toBe(why);
    expect(json.accounts[1]!.oneImapConnection).toBeNull();
    const table = renderBatch(r, 'table');
    expect(table).toContain(`1 already copied; one IMAP connection, one APPEND at a time: ${why}`);
    expect(table).not.toMatch(/bob .*one IMAP connection/);
    const csv = renderBatch(r, 'csv').split('\r\n');
    expect(csv[0]).toMatch(/,error,one_imap_connection$/);
    expect(csv[1]).toMatch(
      /,the server refused a second IMAP connection for this user: NO \[UNAVAILABLE\] Too many <conns>$/,
    );
    expect(csv[2]).toMatch(/,$/);
    const html = renderBatch(r, 'html');
    expect(html).toContain('ok<span class="note">one IMAP connection: the server refused a second IMAP');
    expect(html).toContain('Too many &lt;conns&gt;');
    expect(html).not.toContain('<conns>');
    // A report written before rows carried it merges as "not over one connection".
    const { oneImapConnection: _one, ...older } = r.accounts[1]!;
    const parsed = parseBatchReport(JSON.stringify({ ...r, accounts: [r.accounts[0], older] })) as BatchReport;
    expect(parsed.accounts.map((a) => a.oneImapConnection)).toEqual([why, null]);
    const bad = { ...r, accounts: [{ ...r.accounts[0], oneImapConnection: 3 }] };
    expect((parseBatchReport(JSON.stringify(bad)) as { problem: string }).problem).toBe(
      'account 1: alice: oneImapConnection is neither text nor null',
    );
  });

  it('merge: an account in two shards counts once, the later report wins, totals recomputed', () => {
    const first = buildBatchReport(
      [rowFromError('bob', 'migrate', 4, 'server gone'), rowFromRun('alice', run(2), 0)],
      at('10:00:00'),
    );
    const retry = buildBatchReport([rowFromRun('bob', run(5), 0)], at('11:00:00'));
    const other = buildBatchReport([rowFromRun('dave', run(1), 0)], at('10:30:00'));
    // Given in any order: the retry's row replaces the first try's.
    const merged = mergeBatchReports(
      [
        { file: 'b.json', report: retry },
        { file: 'a.json', report: first },
        { file: 'c.json', report: other },
      ],
      at('12:00:00'),
    );
    expect(merged.accounts.map((a) => [a.name, a.exitCode, a.copied])).toEqual([
      ['alice', 0, 2],
      ['bob', 0, 5],
      ['dave', 0, 1],
    ]);
    expect(merged.totals).toMatchObject({ accounts: 3, outcomes: { ok: 3, partial: 0, error: 0 }, copied: 8 });
    expect(merged.generatedAt).toBe('2026-11-29T12:00:00.000Z');
  });

  it('reads back what it writes; refuses what is not a batch report, saying why', () => {
    const r = buildBatchReport([rowFromRun('alice', run(1), 0)], at('10:00:00'));
    expect(parseBatchReport(renderBatch(r, 'json'))).toEqual(r);
    const problem = (text: string) => (parseBatchReport(text) as { problem: string }).problem;
    expect(problem('<html>')).toBe('not JSON');
    expect(problem('[1]')).toBe('not a JSON object');
    expect(problem('{"accounts":[]}')).toMatch(/no "kind": "popsync-batch-report"/);
    expect(problem(JSON.stringify({ version: 1, source: 'a', messages: [] }))).toMatch(/one account's report/);
    expect(problem(JSON.stringify({ ...r, version: 2 }))).toMatch(/version 2/);
    const bad = { ...r, accounts: [{ ...r.accounts[0], copied: '3' }] };
    expect(problem(JSON.stringify(bad))).toBe('account 1: alice: copied is not a number of 0 or more');
    const lying = { ...r, accounts: [{ ...r.accounts[0], exitCode: 3 }] };
    expect(problem(JSON.stringify(lying))).toMatch(/outcome does not match exitCode/);
  });

  it('html: totals, then the accounts not ok, then every account; every string escaped', () => {
    const evil = 'x<script>alert(1)</script>';
    const r = buildBatchReport(
      [rowFromRun('alice', run(3), 0), rowFromError('mallory', 'migrate', 4, evil)],
      at('10:00:00'),
    );
    const html = renderBatch(r, 'html');
    expect(html).not.toContain('<script>');
    expect(html).toContain('x&lt;script&gt;');
    const totals = html.indexOf('id="h-totals"');
    const failures = html.indexOf('id="h-fail"');
    const all = html.indexOf('id="h-accounts"');
    expect(totals).toBeGreaterThan(0);
    expect(failures).toBeGreaterThan(totals);
    expect(all).toBeGreaterThan(failures);
    expect(html.slice(failures, all)).toContain('mallory');
    expect(html.slice(failures, all)).not.toContain('alice');
    expect(html).toContain('Accounts not ok: 1');
  });

  it('csv: a row per account with its name; formula-like text made inert', () => {
    const r: BatchReport = buildBatchReport(
      [rowFromRun('alice', run(3), 0), rowFromError('bob', 'sync', 75, '=HYPERLINK("x")')],
      at('10:00:00'),
    );
    const lines = renderBatch(r, 'csv').split('\r\n');
    expect(lines[0]).toMatch(/^name,outcome,exit_code,command,source,destination,listed,/);
    expect(lines[1]).toMatch(/^alice,ok,0,migrate,alice@pop.example.net:995,alice@imap.example.net:993,4,4000,/);
    expect(lines[2]).toMatch(/^bob,error,75,sync,,,0,/);
    expect(lines[2]).toContain(`"'=HYPERLINK(""x"")"`);
  });

  it('table: the totals line first, failures named', () => {
    const r = buildBatchReport([rowFromRun('alice', run(3), 0), rowFromRun('bob', run(1, 2), 1)], at('10:00:00'));
    const text = renderBatch(r, 'table');
    expect(text.split('\n')[1]).toBe(
      'total: 2 accounts (1 ok, 1 with failed messages); 8 listed, ' +
        '4 messages copied (3.9 KiB), 2 failed, 2 already copied',
    );
    expect(text).toContain('not ok (1):\n  bob: 4 listed, 1 copied (1000 B), 2 failed, 1 already copied');
  });

  it('--report with --accounts is the batch report, its format from the name; not a per-account file', () => {
    const opts = { accounts: 'a.csv', report: 'out/batch.HTML' };
    expect(batchReportTarget(opts)).toEqual({ path: 'out/batch.HTML', format: 'html' });
    expect(reportTarget(opts, { name: 'alice', index: 0, count: 2 })).toBeUndefined();
    expect(batchReportTarget({ report: 'x.html' })).toBeUndefined();
    expect(batchFormatFor('b.csv')).toBe('csv');
    expect(batchFormatFor('b.txt')).toBe('table');
    expect(() => batchFormatFor('b.md', 'markdown')).toThrow(/html, csv, json or table, not markdown/);
  });
});
