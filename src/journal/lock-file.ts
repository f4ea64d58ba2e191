/**
 * The kernel half of the account lock: `<journal>.lock`, a sidecar SQLite file on which the
 * holder keeps an exclusive transaction open for its whole run. SQLite takes it with an
 * `fcntl` write lock (mbsync locks its state files the same way), and the kernel drops such a
 * lock when, and only when, the process that holds it ends: SIGKILL, a crash or a power cut
 * free it at once, while a process that is merely stopped (Ctrl-Z, SIGSTOP, a suspended laptop,
 * a frozen VM or cgroup) keeps it however long it sleeps. That is the property a heartbeat
 * cannot give: no clock decides that a live process is gone.
 *
 * A sidecar, not the journal itself: an exclusive transaction on the journal would also shut
 * out `status`, `plan` and the holder's own second connection. The file holds no data; it is
 * never deleted (removing a lock file that another process is about to open is how two
 * processes end up holding "the" lock on two inodes).
 *
 * Across hosts this is only as good as the file system's locking: a local disk or NFSv4 (and
 * NFSv3 with lockd) pass fcntl locks between clients; some network file systems ignore them.
 * The journal's lock row (lock.ts) covers that case with its heartbeat.
 */
import { closeSync, existsSync, openSync } from 'node:fs';
import Database from 'better-sqlite3';
import { PopsyncError } from '../errors.js';
import { journalFile } from './sidecars.js';

/** Beside the journal file itself: one lock file however the journal is named (sidecars.ts). */
export function lockFilePath(journalPath: string): string {
  return `${journalFile(journalPath)}.lock`;
}

export class LockFile {
  private constructor(
    readonly path: string,
    private readonly db: Database.Database,
  ) {}

  /** The lock, or null when a live process holds it. Never waits. */
  static tryAcquire(path: string): LockFile | null {
    if (!existsSync(path)) {
      try {
        // 0600 from the first byte, as the journal; 'a' never truncates a file someone just made.
        closeSync(openSync(path, 'a', 0o600));
      } catch (e) {
        throw lockFileError(path, e);
      }
    }
    let db: Database.Database;
    try {
      db = new Database(path, { fileMustExist: true });
    } catch (e) {
      throw lockFileError(path, e);
    }
    try {
      // No waiting inside SQLite: the caller decides (--wait). Each statement below needs the
      // file lock, so each can be the one that reports "busy".
      db.pragma('busy_timeout = 0');
      // No -journal file beside it: nothing is ever written in this transaction.
      db.pragma('journal_mode = MEMORY');
      db.exec('BEGIN EXCLUSIVE');
      return new LockFile(path, db);
    } catch (e) {
      db.close();
      if (e instanceof Database.SqliteError && (e.code.startsWith('SQLITE_BUSY') || e.code.startsWith('SQLITE_LOCKED')))
        return null;
      throw lockFileError(path, e);
    }
  }

  /** Ends the transaction, which frees the lock for the next run. */
  release(): void {
    if (!this.db.open) return;
    try {
      this.db.exec('ROLLBACK');
    } finally {
      // Closing alone would free it too; the kernel does the same if we never get here.
      this.db.close();
    }
  }
}

function lockFileError(path: string, e: unknown): PopsyncError {
  const code = (e as { code?: unknown } | undefined)?.code;
  return new PopsyncError(
    'journal',
    `cannot use the lock file ${path}: ${e instanceof Error ? e.message : String(e)}`,
    {
      hint:
        code === 'ENOENT' || code === 'SQLITE_CANTOPEN'
          ? 'create the directory that holds the journal'
          : 'check the path and its permissions; the lock file sits beside the journal',
    },
    { cause: e },
  );
}
