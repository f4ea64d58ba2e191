/**
 * The live batch view: counts of accounts done, failed, running and waiting; messages, bytes,
 * rate, accounts per minute and an ETA from the pace accounts finish at; every line within
 * the terminal's width whatever the account names; one plain line for logs.
 */
import { describe, expect, it } from 'vitest';
import { startBatchScreen } from '../../src/report/batch-screen.js';
import { BatchTally, batchPlainLine, batchViewLines, etaMs } from '../../src/report/batch-view.js';

const msg = (bytes: number, outcome: 'copied' | 'adopted' | 'recognised' | 'failed' = 'copied') =>
  ({ type: 'message', uidl: 'u', bytes, outcome }) as const;

describe('batch view', () => {
  it('counts accounts by state and messages by account; the ETA follows the accounts finished', () => {
    const t = new BatchTally('migrate', 10, 0);
    t.start('alice');
    t.start('bob');
    t.event('alice', { type: 'phase', phase: 'copying' });
    t.event('alice', { type: 'plan', toCopy: 3, toCopyBytes: 3000, alreadyCopied: 0, newToJournal: false });
    t.event('alice', msg(1024));
    t.event('alice', msg(1024));
    t.event('bob', { type: 'phase', phase: 'listing' });
    expect(etaMs(t, 60_000)).toBeNull();
    t.end('carol-never-started', 0);
    t.end('alice', 0);
    t.start('dave');
    t.end('dave', 3);
    expect([t.ok, t.notOk, t.runningCount, t.waiting]).toEqual([2, 1, 1, 6]);
    // 3 of 10 finished in 60 s: 7 more take 140 s.
    expect(etaMs(t, 60_000)).toBe(140_000);
    const lines = batchViewLines(t, 60_000, 80);
    expect(lines[0]).toBe('popsync migrate: 3/10 accounts: 2 done, 1 failed, 1 running, 6 waiting');
    expect(lines[1]).toBe('  2 messages, 2.0 KiB, 34 B/s, 3.0 accounts/min, ETA 2m 20s');
    expect(lines.slice(2)).toEqual(['  bob: listing']);
    expect(batchPlainLine(t, 60_000)).toBe(
      'popsync: batch: 3/10 accounts: 2 done, 1 failed, 1 running, 6 waiting; ' +
        '2 messages, 2.0 KiB, 34 B/s, 3.0 accounts/min, ETA 2m 20s',
    );
  });

  it('fits the width: long names are cut, a crowd of running accounts is counted, not listed', () => {
    const t = new BatchTally('sync', 100_000, 0);
    for (let i = 0; i < 9; i++) {
      const name = `account-${i}-${'x'.repeat(150)}`;
      t.start(name);
      t.event(name, { type: 'phase', phase: 'copying' });
      t.event(name, msg(5_000_000, i === 0 ? 'failed' : 'copied'));
    }
    for (const width of [80, 40]) {
      const lines = batchViewLines(t, 3_600_000, width);
      for (const l of lines) expect(l.length).toBeLessThan(width);
      expect(lines).toHaveLength(2 + 6 + 1);
      expect(lines.at(-1)).toBe('  ... and 3 more running');
    }
    // The failed message's bytes were not copied: 8 of 5 MB.
    expect(batchViewLines(t, 3_600_000, 80)[1]).toMatch(/^ {2}9 messages \(1 failed\), 38\.1 MiB copied, .*ETA -$/);
  });

  it('messages found already copied (a new journal over a filled destination) are said apart', () => {
    const t = new BatchTally('migrate', 2, 0);
    t.start('alice');
    t.event('alice', { type: 'plan', toCopy: 4, toCopyBytes: 4096, alreadyCopied: 0, newToJournal: true });
    t.event('alice', { type: 'phase', phase: 'copying' });
    t.event('alice', msg(1024, 'adopted'));
    t.event('alice', msg(1024, 'recognised'));
    t.event('alice', msg(1024, 'failed'));
    t.event('alice', msg(1024));
    expect(batchViewLines(t, 60_000, 80)[1]).toMatch(
      /^ {2}4 messages \(1 adopted, 1 recognised, 1 failed\), 1\.0 KiB copied, 17 B\/s, /,
    );
    expect(batchViewLines(t, 60_000, 80)[2]).toBe('  alice: copying 4/4 (1.0 KiB)');
  });

  it('a batch that only adopts copied nothing: no bytes, no rate', () => {
    const t = new BatchTally('migrate', 1, 0);
    t.start('alice');
    for (let i = 0; i < 30; i++) t.event('alice', msg(1_000_000, 'adopted'));
    expect(batchPlainLine(t, 10_000)).toContain('30 messages (30 adopted), 0 B copied, 0 B/s, ');
  });

  it('control characters in a name cannot move the cursor', () => {
    const t = new BatchTally('migrate', 2, 0);
    t.start('evil\x1b[2Jname');
    expect(batchViewLines(t, 1000, 80)[2]).toBe('  evil\\x1b[2Jname: starting');
  });
});

describe('batch screen', () => {
  const fakeTerminal = () => {
    const out: string[] = [];
    const stream = { columns: 80, write: (s: string) => out.push(s) > 0 } as unknown as NodeJS.WriteStream;
    return { out, stream };
  };

  it('a terminal: text written meanwhile erases the block first; stop() restores write and leaves the block', () => {
    const err = fakeTerminal();
    const std = fakeTerminal();
    const write = err.stream.write;
    const t = new BatchTally('migrate', 3, 0);
    const screen = startBatchScreen({ tally: t, tty: true, stream: err.stream, shared: [std.stream], now: () => 0 });
    expect(err.out).toEqual([`${batchViewLines(t, 0, 80).join('\n')}\n`]);
    std.stream.write('alice: summary\n');
    // The 2-line block is erased (cursor up 2 lines, clear below) before stdout's text.
    expect(err.out.at(-1)).toBe('\x1b[2F\x1b[J');
    expect(std.out).toEqual(['alice: summary\n']);
    err.stream.write('a warning\n');
    // Already erased: nothing more to erase.
    expect(err.out.slice(-2)).toEqual(['\x1b[2F\x1b[J', 'a warning\n']);
    screen.stop();
    expect(err.stream.write).toBe(write);
    expect(err.out.at(-1)).toBe(`${batchViewLines(t, 0, 80).join('\n')}\n`);
    err.stream.write('total\n');
    expect(err.out.at(-1)).toBe('total\n');
  });

  it('elsewhere: a plain line each time another tenth of the accounts has finished', () => {
    const err = fakeTerminal();
    const t = new BatchTally('migrate', 20, 0);
    const screen = startBatchScreen({ tally: t, tty: false, stream: err.stream, now: () => 1000 });
    for (let i = 0; i < 20; i++) {
      t.start(`a${i}`);
      t.end(`a${i}`, 0);
      screen.changed();
    }
    screen.stop();
    expect(err.out).toHaveLength(10);
    expect(err.out[0]).toMatch(/^popsync: batch: 2\/20 accounts: 2 done, 0 failed, 0 running, 18 waiting; /);
    expect(err.out.at(-1)).toMatch(/^popsync: batch: 20\/20 accounts: .*ETA 0s\n$/);
  });
});
