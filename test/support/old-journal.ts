/**
 * Journals as an older popsync left them, for the tests of each schema upgrade: each wrote the
 * same set-up out by hand (a scratch directory per test, a file migrated to version N with its
 * source recorded, the messages table's indexes read back).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach } from 'vitest';
import { MIGRATIONS, migrate } from '../../src/journal/schema.js';

/** A fresh directory for each test of the file, removed after it: call at the file's top level. */
export function scratchDirEachTest(prefix: string): () => string {
  let dir: string | undefined;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), prefix));
  });
  afterEach(() => {
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
    dir = undefined;
  });
  return () => {
    if (dir === undefined) throw new Error('scratchDirEachTest: used outside a test');
    return dir;
  };
}

/**
 * A journal at `path` as schema version `version` made it (its first `version` migrations),
 * belonging to source account `source`, open for the test to add rows; the caller closes it.
 */
export function journalAtVersion(path: string, version: number, source = 's'): Database.Database {
  const db = new Database(path);
  db.transaction(() => migrate(db, path, MIGRATIONS.slice(0, version)))();
  db.prepare(`INSERT INTO meta (key, value) VALUES ('source', ?)`).run(source);
  return db;
}

/** The names of the indexes on the messages table of the journal at `path`. */
export function messageIndexes(path: string): string[] {
  const db = new Database(path, { readonly: true });
  try {
    const rows = db.prepare(`SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'messages'`).all();
    return (rows as Array<{ name: string }>).map((r) => r.name);
  } finally {
    db.close();
  }
}
