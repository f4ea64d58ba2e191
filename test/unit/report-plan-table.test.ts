import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { displayWidth, renderPlanTable, shorten } from '../../src/report/plan-table.js';
import type { PlanReport } from '../../src/report/plan-types.js';

const small = (): PlanReport =>
  JSON.parse(readFileSync(new URL('../../fixtures/plans/small.json', import.meta.url), 'utf8')) as PlanReport;

describe('renderPlanTable', () => {
  it('prints folders, seen and date sources, failures, totals and the estimate', () => {
    expect(renderPlanTable(small())).toBe(
      [
        'popsync plan: alice@pop.example.net:995 -> alice@imap.example.com:993',
        'generated 2025-03-01T10:00:00.000Z',
        '',
        'Folders',
        `${' '.repeat(41)}already  would`,
        '  folder        messages     bytes  new   copied   fail  destination',
        '  INBOX                2  50.0 MiB    1        0      1  exists',
        '  Archive/2022         1  19.5 KiB    0        1      0  created',
        '  Lists/dev            3   5.3 MiB    1        0      1  exists',
        '  total                6  55.3 MiB    2        1      2',
        '',
        'Seen flag decided by',
        '  seen policy step  messages',
        '  none                     3',
        '  status-header            2',
        '  older-than:30d           1',
        '',
        'Arrival date from',
        '  date source  messages',
        '  received            4',
        '  copy-time           1',
        '  date                1',
        '',
        'Would fail: 2',
        '  UIDL      size  reason',
        '  -u3   50.0 MiB  too big for the server: its APPENDLIMIT is 35 MiB',
        '  u5     5.0 MiB  over the size rule max-size: 4M',
        '',
        'Totals',
        '  messages:        6, 55.3 MiB',
        '  new:             2, 2.1 KiB',
        '  retry:           1',
        '  already copied:  1',
        '  would fail:      2',
        '  estimate:        about 4 min at 1.0 MiB/s (basis: measured in the last run)',
        '',
      ].join('\n'),
    );
  });

  it('keeps the folder table within 80 columns: long names are shortened in the middle', () => {
    const r = small();
    r.folders[1]!.folder = 'Lists/very-long-mailing-list-name.example.org/Archive/2019/Attachments';
    r.folders[2]!.folder = '日本語/とても長いフォルダ名のテスト/もっと長く';
    const lines = renderPlanTable(r).split('\n');
    const folders = lines.slice(lines.indexOf('Folders') + 1, lines.indexOf('Seen flag decided by') - 1);
    expect(folders).toHaveLength(6);
    for (const l of folders) expect(displayWidth(l), l).toBeLessThanOrEqual(80);
    expect(folders[3]).toMatch(/^ {2}Lists\/very-.*\.\.\..*ttachments +1 /);
    expect(shorten('abcdefghij', 7)).toBe('ab...ij');
    expect(shorten('abc', 7)).toBe('abc');
    expect(displayWidth(shorten('日本語日本語日本語', 9))).toBeLessThanOrEqual(9);
  });

  it('caps the failure list and points to csv for the rest', () => {
    const lines = renderPlanTable(small(), { maxFailures: 1 }).split('\n');
    const at = lines.indexOf('Would fail: 2');
    expect(lines.slice(at + 1, at + 4)).toEqual([
      '  UIDL      size  reason',
      '  -u3   50.0 MiB  too big for the server: its APPENDLIMIT is 35 MiB',
      '  and 1 more (--format csv lists all)',
    ]);
  });

  it('says so when nothing would fail and no rate is known', () => {
    const r = small();
    r.messages = r.messages.filter((m) => m.status !== 'would-fail');
    r.estimate = null;
    const text = renderPlanTable(r);
    expect(text).toContain('\nWould fail: none\n\nTotals\n');
    expect(text).toContain('  estimate:        no estimate (no transfer rate measured yet)\n');
  });

  it('neutralises control characters from servers and never emits escape codes', () => {
    const r = small();
    r.folders[0]!.folder = 'IN\u001b[2JBOX';
    r.messages[2]!.reason = 'bad\r\nline\there';
    r.source = 'pop\u202eevil';
    const text = renderPlanTable(r);
    // biome-ignore lint/suspicious/noControlCharactersInRegex: the escapes a hostile server sends are what is checked
    expect(text).not.toMatch(/[\u001b\r\u202e\t]/);
    expect(text).toContain('  IN\\x1b[2JBOX ');
    expect(text).toContain('bad\\x0d\\x0aline here');
    expect(text).toContain('pop\\u202eevil');
  });

  it('aligns columns by terminal width, wide CJK characters counting two', () => {
    expect(displayWidth('日本語')).toBe(6);
    expect(displayWidth('Отправленные')).toBe(12);
    expect(displayWidth('e\u0301')).toBe(1);
    const r = small();
    r.folders[1]!.folder = '日本語';
    const lines = renderPlanTable(r).split('\n');
    const header = lines.find((l) => l.startsWith('  folder'))!;
    const row = lines.find((l) => l.startsWith('  日本語'))!;
    // 'messages' right-aligned: its last letter and the count share a terminal column.
    expect(displayWidth(row.slice(0, row.indexOf('1') + 1))).toBe(header.indexOf('messages') + 'messages'.length);
  });
});
