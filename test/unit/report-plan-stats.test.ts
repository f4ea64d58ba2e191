import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  approxDuration,
  bytesPerYear,
  estimateText,
  failures,
  sizeHistogram,
  sortedCounts,
  yearOf,
} from '../../src/report/plan-stats.js';
import type { PlanMessage, PlanReport } from '../../src/report/plan-types.js';

const small = (): PlanReport =>
  JSON.parse(readFileSync(new URL('../../fixtures/plans/small.json', import.meta.url), 'utf8')) as PlanReport;

const msg = (size: number, internalDate: string | null = null): PlanMessage => ({
  ...small().messages[0]!,
  size,
  internalDate,
});

describe('plan stats', () => {
  it('puts sizes in log-spaced buckets with exclusive upper edges', () => {
    const K = 1024;
    const M = 1024 * K;
    const h = sizeHistogram(
      [0, 4 * K - 1, 4 * K, 16 * K, 64 * K, 256 * K, M, 4 * M, 16 * M - 1, 16 * M, 2 ** 40].map((s) => msg(s)),
    );
    expect(h.map((b) => `${b.label}:${b.messages}`)).toEqual([
      '<4K:2',
      '4–16K:1',
      '16–64K:1',
      '64–256K:1',
      '256K–1M:1',
      '1–4M:1',
      '4–16M:2',
      '≥16M:2',
    ]);
    expect(h[0]!.bytes).toBe(4 * K - 1);
    expect(sizeHistogram([]).map((b) => b.messages)).toEqual([0, 0, 0, 0, 0, 0, 0, 0]);
  });

  it('takes the year as written, not converted to UTC', () => {
    expect(yearOf('2022-12-31T23:30:00-05:00')).toBe('2022');
    expect(yearOf('2023-01-01T00:30:00+02:00')).toBe('2023');
    expect(yearOf(null)).toBe('unknown');
    expect(yearOf('garbage')).toBe('unknown');
  });

  it('fills years without mail, unknown last', () => {
    const b = bytesPerYear([
      msg(10, '2024-01-01T00:00:00Z'),
      msg(5, '2021-06-01T00:00:00Z'),
      msg(7, null),
      msg(1, '2024-05-01T00:00:00Z'),
    ]);
    expect(b).toEqual([
      { label: '2021', messages: 1, bytes: 5 },
      { label: '2022', messages: 0, bytes: 0 },
      { label: '2023', messages: 0, bytes: 0 },
      { label: '2024', messages: 2, bytes: 11 },
      { label: 'unknown', messages: 1, bytes: 7 },
    ]);
  });

  it('does not fill a span that would be mostly empty (a clamped 1980 date)', () => {
    const b = bytesPerYear([
      msg(1, '1980-01-01T00:00:00Z'),
      msg(1, '2023-01-01T00:00:00Z'),
      msg(1, '2024-01-01T00:00:00Z'),
    ]);
    expect(b.map((x) => x.label)).toEqual(['1980', '2023', '2024']);
  });

  it('orders tallies by count, then name', () => {
    expect(sortedCounts({ b: 2, a: 2, c: 5, z: 1 })).toEqual([
      ['c', 5],
      ['a', 2],
      ['b', 2],
      ['z', 1],
    ]);
  });

  it('lists would-fail messages in POP3 order', () => {
    const r = small();
    r.messages.reverse();
    expect(failures(r).map((m) => m.n)).toEqual([3, 5]);
  });

  it('words the estimate roughly, with its basis', () => {
    expect(approxDuration(0)).toBe('under a minute');
    expect(approxDuration(89)).toBe('about 1 min');
    expect(approxDuration(240)).toBe('about 4 min');
    expect(approxDuration(2 * 3600 + 5 * 60 + 10)).toBe('about 2 h 05 min');
    expect(approxDuration(Number.NaN)).toBe('unknown time');
    const r = small();
    expect(estimateText(r)).toBe('about 4 min at 1.0 MiB/s (basis: measured in the last run)');
    r.estimate = null;
    expect(estimateText(r)).toBe('no estimate (no transfer rate measured yet)');
    r.totals = { ...r.totals, new: 0, newBytes: 0, retry: 0 };
    expect(estimateText(r)).toBe('nothing to copy');
  });
});
