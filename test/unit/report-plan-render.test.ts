import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { renderPlanCsv } from '../../src/report/plan-csv.js';
import { renderPlanHtml } from '../../src/report/plan-html.js';
import { renderPlanMarkdown } from '../../src/report/plan-markdown.js';
import { PLAN_FORMATS, renderPlan } from '../../src/report/plan-render.js';
import { renderPlanTable } from '../../src/report/plan-table.js';
import type { PlanReport } from '../../src/report/plan-types.js';

const load = (name: string): PlanReport =>
  JSON.parse(readFileSync(new URL(`../../fixtures/plans/${name}`, import.meta.url), 'utf8')) as PlanReport;

/** The same data with every object's keys in reverse order, as another planner might build it. */
function reversedKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(reversedKeys);
  if (v === null || typeof v !== 'object') return v;
  return Object.fromEntries(
    Object.entries(v)
      .reverse()
      .map(([k, x]) => [k, reversedKeys(x)]),
  );
}

describe('renderPlan', () => {
  it('offers exactly the five formats', () => {
    expect(PLAN_FORMATS).toEqual(['table', 'json', 'csv', 'markdown', 'html']);
  });

  it('dispatches to each renderer', () => {
    const r = load('small.json');
    expect(renderPlan(r, 'table')).toBe(renderPlanTable(r));
    expect(renderPlan(r, 'csv')).toBe(renderPlanCsv(r));
    expect(renderPlan(r, 'markdown', { maxFailures: 1 })).toBe(renderPlanMarkdown(r, { maxFailures: 1 }));
    expect(renderPlan(r, 'html')).toBe(renderPlanHtml(r));
  });

  it('json is the report itself, pretty or compact, one entry per message', () => {
    const r = load('small.json');
    const pretty = renderPlan(r, 'json');
    const compact = renderPlan(r, 'json', { compact: true });
    expect(JSON.parse(pretty)).toEqual(r);
    expect(JSON.parse(compact)).toEqual(r);
    expect(pretty.startsWith('{\n  "version": 1,\n  "generatedAt": "2025-03-01T10:00:00.000Z",\n')).toBe(true);
    expect(compact.split('\n')).toEqual([expect.stringMatching(/^\{"version":1,/), '']);
    expect((JSON.parse(compact) as PlanReport).messages).toHaveLength(6);
  });

  it('json key order does not depend on how the report was built', () => {
    const r = load('small.json');
    const json = renderPlan(r, 'json');
    expect(renderPlan(reversedKeys(r) as PlanReport, 'json')).toBe(json);
    expect(json).toContain('"seenSources": {\n    "none": 3,\n    "older-than:30d": 1,\n    "status-header": 2\n  }');
    expect(Object.keys((JSON.parse(json) as { messages: object[] }).messages[0]!)).toEqual([
      'n',
      'uidl',
      'size',
      'status',
      'folder',
      'folderRule',
      'flags',
      'seenSource',
      'internalDate',
      'dateSource',
      'subject',
      'from',
      'messageId',
      'reason',
    ]);
  });

  it('json keeps fields it does not know, after the known ones', () => {
    const r = { ...load('small.json'), zeta: 1, alpha: { b: 1, a: 2 } } as PlanReport;
    const keys = Object.keys(JSON.parse(renderPlan(r, 'json')) as object);
    expect(keys.slice(-3)).toEqual(['messages', 'alpha', 'zeta']);
  });

  it('renders the sample fixture in every format, and the fixture is consistent', () => {
    const r = load('sample.json');
    expect(r.messages.length).toBeGreaterThanOrEqual(300);
    expect(r.totals.messages).toBe(r.messages.length);
    expect(r.totals.bytes).toBe(r.messages.reduce((a, m) => a + m.size, 0));
    expect(r.folders.reduce((a, f) => a + f.messages, 0)).toBe(r.messages.length);
    expect(r.totals.wouldFail).toBe(r.messages.filter((m) => m.status === 'would-fail').length);
    const out = new Map(PLAN_FORMATS.map((f) => [f, renderPlan(r, f)] as const));
    // Every format shows every folder (non-ASCII names as they are) and the message total.
    for (const [f, text] of out) {
      for (const folder of r.folders) expect(text, `${f} names ${folder.folder}`).toContain(folder.folder);
      expect(text, `${f} gives the total`).toContain(String(r.totals.messages));
    }
    // csv is one row per message after its header; html is a whole page.
    expect(out.get('csv')!.trimEnd().split('\r\n')).toHaveLength(r.messages.length + 1);
    expect(out.get('html')).toMatch(/^<!doctype html>/i);
    // The fixture is stored in canonical json form, so regenerating it shows real changes only.
    expect(renderPlan(r, 'json')).toBe(
      readFileSync(new URL('../../fixtures/plans/sample.json', import.meta.url), 'utf8'),
    );
  });
});
