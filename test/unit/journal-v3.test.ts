/** Journal schema v3: upgrade from v2, the deletion states, re-keying, runs, and the read-only inspect for `status`. */
import { statSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { LockFile, lockFilePath } from '../../src/journal/lock-file.js';
import { Journal } from '../../src/journal/journal.js';
import { SCHEMA_VERSION, readSchemaVersion } from '../../src/journal/schema.js';
import type { BeginAppend } from '../../src/journal/types.js';
import { journalAtVersion, scratchDirEachTest } from '../support/old-journal.js';

const scratch = scratchDirEachTest('popsync-v3-');

const item = (uidl: string, uid: number): BeginAppend => ({
  uidl,
  size: 10,
  sha256: 's' + uid,
  messageId: null,
  folder: 'INBOX',
  destUidValidity: 5n,
  destUidNext: uid,
  headerHash: 'h' + uid,
  listSize: 11,
});
function copied(j: Journal, ...uidls: string[]): void {
  uidls.forEach((u, i) => {
    j.beginAppend('a', [item(u, i + 1)]);
    j.confirm('a', u, { destUidValidity: 5n, destUid: i + 1 });
  });
}

describe('journal v3', () => {
  it('upgrades a v2 journal in place, keeping rows, order and copies', () => {
    const path = join(scratch(), 'v2.sqlite');
    const db = journalAtVersion(path, 2);
    const ins =
      db.prepare(`INSERT INTO messages (account, uidl, state, size, folder, dest_uidvalidity, dest_uid, attempts,
                                        first_seen_at, updated_at, copied_at, date_source)
      VALUES ('a', ?, 'done', 5, 'INBOX', '5', ?, 1, 't', 't', 't', 'received')`);
    ins.run('z', 1);
    ins.run('b', 2);
    db.close();
    const j = Journal.open(path, { source: 's' });
    expect([...j.rowsByUidl('a').keys()]).toEqual(['z', 'b']);
    expect(j.get('a', 'b')).toMatchObject({
      state: 'done',
      destUid: 2,
      headerHash: null,
      listSize: null,
      provenance: { dateSource: 'received' },
    });
    j.markDeleting('a', ['b']);
    j.close();
    const check = new Database(path, { readonly: true });
    expect(readSchemaVersion(check, path)).toBe(SCHEMA_VERSION);
    check.close();
  });

  it('walks done -> deleting -> deleted or back to done, keeps the UID claimed, and refuses illegal moves', () => {
    const j = Journal.open(join(scratch(), 'j.sqlite'), { source: 's' });
    copied(j, 'u1', 'u2', 'u3');
    j.markDeleting('a', ['u1', 'u2']);
    expect(j.counts('a')).toEqual({ done: 1, deleting: 2, appending: 0, failed: 0 });
    j.settleDeleting('a', { deleted: ['u1'], kept: ['u2'] });
    expect(j.get('a', 'u1')).toMatchObject({ state: 'deleted', deletedAt: expect.any(String) });
    expect(j.get('a', 'u2')?.state).toBe('done');
    expect(j.doneUidsIn('a', 'INBOX', 5n)).toEqual(new Set([1, 2, 3]));
    expect(() => j.beginAppend('a', [item('u1', 9)])).toThrow(/illegal journal transition deleted -> appending/);
    expect(() => j.settleDeleting('a', { deleted: ['u3'], kept: [] })).toThrow(/done -> deleted/);
    j.close();
  });

  it('re-keys rows and refuses a taken key', () => {
    const j = Journal.open(join(scratch(), 'j.sqlite'), { source: 's' });
    copied(j, 'old', 'other');
    j.rekey('a', [
      { from: 'old', to: 'old reused x' },
      { from: 'old reused x', to: 'NEW' },
    ]);
    expect(j.get('a', 'NEW')).toMatchObject({ state: 'done', destUid: 1, headerHash: 'h1', listSize: 11 });
    expect(j.get('a', 'old')).toBeUndefined();
    expect(() => j.rekey('a', [{ from: 'NEW', to: 'other' }])).toThrow(/already taken/);
    j.close();
  });

  it('records runs and lets status read everything without writing', () => {
    const path = join(scratch(), 'j.sqlite');
    const j = Journal.open(path, { source: 's' });
    copied(j, 'u1');
    j.beginAppend('a', [item('bad', 7)]);
    j.fail('a', 'bad', 'NO too big');
    const id = j.beginRun('a', 'sync');
    j.finishRun(id, {
      listed: 2,
      newCount: 2,
      copied: 1,
      adopted: 0,
      failed: 1,
      deleted: 0,
      result: 'partial',
      error: null,
      copiedBytes: 10,
      durationMs: 5,
    });
    const lockFile = LockFile.tryAcquire(lockFilePath(path))!;
    const lock = j.tryLock('a', lockFile, { command: 'sync' });
    expect(lock.ok).toBe(true);
    j.close();
    lockFile.release();
    const before = statSync(path).mtimeMs;
    const snap = Journal.inspect(path)!;
    expect(statSync(path).mtimeMs).toBe(before);
    expect(snap).toMatchObject({ source: 's', schemaVersion: SCHEMA_VERSION });
    expect(snap.accounts).toHaveLength(1);
    expect(snap.accounts[0]).toMatchObject({
      account: 'a',
      runs: [{ command: 'sync', result: 'partial', listed: 2 }],
      lock: { pid: process.pid },
    });
    expect(snap.accounts[0]!.messages.counts).toMatchObject({ done: 1, failed: 1, appending: 0 });
    expect(snap.accounts[0]!.messages.failed).toMatchObject([{ uidl: 'bad', lastError: 'NO too big' }]);
    expect(Journal.inspect(join(scratch(), 'none.sqlite'))).toBeNull();
  });
});
