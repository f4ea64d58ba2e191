/**
 * Read-only views of a journal file, for commands that must not write: `status`, `plan`, the
 * dry runs and the "who holds the lock" message. Each opens its own read-only connection: no
 * file is created, no schema upgraded, nothing written; a journal from an older schema is read
 * as it is, a newer one is refused, and one that lost its WAL is refused like a run would.
 */
import { existsSync } from 'node:fs';
import Database from 'better-sqlite3';
import { PopsyncError } from '../errors.js';
import { BUSY_TIMEOUT_MS, boundTo } from './db.js';
import { journalError, needsWriter } from './errors.js';
import type { LockRecord } from './lock.js';
import { type LockRow, toLock } from './lock-row.js';
import { type MessageRecord, toRow } from './rows.js';
import { type RunRecord, type RunRow, toRun } from './runs.js';
import { readSchemaVersion, SCHEMA_VERSION } from './schema.js';
import type { JournalBinding, JournalRow, RowState } from './types.js';
import { assertWalIntact, fileState, isLostWal } from './wal-guard.js';

/** A message `status` lists by name: one it gave up on. */
interface FailedMessage {
  uidl: string;
  lastError: string | null;
  attempts: number;
}

/**
 * An account's messages as `status` shows them: counted by state in SQL, and only the failed
 * ones read, since it names each. Never every row: a journal grows for as long as a `sync`
 * account runs, and reading its rows cost 410 MB at 100,000 of them.
 */
export interface MessageSummary {
  counts: Record<RowState, number>;
  /** In the order they were first recorded (rowid). */
  failed: FailedMessage[];
}

/** Everything `status` shows, read without writing. */
export interface JournalSnapshot {
  source: string | null;
  schemaVersion: number;
  accounts: Array<{
    account: string;
    messages: MessageSummary;
    runs: RunRecord[];
    lock: LockRecord | null;
    /** Copies adopted by all of the account's runs (runs.adopted, v7 on), not only the last 20 in `runs`. */
    adopted: number;
  }>;
}

/** The transfer rate earlier runs achieved, for `plan`'s estimate. */
export interface MeasuredRate {
  runs: number;
  bytes: number;
  ms: number;
}

/**
 * The rows of `account` without writing anything (for dry runs): no file is created, no
 * schema is upgraded, but the source binding is still enforced. No journal yet: null.
 */
export function peekRows(path: string, binding: JournalBinding, account: string): Map<string, JournalRow> | null {
  return readOnly(path, (db) => {
    const owner = boundTo(db);
    if (owner !== undefined && owner !== binding.source) {
      throw new PopsyncError(
        'journal-bound',
        `journal ${path} belongs to source account ${owner}, not ${binding.source}`,
        { account: binding.source },
      );
    }
    const rows = db
      .prepare<[string], MessageRecord>(`SELECT * FROM messages WHERE account = ? ORDER BY rowid`)
      .all(account);
    return new Map(rows.map((r) => [r.uidl, toRow(r)] as const));
  });
}

/**
 * The rate the last `limit` runs of `account` that copied something achieved, read-only
 * like peek (plan never writes). Whole runs, connection and listing included: that is what
 * the next run will take too. No journal, a journal before v4, or no such runs: null.
 */
export function measuredRate(path: string, binding: JournalBinding, account: string, limit = 5): MeasuredRate | null {
  return readOnly(path, (db, version) => {
    if (version < 4) return null;
    const owner = boundTo(db);
    if (owner !== undefined && owner !== binding.source) return null;
    const runs = db
      .prepare<[string, number], { copied_bytes: number; duration_ms: number }>(
        `SELECT copied_bytes, duration_ms FROM runs
         WHERE account = ? AND finished_at IS NOT NULL AND copied_bytes > 0 AND duration_ms > 0
         ORDER BY id DESC LIMIT ?`,
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
export function boundSource(path: string): string | null {
  // A journal whose creation was killed half-way has a hot rollback journal that only a
  // writer can roll back; it was never bound to anything, and the run's own open repairs it.
  return readOnly(path, (db) => boundTo(db) ?? null, { needsWriter: () => null });
}

/**
 * Who the lock row names, read-only (for the "locked" message of a run that could not take
 * the lock file). No journal, no row, or a journal from before locks: null.
 */
export function lockHolderAt(path: string, account: string): LockRecord | null {
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
export function inspect(path: string): JournalSnapshot | null {
  // One read transaction: the counts, the failed rows and the runs are of one moment while a
  // run writes, as when one SELECT of every row gave them all.
  return readOnly(path, (conn, version) => conn.transaction(() => snapshot(conn, version))());
}

function snapshot(conn: Database.Database, version: number): JournalSnapshot {
  const source = boundTo(conn) ?? null;
  const v3 = version >= 3;
  const names = new Set<string>(
    (
      conn
        .prepare(
          `SELECT account FROM messages UNION SELECT account FROM ${
            v3 ? 'runs UNION SELECT account FROM locks' : 'folders'
          }`,
        )
        .all() as Array<{ account: string }>
    ).map((r) => r.account),
  );
  // Every version's messages table has state, uidl, attempts and last_error (v1 on).
  const counted = conn.prepare<[string], { state: RowState; n: number }>(
    `SELECT state, COUNT(*) AS n FROM messages WHERE account = ? GROUP BY state`,
  );
  const failed = conn.prepare<[string], { uidl: string; last_error: string | null; attempts: number }>(
    `SELECT uidl, last_error, attempts FROM messages WHERE account = ? AND state = 'failed' ORDER BY rowid`,
  );
  const messages = (account: string): MessageSummary => {
    const counts: Record<RowState, number> = { appending: 0, done: 0, failed: 0, deleting: 0, deleted: 0 };
    for (const { state, n } of counted.all(account)) counts[state] = n;
    return {
      counts,
      failed: failed.all(account).map((r) => ({ uidl: r.uidl, lastError: r.last_error, attempts: r.attempts })),
    };
  };
  const accounts = [...names].sort().map((account) => ({
    account,
    messages: messages(account),
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
    adopted:
      version >= 7
        ? conn
            .prepare<[string], { n: number }>(`SELECT COALESCE(SUM(adopted), 0) AS n FROM runs WHERE account = ?`)
            .get(account)!.n
        : 0,
  }));
  return { source, schemaVersion: version, accounts };
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
        `journal ${path} was left in the middle of a write by a run that was killed, ` +
          `and a read-only look cannot finish it (${e.code})`,
        {
          hint:
            'run the same popsync migrate or sync once: opening it for writing completes the interrupted write, ' +
            'and nothing recorded is lost',
        },
        { cause: e },
      );
    }
    throw e instanceof PopsyncError ? e : journalError(e, path, 'reading');
  } finally {
    db?.close();
  }
}
