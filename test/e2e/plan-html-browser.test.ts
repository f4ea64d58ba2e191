/**
 * The plan's HTML page as a person sees it: Debian's headless Chromium loads it from disk,
 * takes a screenshot and dumps the DOM it built. Proves the page parses into the tables and
 * the three charts, draws real pixels, and asks the network for nothing (Chromium's own net
 * log, checked against a page that does fetch, so the check cannot pass by seeing nothing).
 */

import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bytesPerYear, SIZE_BUCKETS } from '../../src/report/plan-stats.js';
import { renderPlan } from '../../src/report/plan-render.js';
import type { PlanReport } from '../../src/report/plan-types.js';
import { pageNetworkRequests, runChromium, urlAttributes } from '../support/chromium.js';

const report = JSON.parse(
  readFileSync(new URL('../../fixtures/plans/sample.json', import.meta.url), 'utf8'),
) as PlanReport;

let dir = '';
let dom = '';
let png = '';
let netLog = '';

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'popsync-plan-html-'));
  const page = join(dir, 'plan.html');
  writeFileSync(page, renderPlan(report, 'html'));
  png = join(dir, 'plan.png');
  netLog = join(dir, 'net.json');
  const url = pathToFileURL(page).href;
  // Two separate browsers at once: --screenshot and --dump-dom are exclusive modes.
  [, dom] = await Promise.all([
    runChromium(url, { screenshot: png, windowSize: [1200, 2000] }),
    runChromium(url, { dumpDom: true, netLog }),
  ]);
}, 20_000);

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** The markup of one chart in the parsed DOM. */
function chart(id: string): string {
  const m = new RegExp(`<svg id="${id}"[\\s\\S]*?</svg>`).exec(dom);
  if (!m) throw new Error(`no <svg id="${id}"> in the DOM`);
  return m[0];
}

describe('plan HTML in headless Chromium', () => {
  it('builds the tables', () => {
    expect(dom).toContain('<html lang="en">');
    expect(dom.match(/<table/g)).toHaveLength(4);
    const folders = /<table class="folders">[\s\S]*?<tbody>([\s\S]*?)<\/tbody>/.exec(dom)![1]!;
    expect(folders.match(/<tr>/g)).toHaveLength(report.folders.length);
    expect(dom).toContain(`<h2 id="h-fail">Would fail: ${report.totals.wouldFail}</h2>`);
    const failRows = /<table class="failures">[\s\S]*?<tbody>([\s\S]*?)<\/tbody>/.exec(dom)![1]!;
    expect(failRows.match(/<tr>/g)).toHaveLength(report.totals.wouldFail);
  });

  it('builds three SVG charts with one bar per folder, year and size bucket', () => {
    expect(dom.match(/<svg\b/g)).toHaveLength(3);
    const bars = (svg: string) => svg.match(/<g class="bar">/g)?.length ?? 0;
    expect(bars(chart('chart-folders'))).toBe(report.folders.length);
    expect(bars(chart('chart-years'))).toBe(bytesPerYear(report.messages).length);
    expect(bars(chart('chart-sizes'))).toBe(SIZE_BUCKETS.length);
    for (const id of ['chart-folders', 'chart-years', 'chart-sizes'])
      expect(chart(id)).toMatch(/<title id="[^"]+-title">[^<]+<\/title>/);
  });

  it('has no script and no element pointing outside the page', () => {
    expect(dom).not.toMatch(/<script\b/i);
    expect(urlAttributes(dom)).toEqual([]);
  });

  it('made no network request', () => {
    expect(pageNetworkRequests(netLog)).toEqual([]);
  });

  it('catches a page that does fetch (so the net-log check is not blind)', async () => {
    const page = join(dir, 'fetches.html');
    const log = join(dir, 'fetches-net.json');
    writeFileSync(page, '<!DOCTYPE html><html><body><img src="http://popsync-test.invalid/pixel.png"></body></html>');
    await runChromium(pathToFileURL(page).href, { dumpDom: true, netLog: log });
    expect(pageNetworkRequests(log).map((r) => r.url)).toEqual(['http://popsync-test.invalid/pixel.png']);
  }, 15_000);

  it('draws a real screenshot', () => {
    const bytes = readFileSync(png);
    expect([...bytes.subarray(0, 8)]).toEqual([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
    expect(bytes.subarray(12, 16).toString('latin1')).toBe('IHDR');
    expect([bytes.readUInt32BE(16), bytes.readUInt32BE(20)]).toEqual([1200, 2000]);
    // A blank 1200×2000 page compresses to about 10 KB; text, tables and bars make it far larger.
    expect(statSync(png).size).toBeGreaterThan(60_000);
  });
});
