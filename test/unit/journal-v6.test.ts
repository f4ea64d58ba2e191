/**
 * Journal schema v6: the index on header_hash is gone from new and upgraded journals; an
 * upgraded journal keeps its rows, and identity by header hash still works without it.
 */
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { Journal } from '../../src/journal/journal.js';
import { readSchemaVersion, SCHEMA_VERSION } from '../../src/journal/schema.js';
import { journalAtVersion, messageIndexes, scratchDirEachTest } from '../support/old-journal.js';

const S = { source: 's' };
const scratch = scratchDirEachTest('popsync-v6-');

function v5(path: string): void {
  const db = journalAtVersion(path, 5);
  db.prepare(
    `INSERT INTO messages (account, uidl, state, size, folder, dest_uidvalidity, dest_uid, attempts, first_seen_at,
                           updated_at, copied_at, header_hash, list_size)
     VALUES ('a', 'u1', 'done', 5, 'INBOX', '7', 3, 1, 't', 't', 't', 'h1', 5)`,
  ).run();
  db.close();
}

describe('journal v6', () => {
  it('creates journals without an index on header_hash', () => {
    expect(SCHEMA_VERSION).toBeGreaterThanOrEqual(6);
    const path = join(scratch(), 'new.sqlite');
    Journal.open(path, S).close();
    expect(messageIndexes(path)).not.toContain('messages_by_header');
    expect(messageIndexes(path)).toContain('messages_done_uid');
  });

  it('upgrades a v5 journal: the index goes, the rows and their identity stay', () => {
    const path = join(scratch(), 'v5.sqlite');
    v5(path);
    expect(messageIndexes(path)).toContain('messages_by_header');
    const j = Journal.open(path, S);
    try {
      expect(j.indexByUidl('a').get('u1')).toMatchObject({ state: 'done', headerHash: 'h1', listSize: 5 });
      expect(j.uidOwner('a', 'INBOX', 7n, 3)).toBe('u1');
    } finally {
      j.close();
    }
    expect(messageIndexes(path)).not.toContain('messages_by_header');
    const db = new Database(path, { readonly: true });
    expect(readSchemaVersion(db, path)).toBe(SCHEMA_VERSION);
    db.close();
  });
});
