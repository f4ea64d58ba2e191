import { join } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { Journal } from '../../src/journal/journal.js';
import { SCHEMA_VERSION, readSchemaVersion } from '../../src/journal/schema.js';
import { journalAtVersion, scratchDirEachTest } from '../support/old-journal.js';

const scratch = scratchDirEachTest('popsync-prov-');

const begin = {
  uidl: 'u1',
  size: 10,
  sha256: 'ab',
  messageId: null,
  folder: 'INBOX',
  destUidValidity: 5n,
  destUidNext: 1,
};

describe('journal provenance (schema v2)', () => {
  it('keeps how a copy was made, and rows without it read as null', () => {
    const j = Journal.open(join(scratch(), 'j.sqlite'), { source: 's' });
    j.beginAppend('s', [
      {
        ...begin,
        provenance: {
          flags: ['\\Seen', '$Migrated'],
          internalDate: '2024-01-02T10:00:00.000Z',
          dateSource: 'received',
          seenSource: 'status-header',
          folderRule: 'lists',
        },
      },
      { ...begin, uidl: 'u2' },
    ]);
    expect(j.get('s', 'u1')?.provenance).toEqual({
      flags: ['\\Seen', '$Migrated'],
      internalDate: '2024-01-02T10:00:00.000Z',
      dateSource: 'received',
      seenSource: 'status-header',
      folderRule: 'lists',
    });
    expect(j.get('s', 'u2')?.provenance).toBeNull();
    j.close();
  });

  it('upgrades a version 1 journal in place and keeps its rows', () => {
    const path = join(scratch(), 'old.sqlite');
    const db = journalAtVersion(path, 1);
    db.prepare(
      `INSERT INTO messages (account, uidl, state, size, sha256, folder, dest_uidvalidity, dest_uidnext, dest_uid,
                             attempts, first_seen_at, updated_at, copied_at)
       VALUES ('s', 'old', 'done', 5, 'cd', 'INBOX', '5', 1, 1, 1, 't', 't', 't')`,
    ).run();
    expect(readSchemaVersion(db, path)).toBe(1);
    db.close();

    const j = Journal.open(path, { source: 's' });
    expect(j.get('s', 'old')).toMatchObject({ state: 'done', destUid: 1, provenance: null });
    j.close();
    const check = new Database(path, { readonly: true });
    expect(readSchemaVersion(check, path)).toBe(SCHEMA_VERSION);
    check.close();
  });
});

describe('Journal.peek (dry runs)', () => {
  it('reads rows without creating, upgrading or writing anything', async () => {
    const { statSync, existsSync } = await import('node:fs');
    const path = join(scratch(), 'p.sqlite');
    expect(Journal.peek(path, { source: 's' }, 's')).toBeNull();
    expect(existsSync(path)).toBe(false);
    const j = Journal.open(path, { source: 's' });
    j.beginAppend('s', [begin]);
    j.close();
    const before = statSync(path).mtimeMs;
    const rows = Journal.peek(path, { source: 's' }, 's');
    expect(rows?.get('u1')?.state).toBe('appending');
    expect(statSync(path).mtimeMs).toBe(before);
    expect(() => Journal.peek(path, { source: 'other' }, 'other')).toThrow(/belongs to source account s/);
  });
});
