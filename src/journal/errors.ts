/**
 * How the journal's failures reach the user: whatever SQLite or the file system threw becomes a
 * PopsyncError the CLI prints without a stack trace. One place, so every part of the journal
 * (db, messages, folders, lock row, runs, read-only views) words the same failure the same way.
 */
import Database from 'better-sqlite3';
import { PopsyncError } from '../errors.js';
import { journalFile } from './sidecars.js';

function isSqliteError(e: unknown): e is InstanceType<typeof Database.SqliteError> {
  return e instanceof Database.SqliteError;
}

/** SQLite's word for "a writer must recover this file first" (hot rollback journal, WAL index). */
export function needsWriter(e: unknown): e is Error & { code: string } {
  return isSqliteError(e) && (e.code === 'SQLITE_READONLY_ROLLBACK' || e.code === 'SQLITE_READONLY_RECOVERY');
}

/** SQLite's words for a file or folder this process may not write. */
const CANNOT_WRITE: ReadonlySet<string> = new Set(['SQLITE_READONLY', 'SQLITE_READONLY_DIRECTORY', 'SQLITE_PERM']);

/**
 * Constraint violations are popsync bugs; busy means another writer holds the file; a full disk
 * and permissions are said as such; everything else (corrupt, not a database, I/O) means the
 * journal is unusable.
 */
export function journalError(e: unknown, path: string, doing: string): PopsyncError {
  if (e instanceof PopsyncError) return e;
  const detail = e instanceof Error ? e.message : String(e);
  if (isSqliteError(e)) {
    if (e.code.startsWith('SQLITE_CONSTRAINT')) {
      return new PopsyncError(
        'internal',
        `journal ${path}: ${doing} violated a constraint: ${detail}`,
        { hint: 'this is a bug in popsync; the journal was left unchanged' },
        { cause: e },
      );
    }
    if (e.code.startsWith('SQLITE_BUSY') || e.code.startsWith('SQLITE_LOCKED')) {
      return new PopsyncError(
        'locked',
        `journal ${path} is busy (${detail})`,
        { hint: 'another popsync run is using this journal; let it finish or stop it' },
        { cause: e },
      );
    }
    if (e.code === 'SQLITE_FULL') {
      // Not corruption: the write that did not fit was rolled back (or, for a checkpoint, is still
      // in the -wal). "Restore it from a backup or move it aside" sent a user with a sound journal
      // towards a fresh one, and deleting the large -wal to make room can lose what it holds.
      return new PopsyncError(
        'journal',
        `the disk holding journal ${path} is full while ${doing}: ${detail} (${e.code})`,
        {
          hint:
            'free space on that disk and run again; what the journal recorded is kept. ' +
            `Do not delete ${journalFile(path)}-wal to make room: it holds records the journal file may not ` +
            'have yet. Upgrading a journal written by an ' +
            "older popsync needs free space of about twice the journal's size, once",
        },
        { cause: e },
      );
    }
    if (CANNOT_WRITE.has(e.code) || e.code.startsWith('SQLITE_CANTOPEN')) {
      // Permissions, not corruption: "restore it from a backup" sent a user with a journal in a
      // folder they cannot write (another user's, a read-only mount) after a sound file.
      return new PopsyncError(
        'journal',
        `journal ${path}: no permission to use it while ${doing}: ${detail} (${e.code})`,
        {
          hint:
            'popsync writes the journal and, beside it, its -wal, -shm, -step and .lock files: run as a user ' +
            'who may write the file and its folder, or give a journal elsewhere',
        },
        { cause: e },
      );
    }
    return new PopsyncError(
      'journal',
      `journal ${path} is unusable while ${doing}: ${detail} (${e.code})`,
      {
        hint:
          'if the file is corrupt, restore it from a backup or move it aside; ' +
          'a fresh journal forgets what was already copied',
      },
      { cause: e },
    );
  }
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  if (typeof code === 'string') {
    return new PopsyncError(
      'journal',
      `cannot open journal ${path}: ${detail}`,
      {
        hint: code === 'ENOENT' ? 'create the directory that holds the journal' : 'check the path and its permissions',
      },
      { cause: e },
    );
  }
  return new PopsyncError('internal', `journal ${path}: ${doing} failed: ${detail}`, {}, { cause: e });
}
