import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { md, renderPlanMarkdown } from '../../src/report/plan-markdown.js';
import type { PlanReport } from '../../src/report/plan-types.js';

const small = (): PlanReport =>
  JSON.parse(readFileSync(new URL('../../fixtures/plans/small.json', import.meta.url), 'utf8')) as PlanReport;

/** Cells of a GFM table row: split on pipes that are not backslash-escaped. */
function cells(line: string): string[] {
  return line
    .slice(2, -2)
    .split(/(?<!\\) \| /)
    .map((c) => c.trim());
}

describe('renderPlanMarkdown', () => {
  it('has folder, source and failure tables with a total row', () => {
    const text = renderPlanMarkdown(small());
    expect(text).toContain(
      [
        '| Folder | Messages | Bytes | New | Already copied | Would fail | Destination |',
        '| :--- | ---: | ---: | ---: | ---: | ---: | :--- |',
        '| INBOX | 2 | 50.0 MiB | 1 | 0 | 1 | exists |',
        '| Archive/2022 | 1 | 19.5 KiB | 0 | 1 | 0 | created |',
        '| Lists/dev | 3 | 5.3 MiB | 1 | 0 | 1 | exists |',
        '| **Total** | **6** | **55.3 MiB** | **2** | **1** | **2** |  |',
      ].join('\n'),
    );
    expect(text).toContain(
      '| Seen policy step | Messages |\n| :--- | ---: |\n| none | 3 |\n| status-header | 2 |\n| older-than:30d | 1 |\n',
    );
    expect(text).toContain(
      '| Date source | Messages |\n| :--- | ---: |\n| received | 4 |\n| copy-time | 1 |\n| date | 1 |\n',
    );
    expect(text).toContain('- Estimate: about 4 min at 1.0 MiB/s (basis: measured in the last run)\n');
  });

  it('escapes pipes and newlines so a subject cannot break its row', () => {
    const text = renderPlanMarkdown(small());
    const row = text.split('\n').find((l) => l.startsWith('| 3 |'))!;
    expect(row).toBe(
      '| 3 | `-u3` | 50.0 MiB | INBOX | multi\\\\x0aline \\| pipe | too big for the server: its APPENDLIMIT ' +
        'is 35 MiB |',
    );
    expect(cells(row)).toHaveLength(6);
    for (const line of text.split('\n').filter((l) => l.startsWith('|'))) {
      expect(line.endsWith(' |')).toBe(true);
    }
  });

  it('keeps markup in text from rendering', () => {
    expect(md('<img src=x onerror=alert(1)>')).toBe('\\<img src=x onerror=alert(1)\\>');
    expect(md('*bold* _it_ `code` [a](b) ~x~ $m$ &amp;')).toBe(
      '\\*bold\\* \\_it\\_ \\`code\\` \\[a\\](b) \\~x\\~ \\$m\\$ \\&amp;',
    );
    expect(md('back\\slash')).toBe('back\\\\slash');
    expect(md('a|b')).toBe('a\\|b');
    expect(md('line\r\nbreak')).toBe('line\\\\x0d\\\\x0abreak');
  });

  it('fences UIDLs containing backticks and escapes their pipes', () => {
    const r = small();
    r.messages[2]!.uidl = 'a`b|c';
    const row = renderPlanMarkdown(r)
      .split('\n')
      .find((l) => l.startsWith('| 3 |'))!;
    expect(row).toContain('| ``a`b\\|c`` |');
  });

  it('caps the failure list', () => {
    const text = renderPlanMarkdown(small(), { maxFailures: 1 });
    expect(text).toContain('…and 1 more (`--format csv` lists all).');
    expect(text).not.toContain('| 5 |');
  });

  it('keeps empty tallies valid tables', () => {
    const r = small();
    r.seenSources = {};
    expect(renderPlanMarkdown(r)).toContain('| Seen policy step | Messages |\n| :--- | ---: |\n| — | — |\n');
  });
});
