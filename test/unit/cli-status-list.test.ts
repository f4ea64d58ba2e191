import { describe, expect, it } from 'vitest';
import type { AccountStatus } from '../../src/cli/commands/status.js';
import { formatListStatus, listTotals, stateOf, type ListedStatus } from '../../src/cli/status-list.js';
import type { RunRecord } from '../../src/journal/journal.js';

function run(result: string | null, at = '2026-11-29T10:00:00.000Z'): RunRecord {
  return {
    id: 1,
    account: 'a@h',
    command: 'migrate',
    startedAt: at,
    finishedAt: null,
    listed: 3,
    newCount: 3,
    copied: 3,
    failed: 0,
    deleted: 0,
    copiedBytes: 10,
    durationMs: 5,
    result,
    error: result === 'error' ? 'login refused' : null,
  } as RunRecord;
}

function status(over: Partial<AccountStatus>): AccountStatus {
  return {
    account: 'a@h',
    copied: 0,
    adopted: 0,
    pending: { appending: 0, deleting: 0 },
    failed: [],
    deleted: 0,
    lastRun: null,
    runs: [],
    lastError: null,
    lock: null,
    ...over,
  };
}

const lock = { account: 'a@h', pid: 7, hostname: 'h', command: 'migrate', startedAt: 's', heartbeatAt: 'b' };

describe('status over an account list', () => {
  it('says where each account stands', () => {
    expect(stateOf(null)).toBe('not started');
    expect(stateOf(status({ lastRun: run('ok') }))).toBe('ok');
    expect(stateOf(status({ lastRun: run('partial') }))).toBe('partial');
    expect(stateOf(status({ lastRun: run(null) }))).toBe('killed');
    expect(stateOf(status({ lastRun: run(null), lock }))).toBe('running');
  });

  it('prints one line per account and a line of totals', () => {
    const items: ListedStatus[] = [
      { name: 'alice', journal: '/j/alice.sqlite', status: status({ copied: 120, deleted: 2, lastRun: run('ok') }) },
      {
        name: 'bob',
        journal: '/j/bob.sqlite',
        status: status({
          copied: 3,
          failed: [{ uidl: 'u', error: 'x', attempts: 1 }],
          lastRun: run('error'),
          lastError: { at: 't', error: 'login refused' },
        }),
      },
      { name: 'carol-long', journal: '/j/carol-long.sqlite', status: null },
    ];
    expect(formatListStatus(items).split('\n')).toEqual([
      'alice       ok           copied 120, failed 0, deleted 2, last run 2026-11-29T10:00:00.000Z migrate',
      'bob         error        copied 3, failed 1, deleted 0, last run 2026-11-29T10:00:00.000Z migrate: ' +
        'login refused',
      'carol-long  not started',
      'total: 3 accounts (1 not started, 1 ok, 1 error); copied 123, failed 1, deleted 2',
    ]);
    expect(listTotals(items)).toMatchObject({ accounts: 3, copied: 123, failed: 1, deleted: 2 });
  });

  it('says how many of the copies were found already in the destination and adopted', () => {
    const items: ListedStatus[] = [
      { name: 'alice', journal: '/j/alice.sqlite', status: status({ copied: 30, adopted: 28, lastRun: run('ok') }) },
      { name: 'bob', journal: '/j/bob.sqlite', status: status({ copied: 5, lastRun: run('ok') }) },
    ];
    const lines = formatListStatus(items).split('\n');
    expect(lines[0]).toBe(
      'alice  ok           copied 30 (28 adopted), failed 0, deleted 0, last run 2026-11-29T10:00:00.000Z migrate',
    );
    expect(lines[1]).toMatch(/^bob {4}ok {11}copied 5, failed 0/);
    expect(lines[2]).toBe('total: 2 accounts (2 ok); copied 35 (28 adopted), failed 0, deleted 0');
    expect(listTotals(items)).toMatchObject({ copied: 35, adopted: 28 });
  });
});
