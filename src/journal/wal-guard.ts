/**
 * Refusing a journal that lost its write-ahead log, instead of taking it for a new one.
 *
 * In WAL mode a run's writes live in `<journal>-wal` until a checkpoint copies them into the
 * main file. A journal copied or restored without its `-wal`, or whose `-wal` a cleanup
 * deleted after a killed run, still opens: SQLite simply reads the main file as it was at the
 * last checkpoint. For a journal created and killed in the same run that is a 4 KB file with
 * no tables, which used to be taken for a new journal: every message was copied again.
 *
 * Two facts, kept in the main file, make the loss visible:
 * - A new journal gets its schema in rollback mode, straight into the main file, before WAL is
 *   switched on (journal.ts). So a journal file with bytes but no tables never comes from
 *   popsync's own crashes: its tables are in a WAL that is gone.
 * - A writer marks the journal "in use" and checkpoints the mark into the main file when it
 *   opens, and clears it when it closes cleanly. The opening checkpoint does not truncate the
 *   WAL, so from then on the writer's `-wal` is never empty: a killed run leaves the mark and
 *   a `-wal` with frames (SQLite deletes `-wal` only when the last connection closes cleanly,
 *   after checkpointing all of it, clearing included). So "marked, and the -wal is missing or
 *   empty" means the log holding that run's records is gone. (Empty, not only missing: a
 *   read-only open, e.g. `status`, creates an empty `-wal` where none was.)
 * The opening checkpoint can be kept from the mark: SQLite never copies into the main file a
 * page newer than the snapshot a reader still holds (that reader may read the page from the
 * main file), so a process reading the journal since before the mark was committed (an sqlite3
 * shell with a transaction open, a backup) keeps it in the `-wal` alone, where losing the
 * `-wal` loses it with the records it guards. The checkpoint waits for such a reader as long
 * as for a writer (busy_timeout); a writer whose mark is still not in the main file then does
 * not run (checkpointMark).
 * Journals written before the mark existed are only protected by the first rule.
 */
import { existsSync, statSync } from 'node:fs';
import type Database from 'better-sqlite3';
import { PopsyncError } from '../errors.js';

const IN_USE_KEY = 'wal_in_use';

/** The file's state before popsync opened it: what SQLite will hide once it is open. */
export interface FileState {
  bytes: number;
  /** Size of `-wal`; 0 when there is none. */
  walBytes: number;
}

export function fileState(path: string): FileState {
  return { bytes: statSync(path).size, walBytes: existsSync(`${path}-wal`) ? statSync(`${path}-wal`).size : 0 };
}

function walLost(path: string, why: string): PopsyncError {
  return new PopsyncError(
    'journal',
    `journal ${path} has lost its write-ahead log (${path}-wal): ${why}; what it recorded since its last ` +
      `checkpoint is gone`,
    {
      hint:
        `put the ${path}-wal file back beside it (from wherever the journal was copied or backed up from) ` +
        `and run again. ` +
        'popsync will not treat it as a new journal: that would copy again every message it had recorded',
    },
  );
}

/** Inside the open transaction, with the schema version just read. */
export function assertWalIntact(db: Database.Database, path: string, version: number, file: FileState): void {
  if (version === 0) {
    if (file.bytes > 0)
      throw walLost(
        path,
        'the file has an SQLite header but no tables, which only a journal whose tables were never ' +
          'checkpointed leaves behind',
      );
    return;
  }
  if (file.walBytes > 0) return;
  const mark = db.prepare(`SELECT value FROM meta WHERE key = ?`).get(IN_USE_KEY) as { value: string } | undefined;
  if (mark === undefined) return;
  // A read-only look (the journal-name lookup before a run takes its lock, status, plan) can
  // race a writer opening the journal this instant: its -wal appeared between our stat and our
  // read. From its opening checkpoint on, a live writer's -wal is never empty.
  if (fileState(path).walBytes > 0) return;
  throw tagged(
    walLost(path, `a run that opened it at ${mark.value} did not close it, and its -wal file is missing or empty`),
  );
}

const lostWal = new WeakSet<PopsyncError>();

function tagged(e: PopsyncError): PopsyncError {
  lostWal.add(e);
  return e;
}

/**
 * A lost -wal seen by a read-only look. It may also be a writer closing cleanly between that
 * look's read and its stat (the mark is cleared only in the same checkpoint that empties the
 * -wal), so such a reader looks once more before believing it.
 */
export function isLostWal(e: unknown): boolean {
  return e instanceof PopsyncError && lostWal.has(e);
}

/** Inside the open transaction of a writer; the caller then checkpoints it (checkpointMark). */
export function markInUse(db: Database.Database, at: string): void {
  db.prepare(`INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value`).run(
    IN_USE_KEY,
    at,
  );
}

/** What `PRAGMA wal_checkpoint` answers: frames in the WAL, and how many of them the main file has. */
interface CheckpointResult {
  busy: number;
  log: number;
  checkpointed: number;
}

/**
 * Copies the WAL, the "in use" mark with it, into the main file and leaves the -wal file as it
 * is (never empty again). FULL waits (busy_timeout) for readers of older snapshots to move on;
 * one that does not leaves the checkpoint partial, which SQLite reports instead of failing, so
 * the answer is read: a writer whose mark is not in the main file is refused here.
 */
export function checkpointMark(db: Database.Database, path: string, waitedMs: number): void {
  const [r] = db.pragma('wal_checkpoint(FULL)') as CheckpointResult[];
  if (r !== undefined && r.busy === 0 && r.checkpointed >= r.log) return;
  const got = r === undefined ? '' : ` (${r.checkpointed} of its ${r.log} WAL frames copied)`;
  throw new PopsyncError(
    'locked',
    `journal ${path} is being read or written by another process: this run's "in use" mark could not be ` +
      `written into the journal file within ${Math.round(waitedMs / 1000)} s${got}`,
    {
      hint:
        'let that process finish (an sqlite3 shell with a transaction open, a backup of the journal, a popsync ' +
        'status or plan still reading) and run again. popsync does not run without the mark in the file: a ' +
        `${path}-wal lost after a killed run would then go unnoticed, and its messages would be copied again`,
    },
  );
}

/**
 * Takes the mark back without a checkpoint, for a writer that will not run after all: left in
 * the WAL, the next checkpoint (that of a last connection closing included) would put it in the
 * main file and delete -wal, and the next run would refuse a sound journal as one that lost it.
 */
export function withdrawMark(db: Database.Database): void {
  db.prepare(`DELETE FROM meta WHERE key = ?`).run(IN_USE_KEY);
}

/**
 * A clean close. The clearing is a write like any other: it reaches the main file with the
 * checkpoint, and SQLite deletes `-wal` only after checkpointing all of it; so the main file
 * loses its mark exactly when nothing is left in a WAL to lose.
 */
export function clearInUse(db: Database.Database): void {
  withdrawMark(db);
  db.pragma('wal_checkpoint(TRUNCATE)');
}
