/**
 * A journal whose creation was killed half-way leaves a hot rollback journal (`-journal`),
 * which SQLite lets only a writer roll back. Read-only looks (the journal-name lookup before a
 * run, status, plan, verify) must not turn that into "journal unusable": the lookup treats it as
 * unbound (the run's own open rolls it back), and the read-only commands say what to do.
 */
import { copyFileSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { PopsyncError } from '../../src/errors.js';
import { Journal } from '../../src/journal/journal.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** The files a creation leaves when killed mid-transaction, made by copying them at that instant. */
function killedCreation(): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'popsync-hot-'));
  dirs.push(dir);
  const live = path.join(dir, 'live.sqlite');
  const killed = path.join(dir, 'killed.sqlite');
  const db = new Database(live);
  // A tiny cache makes SQLite spill into the main file mid-transaction, as a big creation would.
  db.pragma('cache_size = 10');
  db.exec('BEGIN; CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT); CREATE TABLE filler (x BLOB);');
  const insert = db.prepare('INSERT INTO filler VALUES (?)');
  for (let i = 0; i < 200; i++) insert.run(Buffer.alloc(4000));
  copyFileSync(live, killed);
  copyFileSync(`${live}-journal`, `${killed}-journal`);
  db.exec('ROLLBACK');
  db.close();
  return killed;
}

describe('a journal whose creation was killed half-way', () => {
  it('is the state the test means: a hot journal a read-only connection refuses', () => {
    const file = killedCreation();
    expect(existsSync(`${file}-journal`)).toBe(true);
    expect(() =>
      new Database(file, { readonly: true, fileMustExist: true }).prepare('SELECT 1 FROM sqlite_master').get(),
    ).toThrow(expect.objectContaining({ code: 'SQLITE_READONLY_ROLLBACK' }));
  });

  it('is bound to nothing for the journal-name lookup, instead of stopping the run', () => {
    expect(Journal.boundSource(killedCreation())).toBeNull();
  });

  it('is explained to read-only commands, with what to run', () => {
    const file = killedCreation();
    let err: unknown;
    try {
      Journal.inspect(file);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(PopsyncError);
    expect((err as PopsyncError).message).toMatch(/killed/);
    expect((err as PopsyncError).context.hint).toMatch(/migrate or sync once/);
  });

  it('is repaired by the run that opens it for writing, then bound to that run', () => {
    const file = killedCreation();
    Journal.open(file, { source: 'alice@localhost' }).close();
    expect(Journal.boundSource(file)).toBe('alice@localhost');
  });
});
