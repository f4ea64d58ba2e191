/**
 * The state journal: one SQLite file per source account recording, per POP3 message, how far
 * its copy to IMAP got. It carries popsync's central invariant, "a message is deleted from the
 * POP3 server only after the journal durably records its copy", hence:
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
 * - Every transition goes through states.ts; an illegal one is a bug and changes nothing.
 * - The file is bound to its source account on first open: feeding alice's journal to bob's
 *   run would make popsync believe bob's messages were copied (same UIDLs are common).
 * - Mode 0600: the journal names folders and Message-IDs. It never holds a secret.
 *
 * Every method is synchronous: a state change is committed when the call returns.
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, closeSync, existsSync, openSync } from 'node:fs';
import { hostname } from 'node:os';
import Database from 'better-sqlite3';
import { PopsyncError } from '../errors.js';
import { afterCommit, beforeCommit } from './crash-hook.js';
import { decideLock, describeHolder, processAlive, type LockRecord } from './lock.js';
import type { LockFile } from './lock-file.js';
import { migrate, readSchemaVersion, SCHEMA_VERSION } from './schema.js';
import { assertTransition } from './states.js';
import { assertWalIntact, checkpointKeepingWal, clearInUse, fileState, isLostWal, markInUse } from './wal-guard.js';
import type {
  Adopted,
  BeginAppend,
  FolderRecord,
  JournalBinding,
  JournalCounts,
  JournalIndexRow,
  JournalRow,
  RowState,
} from './types.js';

/** One run of popsync on one account, as `status` and windowed-source detection read it. */
export interface RunRecord {
  id: number;
  account: string;
  command: string;
  startedAt: string;
  finishedAt: string | null;
  listed: number | null;
  /** Messages the listing held that the journal had not seen. */
  newCount: number | null;
  copied: number | null;
  failed: number | null;
  deleted: number | null;
  /** Bytes copied and the run's wall time (schema v4); null for runs recorded before. */
  copiedBytes: number | null;
  durationMs: number | null;
  /** 'ok' | 'partial' | 'error'; null while running or when the run was killed. */
  result: string | null;
  error: string | null;
}

/** Everything `status` shows, read without writing. */
export interface JournalSnapshot {
  source: string | null;
  schemaVersion: number;
  accounts: Array<{ account: string; rows: JournalRow[]; runs: RunRecord[]; lock: LockRecord | null }>;
}

export interface LockOptions {
  command: string;
  /** Tests replace the liveness probe, host name and clock. */
  isAlive?: (pid: number) => boolean;
  hostname?: string;
  pid?: number;
  staleMs?: number;
}

export type LockAttempt =
  | { ok: true; token: string; tookOver: (LockRecord & { reason: string }) | null }
  | { ok: false; holder: LockRecord; why: 'live-row' | 'other-host' };

export interface JournalOpenOptions {
  /** Create the file when missing (default true). With false, a missing or empty file is an error. */
  create?: boolean;
  /** Clock for the *_at columns; tests pin it. */
  now?: () => Date;
}

/** Long enough to outwait another process's single transaction, short enough to report a stuck one. */
const BUSY_TIMEOUT_MS = 5_000;
/** Server error texts can be long; the journal keeps enough to act on. */
const MAX_ERROR_CHARS = 4_000;

interface MessageRecord {
  account: string;
  uidl: string;
  state: RowState;
  size: number;
  sha256: string | null;
  message_id: string | null;
  folder: string | null;
  dest_uidvalidity: string | null;
  dest_uidnext: number | null;
  dest_uid: number | null;
  attempts: number;
  last_error: string | null;
  first_seen_at: string;
  updated_at: string;
  copied_at: string | null;
  flags: string | null;
  internal_date: string | null;
  date_source: string | null;
  seen_source: string | null;
  folder_rule: string | null;
  header_hash?: string | null;
  list_size?: number | null;
  deleted_at?: string | null;
  vanished_at?: string | null;
  fingerprint?: string | null;
}

interface LockRow {
  account: string;
  pid: number;
  hostname: string;
  holder_id: string;
  command: string;
  started_at: string;
  heartbeat_at: string;
}

interface RunRow {
  id: number;
  account: string;
  command: string;
  started_at: string;
  finished_at: string | null;
  listed: number | null;
  new_count: number | null;
  copied: number | null;
  failed: number | null;
  deleted: number | null;
  copied_bytes?: number | null;
  duration_ms?: number | null;
  result: string | null;
  error: string | null;
}

/** The transfer rate earlier runs achieved, for `plan`'s estimate. */
export interface MeasuredRate {
  runs: number;
  bytes: number;
  ms: number;
}

function toLock(r: LockRow): LockRecord {
  return {
    account: r.account,
    pid: r.pid,
    hostname: r.hostname,
    token: r.holder_id,
    command: r.command,
    startedAt: r.started_at,
    heartbeatAt: r.heartbeat_at,
  };
}

function toRun(r: RunRow): RunRecord {
  return {
    id: r.id,
    account: r.account,
    command: r.command,
    startedAt: r.started_at,
    finishedAt: r.finished_at,
    listed: r.listed,
    newCount: r.new_count,
    copied: r.copied,
    failed: r.failed,
    deleted: r.deleted,
    copiedBytes: r.copied_bytes ?? null,
    durationMs: r.duration_ms ?? null,
    result: r.result,
    error: r.error,
  };
}

function toRow(r: MessageRecord): JournalRow {
  return {
    account: r.account,
    uidl: r.uidl,
    state: r.state,
    size: r.size,
    sha256: r.sha256,
    messageId: r.message_id,
    folder: r.folder,
    destUidValidity: r.dest_uidvalidity === null ? null : BigInt(r.dest_uidvalidity),
    destUidNext: r.dest_uidnext,
    destUid: r.dest_uid,
    attempts: r.attempts,
    lastError: r.last_error,
    firstSeenAt: r.first_seen_at,
    updatedAt: r.updated_at,
    copiedAt: r.copied_at,
    provenance:
      r.date_source == null
        ? null
        : {
            flags: r.flags === null ? [] : (JSON.parse(r.flags) as string[]),
            internalDate: r.internal_date,
            dateSource: r.date_source,
            seenSource: r.seen_source,
            folderRule: r.folder_rule,
          },
    headerHash: r.header_hash ?? null,
    fingerprint: r.fingerprint ?? null,
    listSize: r.list_size ?? null,
    deletedAt: r.deleted_at ?? null,
    vanishedAt: r.vanished_at ?? null,
  };
}

function isSqliteError(e: unknown): e is InstanceType<typeof Database.SqliteError> {
  return e instanceof Database.SqliteError;
}

/**
 * Turns whatever SQLite or the file system threw into a PopsyncError the CLI can print without
 * a stack trace. Constraint violations are popsync bugs; busy means another writer holds the
 * file; everything else (corrupt, not a database, I/O, disk full) means the journal is unusable.
 */
function journalError(e: unknown, path: string, doing: string): PopsyncError {
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
    return new PopsyncError(
      'journal',
      `journal ${path} is unusable while ${doing}: ${detail} (${e.code})`,
      {
        hint: 'if the file is corrupt, restore it from a backup or move it aside; a fresh journal forgets what was already copied',
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

function checkUidValidity(v: bigint, what: string): string {
  if (typeof v !== 'bigint' || v < 0n)
    throw new PopsyncError('internal', `${what}: UIDVALIDITY must be a non-negative bigint, got ${String(v)}`);
  return v.toString();
}

function checkCount(n: number, what: string, min: number): void {
  if (!Number.isSafeInteger(n) || n < min)
    throw new PopsyncError('internal', `${what} must be an integer >= ${min}, got ${String(n)}`);
}

export class Journal {
  readonly path: string;
  readonly source: string;
  private readonly db: Database.Database;
  private readonly now: () => Date;
  private readonly stepTx: Database.Transaction<(fn: () => unknown) => unknown>;
  private readonly sql;
  /** The lock row this connection wrote (tryLock); every write step first checks it is still ours. */
  private held: { account: string; token: string } | null = null;

  /**
   * The rows of `account` without writing anything (for dry runs): no file is created, no
   * schema is upgraded, but the source binding is still enforced. No journal yet: null.
   */
  static peek(path: string, binding: JournalBinding, account: string): Map<string, JournalRow> | null {
    return readOnly(path, (db) => {
      const owner = db.prepare(`SELECT value FROM meta WHERE key = 'source'`).get() as { value: string } | undefined;
      if (owner !== undefined && owner.value !== binding.source) {
        throw new PopsyncError(
          'journal-bound',
          `journal ${path} belongs to source account ${owner.value}, not ${binding.source}`,
          { account: binding.source },
        );
      }
      const rows = db
        .prepare<[string], MessageRecord>(`SELECT * FROM messages WHERE account = ? ORDER BY rowid`)
        .all(account);
      return new Map(rows.map((r) => [r.uidl, toRow(r)] as const));
    });
  }

  static open(path: string, binding: JournalBinding, opts: JournalOpenOptions = {}): Journal {
    const create = opts.create ?? true;
    const now = opts.now ?? (() => new Date());
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
    try {
      db = new Database(path, { fileMustExist: true });
      // busy_timeout first: switching to WAL itself needs a lock another process may hold.
      db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
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
      // Outcomes; intents raise it to FULL for their own commit (see step()).
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
          migrate(opened, path);
          bind(opened, path, binding, now);
          markInUse(opened, `${now().toISOString()} by pid ${process.pid} on ${hostname()}`);
        })
        .immediate();
      // The mark must be in the main file, not only in the WAL it guards.
      checkpointKeepingWal(opened);
      const journal = new Journal(opened, path, binding, now);
      tightenSidecars(path);
      return journal;
    } catch (e) {
      try {
        db?.close();
      } catch {
        // Already failing; the original error is the one worth reporting.
      }
      throw journalError(e, path, 'opening');
    }
  }

  private constructor(db: Database.Database, path: string, binding: JournalBinding, now: () => Date) {
    this.db = db;
    this.path = path;
    this.source = binding.source;
    this.now = now;
    this.stepTx = db.transaction((fn: () => unknown) => {
      this.assertStillHeld();
      const result = fn();
      beforeCommit();
      return result;
    });
    this.sql = {
      get: db.prepare<[string, string], MessageRecord>(`SELECT * FROM messages WHERE account = ? AND uidl = ?`),
      all: db.prepare<[string], MessageRecord>(`SELECT * FROM messages WHERE account = ? ORDER BY rowid`),
      index: db.prepare<
        [string],
        Pick<MessageRecord, 'uidl' | 'state' | 'size' | 'copied_at'> & {
          list_size: number | null;
          header_hash: string | null;
          vanished_at: string | null;
        }
      >(
        `SELECT uidl, state, size, list_size, header_hash, vanished_at, copied_at FROM messages WHERE account = ? ORDER BY rowid`,
      ),
      inState: db.prepare<[string, string], MessageRecord>(
        `SELECT * FROM messages WHERE account = ? AND state = ? ORDER BY rowid`,
      ),
      counts: db.prepare<[string], { state: RowState; n: number }>(
        `SELECT state, COUNT(*) AS n FROM messages WHERE account = ? GROUP BY state`,
      ),
      begin: db.prepare(`
        INSERT INTO messages (account, uidl, state, size, sha256, message_id, folder, dest_uidvalidity, dest_uidnext,
                              dest_uid, attempts, last_error, first_seen_at, updated_at, copied_at,
                              flags, internal_date, date_source, seen_source, folder_rule, header_hash, list_size, fingerprint)
        VALUES (@account, @uidl, 'appending', @size, @sha256, @messageId, @folder, @destUidValidity, @destUidNext,
                NULL, 1, NULL, @now, @now, NULL, @flags, @internalDate, @dateSource, @seenSource, @folderRule,
                @headerHash, @listSize, @fingerprint)
        ON CONFLICT (account, uidl) DO UPDATE SET
          state = 'appending', size = excluded.size, sha256 = excluded.sha256, message_id = excluded.message_id,
          folder = excluded.folder, dest_uidvalidity = excluded.dest_uidvalidity, dest_uidnext = excluded.dest_uidnext,
          dest_uid = NULL, attempts = attempts + 1, updated_at = excluded.updated_at,
          flags = excluded.flags, internal_date = excluded.internal_date, date_source = excluded.date_source,
          seen_source = excluded.seen_source, folder_rule = excluded.folder_rule,
          header_hash = excluded.header_hash, list_size = COALESCE(excluded.list_size, list_size),
          fingerprint = excluded.fingerprint`),
      adopt: db.prepare(`
        INSERT INTO messages (account, uidl, state, size, sha256, message_id, folder, dest_uidvalidity, dest_uidnext,
                              dest_uid, attempts, last_error, first_seen_at, updated_at, copied_at,
                              flags, internal_date, date_source, seen_source, folder_rule, header_hash, list_size, fingerprint)
        VALUES (@account, @uidl, 'done', @size, @sha256, @messageId, @folder, @destUidValidity, @destUid,
                @destUid, 0, NULL, @now, @now, @now, @flags, @internalDate, @dateSource, @seenSource, @folderRule,
                @headerHash, @listSize, @fingerprint)
        ON CONFLICT (account, uidl) DO UPDATE SET
          state = 'done', size = excluded.size, sha256 = excluded.sha256, message_id = excluded.message_id,
          folder = excluded.folder, dest_uidvalidity = excluded.dest_uidvalidity, dest_uidnext = excluded.dest_uidnext,
          dest_uid = excluded.dest_uid, copied_at = excluded.copied_at, updated_at = excluded.updated_at,
          flags = excluded.flags, internal_date = excluded.internal_date, date_source = excluded.date_source,
          seen_source = excluded.seen_source, folder_rule = excluded.folder_rule,
          header_hash = excluded.header_hash, list_size = COALESCE(excluded.list_size, list_size),
          fingerprint = excluded.fingerprint`),
      learnUid: db.prepare(`
        UPDATE messages SET dest_uid = @destUid, updated_at = @now
        WHERE account = @account AND uidl = @uidl AND dest_uid IS NULL AND state IN ('done', 'deleting', 'deleted')`),
      uidless: db.prepare<[string, string, string], MessageRecord>(
        `SELECT * FROM messages WHERE account = ? AND folder = ? AND dest_uidvalidity = ? AND state IN ('done', 'deleting', 'deleted') AND dest_uid IS NULL ORDER BY rowid`,
      ),
      inFolderState: db.prepare<[string, string], { state: RowState; n: number }>(
        `SELECT state, COUNT(*) AS n FROM messages WHERE account = ? AND folder = ? GROUP BY state`,
      ),
      forgetRows: db.prepare(
        `DELETE FROM messages WHERE account = ? AND folder = ? AND state IN ('appending', 'done', 'failed')`,
      ),
      forgetFolder: db.prepare(`DELETE FROM folders WHERE account = ? AND folder = ?`),
      confirm: db.prepare(`
        UPDATE messages SET state = 'done', dest_uidvalidity = @destUidValidity, dest_uid = @destUid,
                            copied_at = @now, updated_at = @now
        WHERE account = @account AND uidl = @uidl`),
      fail: db.prepare(
        `UPDATE messages SET state = 'failed', last_error = @error, updated_at = @now WHERE account = @account AND uidl = @uidl`,
      ),
      copyMissing: db.prepare(
        `UPDATE messages SET state = 'failed', last_error = @error, dest_uid = NULL, copied_at = NULL, updated_at = @now WHERE account = @account AND uidl = @uidl`,
      ),
      doneUids: db.prepare<[string, string, string], { dest_uid: number }>(
        `SELECT dest_uid FROM messages WHERE account = ? AND folder = ? AND dest_uidvalidity = ? AND state IN ('done', 'deleting', 'deleted') AND dest_uid IS NOT NULL`,
      ),
      uidOwner: db.prepare<[string, string, string, number], { uidl: string }>(
        `SELECT uidl FROM messages WHERE account = ? AND folder = ? AND dest_uidvalidity = ? AND dest_uid = ? AND state IN ('done', 'deleting', 'deleted')`,
      ),
      folder: db.prepare<[string, string], { uidvalidity: string; adopt_below: number | null }>(
        `SELECT uidvalidity, adopt_below FROM folders WHERE account = ? AND folder = ?`,
      ),
      addFolder: db.prepare(
        `INSERT INTO folders (account, folder, uidvalidity, first_seen_at, adopt_below) VALUES (?, ?, ?, ?, ?)`,
      ),
      replaceFolder: db.prepare(`UPDATE folders SET uidvalidity = ?, adopt_below = ? WHERE account = ? AND folder = ?`),
      endAdoption: db.prepare(`UPDATE folders SET adopt_below = NULL WHERE account = ? AND adopt_below IS NOT NULL`),
      setState: db.prepare(
        `UPDATE messages SET state = @state, updated_at = @now WHERE account = @account AND uidl = @uidl`,
      ),
      setDeleted: db.prepare(
        `UPDATE messages SET state = 'deleted', deleted_at = @now, updated_at = @now WHERE account = @account AND uidl = @uidl`,
      ),
      setListSize: db.prepare(
        `UPDATE messages SET list_size = @listSize, vanished_at = NULL WHERE account = @account AND uidl = @uidl`,
      ),
      setVanished: db.prepare(
        `UPDATE messages SET vanished_at = @now WHERE account = @account AND uidl = @uidl AND vanished_at IS NULL`,
      ),
      rekey: db.prepare(`UPDATE messages SET uidl = @to, updated_at = @now WHERE account = @account AND uidl = @from`),
      lockGet: db.prepare<[string], LockRow>(`SELECT * FROM locks WHERE account = ?`),
      lockPut: db.prepare(`
        INSERT INTO locks (account, pid, hostname, holder_id, command, started_at, heartbeat_at)
        VALUES (@account, @pid, @hostname, @token, @command, @now, @now)
        ON CONFLICT (account) DO UPDATE SET pid = excluded.pid, hostname = excluded.hostname, holder_id = excluded.holder_id,
          command = excluded.command, started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at`),
      lockBeat: db.prepare(`UPDATE locks SET heartbeat_at = @now WHERE account = @account AND holder_id = @token`),
      lockDrop: db.prepare(`DELETE FROM locks WHERE account = ? AND holder_id = ?`),
      runBegin: db.prepare(`INSERT INTO runs (account, command, started_at) VALUES (?, ?, ?)`),
      runEnd: db.prepare(`
        UPDATE runs SET finished_at = @now, listed = @listed, new_count = @newCount, copied = @copied, failed = @failed,
          deleted = @deleted, result = @result, error = @error, copied_bytes = @copiedBytes, duration_ms = @durationMs WHERE id = @id`),
      runsRecent: db.prepare<[string, number], RunRow>(`SELECT * FROM runs WHERE account = ? ORDER BY id DESC LIMIT ?`),
    };
  }

  /** One committed transaction = one crash-test step. */
  /**
   * One committed transaction = one crash-test step. `intent` steps precede a side effect on a
   * server and are fsynced; the others rely on reconciliation after a power cut (module comment).
   */
  private step<T>(doing: string, fn: () => T, durability: 'intent' | 'outcome' = 'outcome'): T {
    let result: T;
    try {
      if (durability === 'intent') this.db.pragma('synchronous = FULL');
      try {
        result = this.stepTx.immediate(fn) as T;
      } finally {
        if (durability === 'intent') this.db.pragma('synchronous = NORMAL');
      }
    } catch (e) {
      throw journalError(e, this.path, doing);
    }
    afterCommit();
    return result;
  }

  /**
   * Inside the write transaction, so no takeover can slip in between the check and the write.
   * A run whose lock row was taken over (possible only across hosts, see lock.ts) stops here,
   * before the intent that would precede its next APPEND or DELE, rather than copy beside the
   * run that now owns the account.
   */
  private assertStillHeld(): void {
    if (this.held === null) return;
    const { account, token } = this.held;
    const row = this.sql.lockGet.get(account);
    if (row?.holder_id === token) return;
    throw new PopsyncError(
      'locked',
      `this run no longer holds the lock of ${account}: ${row === undefined ? 'its lock row is gone' : `it is now held by ${describeHolder(toLock(row))}`}; stopped before writing to the journal`,
      {
        account,
        hint: 'another run took the lock over, which happens only when this one, on another host, sent no heartbeat for longer than the stale limit; that run carries on. Nothing was copied twice by this run; run again once it has finished',
      },
    );
  }

  private read<T>(doing: string, fn: () => T): T {
    try {
      return fn();
    } catch (e) {
      throw journalError(e, this.path, doing);
    }
  }

  /** The UID must not already be some row's copy: two rows on one copy lose a message. */
  private claimable(account: string, folder: string, uidValidity: string, uid: number, uidl: string): void {
    const owner = this.sql.uidOwner.get(account, folder, uidValidity, uid);
    if (owner !== undefined && owner.uidl !== uidl) {
      throw new PopsyncError(
        'internal',
        `UID ${uid} in ${folder} already belongs to message ${owner.uidl}; it cannot also be the copy of ${uidl}`,
        {
          account,
          uidl,
          folder,
          hint: 'this is a bug in popsync; the journal was left unchanged',
        },
      );
    }
  }

  /** A row's folder must still have the UIDVALIDITY the journal recorded for it, if any. */
  private sameUidValidity(account: string, folder: string, value: string, uidl: string): void {
    const known = this.sql.folder.get(account, folder);
    if (known !== undefined && known.uidvalidity !== value)
      throw uidValidityChanged(account, folder, known.uidvalidity, value, uidl);
  }

  get(account: string, uidl: string): JournalRow | undefined {
    return this.read('reading a message', () => {
      const r = this.sql.get.get(account, uidl);
      return r === undefined ? undefined : toRow(r);
    });
  }

  /** uidl -> the fields that decide what a run does (types.ts JournalIndexRow), cheaply. */
  indexByUidl(account: string): Map<string, JournalIndexRow> {
    return this.read('reading messages', () => {
      const out = new Map<string, JournalIndexRow>();
      for (const r of this.sql.index.all(account)) {
        out.set(r.uidl, {
          uidl: r.uidl,
          state: r.state,
          size: r.size,
          listSize: r.list_size,
          headerHash: r.header_hash,
          vanishedAt: r.vanished_at,
          copiedAt: r.copied_at,
        });
      }
      return out;
    });
  }

  rowsByUidl(account: string): Map<string, JournalRow> {
    return this.read(
      'reading messages',
      () => new Map(this.sql.all.all(account).map((r) => [r.uidl, toRow(r)] as const)),
    );
  }

  rowsInState(account: string, state: RowState): JournalRow[] {
    return this.read('reading messages', () => this.sql.inState.all(account, state).map(toRow));
  }

  counts(account: string): JournalCounts {
    return this.read('counting messages', () => {
      const c: JournalCounts = { done: 0, appending: 0, failed: 0 };
      for (const { state, n } of this.sql.counts.all(account)) c[state] = n;
      return c;
    });
  }

  /**
   * Records the intent to APPEND every item, in one transaction (one fsync for the batch, as
   * isync does before copying). New rows start at attempts 1; a retried row counts up. An empty
   * batch writes nothing and is not a step.
   */
  beginAppend(account: string, items: readonly BeginAppend[]): void {
    if (items.length === 0) return;
    const seen = new Set<string>();
    const params = items.map((it) => {
      if (seen.has(it.uidl))
        throw new PopsyncError('internal', `beginAppend: message ${it.uidl} appears twice in one batch`, {
          account,
          uidl: it.uidl,
        });
      seen.add(it.uidl);
      checkCount(it.size, `beginAppend ${it.uidl}: size`, 0);
      checkCount(it.destUidNext, `beginAppend ${it.uidl}: destUidNext`, 1);
      return {
        account,
        uidl: it.uidl,
        size: it.size,
        sha256: it.sha256,
        messageId: it.messageId,
        folder: it.folder,
        destUidValidity: checkUidValidity(it.destUidValidity, `beginAppend ${it.uidl}`),
        destUidNext: it.destUidNext,
        flags: it.provenance ? JSON.stringify(it.provenance.flags) : null,
        internalDate: it.provenance?.internalDate ?? null,
        dateSource: it.provenance?.dateSource ?? null,
        seenSource: it.provenance?.seenSource ?? null,
        folderRule: it.provenance?.folderRule ?? null,
        headerHash: it.headerHash ?? null,
        listSize: it.listSize ?? null,
        fingerprint: it.fingerprint ?? null,
      };
    });
    this.step(
      'recording messages about to be copied',
      () => {
        const now = this.now().toISOString();
        for (const p of params) {
          assertTransition(this.sql.get.get(account, p.uidl)?.state ?? null, 'appending', { account, uidl: p.uidl });
          this.sameUidValidity(account, p.folder, p.destUidValidity, p.uidl);
          this.sql.begin.run({ ...p, now });
        }
      },
      'intent',
    );
  }

  /**
   * The copy exists in the destination. `destUid` is null when the server gave no UID and none
   * was searched for. A UID already owned by another done row is refused: two rows pointing at
   * one copy would mean one message was never copied.
   */
  confirm(account: string, uidl: string, to: { destUidValidity: bigint; destUid: number | null }): void {
    const destUidValidity = checkUidValidity(to.destUidValidity, `confirm ${uidl}`);
    if (to.destUid !== null) checkCount(to.destUid, `confirm ${uidl}: destUid`, 1);
    this.step('recording a copied message', () => {
      const row = this.sql.get.get(account, uidl);
      assertTransition(row?.state ?? null, 'done', { account, uidl });
      // An APPEND's outcome settles its intent; the other ways into 'done' are adopt()'s.
      if (row?.state !== 'appending') {
        throw new PopsyncError(
          'internal',
          `illegal journal transition ${row?.state ?? '(no row)'} -> done (confirm) for message ${uidl}`,
          {
            account,
            uidl,
            hint: 'this is a bug in popsync; the journal was left unchanged',
          },
        );
      }
      const folder = row?.folder ?? null;
      if (folder === null)
        throw new PopsyncError('internal', `confirm: message ${uidl} has no destination folder`, { account, uidl });
      this.sameUidValidity(account, folder, destUidValidity, uidl);
      if (to.destUid !== null) {
        const owner = this.sql.uidOwner.get(account, folder, destUidValidity, to.destUid);
        if (owner !== undefined) {
          throw new PopsyncError(
            'internal',
            `UID ${to.destUid} in ${folder} already belongs to message ${owner.uidl}; it cannot also be the copy of ${uidl}`,
            {
              account,
              uidl,
              folder,
              hint: 'this is a bug in popsync; the journal was left unchanged',
            },
          );
        }
      }
      this.sql.confirm.run({ account, uidl, destUidValidity, destUid: to.destUid, now: this.now().toISOString() });
    });
  }

  /** The destination refused this message. The error text is kept (also across a later retry). */
  fail(account: string, uidl: string, error: string): void {
    this.step('recording a failed message', () => {
      const from = this.sql.get.get(account, uidl)?.state ?? null;
      // done -> failed is legal only with the proof markCopyMissing takes, never for a refusal.
      if (from === 'done') {
        throw new PopsyncError(
          'internal',
          `illegal journal transition done -> failed for message ${uidl}: a confirmed copy fails only when proven missing`,
          {
            account,
            uidl,
            hint: 'this is a bug in popsync; the journal was left unchanged',
          },
        );
      }
      assertTransition(from, 'failed', { account, uidl });
      this.sql.fail.run({ account, uidl, error: error.slice(0, MAX_ERROR_CHARS), now: this.now().toISOString() });
    });
  }

  /** UIDs already claimed by done rows, so reconcile never hands one UID to a second row. */
  /** The message whose copy this destination UID is, or null. */
  uidOwner(account: string, folder: string, uidValidity: bigint, uid: number): string | null {
    const v = checkUidValidity(uidValidity, 'uidOwner');
    return this.read('reading a UID owner', () => this.sql.uidOwner.get(account, folder, v, uid)?.uidl ?? null);
  }

  doneUidsIn(account: string, folder: string, uidValidity: bigint): Set<number> {
    const v = checkUidValidity(uidValidity, 'doneUidsIn');
    return this.read(
      'reading copied UIDs',
      () => new Set(this.sql.doneUids.all(account, folder, v).map((r) => r.dest_uid)),
    );
  }

  folderUidValidity(account: string, folder: string): bigint | null {
    return this.read('reading a folder', () => {
      const r = this.sql.folder.get(account, folder);
      return r === undefined ? null : BigInt(r.uidvalidity);
    });
  }

  /**
   * What the journal knows of a folder a run opens, recording what changed (a step, only when
   * something did). First sight records its UIDVALIDITY, and when the folder already holds mail
   * that this journal did not put there, `adoptBelow` (its UIDNEXT): copies below it are looked
   * for before anything is appended (engine/adopter.ts). A changed UIDVALIDITY (the folder was
   * deleted and recreated, or Courier renumbered a fresh INBOX) is accepted the same way: every
   * UID recorded under the old value may now name another message, so rows done under it keep
   * their history but claim nothing, rows still 'appending' under it are settled by content
   * (engine/reconciler.ts), and the folder's mail is searched again like a folder never seen.
   */
  recordFolder(
    account: string,
    folder: string,
    uidValidity: bigint,
    seen: { uidNext: number; messages: number | null } = { uidNext: 0, messages: null },
  ): FolderRecord {
    const v = checkUidValidity(uidValidity, `recordFolder ${folder}`);
    // A folder that holds no message has nothing to adopt; an unknown count may hold some.
    const adoptBelow = seen.messages === 0 || seen.uidNext <= 1 ? null : seen.uidNext;
    const known = this.read('reading a folder', () => this.sql.folder.get(account, folder));
    if (known !== undefined && known.uidvalidity === v)
      return { first: false, replaced: null, adoptBelow: known.adopt_below };
    return this.step('recording a folder', () => {
      // Re-read inside the write lock: another process may have recorded it meanwhile.
      const again = this.sql.folder.get(account, folder);
      if (again === undefined) {
        this.sql.addFolder.run(account, folder, v, this.now().toISOString(), adoptBelow);
        return { first: true, replaced: null, adoptBelow };
      }
      if (again.uidvalidity === v) return { first: false, replaced: null, adoptBelow: again.adopt_below };
      this.sql.replaceFolder.run(v, adoptBelow, account, folder);
      return { first: false, replaced: BigInt(again.uidvalidity), adoptBelow };
    });
  }

  /**
   * Copies found in the destination before any APPEND of them (adoption): rows with no row,
   * 'failed' or 'appending' become 'done' with the UID found, in one step. The UID must be
   * free, like confirm's.
   */
  adopt(account: string, items: readonly Adopted[]): void {
    if (items.length === 0) return;
    this.step('recording copies found in the destination', () => {
      const now = this.now().toISOString();
      for (const it of items) {
        checkCount(it.destUid, `adopt ${it.uidl}: destUid`, 1);
        const v = checkUidValidity(it.destUidValidity, `adopt ${it.uidl}`);
        assertTransition(this.sql.get.get(account, it.uidl)?.state ?? null, 'done', { account, uidl: it.uidl });
        this.sameUidValidity(account, it.folder, v, it.uidl);
        this.claimable(account, it.folder, v, it.destUid, it.uidl);
        this.sql.adopt.run({
          account,
          uidl: it.uidl,
          size: it.size,
          sha256: it.sha256,
          messageId: it.messageId,
          folder: it.folder,
          destUidValidity: v,
          destUid: it.destUid,
          flags: it.provenance ? JSON.stringify(it.provenance.flags) : null,
          internalDate: it.provenance?.internalDate ?? null,
          dateSource: it.provenance?.dateSource ?? null,
          seenSource: it.provenance?.seenSource ?? null,
          folderRule: it.provenance?.folderRule ?? null,
          headerHash: it.headerHash ?? null,
          listSize: it.listSize ?? null,
          fingerprint: it.fingerprint ?? null,
          now,
        });
      }
    });
  }

  /**
   * The UIDs of copies the server stored without saying where (no UIDPLUS), once found by
   * content: each row with a copy but no UID gets the one given. One step for all.
   */
  learnUids(account: string, found: ReadonlyArray<{ uidl: string; destUid: number }>): void {
    if (found.length === 0) return;
    this.step('recording the UIDs of copies', () => {
      const now = this.now().toISOString();
      for (const f of found) {
        checkCount(f.destUid, `learnUids ${f.uidl}: destUid`, 1);
        const row = this.sql.get.get(account, f.uidl);
        if (
          row === undefined ||
          row.folder === null ||
          row.dest_uidvalidity === null ||
          row.dest_uid !== null ||
          !['done', 'deleting', 'deleted'].includes(row.state)
        ) {
          throw new PopsyncError('internal', `learnUids: message ${f.uidl} is not a copy without a UID`, {
            account,
            uidl: f.uidl,
          });
        }
        this.claimable(account, row.folder, row.dest_uidvalidity, f.destUid, f.uidl);
        this.sql.learnUid.run({ account, uidl: f.uidl, destUid: f.destUid, now });
      }
    });
  }

  /** Rows with a copy in `folder` (under this UIDVALIDITY) whose UID the server never told. */
  copiesWithoutUid(account: string, folder: string, uidValidity: bigint): JournalRow[] {
    const v = checkUidValidity(uidValidity, 'copiesWithoutUid');
    return this.read('reading copies without a UID', () => this.sql.uidless.all(account, folder, v).map(toRow));
  }

  /**
   * A run went through its whole listing: every message that could have a copy made before
   * this journal knew the folder has been looked for, so later runs stop searching.
   */
  endAdoption(account: string): void {
    const pending = this.read('reading folders', () =>
      this.db.prepare(`SELECT 1 FROM folders WHERE account = ? AND adopt_below IS NOT NULL LIMIT 1`).get(account),
    );
    if (pending === undefined) return;
    this.step('recording folders searched for copies', () => {
      this.sql.endAdoption.run(account);
    });
  }

  /**
   * Forgets one destination folder: its record and the rows of messages copied (or being
   * copied, or refused) into it, so the next run treats the folder as never seen, adopts the
   * copies still there and copies only what is missing. Rows deleted from the source stay (they
   * cannot be copied again and their UIDs stay claimed). Refused while a deletion is in
   * flight. Returns how many rows were forgotten and how many deleted ones were kept.
   */
  forgetFolder(account: string, folder: string): { forgotten: number; kept: number } {
    return this.step('forgetting a folder', () => {
      const counts = new Map(this.sql.inFolderState.all(account, folder).map((r) => [r.state, r.n] as const));
      if ((counts.get('deleting') ?? 0) > 0) {
        throw new PopsyncError(
          'usage',
          `${counts.get('deleting')} message(s) copied into "${folder}" are being deleted from the source`,
          {
            account,
            folder,
            hint: 'run sync once more to settle the deletion (no mail is copied twice), then forget the folder',
          },
        );
      }
      const forgotten = this.sql.forgetRows.run(account, folder).changes;
      this.sql.forgetFolder.run(account, folder);
      return { forgotten, kept: counts.get('deleted') ?? 0 };
    });
  }

  /**
   * Records the LIST size of rows that have none yet (journals from before v3) and clears
   * vanished_at of rows listed again. One step, and only when there is something to write.
   */
  setListSizes(account: string, entries: ReadonlyArray<{ uidl: string; listSize: number }>): void {
    if (entries.length === 0) return;
    this.step('recording listed sizes', () => {
      for (const e of entries) this.sql.setListSize.run({ account, uidl: e.uidl, listSize: e.listSize });
    });
  }

  /** Copied messages that left the listing although popsync did not delete them. */
  markVanished(account: string, uidls: readonly string[]): void {
    if (uidls.length === 0) return;
    this.step('recording vanished messages', () => {
      const now = this.now().toISOString();
      for (const uidl of uidls) this.sql.setVanished.run({ account, uidl, now });
    });
  }

  /**
   * Gives rows new keys in one step: a message the server now lists under another UIDL, or an
   * old row moved aside because its UIDL now names a different message. The target key must be
   * free; the source row keeps its state, copy and history.
   */
  rekey(account: string, moves: ReadonlyArray<{ from: string; to: string }>): void {
    if (moves.length === 0) return;
    this.step('re-keying messages', () => {
      const now = this.now().toISOString();
      for (const m of moves) {
        if (this.sql.get.get(account, m.from) === undefined)
          throw new PopsyncError('internal', `rekey: no message ${m.from}`, { account, uidl: m.from });
        if (this.sql.get.get(account, m.to) !== undefined)
          throw new PopsyncError('internal', `rekey: ${m.to} is already taken`, { account, uidl: m.to });
        this.sql.rekey.run({ account, from: m.from, to: m.to, now });
      }
    });
  }

  /**
   * done -> failed for a copy proven absent: `seen` says where it was looked for, and must be
   * exactly the copy this row records (folder, UIDVALIDITY, UID), else nothing is written: a
   * look at another folder or an older UIDVALIDITY proves nothing about this copy. The row then
   * is an ordinary failed message with `reason`, and the next run copies it again.
   */
  markCopyMissing(
    account: string,
    uidl: string,
    seen: { folder: string; uidValidity: bigint; uid: number },
    reason: string,
  ): void {
    const v = checkUidValidity(seen.uidValidity, `markCopyMissing ${uidl}`);
    this.step('recording a copy missing from the destination', () => {
      const row = this.sql.get.get(account, uidl);
      assertTransition(row?.state ?? null, 'failed', { account, uidl });
      if (row!.folder !== seen.folder || row!.dest_uidvalidity !== v || row!.dest_uid !== seen.uid) {
        throw new PopsyncError(
          'internal',
          `markCopyMissing: message ${uidl} was copied to UID ${row!.dest_uid ?? '?'} in ${row!.folder ?? '?'} (UIDVALIDITY ${row!.dest_uidvalidity ?? '?'}), not where it was looked for`,
          {
            account,
            uidl,
            hint: 'this is a bug in popsync; the journal was left unchanged',
          },
        );
      }
      this.sql.copyMissing.run({
        account,
        uidl,
        error: reason.slice(0, MAX_ERROR_CHARS),
        now: this.now().toISOString(),
      });
    });
  }

  /** done -> deleting for every row, committed before the first DELE is sent. */
  markDeleting(account: string, uidls: readonly string[]): void {
    this.moveAll(account, uidls, 'deleting', 'recording messages about to be deleted');
  }

  /**
   * Settles 'deleting' rows: `deleted` ones are gone from the server (QUIT said +OK, or they
   * are no longer listed), `kept` ones are still there and go back to 'done'. One step.
   */
  settleDeleting(account: string, outcome: { deleted: readonly string[]; kept: readonly string[] }): void {
    if (outcome.deleted.length === 0 && outcome.kept.length === 0) return;
    this.step('recording deleted messages', () => {
      const now = this.now().toISOString();
      for (const uidl of outcome.deleted) {
        assertTransition(this.sql.get.get(account, uidl)?.state ?? null, 'deleted', { account, uidl });
        this.sql.setDeleted.run({ account, uidl, now });
      }
      for (const uidl of outcome.kept) {
        assertTransition(this.sql.get.get(account, uidl)?.state ?? null, 'done', { account, uidl });
        this.sql.setState.run({ account, uidl, state: 'done', now });
      }
    });
  }

  private moveAll(account: string, uidls: readonly string[], to: RowState, doing: string): void {
    if (uidls.length === 0) return;
    this.step(
      doing,
      () => {
        const now = this.now().toISOString();
        for (const uidl of uidls) {
          assertTransition(this.sql.get.get(account, uidl)?.state ?? null, to, { account, uidl });
          this.sql.setState.run({ account, uidl, state: to, now });
        }
      },
      // "deleting" precedes DELE: an intent.
      to === 'deleting' ? 'intent' : 'outcome',
    );
  }

  /**
   * Writes this run's lock row, or reports the holder the row names. Only for a run that holds
   * the lock file (the kernel half, lock-file.ts; the parameter is the proof). One IMMEDIATE
   * transaction, so two processes cannot both see "free". Lock bookkeeping is not a crash-test
   * step: it changes no message's state.
   */
  tryLock(account: string, _lockFile: LockFile, o: LockOptions): LockAttempt {
    const host = o.hostname ?? hostname();
    const pid = o.pid ?? process.pid;
    try {
      const attempt = this.db
        .transaction((): LockAttempt => {
          const now = this.now();
          const existing = this.sql.lockGet.get(account);
          const held = existing === undefined ? undefined : toLock(existing);
          const d = decideLock(held, {
            hostname: host,
            now,
            isAlive: o.isAlive ?? processAlive,
            ...(o.staleMs === undefined ? {} : { staleMs: o.staleMs }),
          });
          if (d.action === 'held') return { ok: false, holder: held!, why: d.why };
          const token = randomBytes(12).toString('hex');
          this.sql.lockPut.run({ account, pid, hostname: host, token, command: o.command, now: now.toISOString() });
          return {
            ok: true,
            token,
            tookOver: held === undefined || d.takeover === null ? null : { ...held, reason: d.takeover },
          };
        })
        .immediate();
      if (attempt.ok) this.held = { account, token: attempt.token };
      return attempt;
    } catch (e) {
      throw journalError(e, this.path, 'taking the account lock');
    }
  }

  /** Refreshes the heartbeat; false when the lock is no longer ours (taken over). */
  heartbeat(account: string, token: string): boolean {
    try {
      return this.sql.lockBeat.run({ account, token, now: this.now().toISOString() }).changes === 1;
    } catch (e) {
      throw journalError(e, this.path, 'refreshing the account lock');
    }
  }

  releaseLock(account: string, token: string): void {
    if (this.held?.token === token) this.held = null;
    if (!this.db.open) return;
    try {
      this.sql.lockDrop.run(account, token);
    } catch (e) {
      throw journalError(e, this.path, 'releasing the account lock');
    }
  }

  lockHolder(account: string): LockRecord | null {
    return this.read('reading the account lock', () => {
      const r = this.sql.lockGet.get(account);
      return r === undefined ? null : toLock(r);
    });
  }

  /** Starts a run record (not a crash-test step: no message changes state). */
  beginRun(account: string, command: string): number {
    try {
      return Number(this.sql.runBegin.run(account, command, this.now().toISOString()).lastInsertRowid);
    } catch (e) {
      throw journalError(e, this.path, 'recording a run');
    }
  }

  finishRun(
    id: number,
    r: {
      listed: number | null;
      newCount: number | null;
      copied: number;
      failed: number;
      deleted: number;
      result: 'ok' | 'partial' | 'error';
      error: string | null;
      copiedBytes?: number;
      durationMs?: number;
    },
  ): void {
    try {
      this.sql.runEnd.run({
        id,
        now: this.now().toISOString(),
        ...r,
        copiedBytes: r.copiedBytes ?? null,
        durationMs: r.durationMs ?? null,
        error: r.error === null ? null : r.error.slice(0, MAX_ERROR_CHARS),
      });
    } catch (e) {
      throw journalError(e, this.path, 'recording a run');
    }
  }

  /** Newest first. */
  recentRuns(account: string, limit = 10): RunRecord[] {
    return this.read('reading runs', () => this.sql.runsRecent.all(account, limit).map(toRun));
  }

  close(): void {
    if (!this.db.open) return;
    try {
      clearInUse(this.db);
    } catch {
      // The mark stays: at worst a later open asks for a -wal that held nothing more.
    }
    this.db.close();
  }

  /**
   * The rate the last `limit` runs of `account` that copied something achieved, read-only
   * like peek (plan never writes). Whole runs, connection and listing included: that is what
   * the next run will take too. No journal, a journal before v4, or no such runs: null.
   */
  static measuredRate(path: string, binding: JournalBinding, account: string, limit = 5): MeasuredRate | null {
    return readOnly(path, (db, version) => {
      if (version < 4) return null;
      const owner = db.prepare(`SELECT value FROM meta WHERE key = 'source'`).get() as { value: string } | undefined;
      if (owner !== undefined && owner.value !== binding.source) return null;
      const runs = db
        .prepare<[string, number], { copied_bytes: number; duration_ms: number }>(
          `SELECT copied_bytes, duration_ms FROM runs WHERE account = ? AND finished_at IS NOT NULL AND copied_bytes > 0 AND duration_ms > 0 ORDER BY id DESC LIMIT ?`,
        )
        .all(account, limit);
      if (runs.length === 0) return null;
      return {
        runs: runs.length,
        bytes: runs.reduce((a, r) => a + r.copied_bytes, 0),
        ms: runs.reduce((a, r) => a + r.duration_ms, 0),
      };
    });
  }

  /** The source account a journal is bound to, read-only; no journal (or none bound yet): null. */
  static boundSource(path: string): string | null {
    // A journal whose creation was killed half-way has a hot rollback journal that only a
    // writer can roll back; it was never bound to anything, and the run's own open repairs it.
    return readOnly(
      path,
      (db) =>
        (db.prepare(`SELECT value FROM meta WHERE key = 'source'`).get() as { value: string } | undefined)?.value ??
        null,
      {
        needsWriter: () => null,
      },
    );
  }

  /**
   * Who the lock row names, read-only (for the "locked" message of a run that could not take
   * the lock file). No journal, no row, or a journal from before locks: null.
   */
  static lockHolderAt(path: string, account: string): LockRecord | null {
    return readOnly(path, (db, version) => {
      if (version < 3) return null;
      const r = db.prepare<[string], LockRow>(`SELECT * FROM locks WHERE account = ?`).get(account);
      return r === undefined ? null : toLock(r);
    });
  }

  /**
   * Everything `status` shows, read-only: no file is created, nothing is upgraded, journals of
   * older versions are read as they are (no runs or locks before v3). No journal: null.
   */
  static inspect(path: string): JournalSnapshot | null {
    return readOnly(path, (conn, version) => {
      const source =
        (conn.prepare(`SELECT value FROM meta WHERE key = 'source'`).get() as { value: string } | undefined)?.value ??
        null;
      const v3 = version >= 3;
      const names = new Set<string>(
        (
          conn
            .prepare(
              `SELECT account FROM messages UNION SELECT account FROM ${v3 ? 'runs UNION SELECT account FROM locks' : 'folders'}`,
            )
            .all() as Array<{ account: string }>
        ).map((r) => r.account),
      );
      const accounts = [...names].sort().map((account) => ({
        account,
        rows: conn
          .prepare<[string], MessageRecord>(`SELECT * FROM messages WHERE account = ? ORDER BY rowid`)
          .all(account)
          .map(toRow),
        runs: v3
          ? conn
              .prepare<[string], RunRow>(`SELECT * FROM runs WHERE account = ? ORDER BY id DESC LIMIT 20`)
              .all(account)
              .map(toRun)
          : [],
        lock: v3
          ? ((r) => (r === undefined ? null : toLock(r)))(
              conn.prepare<[string], LockRow>(`SELECT * FROM locks WHERE account = ?`).get(account),
            )
          : null,
      }));
      return { source, schemaVersion: version, accounts };
    });
  }
}

/**
 * Runs `fn` on a read-only connection: nothing is created, upgraded or written. No journal (no
 * file, or an empty one): null. A journal newer than this popsync is refused, not guessed at.
 */
function readOnly<T>(
  path: string,
  fn: (db: Database.Database, version: number) => T,
  o: { needsWriter?: () => T | null } = {},
): T | null {
  try {
    return readOnlyOnce(path, fn, o);
  } catch (e) {
    if (!isLostWal(e)) throw e;
    return readOnlyOnce(path, fn, o);
  }
}

function readOnlyOnce<T>(
  path: string,
  fn: (db: Database.Database, version: number) => T,
  o: { needsWriter?: () => T | null },
): T | null {
  if (!existsSync(path)) return null;
  let db: Database.Database | undefined;
  try {
    const file = fileState(path);
    db = new Database(path, { readonly: true, fileMustExist: true });
    db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
    const version = readSchemaVersion(db, path);
    // A journal that lost its WAL is refused here too: plan would otherwise predict copying
    // everything again, and status would show a journal that knows nothing.
    assertWalIntact(db, path, version, file);
    if (version === 0) return null;
    if (version > SCHEMA_VERSION) {
      throw new PopsyncError(
        'journal',
        `${path} has journal schema version ${version}, but this popsync only knows up to version ${SCHEMA_VERSION}`,
        {
          hint: 'a newer popsync wrote this journal; upgrade popsync to use it',
        },
      );
    }
    return fn(db, version);
  } catch (e) {
    if (needsWriter(e)) {
      if (o.needsWriter) return o.needsWriter();
      throw new PopsyncError(
        'journal',
        `journal ${path} was left in the middle of a write by a run that was killed, and a read-only look cannot finish it (${e.code})`,
        {
          hint: 'run the same popsync migrate or sync once: opening it for writing completes the interrupted write, and nothing recorded is lost',
        },
        { cause: e },
      );
    }
    throw e instanceof PopsyncError ? e : journalError(e, path, 'reading');
  } finally {
    db?.close();
  }
}

/** SQLite's word for "a writer must recover this file first" (hot rollback journal, WAL index). */
function needsWriter(e: unknown): e is Error & { code: string } {
  return isSqliteError(e) && (e.code === 'SQLITE_READONLY_ROLLBACK' || e.code === 'SQLITE_READONLY_RECOVERY');
}

function uidValidityChanged(account: string, folder: string, was: string, now: string, uidl?: string): PopsyncError {
  return new PopsyncError(
    'uidvalidity',
    `UIDVALIDITY of destination folder "${folder}" changed from ${was} to ${now}`,
    {
      account,
      folder,
      ...(uidl === undefined ? {} : { uidl }),
      hint: 'the folder was deleted and recreated while this run used it; run again: popsync then takes the new value and recognises the copies in it by content, copying nothing twice',
    },
  );
}

/** Binds a fresh journal to its source account, or refuses a journal bound to another one. */
function bind(db: Database.Database, path: string, binding: JournalBinding, now: () => Date): void {
  const row = db.prepare(`SELECT value FROM meta WHERE key = 'source'`).get() as { value: string } | undefined;
  if (row === undefined) {
    const insert = db.prepare(`INSERT INTO meta (key, value) VALUES (?, ?)`);
    insert.run('source', binding.source);
    insert.run('created_at', now().toISOString());
    return;
  }
  if (row.value !== binding.source) {
    throw new PopsyncError(
      'journal-bound',
      `journal ${path} belongs to source account ${row.value}, not ${binding.source}`,
      {
        account: binding.source,
        hint: `each POP3 account needs its own journal: use ${row.value}'s journal only for that account, and give ${binding.source} a journal file of its own`,
      },
    );
  }
}

/** SQLite copies the database's mode to -wal/-shm; this makes sure when umask or history differ. */
function tightenSidecars(path: string): void {
  for (const suffix of ['-wal', '-shm']) {
    try {
      chmodSync(path + suffix, 0o600);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
  }
}
