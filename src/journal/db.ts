/**
 * The journal's file and its durability: opening (create 0600, pragmas, schema migration,
 * binding to one source account, the lost-WAL guard) and the one way every part writes, a
 * step. popsync's central invariant, "a message is deleted from the POP3 server only after the
 * journal durably records its copy", rests on what this file guarantees:
 *
 * - WAL, and fsync where it matters. Every committed transaction survives a killed process (it
 *   is in the WAL before the call returns). Intents, the records written BEFORE a side effect
 *   ("appending" before APPEND, "deleting" before DELE), are also fsynced (synchronous=FULL),
 *   so not even a power cut can hide a side effect from the next run. Outcomes ("done",
 *   "failed", "deleted"...) are committed with synchronous=NORMAL: a power cut may lose the
 *   last few, and then the next run finds those rows still "appending" and settles them by
 *   looking in the destination (engine/reconcile.ts), the path the crash test exercises. WAL
 *   frames are ordered, so the next intent's fsync makes every earlier outcome durable too:
 *   a "done" is always on disk before the "deleting" that leads to its DELE. This halves the
 *   fsyncs per message (measured: 2.8 s of a 13.3 s copy of 3,000 small messages was fsync).
 *   WAL also lets `status` read while a run writes.
 * - One committed transaction per state change (isync's "one journal line per transition";
 *   SQLite gives us its snapshot + journal for free). Writes use BEGIN IMMEDIATE so a second
 *   writer waits on busy_timeout instead of failing half-way through with SQLITE_BUSY.
 * - The file is bound to its source account on first open: feeding alice's journal to bob's
 *   run would make popsync believe bob's messages were copied (same UIDLs are common).
 * - Mode 0600: the journal names folders and Message-IDs. It never holds a secret.
 */
import { chmodSync, closeSync, existsSync, openSync } from 'node:fs';
import { hostname } from 'node:os';
import Database from 'better-sqlite3';
import { PopsyncError } from '../errors.js';
import { afterCommit, beforeCommit } from './crash-hook.js';
import { journalError } from './errors.js';
import { migrate, readSchemaVersion, SCHEMA_VERSION } from './schema.js';
import { journalFile } from './sidecars.js';
import type { JournalBinding } from './types.js';
import {
  assertWalIntact,
  checkpointMark,
  clearInUse,
  fileState,
  markInUse,
  stepCounter,
  withdrawMark,
} from './wal-guard.js';
import { StepFile } from './wal-step.js';

/** Long enough to outwait another process's single transaction, short enough to report a stuck one. */
export const BUSY_TIMEOUT_MS = 5_000;

export interface JournalOpenOptions {
  /** Create the file when missing (default true). With false, a missing or empty file is an error. */
  create?: boolean;
  /** Clock for the *_at columns; tests pin it. */
  now?: () => Date;
  /**
   * How long one wait for another process's lock may block the thread while opening (default
   * BUSY_TIMEOUT_MS). A caller that tries again between waits of its own (--wait) keeps each try
   * short, so that a signal is handled between them, and sets the run's timeout back once it
   * holds the journal (JournalDb.restoreBusyTimeout).
   */
  busyTimeoutMs?: number;
  /** How long that caller had already waited before this try: a refusal says how long in all. */
  waitedMs?: number;
}

/** `intent` steps precede a side effect on a server and are fsynced; see the module comment. */
export type Durability = 'intent' | 'outcome';

/** One open journal connection, shared by the parts (messages, folders, lock row, runs). */
export class JournalDb {
  readonly path: string;
  readonly source: string;
  readonly conn: Database.Database;
  readonly now: () => Date;
  private readonly stepTx: Database.Transaction<(fn: () => unknown) => unknown>;
  private readonly bookkeepingTx: Database.Transaction<(fn: () => unknown) => unknown>;
  /** Runs inside every step's transaction before its writes (the lock row's "still ours?"). */
  private writeGuard: () => void = () => {};
  /**
   * Write transactions committed since the mark, as the journal file and `-step` count them
   * (wal-guard.ts): every one counts, bookkeeping too, so that no commit (and no checkpoint
   * SQLite runs inside one) leaves the journal file at the count `-step` already holds.
   */
  private committed = 0;
  private readonly countStep: (step: number) => void;
  /** This run's "in use" mark: what the journal file holds while this run is its writer. */
  private readonly mark: string;

  constructor(
    conn: Database.Database,
    path: string,
    binding: JournalBinding,
    now: () => Date,
    mark: string,
    private readonly stepFile: StepFile,
  ) {
    this.conn = conn;
    this.path = path;
    this.source = binding.source;
    this.now = now;
    this.mark = mark;
    this.countStep = stepCounter(conn, path, mark);
    this.stepTx = conn.transaction((fn: () => unknown) => {
      this.writeGuard();
      const result = fn();
      this.countStep(this.committed + 1);
      beforeCommit();
      return result;
    });
    this.bookkeepingTx = conn.transaction((fn: () => unknown) => {
      const result = fn();
      this.countStep(this.committed + 1);
      return result;
    });
  }

  /** Inside the write transaction, so nothing can slip in between the guard's check and the write. */
  guardWrites(guard: () => void): void {
    this.writeGuard = guard;
  }

  /** The clock as the *_at columns store it. */
  nowIso(): string {
    return this.now().toISOString();
  }

  /** One committed transaction = one crash-test step (crash-hook.ts). */
  step<T>(doing: string, fn: () => T, durability: Durability = 'outcome'): T {
    let result: T;
    try {
      // exec, not pragma(): no Statement object and result array per intent. Not a statement
      // prepared once either: SQLite sets the level when it compiles the PRAGMA, not when it runs.
      if (durability === 'intent') this.conn.exec('PRAGMA synchronous = FULL');
      try {
        result = this.stepTx.immediate(fn) as T;
      } finally {
        if (durability === 'intent') this.conn.exec('PRAGMA synchronous = NORMAL');
      }
    } catch (e) {
      throw journalError(e, this.path, doing);
    }
    this.counted();
    afterCommit();
    return result;
  }

  /**
   * A write that is not a crash-test step (the lock row, the run history): counted all the
   * same. Errors are the caller's to name.
   */
  bookkeeping<T>(fn: () => T): T {
    const result = this.bookkeepingTx.immediate(fn) as T;
    this.counted();
    return result;
  }

  /** Right after a commit returned, before the run acts on it. */
  private counted(): void {
    this.committed += 1;
    this.stepFile.record(this.committed);
  }

  read<T>(doing: string, fn: () => T): T {
    try {
      return fn();
    } catch (e) {
      throw journalError(e, this.path, doing);
    }
  }

  /** The run's busy timeout, after an open that waited in short tries (JournalOpenOptions.busyTimeoutMs). */
  restoreBusyTimeout(): void {
    this.conn.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
  }

  close(): void {
    if (!this.conn.open) return;
    try {
      // A run that gave up while opening closes under the short busy timeout of its tries.
      this.restoreBusyTimeout();
      if (clearInUse(this.conn, this.mark)) this.stepFile.remove();
    } catch {
      // The mark stays, with -step: the next open finds the journal file at its count, or a -wal.
    }
    this.stepFile.close();
    this.conn.close();
  }
}

/**
 * Opens (or creates) the journal at `path` for writing and hands the connection to `compose`,
 * which builds the parts on it; a failure anywhere closes the connection and is reported as
 * opening the journal.
 */
export function openJournalDb<T>(
  path: string,
  binding: JournalBinding,
  opts: JournalOpenOptions,
  compose: (db: JournalDb) => T,
): T {
  const create = opts.create ?? true;
  const now = opts.now ?? (() => new Date());
  const busyTimeoutMs = opts.busyTimeoutMs ?? BUSY_TIMEOUT_MS;
  const mark = `${now().toISOString()} by pid ${process.pid} on ${hostname()}`;
  if (!existsSync(path)) {
    if (!create)
      throw new PopsyncError('journal', `no journal at ${path}`, {
        account: binding.source,
        hint: 'run a sync first, or check the journal path',
      });
    try {
      // Created here, not by SQLite, so the file is 0600 from its first byte (SQLite would
      // use 0644 minus umask); SQLite then gives -wal and -shm the same mode.
      closeSync(openSync(path, 'a', 0o600));
    } catch (e) {
      throw journalError(e, path, 'creating the file');
    }
  }

  let db: Database.Database | undefined;
  // What a failure is reported as happening during: an upgrade may rewrite a whole table and
  // needs room for it (a full disk then is the upgrade's, not the journal's, fault).
  let doing = 'opening';
  // Set once this open's "in use" mark is committed: a failure after that takes it back.
  let marked = false;
  let stepFile: StepFile | undefined;
  try {
    db = new Database(path, { fileMustExist: true });
    // busy_timeout first: switching to WAL itself needs a lock another process may hold.
    db.pragma(`busy_timeout = ${busyTimeoutMs}`);
    // The first read rolls back a creation that was killed half-way (hot -journal), so the
    // sizes below are the file's real state. A non-SQLite file fails here (SQLITE_NOTADB).
    db.prepare(`SELECT 1 FROM sqlite_master LIMIT 1`).get();
    const file = fileState(path);
    const opened = db;
    if (create && file.bytes === 0 && file.walBytes === 0) {
      // A new journal: its tables go into the main file (rollback mode) before WAL is on, so
      // that a journal file without tables can only mean a lost WAL (wal-guard.ts).
      opened
        .transaction(() => {
          migrate(opened, path);
          bind(opened, path, binding, now);
        })
        .immediate();
    }
    const mode = db.pragma('journal_mode = WAL', { simple: true });
    if (mode !== 'wal')
      throw new PopsyncError(
        'journal',
        `journal ${path} cannot use write-ahead logging (SQLite reports journal_mode=${String(mode)})`,
        { hint: 'keep the journal on a local file system' },
      );
    // Outcomes; intents raise it to FULL for their own commit (see JournalDb.step()).
    db.pragma('synchronous = NORMAL');
    db.pragma('foreign_keys = ON');
    opened
      .transaction(() => {
        const version = readSchemaVersion(opened, path);
        if (!create && version === 0 && file.bytes === 0) {
          throw new PopsyncError('journal', `${path} is not a popsync journal (it is empty)`, {
            account: binding.source,
            hint: 'run a sync first, or check the journal path',
          });
        }
        assertWalIntact(opened, path, version, file);
        if (version > 0 && version < SCHEMA_VERSION)
          doing = `upgrading it from schema version ${version} to ${SCHEMA_VERSION}`;
        migrate(opened, path);
        bind(opened, path, binding, now);
        markInUse(opened, mark);
      })
      .immediate();
    marked = true;
    // The mark must be in the main file, not only in the WAL it guards. (After an upgrade this
    // copies the rewritten table: the upgrade still, for what a failure is called.)
    checkpointMark(opened, path, (opts.waitedMs ?? 0) + busyTimeoutMs);
    // Only now: until the checkpoint is done, the journal file may still be the last run's (or
    // torn between the two), which the last run's -step describes.
    stepFile = StepFile.start(path, mark, 0);
    doing = 'opening';
    const composed = compose(new JournalDb(opened, path, binding, now, mark, stepFile));
    tightenSidecars(path);
    return composed;
  } catch (e) {
    stepFile?.close();
    try {
      if (marked && db !== undefined) {
        // The tries' short timeout would give up on a writer that holds the journal a moment
        // longer, and leave the mark in the WAL for the next checkpoint to make the file's.
        db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
        withdrawMark(db, mark);
      }
    } catch {
      // Left in the WAL: at worst a later open asks for a -wal that held nothing more.
    }
    try {
      db?.close();
    } catch {
      // Already failing; the original error is the one worth reporting.
    }
    throw journalError(e, path, doing);
  }
}

/** The source account a journal is bound to, or undefined before the first binding. */
export function boundTo(db: Database.Database): string | undefined {
  return (db.prepare(`SELECT value FROM meta WHERE key = 'source'`).get() as { value: string } | undefined)?.value;
}

/**
 * What to remove to start a journal afresh: its files beside the file a symlinked path names,
 * where SQLite and popsync keep them (sidecars.ts); removing the symlink alone left them there.
 */
function removal(path: string): string {
  const file = journalFile(path);
  const files = `${file} (and its -wal, -shm, -step and .lock files)`;
  return file === path ? files : `${files} and the symlink ${path}`;
}

/** Binds a fresh journal to its source account, or refuses a journal bound to another one. */
function bind(db: Database.Database, path: string, binding: JournalBinding, now: () => Date): void {
  const owner = boundTo(db);
  if (owner === undefined) {
    const insert = db.prepare(`INSERT INTO meta (key, value) VALUES (?, ?)`);
    insert.run('source', binding.source);
    insert.run('created_at', now().toISOString());
    return;
  }
  if (owner !== binding.source) {
    // A first run binds the journal before it connects, so a mistyped host binds it to the typo,
    // and the corrected command then met only "each account needs its own journal".
    const empty = (db.prepare('SELECT count(*) AS n FROM messages').get() as { n: number }).n === 0;
    throw new PopsyncError(
      'journal-bound',
      `journal ${path} belongs to source account ${owner}, not ${binding.source}`,
      {
        account: binding.source,
        hint: empty
          ? `it records no message of ${owner}: if that account was a mistake (a mistyped host or user), ` +
            `remove ${removal(path)} and run again`
          : `each POP3 account needs its own journal: use ${owner}'s journal only for that account, ` +
            `and give ${binding.source} a journal file of its own`,
      },
    );
  }
}

/** SQLite copies the database's mode to -wal/-shm; this makes sure when umask or history differ. */
function tightenSidecars(path: string): void {
  const file = journalFile(path);
  for (const suffix of ['-wal', '-shm']) {
    try {
      chmodSync(file + suffix, 0o600);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
  }
}
