/**
 * An upgrade that rewrites the messages table (v9) on a disk without room for it. The journal
 * stays at its old version with every row, the next open is not refused (no in-use mark was left
 * behind), and the message names the full disk and the upgrade: the advice for a corrupt journal
 * ("restore it from a backup or move it aside") would send the user of a sound one to a fresh
 * journal that copies everything again. Once there is room, the next open upgrades it.
 */
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it, vi } from 'vitest';
import { PopsyncError } from '../../src/errors.js';
import { Journal } from '../../src/journal/journal.js';
import { readSchemaVersion, SCHEMA_VERSION } from '../../src/journal/schema.js';
import { journalAtVersion, scratchDirEachTest } from '../support/old-journal.js';

/** Pages the file may grow by during an upgrade; 0: as many as it likes. */
const room = vi.hoisted(() => ({ pages: 0 }));

vi.mock('../../src/journal/schema.js', async (importOriginal) => {
  const real = await importOriginal<typeof import('../../src/journal/schema.js')>();
  return {
    ...real,
    migrate: (db: Database.Database, path: string, migrations?: typeof real.MIGRATIONS) => {
      // SQLite's own SQLITE_FULL, as a full disk gives it: the file may not grow past this.
      const pages = Number(db.pragma('page_count', { simple: true }));
      if (room.pages > 0) db.pragma(`max_page_count = ${pages + room.pages}`);
      return real.migrate(db, path, migrations);
    },
  };
});

const S = { source: 's' };
const scratch = scratchDirEachTest('popsync-upgrade-full-');

function rowsAndVersion(path: string): { version: number; rows: unknown[] } {
  const db = new Database(path, { readonly: true });
  try {
    const rows = db.prepare('SELECT rowid, * FROM messages ORDER BY rowid').all();
    return { version: readSchemaVersion(db, path), rows };
  } finally {
    db.close();
  }
}

describe('upgrading a journal on a full disk', () => {
  it('keeps the v8 journal whole, says the disk is full, and upgrades once there is room', () => {
    const path = join(scratch(), 'v8.sqlite');
    const db = journalAtVersion(path, 8);
    const put = db.prepare(
      `INSERT INTO messages (account, uidl, state, size, sha256, folder, dest_uidvalidity, dest_uid, first_seen_at,
       updated_at) VALUES ('a', ?, 'done', 5, ?, 'INBOX', '7', ?, 't', 't')`,
    );
    db.transaction(() => {
      for (let i = 1; i <= 2000; i++) put.run(`u${i}`, 'f'.repeat(64), i);
    })();
    db.close();
    const before = rowsAndVersion(path);
    expect(before.version).toBe(8);

    room.pages = 8;
    let error: unknown;
    try {
      Journal.open(path, S).close();
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(PopsyncError);
    const e = error as PopsyncError;
    expect(e.kind).toBe('journal');
    expect(e.message).toBe(
      `the disk holding journal ${path} is full while upgrading it from schema version 8 to ${SCHEMA_VERSION}: ` +
        'database or disk is full (SQLITE_FULL)',
    );
    expect(e.context.hint).toMatch(/^free space on that disk and run again/);
    expect(e.context.hint).toContain(`Do not delete ${path}-wal`);
    expect(e.context.hint).not.toMatch(/corrupt|backup|move it aside/);
    expect(rowsAndVersion(path)).toEqual(before);

    room.pages = 0;
    Journal.open(path, S).close();
    expect(rowsAndVersion(path)).toEqual({ version: SCHEMA_VERSION, rows: before.rows });
  });
});
