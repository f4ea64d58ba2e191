/**
 * Journal schema v8: no index on (account, state) in new or upgraded journals; an upgraded
 * journal keeps its rows, and what read them by state (rows still 'appending' or 'deleting',
 * counts for status) reads the same without it.
 */
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { Journal } from '../../src/journal/journal.js';
import { readSchemaVersion, SCHEMA_VERSION } from '../../src/journal/schema.js';
import { journalAtVersion, messageIndexes, scratchDirEachTest } from '../support/old-journal.js';

const S = { source: 's' };
const scratch = scratchDirEachTest('popsync-v8-');

/** A v7 journal with a row in each state a run reads by state. */
function v7(path: string): void {
  const db = journalAtVersion(path, 7);
  const row = db.prepare(
    `INSERT INTO messages (account, uidl, state, size, folder, dest_uidvalidity, dest_uid, attempts, first_seen_at,
                           updated_at, copied_at)
     VALUES ('a', ?, ?, 5, 'INBOX', '7', ?, 1, 't', 't', 't')`,
  );
  row.run('u1', 'done', 3);
  row.run('u2', 'appending', null);
  row.run('u3', 'deleting', 4);
  row.run('u4', 'appending', null);
  db.close();
}

describe('journal v8', () => {
  it('creates journals without an index on message state', () => {
    expect(SCHEMA_VERSION).toBeGreaterThanOrEqual(8);
    const path = join(scratch(), 'new.sqlite');
    Journal.open(path, S).close();
    expect(messageIndexes(path)).not.toContain('messages_by_state');
    expect(messageIndexes(path)).toContain('messages_done_uid');
  });

  it('upgrades a v7 journal: the index goes, rows read by state as before', () => {
    const path = join(scratch(), 'v7.sqlite');
    v7(path);
    expect(messageIndexes(path)).toContain('messages_by_state');
    const j = Journal.open(path, S);
    try {
      expect(j.rowsInState('a', 'appending').map((r) => r.uidl)).toEqual(['u2', 'u4']);
      expect(j.rowsInState('a', 'deleting').map((r) => r.uidl)).toEqual(['u3']);
      expect(j.counts('a')).toEqual({ done: 1, appending: 2, failed: 0, deleting: 1 });
      expect(j.uidOwner('a', 'INBOX', 7n, 3)).toBe('u1');
    } finally {
      j.close();
    }
    expect(messageIndexes(path)).not.toContain('messages_by_state');
    expect(Journal.inspect(path)?.accounts[0]?.messages.counts).toEqual({
      done: 1,
      appending: 2,
      failed: 0,
      deleting: 1,
      deleted: 0,
    });
    const db = new Database(path, { readonly: true });
    expect(readSchemaVersion(db, path)).toBe(SCHEMA_VERSION);
    db.close();
  });
});
