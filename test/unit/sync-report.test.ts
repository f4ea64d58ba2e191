/** What `sync` and `status` print: the one-line cron report and the status summary (pure formatting). */
import { describe, expect, it } from 'vitest';
import { deletionPolicy, formatSyncReport, somethingHappened } from '../../src/cli/commands/sync.js';
import { formatStatus, summarise } from '../../src/cli/commands/status.js';
import type { RunResult } from '../../src/engine/types.js';
import { emptyRunResult } from '../../src/engine/recorder.js';
import type { JournalRow } from '../../src/journal/types.js';

const result = (o: Partial<RunResult> = {}): RunResult => ({
  ...emptyRunResult('sync', 'alice@pop:995', 'alice@imap:993', 't'),
  listed: 10,
  listedBytes: 1000,
  alreadyCopied: 10,
  durationMs: 5,
  ...o,
});

describe('sync report', () => {
  it('says nothing when nothing happened', () => {
    expect(somethingHappened(result())).toBe(false);
    expect(somethingHappened(result({ copied: 1 }))).toBe(true);
    expect(somethingHappened(result({ deletionRefused: 'no' }))).toBe(true);
  });
  it('is one line, plus one per failure', () => {
    expect(formatSyncReport(result({ copied: 3, copiedBytes: 41 * 1024 }))).toBe(
      'popsync: 3 new messages copied (41.0 KiB) from alice@pop:995 to alice@imap:993',
    );
    const text = formatSyncReport(
      result({
        copied: 1,
        copiedBytes: 10,
        deleted: 2,
        recognised: 4,
        failed: [{ uidl: 'U9', n: 9, size: 5, folder: 'INBOX', reason: 'too big', serverResponse: 'NO [LIMIT]' }],
      }),
    );
    expect(text.split('\n')).toHaveLength(2);
    expect(text).toMatch(
      /^popsync: 1 new message copied \(10 B\) .*, 2 deleted from the source, recognised 4 messages/,
    );
    expect(text).toContain(', recognised 4 messages under new UIDLs, 1 failed\n  UIDL U9 ');
  });
  it('builds the deletion policy, and refuses deletion-only flags without --delete', () => {
    expect(deletionPolicy({})).toBeNull();
    expect(deletionPolicy({ deleteAfterDays: 3, maxDelete: { count: 5 } })).toEqual({
      afterDays: 3,
      maxDelete: { count: 5 },
      force: false,
      verify: false,
    });
    expect(() => deletionPolicy({ maxDelete: { count: 1 } })).toThrow(/--max-delete only applies/);
    expect(() => deletionPolicy({ verifyBeforeDelete: true })).toThrow(/--verify-before-delete only applies/);
  });
});

describe('status', () => {
  it('counts copied, pending, failed with reasons, deleted, and shows the last run and error', () => {
    const r = (uidl: string, state: JournalRow['state'], lastError: string | null = null) =>
      ({ uidl, state, lastError, attempts: 2 }) as JournalRow;
    const runs = [
      {
        id: 2,
        account: 'a',
        command: 'sync',
        startedAt: 't2',
        finishedAt: 't2e',
        listed: 4,
        newCount: 1,
        copied: 1,
        failed: 1,
        deleted: 1,
        result: 'partial',
        error: null,
        copiedBytes: 100,
        durationMs: 1000,
      },
      {
        id: 1,
        account: 'a',
        command: 'sync',
        startedAt: 't1',
        finishedAt: 't1e',
        listed: null,
        newCount: null,
        copied: 0,
        failed: 0,
        deleted: 0,
        result: 'error',
        error: 'connection refused',
        copiedBytes: 0,
        durationMs: 50,
      },
    ];
    const s = summarise(
      'a',
      [r('1', 'done'), r('2', 'deleted'), r('3', 'deleting'), r('4', 'appending'), r('5', 'failed', 'NO too big')],
      runs,
      null,
    );
    expect(s).toMatchObject({
      copied: 3,
      deleted: 1,
      pending: { appending: 1, deleting: 1 },
      failed: [{ uidl: '5', error: 'NO too big' }],
      lastRun: { id: 2 },
      lastError: { at: 't1e', error: 'connection refused' },
    });
    const text = formatStatus('/j', s);
    expect(text).toContain('failed:   1\n    UIDL 5 (2 attempts): NO too big');
    expect(text).toContain('last run: t2 sync, partial (listed 4, new 1, copied 1, failed 1, deleted 1)');
  });
});
