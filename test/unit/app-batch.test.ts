import { describe, expect, it } from 'vitest';
import { runBatch } from '../../src/app/batch.js';
import { createHostSlots } from '../../src/app/host-slots.js';

const tick = () => new Promise((r) => setImmediate(r));

describe('runBatch', () => {
  it('runs up to `parallel` accounts at once, in list order, and returns the worst exit code', async () => {
    let running = 0;
    let peak = 0;
    const started: number[] = [];
    const code = await runBatch({
      accounts: [0, 1, 2, 3, 4, 5, 6],
      parallel: 3,
      run: async (n) => {
        started.push(n);
        running++;
        peak = Math.max(peak, running);
        for (let i = 0; i < 7 - n; i++) await tick(); // early accounts are the big ones
        running--;
        return n === 4 ? 75 : n === 2 ? 1 : 0;
      },
    });
    expect(code).toBe(75);
    expect(peak).toBe(3);
    expect(started).toEqual([0, 1, 2, 3, 4, 5, 6]);
  });

  it('keeps each host under its cap across accounts', async () => {
    const slots = createHostSlots(2);
    let peak = 0;
    const hosts = (n: number) => [`pop3 ${n % 2 === 0 ? 'a' : 'b'}`, 'imap x'];
    await runBatch({
      accounts: Array.from({ length: 20 }, (_, i) => i),
      parallel: 8,
      slots,
      hostsOf: hosts,
      run: async () => {
        peak = Math.max(peak, slots.inUse('imap x'));
        await tick();
        return 0;
      },
    });
    expect(peak).toBe(2);
  });

  it('stops starting accounts once interrupted, lets the running ones finish, and rethrows', async () => {
    const ac = new AbortController();
    const done: number[] = [];
    const run = runBatch({
      accounts: [0, 1, 2, 3, 4],
      parallel: 2,
      signal: ac.signal,
      run: async (n) => {
        await tick();
        if (n === 1) {
          ac.abort();
          throw new Error('interrupted');
        }
        await tick();
        done.push(n);
        return 0;
      },
    });
    await expect(run).rejects.toThrow('interrupted');
    expect(done).toEqual([0]);
  });
});

describe('batchTotal', () => {
  it('counts accounts per outcome and names those that did not end well', async () => {
    const { batchTotal } = await import('../../src/cli/jobs.js');
    expect(
      batchTotal([
        { name: 'a', code: 0 },
        { name: 'b', code: 3 },
        { name: 'c', code: 1 },
        { name: 'd', code: 0 },
      ]),
    ).toBe('popsync: 4 accounts: 2 ok, 1 with failed messages (exit 1: c), 1 exit 3 (b)');
    const many = Array.from({ length: 12 }, (_, i) => ({ name: `u${i}`, code: 7 }));
    expect(batchTotal(many)).toBe(
      'popsync: 12 accounts: 12 exit 7 (u0, u1, u2, u3, u4, u5, u6, u7, u8, u9 and 2 more)',
    );
  });

  it('the grand total says the copies found already in the destination apart from those copied', async () => {
    const { batchTotal } = await import('../../src/cli/jobs.js');
    const { emptyRunResult } = await import('../../src/engine/recorder.js');
    const result = (copied: number, adopted: number) => ({
      ...emptyRunResult('migrate', 'a@pop:995', 'a@imap:993', '2026-11-29T10:00:00.000Z'),
      copied,
      copiedBytes: copied * 1024,
      adopted,
    });
    expect(
      batchTotal(
        [
          { name: 'a', code: 0, result: result(2, 0) },
          { name: 'b', code: 0, result: result(0, 30) },
        ],
        3000,
      ),
    ).toBe(
      'popsync: 2 accounts: 2 ok; 2 messages copied (2.0 KiB), 30 found already in the destination (adopted), in 3.0s',
    );
  });
});
