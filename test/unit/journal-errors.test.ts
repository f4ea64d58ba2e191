/**
 * How SQLite's failures are worded for the user (journal/errors.ts): a file or folder this
 * user may not write is a permission problem, not a corrupt journal to restore from a backup.
 */
import { mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { journalError } from '../../src/journal/errors.js';

const sqlite = (message: string, code: string) => new Database.SqliteError(message, code);

describe('journalError', () => {
  it('a journal or folder the user may not write: permissions named, no word of corruption', () => {
    for (const code of ['SQLITE_READONLY_DIRECTORY', 'SQLITE_READONLY', 'SQLITE_CANTOPEN', 'SQLITE_PERM']) {
      const e = journalError(sqlite('attempt to write a readonly database', code), '/srv/j.sqlite', 'reading');
      expect(e.kind).toBe('journal');
      expect(e.message).toBe(
        `journal /srv/j.sqlite: no permission to use it while reading: attempt to write a readonly database (${code})`,
      );
      expect(e.context.hint).toMatch(/run as a user who may write the file and its folder/);
      expect(e.context.hint).not.toMatch(/corrupt|backup/);
    }
  });

  it('a file that is not a database is still unusable, with the advice for a corrupt one', () => {
    const e = journalError(sqlite('file is not a database', 'SQLITE_NOTADB'), '/srv/j.sqlite', 'reading');
    expect(e.message).toBe('journal /srv/j.sqlite is unusable while reading: file is not a database (SQLITE_NOTADB)');
    expect(e.context.hint).toMatch(/corrupt/);
  });

  it('a full disk: the -wal not to delete is named where SQLite keeps it, beside the file a symlink names', () => {
    const dir = mkdtempSync(join(tmpdir(), 'popsync-full-'));
    try {
      const real = join(dir, 'real.sqlite');
      const link = join(dir, 'link.sqlite');
      writeFileSync(real, '');
      symlinkSync('real.sqlite', link);
      const e = journalError(sqlite('database or disk is full', 'SQLITE_FULL'), link, 'copying');
      expect(e.message).toContain(`the disk holding journal ${link} is full while copying`);
      expect(e.context.hint).toContain(`Do not delete ${real}-wal to make room`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
