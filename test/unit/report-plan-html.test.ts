import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { niceScale, renderPlanHtml, text } from '../../src/report/plan-html.js';
import type { PlanReport } from '../../src/report/plan-types.js';
import { urlAttributes } from '../support/chromium.js';

const small = (): PlanReport =>
  JSON.parse(readFileSync(new URL('../../fixtures/plans/small.json', import.meta.url), 'utf8')) as PlanReport;

function hostile(): PlanReport {
  const r = small();
  r.source = '"><script>alert("src")</script>';
  r.generatedAt = '2025"><img src=x onerror=alert(1)>';
  r.folders[0]!.folder = '</td><img src="https://evil.example/p.gif">';
  for (const m of r.messages) if (m.folder === 'INBOX') m.folder = r.folders[0]!.folder;
  r.messages[2]!.subject = '<script>alert(1)</script>';
  r.messages[2]!.from = "x' onmouseover='alert(1)";
  r.messages[2]!.uidl = '<b>u3</b>';
  r.messages[4]!.reason = '<a href="//evil.example/">click</a> & \u202eevil';
  r.seenSources = { '<svg onload=alert(1)>': 6 };
  return r;
}

describe('renderPlanHtml', () => {
  it('is one complete page with language, charset and a no-network policy', () => {
    const html = renderPlanHtml(small());
    expect(html.startsWith('<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n')).toBe(true);
    expect(html).toContain(
      `<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">`,
    );
    expect(html).toContain('<title>popsync plan: alice@pop.example.net:995 → alice@imap.example.com:993</title>');
    expect(html).toContain('<time datetime="2025-03-01T10:00:00.000Z">2025-03-01 10:00:00 UTC</time>');
    expect(html.trimEnd().endsWith('</html>')).toBe(true);
  });

  it('loads nothing: no scripts, links, images, imports or URLs in src/href', () => {
    // The check itself finds what it looks for, and only in real attributes.
    expect(urlAttributes('<p title="&lt;img src=x&gt;"><img alt="a" src="https://x/y.png"></p>')).toEqual([
      '"https://x/y.png"',
    ]);
    for (const html of [renderPlanHtml(small()), renderPlanHtml(hostile())]) {
      expect(html).not.toMatch(/<(script|link|img|iframe|object|embed|image|use)\b/i);
      expect(html).not.toMatch(/url\(|@import/i);
      for (const v of urlAttributes(html)) expect(v).not.toMatch(/https?:|\/\//i);
      expect(urlAttributes(html)).toEqual([]);
    }
  });

  it('escapes every string from the report, in text, attributes and SVG', () => {
    const html = renderPlanHtml(hostile());
    expect(html).toContain('&lt;script&gt;alert(1)&lt;/script&gt;');
    expect(html).toContain('&quot;&gt;&lt;script&gt;alert(&quot;src&quot;)&lt;/script&gt;');
    expect(html).toContain('<time datetime="2025&quot;&gt;&lt;img src=x onerror=alert(1)&gt;">');
    expect(html).toContain('<th scope="row">&lt;/td&gt;&lt;img src=&quot;https://evil.example/p.gif&quot;&gt;</th>');
    // The folder chart's label and tooltip are escaped too.
    expect(html).toMatch(/<title>&lt;\/td&gt;&lt;img src=&quot;https:\/\/evil\.example\/p\.gif&quot;&gt;: 2 messages/);
    expect(html).toContain('x&#39; onmouseover=&#39;alert(1)');
    expect(html).toContain('<code>&lt;b&gt;u3&lt;/b&gt;</code>');
    expect(html).toContain('&lt;a href=&quot;//evil.example/&quot;&gt;click&lt;/a&gt; &amp; \\u202eevil');
    expect(html).toContain('<code>&lt;svg onload=alert(1)&gt;</code>');
    expect(html).not.toMatch(/<(b|a|svg onload)[\s>]/);
  });

  it('has accessible tables and three titled charts with one bar group per category', () => {
    const html = renderPlanHtml(small());
    expect(html.match(/<table/g)).toHaveLength(4);
    expect(html.match(/<caption>/g)).toHaveLength(4);
    expect(html).not.toMatch(/<th(?=[\s>])(?![^>]*scope=)/);
    const svgs = [
      ...html.matchAll(
        new RegExp(
          String.raw`<svg id="([^"]+)" role="img" aria-labelledby="\1-title \1-desc"[^>]*>\n` +
            String.raw`<title id="\1-title">[^<]+</title>\n<desc id="\1-desc">[^<]*</desc>([\s\S]*?)</svg>`,
          'g',
        ),
      ),
    ];
    expect(svgs.map((m) => m[1])).toEqual(['chart-folders', 'chart-years', 'chart-sizes']);
    const bars = svgs.map((m) => m[2]!.match(/<g class="bar">/g)?.length ?? 0);
    // 3 folders; years 2021..2024 plus unknown; 8 size buckets.
    expect(bars).toEqual([3, 5, 8]);
  });

  it('stacks folder bars by outcome and lists would-fail messages', () => {
    const html = renderPlanHtml(small());
    const lists =
      /<g class="bar"><title>Lists\/dev: 3 messages \(1 new, 0 already copied, 1 would fail\)<\/title>[^\n]*/.exec(
        html,
      )![0];
    expect(lists.match(/<rect class="seg-(\w+)"/g)).toEqual([
      '<rect class="seg-new"',
      '<rect class="seg-retry"',
      '<rect class="seg-fail"',
    ]);
    expect(html).toContain('<h2 id="h-fail">Would fail: 2</h2>');
    expect(html).toContain(
      '<td class="num">3</td><th scope="row"><code>-u3</code></th><td class="num">50.0 MiB</td><td>INBOX</td>',
    );
  });

  it('renders an empty plan without charts breaking', () => {
    const r = small();
    r.messages = [];
    r.folders = [];
    r.seenSources = {};
    r.dateSources = {};
    r.totals = { messages: 0, bytes: 0, new: 0, newBytes: 0, retry: 0, alreadyCopied: 0, wouldFail: 0 };
    const html = renderPlanHtml(r);
    expect(html).toContain('>no messages</text>');
    expect(html).toContain('<p>Every message can be copied.</p>');
    expect(html).not.toMatch(/NaN|Infinity|undefined/);
  });

  it('picks round axis steps, binary for bytes and whole for counts', () => {
    expect(niceScale(91, 'count')).toEqual({ top: 100, step: 25 });
    expect(niceScale(3, 'count')).toEqual({ top: 3, step: 1 });
    expect(niceScale(0, 'count')).toEqual({ top: 4, step: 1 });
    expect(niceScale(112.3 * 1024 * 1024, 'bytes')).toEqual({ top: 150 * 1024 * 1024, step: 50 * 1024 * 1024 });
    expect(niceScale(900, 'bytes')).toEqual({ top: 1000, step: 250 });
  });

  it('escapes the five HTML specials after making control characters visible', () => {
    expect(text(`<&>"'\u0007`)).toBe('&lt;&amp;&gt;&quot;&#39;\\x07');
  });
});
