/**
 * The report of a real run (`--report`): built from the engine's per-message details, and
 * printed by every plan renderer with the run's own words (copied, failed, skipped by rule).
 * Also where the file goes and which format its name asks for, and the size rule's wording.
 */
import { describe, expect, it } from 'vitest';
import { reportFormatFor, reportTarget } from '../../src/cli/report-file.js';
import { sizeRuleReason, splitBySizeRule } from '../../src/engine/plan.js';
import type { MessageDetail, RunResult } from '../../src/engine/types.js';
import { emptyRunResult } from '../../src/engine/recorder.js';
import { renderPlanCsv } from '../../src/report/plan-csv.js';
import { renderPlanHtml } from '../../src/report/plan-html.js';
import { renderPlanMarkdown } from '../../src/report/plan-markdown.js';
import { renderPlan, renderPlanJson } from '../../src/report/plan-render.js';
import { failures, folderCells } from '../../src/report/plan-stats.js';
import { renderPlanTable } from '../../src/report/plan-table.js';
import { buildRunReport } from '../../src/report/run-report.js';

const prov = (folderRule: string | null, flags: string[]) => ({
  flags,
  internalDate: '2024-01-02T10:00:00.000Z',
  dateSource: 'received',
  seenSource: 'status-header',
  folderRule,
});
const detail = (n: number, outcome: MessageDetail['outcome'], extra: Partial<MessageDetail> = {}): MessageDetail => ({
  n,
  uidl: `u${n}`,
  size: 1000 * n,
  outcome,
  folder: 'INBOX',
  provenance: prov(null, ['\\Seen']),
  subject: `s${n}`,
  from: null,
  messageId: `<${n}@x>`,
  reason: null,
  serverResponse: null,
  ...extra,
});

function result(messages: MessageDetail[]): RunResult {
  return {
    ...emptyRunResult('migrate', 'a@pop:995', 'a@imap:993', '2025-03-01T10:00:00.000Z'),
    listed: messages.length,
    listedBytes: 0,
    copied: 2,
    copiedBytes: 3100,
    alreadyCopied: 1,
    durationMs: 2000,
    messages,
  };
}

const sample = () =>
  buildRunReport(
    result([
      detail(1, 'copied', { folder: 'Lists/dev', provenance: prov('lists', ['$List']) }),
      detail(2, 'copied'),
      detail(3, 'already-copied', { subject: null }),
      detail(4, 'failed', { reason: 'APPEND refused', serverResponse: 'NO [OVERQUOTA] quota exceeded' }),
      detail(5, 'skipped-by-rule', {
        folder: null,
        provenance: null,
        subject: null,
        messageId: null,
        reason: 'over the size rule (25 MiB)',
      }),
    ]),
    new Date('2025-03-01T10:00:02Z'),
  );

describe('buildRunReport', () => {
  it('one row per message with its status and provenance; totals and folders count what happened', () => {
    const r = sample();
    expect(r.run).toEqual({
      command: 'migrate',
      startedAt: '2025-03-01T10:00:00.000Z',
      durationMs: 2000,
      copiedBytes: 3100,
    });
    expect(r.messages.map((m) => m.status)).toEqual([
      'copied',
      'copied',
      'already-copied',
      'failed',
      'skipped-by-rule',
    ]);
    expect(r.messages[0]).toMatchObject({
      folder: 'Lists/dev',
      folderRule: 'lists',
      flags: ['$List'],
      internalDate: '2024-01-02T10:00:00.000Z',
      dateSource: 'received',
    });
    expect(r.messages[3]).toMatchObject({ reason: 'APPEND refused', serverResponse: 'NO [OVERQUOTA] quota exceeded' });
    expect(r.messages[4]).toMatchObject({ folder: '', dateSource: 'unknown', flags: [] });
    expect(r.totals).toEqual({
      messages: 5,
      bytes: 15000,
      new: 0,
      newBytes: 0,
      retry: 0,
      alreadyCopied: 1,
      wouldFail: 0,
      copied: 2,
      copiedBytes: 3100,
      failed: 1,
      skippedByRule: 1,
    });
    expect(r.folders.find((f) => f.folder === 'INBOX')).toMatchObject({
      exists: true,
      messages: 3,
      copied: 1,
      alreadyCopied: 1,
      failed: 1,
      skippedByRule: 0,
    });
    expect(r.folders.find((f) => f.folder === '')).toMatchObject({ exists: false, skippedByRule: 1 });
    // Decisions this run made: only its copies are tallied.
    expect(r.seenSources).toEqual({ 'status-header': 2 });
    expect(r.estimate).toBeNull();
    expect(failures(r).map((m) => m.n)).toEqual([4, 5]);
    expect(folderCells(r.folders[0]!, r)).toHaveLength(6);
  });

  it('an empty run (nothing listed) still renders in every format', () => {
    const r = buildRunReport(result([]), new Date(0));
    expect(JSON.parse(renderPlan(r, 'json'))).toMatchObject({ totals: { messages: 0 }, messages: [], folders: [] });
    // The csv has its header and no row; the others say there were no messages.
    expect(renderPlan(r, 'csv').trimEnd().split('\r\n')).toEqual([expect.stringMatching(/^n,uidl,/)]);
    expect(renderPlan(r, 'markdown')).toMatch(/### Not copied: none[\s\S]*\n- Messages: 0, 0 B\n/);
    expect(renderPlan(r, 'table')).toMatch(/Folders\n {2}\(no messages\)[\s\S]*messages: +0, 0 B/);
    expect(renderPlan(r, 'html')).toMatch(/^<!doctype html>[\s\S]*<\/html>\s*$/i);
  });
});

describe('run statuses in every renderer', () => {
  it('table', () => {
    const t = renderPlanTable(sample());
    expect(t).toMatch(/^popsync migrate report: a@pop:995 -> a@imap:993\n/);
    expect(t).toMatch(/already\s+skipped\n\s+folder\s+messages\s+bytes\s+copied\s+copied\s+failed\s+by rule/);
    expect(t).toContain('Not copied: 2');
    expect(t).toContain('failed: APPEND refused (server said: NO [OVERQUOTA] quota exceeded)');
    expect(t).toContain('skipped-by-rule: over the size rule (25 MiB)');
    expect(t).toMatch(/skipped by rule:\s+1/);
    expect(t).toMatch(/transfer:\s+3\.0 KiB copied in 2 s at 1\.5 KiB\/s/);
    expect(t).not.toContain('estimate');
  });

  it('markdown', () => {
    const md = renderPlanMarkdown(sample());
    expect(md).toContain('## popsync migrate report: a@pop:995 → a@imap:993');
    expect(md).toContain('| Folder | Messages | Bytes | Copied | Already copied | Failed | Skipped by rule |');
    expect(md).toContain('### Not copied: 2');
    expect(md).toContain('skipped-by-rule: over the size rule (25 MiB)');
    expect(md).toContain('- Skipped by rule: 1');
  });

  it('csv: the status and the server text per row', () => {
    const lines = renderPlanCsv(sample()).split('\r\n');
    expect(lines[0]!.endsWith(',reason,server_response')).toBe(true);
    expect(lines[4]).toMatch(/^4,u4,4000,failed,INBOX,.*,APPEND refused,NO \[OVERQUOTA\] quota exceeded$/);
    expect(lines[5]).toMatch(/^5,u5,5000,skipped-by-rule,,.*,over the size rule \(25 MiB\),$/);
  });

  it('json: the run block sits after the endpoints, and the statuses survive', () => {
    const json = renderPlanJson(sample());
    const keys = Object.keys(JSON.parse(json) as object);
    expect(keys.slice(0, 6)).toEqual(['version', 'generatedAt', 'source', 'destination', 'run', 'totals']);
    expect(json).toContain('"status": "skipped-by-rule"');
    expect(json).toContain('"serverResponse": "NO [OVERQUOTA] quota exceeded"');
  });

  it('html: run wording, run columns, chart segments for what happened', () => {
    const html = renderPlanHtml(sample());
    expect(html).toContain('<title>popsync migrate report: a@pop:995 → a@imap:993</title>');
    expect(html).toContain('popsync migrate report · what the run did');
    expect(html).toContain('<h2 id="h-fail">Not copied: 2</h2>');
    expect(html).toContain('<th scope="col" class="num">Skipped by rule</th>');
    expect(html).toContain('>skipped by rule</text>');
    expect(html).toContain('(1 copied, 0 already copied, 0 failed, 0 skipped by rule)');
    expect(html).toContain('failed: APPEND refused (server said: NO [OVERQUOTA] quota exceeded)');
    expect(html).not.toContain('dry run');
  });
});

describe('report files', () => {
  it('format from the extension, else table; --report-format wins', () => {
    expect(['a.html', 'a.HTM', 'a.csv', 'a.md', 'a.json', 'a.txt', 'a'].map(reportFormatFor)).toEqual([
      'html',
      'html',
      'csv',
      'markdown',
      'json',
      'table',
      'table',
    ]);
    expect(reportTarget({ report: 'r.html', reportFormat: 'json' }, { index: 0, count: 1 })).toEqual({
      path: 'r.html',
      format: 'json',
    });
    expect(reportTarget({}, { index: 0, count: 1 })).toBeUndefined();
    expect(() => reportTarget({ reportFormat: 'csv' }, { index: 0, count: 1 })).toThrow(
      /--report-format needs --report/,
    );
  });

  it('several accounts: one file each, named after the account', () => {
    expect(reportTarget({ report: 'out/r.html' }, { name: 'alice', index: 0, count: 2 })).toEqual({
      path: 'out/r.alice.html',
      format: 'html',
    });
    expect(reportTarget({ report: 'r' }, { name: 'b/ob x', index: 1, count: 2 })).toEqual({
      path: 'r.b_ob_x',
      format: 'table',
    });
    expect(reportTarget({ report: 'r.csv' }, { index: 2, count: 3 })!.path).toBe('r.3.csv');
  });
});

describe('size rule', () => {
  it('splits on the LIST size (strictly larger) and words the limit in its own unit', () => {
    const l = [
      { n: 1, uidl: 'a', size: 100 },
      { n: 2, uidl: 'b', size: 101 },
    ];
    expect(splitBySizeRule(l, 100)).toEqual({ copy: [l[0]], over: [l[1]] });
    expect(splitBySizeRule(l, null)).toEqual({ copy: l, over: [] });
    expect(sizeRuleReason(25 * 1024 * 1024)).toBe('over the size rule (25 MiB)');
    expect(sizeRuleReason(100 * 1024)).toBe('over the size rule (100 KiB)');
    expect(sizeRuleReason(2 * 1024 ** 3)).toBe('over the size rule (2 GiB)');
    expect(sizeRuleReason(1500)).toBe('over the size rule (1500 bytes)');
  });
});
