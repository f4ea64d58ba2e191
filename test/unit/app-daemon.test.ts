import { describe, expect, it } from 'vitest';
import { formatDelay, nextDue, outcomeOf, runDaemon, type Clock } from '../../src/app/daemon.js';
import { parseInterval } from '../../src/config/units.js';

const MIN = 60_000;

describe('parseInterval', () => {
  it('takes durations and plain seconds, at least one second', () => {
    expect(parseInterval('5m')).toBe(5 * MIN);
    expect(parseInterval('90s')).toBe(90_000);
    expect(parseInterval('1h')).toBe(60 * MIN);
    expect(parseInterval('300')).toBe(300_000);
    expect(parseInterval('1s')).toBe(1000);
    expect(parseInterval('20d')).toBe(20 * 24 * 60 * MIN);
    expect(parseInterval('21d')).toBeNull();
    expect(parseInterval('0.5s')).toBeNull();
    expect(parseInterval('0')).toBeNull();
    expect(parseInterval('soon')).toBeNull();
    expect(parseInterval('')).toBeNull();
  });
});

describe('outcomeOf', () => {
  it('goes on after a finished run, backs off on "later", stops on what needs a human', () => {
    expect([0, 1].map(outcomeOf)).toEqual(['done', 'done']);
    expect([75, 7].map(outcomeOf)).toEqual(['later', 'later']);
    expect([2, 3, 4, 5, 6, 70].map(outcomeOf)).toEqual(['stop', 'stop', 'stop', 'stop', 'stop', 'stop']);
  });
});

describe('nextDue', () => {
  const base = { startedAt: 1_000_000, endedAt: 1_000_000 + 20_000, intervalMs: 5 * MIN, laterStreak: 0, random: 0.5 };

  it('counts a finished cycle from its start, so the period is the interval', () => {
    expect(nextDue({ ...base, outcome: 'done' })).toEqual({ dueAt: base.startedAt + 5 * MIN, laterStreak: 0 });
    // A streak of "later" ends with the first finished cycle.
    expect(nextDue({ ...base, outcome: 'done', laterStreak: 4 }).laterStreak).toBe(0);
  });

  it('adds at most ±10% jitter', () => {
    expect(nextDue({ ...base, outcome: 'done', random: 0 }).dueAt).toBe(base.startedAt + 4.5 * MIN);
    expect(nextDue({ ...base, outcome: 'done', random: 0.999999 }).dueAt).toBeCloseTo(base.startedAt + 5.5 * MIN, -2);
  });

  it('doubles the wait after each "later", from the end of the cycle, up to 16 intervals or an hour', () => {
    const waits: number[] = [];
    let streak = 0;
    for (let i = 0; i < 9; i++) {
      const d = nextDue({ ...base, outcome: 'later', laterStreak: streak });
      waits.push((d.dueAt - base.endedAt) / MIN);
      streak = d.laterStreak;
    }
    expect(waits).toEqual([5, 10, 20, 40, 60, 60, 60, 60, 60]);
    expect(streak).toBe(9);
    // Short intervals are bounded by 16 of them; a long one never waits less than itself.
    const short = { ...base, intervalMs: 1000 };
    expect(nextDue({ ...short, outcome: 'later', laterStreak: 20 }).dueAt - base.endedAt).toBe(16_000);
    const long = { ...base, intervalMs: 2 * 60 * MIN };
    expect(nextDue({ ...long, outcome: 'later', laterStreak: 20 }).dueAt - base.endedAt).toBe(2 * 60 * MIN);
  });
});

describe('formatDelay', () => {
  it('reads like a person would say it', () => {
    expect([0, 45_000, 4 * MIN, 4 * MIN + 10_000, 60 * MIN, 65 * MIN].map(formatDelay)).toEqual([
      '0s',
      '45s',
      '4m',
      '4m 10s',
      '1h',
      '1h 5m',
    ]);
  });
});

/** Time passes only when the daemon sleeps, or when a cycle says how long it took. */
function fakeClock(): Clock & { t: number; sleeps: number[] } {
  const c = {
    t: 0,
    sleeps: [] as number[],
    now: () => c.t,
    sleep: async (ms: number, signal: AbortSignal) => {
      c.sleeps.push(ms);
      if (!signal.aborted) c.t += ms;
    },
  };
  return c;
}

describe('runDaemon', () => {
  it('syncs each account once per interval and stops cleanly when the signal aborts', async () => {
    const clock = fakeClock();
    const stop = new AbortController();
    const log: string[] = [];
    const code = await runDaemon({
      accounts: [
        { account: 'a', name: 'a', intervalMs: 10_000 },
        { account: 'b', name: 'b', intervalMs: 25_000 },
      ],
      cycle: async (name) => {
        log.push(`${clock.t / 1000}:${name}`);
        clock.t += 1000; // each sync takes a second
        if (clock.t >= 50_000) stop.abort();
        return 0;
      },
      signal: stop.signal,
      notify: (l) => log.push(l),
      clock,
      random: () => 0.5,
    });
    expect(code).toBe(0);
    expect(log).toEqual(['0:a', '1:b', '10:a', '20:a', '26:b', '30:a', '40:a', '50:a']);
  });

  it('backs off an account that says "later" while the others keep their interval', async () => {
    const clock = fakeClock();
    const stop = new AbortController();
    const runs: string[] = [];
    const notes: string[] = [];
    await runDaemon({
      accounts: [
        { account: 'up', name: 'up', intervalMs: 10_000 },
        { account: 'down', name: 'down', intervalMs: 10_000 },
      ],
      cycle: async (name) => {
        runs.push(`${clock.t / 1000}:${name}`);
        if (clock.t >= 100_000) stop.abort();
        return name === 'down' ? 75 : 0;
      },
      signal: stop.signal,
      notify: (l) => notes.push(l),
      clock,
      random: () => 0.5,
    });
    expect(runs.filter((r) => r.endsWith(':down'))).toEqual(['0:down', '10:down', '30:down', '70:down']);
    expect(runs.filter((r) => r.endsWith(':up'))).toHaveLength(11);
    expect(notes).toEqual([
      'popsync: down: trying again in 10s',
      'popsync: down: trying again in 20s',
      'popsync: down: trying again in 40s',
      'popsync: down: trying again in 1m 20s',
    ]);
  });

  it(
    'drops an account that needs a human, goes on with the rest, and exits with the worst code when none ' + 'is left',
    async () => {
      const clock = fakeClock();
      const notes: string[] = [];
      let bCycles = 0;
      const code = await runDaemon({
        accounts: [
          { account: 'a', name: 'alice', intervalMs: 10_000 },
          { account: 'b', name: 'bob', intervalMs: 10_000 },
        ],
        cycle: async (name) => {
          if (name === 'a') return 3;
          bCycles++;
          return bCycles === 3 ? 5 : 0;
        },
        signal: new AbortController().signal,
        notify: (l) => notes.push(l),
        clock,
        random: () => 0.5,
      });
      expect(code).toBe(5);
      expect(bCycles).toBe(3);
      expect(notes).toEqual([
        'popsync: alice: stopped syncing this account (exit 3); 1 other account goes on',
        'popsync: bob: stopped syncing this account (exit 5)',
      ]);
    },
  );

  it('a signal during a cycle ends the loop with 0 even though the cycle was interrupted (130)', async () => {
    const clock = fakeClock();
    const stop = new AbortController();
    let cycles = 0;
    const code = await runDaemon({
      accounts: [{ account: 'a', name: 'a', intervalMs: 10_000 }],
      cycle: async () => {
        cycles++;
        if (cycles === 2) {
          stop.abort();
          return 130;
        }
        return 0;
      },
      signal: stop.signal,
      notify: () => {},
      clock,
      random: () => 0.5,
    });
    expect(code).toBe(0);
    expect(cycles).toBe(2);
  });

  it('a signal while sleeping ends the loop at once', async () => {
    const stop = new AbortController();
    let cycles = 0;
    const started = Date.now();
    const done = runDaemon({
      accounts: [{ account: 'a', name: 'a', intervalMs: 3_600_000 }],
      cycle: async () => {
        cycles++;
        setImmediate(() => stop.abort());
        return 0;
      },
      signal: stop.signal,
      notify: () => {},
    });
    expect(await done).toBe(0);
    expect(cycles).toBe(1);
    // The real clock's sleep wakes on abort instead of waiting the hour.
    expect(Date.now() - started).toBeLessThan(60_000);
  });
});
