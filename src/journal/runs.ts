/**
 * Run history: one row per popsync run on an account, for `status`, for `plan`'s rate estimate
 * and for windowed-source detection. Not crash-test steps: a run record changes no message's
 * state, so losing the last one to a kill only leaves a run without an end.
 */
import type { JournalDb } from './db.js';
import { journalError } from './errors.js';
import { MAX_ERROR_CHARS } from './rows.js';

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
  /**
   * Copies found already in the destination and adopted, not copied (schema v7); null for runs
   * recorded before, absent where a record is built by hand.
   */
  adopted?: number | null;
  failed: number | null;
  deleted: number | null;
  /** Bytes copied and the run's wall time (schema v4); null for runs recorded before. */
  copiedBytes: number | null;
  durationMs: number | null;
  /** 'ok' | 'partial' | 'error' | 'interrupted' (SIGTERM/SIGINT); null while running or when the run was killed. */
  result: string | null;
  error: string | null;
}

/** How a run ended, as finishRun records it. */
export interface RunEnd {
  listed: number | null;
  newCount: number | null;
  copied: number;
  adopted: number;
  failed: number;
  deleted: number;
  result: 'ok' | 'partial' | 'error' | 'interrupted';
  error: string | null;
  copiedBytes: number;
  durationMs: number;
}

export interface RunRow {
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
  adopted?: number | null;
  duration_ms?: number | null;
  result: string | null;
  error: string | null;
}

export function toRun(r: RunRow): RunRecord {
  return {
    id: r.id,
    account: r.account,
    command: r.command,
    startedAt: r.started_at,
    finishedAt: r.finished_at,
    listed: r.listed,
    newCount: r.new_count,
    copied: r.copied,
    adopted: r.adopted ?? null,
    failed: r.failed,
    deleted: r.deleted,
    copiedBytes: r.copied_bytes ?? null,
    durationMs: r.duration_ms ?? null,
    result: r.result,
    error: r.error,
  };
}

export class Runs {
  private readonly db: JournalDb;
  private readonly sql;

  constructor(db: JournalDb) {
    this.db = db;
    const c = db.conn;
    this.sql = {
      begin: c.prepare(`INSERT INTO runs (account, command, started_at) VALUES (?, ?, ?)`),
      end: c.prepare(`
        UPDATE runs SET finished_at = @now, listed = @listed, new_count = @newCount, copied = @copied, failed = @failed,
          deleted = @deleted, result = @result, error = @error, copied_bytes = @copiedBytes, duration_ms = @durationMs,
          adopted = @adopted
        WHERE id = @id`),
      recent: c.prepare<[string, number], RunRow>(`SELECT * FROM runs WHERE account = ? ORDER BY id DESC LIMIT ?`),
    };
  }

  /** Starts a run record (not a crash-test step: no message changes state). */
  beginRun(account: string, command: string): number {
    try {
      return Number(this.db.bookkeeping(() => this.sql.begin.run(account, command, this.db.nowIso())).lastInsertRowid);
    } catch (e) {
      throw journalError(e, this.db.path, 'recording a run');
    }
  }

  finishRun(id: number, r: RunEnd): void {
    try {
      this.db.bookkeeping(() =>
        this.sql.end.run({
          id,
          now: this.db.nowIso(),
          ...r,
          error: r.error === null ? null : r.error.slice(0, MAX_ERROR_CHARS),
        }),
      );
    } catch (e) {
      throw journalError(e, this.db.path, 'recording a run');
    }
  }

  /** Newest first. */
  recentRuns(account: string, limit = 10): RunRecord[] {
    return this.db.read('reading runs', () => this.sql.recent.all(account, limit).map(toRun));
  }
}
