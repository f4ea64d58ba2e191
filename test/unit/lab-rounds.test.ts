/**
 * How the bench sums up its rounds of whole processes (lab/rounds.ts): a median that picks the
 * wrong run, or a ratio paired across rounds, would print a plausible figure without a word.
 */
import { describe, expect, it } from 'vitest';
import { median, medianServerCpu, perRound, roundCount, spread } from '../../lab/rounds.js';

describe('bench rounds', () => {
  it('takes the middle run, whatever the order, and the mean of the two middle ones of an even count', () => {
    expect(median([1.02, 0.86, 0.84, 0.91, 0.85])).toBe(0.86);
    expect(median([4, 1, 3, 2])).toBe(2.5);
    expect(spread([3, 9, 1])).toEqual({ median: 3, min: 1, max: 9 });
    expect(() => median([])).toThrow(/no runs/);
  });

  it('pairs runs by round, not by rank', () => {
    // Safe relay's and popsync's wall times: sorted apart, they would pair 0.8/1.0 and 1.2/1.3.
    const safe = [1.2, 0.8, 1.0];
    const popsync = [1.0, 1.3, 1.0];
    const ratios = perRound(safe, popsync);
    expect(ratios.map((x) => x.toFixed(3))).toEqual(['1.200', '0.615', '1.000']);
    expect(ratios.filter((x) => x >= 0.8).length).toBe(2);
    expect(() => perRound([1, 2], [1])).toThrow(/rounds to pair/);
    expect(() => perRound([], [])).toThrow(/rounds to pair/);
  });

  it("takes Dovecot's median total and each process's median, absent counted as 0", () => {
    const split = medianServerCpu([
      {
        totalMs: 300,
        byName: [
          ['imap', 200],
          ['pop3', 100],
        ],
      },
      {
        totalMs: 500,
        byName: [
          ['imap', 300],
          ['other', 200],
        ],
      },
      {
        totalMs: 400,
        byName: [
          ['other', 250],
          ['imap', 150],
        ],
      },
    ]);
    expect(split).toEqual({
      totalMs: 400,
      byName: [
        ['imap', 200],
        ['other', 200],
      ],
    });
  });

  it('reads BENCH_REPEAT: unset gives the default, anything but a whole number from 1 throws', () => {
    expect(roundCount(undefined, 5)).toBe(5);
    expect(roundCount('', 3)).toBe(3);
    expect(roundCount('7', 5)).toBe(7);
    for (const bad of ['0', '-1', '2.5', 'x']) expect(() => roundCount(bad, 5)).toThrow(/BENCH_REPEAT/);
  });
});
