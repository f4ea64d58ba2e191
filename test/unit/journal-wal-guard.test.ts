/**
 * A journal that lost its write-ahead log is refused (kind journal, exit 5), never taken for a
 * new one; a journal closed cleanly, or killed with its -wal intact, opens as always; a writer
 * that cannot put its "in use" mark into the main file does not run.
 * A "lost -wal" is made by copying the main file alone while a connection holds data in the
 * WAL: what a backup, a copy to a new machine or a cleanup that deletes -wal leaves behind.
 */
import { copyFileSync, existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isPopsyncError } from '../../src/errors.js';
import { Journal } from '../../src/journal/journal.js';
import { assertWalIntact, fileState } from '../../src/journal/wal-guard.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'popsync-wal-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

const S = { source: 'alice@pop.example.net' };
const item = (uidl: string) => ({
  uidl,
  size: 10,
  sha256: 'c'.repeat(64),
  messageId: null,
  folder: 'INBOX',
  destUidValidity: 7n,
  destUidNext: 1,
});

function refusal(fn: () => unknown): { kind: string; message: string; hint: string } {
  try {
    fn();
  } catch (e) {
    if (!isPopsyncError(e)) throw e;
    return { kind: e.kind, message: e.message, hint: e.context.hint ?? '' };
  }
  throw new Error('did not throw');
}

describe('a journal that lost its -wal', () => {
  it('is not what a read-only look sees when a writer opens the journal between its stat and its read', () => {
    // Seen in the 50-pair sync race: the loser's journal-name lookup stat'ed no -wal, then read
    // the winner's fresh "in use" mark, and refused a healthy journal (exit 5).
    const path = join(dir, 'j.sqlite');
    Journal.open(path, S).close();
    const stale = fileState(path);
    expect(stale.walBytes).toBe(0);
    const writer = Journal.open(path, S);
    const reader = new Database(path, { readonly: true, fileMustExist: true });
    try {
      expect(() => assertWalIntact(reader, path, 1, stale)).not.toThrow();
    } finally {
      reader.close();
      writer.close();
    }
  });

  it('is refused when a run was using it (rows only in the WAL), also by the read-only views', () => {
    const path = join(dir, 'j.sqlite');
    const copy = join(dir, 'copy.sqlite');
    const j = Journal.open(path, S);
    j.beginAppend(S.source, [item('u1'), item('u2')]);
    copyFileSync(path, copy);
    j.close();
    expect(existsSync(`${copy}-wal`)).toBe(false);
    const r = refusal(() => Journal.open(copy, S));
    expect(r.kind).toBe('journal');
    expect(r.message).toContain(`journal ${copy} has lost its write-ahead log (${copy}-wal)`);
    expect(r.message).toMatch(/did not close it/);
    expect(r.hint).toMatch(/put the .*-wal file back/);
    // Read-only views refuse it too, also after one of them left an empty -wal behind.
    for (let i = 0; i < 2; i++) {
      expect(refusal(() => Journal.peek(copy, S, S.source)).kind).toBe('journal');
      expect(refusal(() => Journal.inspect(copy)).kind).toBe('journal');
    }
    expect(refusal(() => Journal.open(copy, S)).kind).toBe('journal');
    // Refused without being changed: restoring the -wal later still works.
    expect(statSync(copy).size).toBeGreaterThan(0);
  });

  it(
    'is refused when it is an SQLite file with no tables (a journal killed before its first checkpoint, ' +
      '-wal gone)',
    () => {
      // What popsync before this change left: WAL switched on first, every table in the WAL.
      const path = join(dir, 'old.sqlite');
      const db = new Database(path);
      db.pragma('journal_mode = WAL');
      db.exec(
        `CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT); INSERT INTO meta VALUES ('schema_version', ` +
          `'4'), ('source', '${S.source}')`,
      );
      const copy = join(dir, 'copy.sqlite');
      copyFileSync(path, copy);
      db.close();
      expect(statSync(copy).size).toBe(4096);
      const r = refusal(() => Journal.open(copy, S));
      expect(r).toMatchObject({
        kind: 'journal',
        message: expect.stringMatching(/lost its write-ahead log.*no tables/),
      });
      expect(refusal(() => Journal.peek(copy, S, S.source)).kind).toBe('journal');
    },
  );

  it('a writer whose "in use" mark a reader keeps out of the main file does not run (exit 7), and takes its mark ' +
    'back', () => {
    // A reader whose snapshot predates the mark (an sqlite3 shell with a transaction open, a
    // backup) keeps every later page out of the main file. The writer used to run anyway, its
    // mark in the -wal alone: killed, and that -wal lost, its journal read as one closed cleanly.
    const path = join(dir, 'j.sqlite');
    Journal.open(path, S).close();
    expect(existsSync(`${path}-wal`)).toBe(false);
    // Read-write, as the sqlite3 shell opens it: closing last, it checkpoints and deletes -wal.
    const reader = new Database(path, { fileMustExist: true });
    reader.exec('BEGIN');
    reader.prepare('SELECT COUNT(*) FROM messages').get();
    let r: ReturnType<typeof refusal>;
    try {
      r = refusal(() => Journal.open(path, S));
    } finally {
      reader.exec('COMMIT');
      reader.close();
    }
    expect(r.kind).toBe('locked');
    expect(r.message).toContain(
      `journal ${path} is being read or written by another process: this run's "in use" mark could not be written`,
    );
    expect(r.hint).toMatch(/let that process finish .* and run again/);
    // The reader closed last and emptied the WAL into the main file: the withdrawn mark went
    // with it, so the journal is not taken for one that lost its -wal.
    expect(existsSync(`${path}-wal`)).toBe(false);
    const j = Journal.open(path, S);
    j.beginAppend(S.source, [item('u1')]);
    // With the reader gone, the mark is in the main file: a copy of it alone is refused.
    const copy = join(dir, 'copy.sqlite');
    copyFileSync(path, copy);
    j.close();
    expect(refusal(() => Journal.open(copy, S)).message).toMatch(/lost its write-ahead log/);
  }, 20_000);

  it('opens as always after a clean close (no -wal left), and after a kill that left its -wal', () => {
    const path = join(dir, 'j.sqlite');
    const j = Journal.open(path, S);
    j.beginAppend(S.source, [item('u1')]);
    j.close();
    expect(existsSync(`${path}-wal`)).toBe(false);
    const again = Journal.open(path, S);
    expect(again.get(S.source, 'u1')?.state).toBe('appending');
    again.beginAppend(S.source, [item('u2')]);
    // A killed run: the main file and its -wal copied together, as they were.
    const copy = join(dir, 'copy.sqlite');
    copyFileSync(path, copy);
    copyFileSync(`${path}-wal`, `${copy}-wal`);
    again.close();
    const resumed = Journal.open(copy, S);
    expect(resumed.get(S.source, 'u2')?.state).toBe('appending');
    resumed.close();
  });

  it('a new journal has its tables in the main file from the start; an empty file is still a new journal', () => {
    const path = join(dir, 'new.sqlite');
    writeFileSync(path, '');
    const j = Journal.open(path, S);
    const copy = join(dir, 'copy.sqlite');
    copyFileSync(path, copy);
    j.close();
    const db = new Database(copy, { readonly: true });
    expect(db.prepare(`SELECT COUNT(*) AS n FROM sqlite_master WHERE name = 'messages'`).get()).toEqual({ n: 1 });
    db.close();
  });
});
