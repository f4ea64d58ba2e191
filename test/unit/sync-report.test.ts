/** What `sync` and `status` print: the one-line cron report and the status summary (pure formatting). */
import { describe, expect, it } from 'vitest';
import { deletionPolicy, formatNothingNew, formatSyncReport, somethingHappened } from '../../src/cli/commands/sync.js';
import { formatStatus, summarise } from '../../src/cli/commands/status.js';
import type { RunResult } from '../../src/engine/types.js';
import { emptyRunResult } from '../../src/engine/recorder.js';
import type { MessageSummary } from '../../src/journal/journal.js';
import type { RowState } from '../../src/journal/types.js';
import type { RunRecord } from '../../src/journal/runs.js';

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
  it('accounts for copies it adopted, in the nothing-new line and in the one line, as migrate does', () => {
    expect(formatNothingNew(result())).toBe('popsync: nothing new on alice@pop:995 (10 listed, 10 already copied)');
    expect(formatNothingNew(result({ listed: 2, alreadyCopied: 0, adopted: 2 }))).toBe(
      'popsync: nothing new on alice@pop:995 (2 listed, 0 already copied, 2 found already in the destination ' +
        'and adopted)',
    );
    expect(formatSyncReport(result({ copied: 1, copiedBytes: 10, adopted: 3 }))).toBe(
      'popsync: 1 new message copied (10 B) from alice@pop:995 to alice@imap:993, ' +
        '3 found already in the destination and adopted',
    );
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
    const r = (uidl: string, state: RowState, lastError: string | null = null) => ({ uidl, state, lastError });
    // What journal/readonly.ts reads for these rows: counts by state, and the failed ones.
    const m = (rows: Array<ReturnType<typeof r>>): MessageSummary => {
      const counts = { appending: 0, done: 0, failed: 0, deleting: 0, deleted: 0 };
      for (const x of rows) counts[x.state]++;
      const failed = rows.filter((x) => x.state === 'failed').map(({ uidl, lastError }) => ({ uidl, lastError }));
      return { counts, failed: failed.map((f) => ({ ...f, attempts: 2 })) };
    };
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
      m([r('1', 'done'), r('2', 'deleted'), r('3', 'deleting'), r('4', 'appending'), r('5', 'failed', 'NO too big')]),
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
    expect(text).toContain('copied:   3 (1 of them deleted from the source)\n');
    expect(text).toContain('failed:   1\n    UIDL 5 (2 attempts): NO too big');
    // The copies the account's runs adopted, at most the copies recorded (a folder forgotten
    // and adopted again is two adoptions of one copy).
    const adopting = summarise('a', m([r('1', 'done'), r('2', 'done')]), runs, null, undefined, 5);
    expect(adopting.adopted).toBe(2);
    expect(formatStatus('/j', adopting)).toContain(
      'copied:   2 (2 of them found already in the destination and adopted)\n',
    );
    expect(summarise('a', m([r('1', 'done')]), runs, null).adopted).toBe(0);
    expect(text).toContain('last run: t2 sync, partial (listed 4, new 1, copied 1, failed 1, deleted 1)');
  });

  it('lists the last runs, newest first, each within 80 columns', () => {
    const run = (id: number, result: string | null, over: Partial<RunRecord> = {}): RunRecord => ({
      id,
      account: 'a',
      command: 'sync',
      startedAt: `2026-11-29T16:${String(40 - id).padStart(2, '0')}:01.000Z`,
      finishedAt: result === null ? null : 'x',
      listed: 5,
      newCount: 2,
      copied: 2,
      failed: 0,
      deleted: 0,
      copiedBytes: 10,
      durationMs: 1234,
      result,
      error: result === 'interrupted' ? 'interrupted; the journal is consistent' : null,
      ...over,
    });
    const runs = [
      run(1, 'ok', { copied: 123456, newCount: 123456, failed: 99999, deleted: 123456, durationMs: 7_200_000 }),
      run(2, 'interrupted'),
      run(3, null),
      run(4, 'ok'),
      run(5, 'ok'),
      run(6, 'ok'),
    ];
    const s = summarise(
      'a',
      { counts: { appending: 0, done: 0, failed: 0, deleting: 0, deleted: 0 }, failed: [] },
      runs,
      null,
      3,
    );
    expect(s.runs.map((r) => r.id)).toEqual([1, 2, 3]);
    expect(s.lastError).toBeNull();
    const lines = formatStatus('/j', s).split('\n');
    const at = lines.indexOf('  runs, newest first:');
    expect(lines.slice(at + 1, at + 4)).toEqual([
      '    2026-11-29 16:39  sync     ok           copied 123456 of 123456 new, failed 99999, deleted 123456  ' +
        '2h 00m 00s',
      '    2026-11-29 16:38  sync     interrupted  copied 2 of 2 new, failed 0  1.2s',
      '    2026-11-29 16:37  sync     killed?      copied 2 of 2 new, failed 0  1.2s',
    ]);
    expect(lines.slice(at + 2).every((l) => l.length <= 80)).toBe(true);
  });
});
