/**
 * The account's lock row in the journal: who runs on the account, since when, with which
 * heartbeat. It is the journal half of the lock; the kernel half is lock-file.ts and the pure
 * "may I take it?" decision is lock.ts. Once this connection holds the row, every write step
 * first checks the row is still its own (JournalDb.guardWrites), so a run that was taken over
 * stops before its next intent instead of copying beside the new holder.
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { PopsyncError } from '../errors.js';
import type { JournalDb } from './db.js';
import { journalError } from './errors.js';
import { decideLock, describeHolder, type LockRecord, processAlive } from './lock.js';
import type { LockFile } from './lock-file.js';

export interface LockOptions {
  command: string;
  /** Tests replace the liveness probe, host name and clock. */
  isAlive?: (pid: number) => boolean;
  hostname?: string;
  pid?: number;
  staleMs?: number;
  /**
   * The account as the run names it to the user (`user@host:port`, as given); the journal key
   * (`user@localhost` for every loopback spelling) by default.
   */
  name?: string;
}

export type LockAttempt =
  | { ok: true; token: string; tookOver: (LockRecord & { reason: string }) | null }
  | { ok: false; holder: LockRecord; why: 'live-row' | 'other-host' };

export interface LockRow {
  account: string;
  pid: number;
  hostname: string;
  holder_id: string;
  command: string;
  started_at: string;
  heartbeat_at: string;
}

export function toLock(r: LockRow): LockRecord {
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

export class LockRows {
  private readonly db: JournalDb;
  private readonly sql;
  /** The lock row this connection wrote (tryLock); every write step first checks it is still ours. */
  private held: { account: string; token: string; name: string } | null = null;

  constructor(db: JournalDb) {
    this.db = db;
    const c = db.conn;
    this.sql = {
      get: c.prepare<[string], LockRow>(`SELECT * FROM locks WHERE account = ?`),
      put: c.prepare(`
        INSERT INTO locks (account, pid, hostname, holder_id, command, started_at, heartbeat_at)
        VALUES (@account, @pid, @hostname, @token, @command, @now, @now)
        ON CONFLICT (account) DO UPDATE SET
          pid = excluded.pid, hostname = excluded.hostname, holder_id = excluded.holder_id,
          command = excluded.command, started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at`),
      beat: c.prepare(`UPDATE locks SET heartbeat_at = @now WHERE account = @account AND holder_id = @token`),
      drop: c.prepare(`DELETE FROM locks WHERE account = ? AND holder_id = ?`),
    };
    db.guardWrites(() => this.assertStillHeld());
  }

  /**
   * Inside the write transaction, so no takeover can slip in between the check and the write.
   * A run whose lock row was taken over (possible only across hosts, see lock.ts) stops here,
   * before the intent that would precede its next APPEND or DELE, rather than copy beside the
   * run that now owns the account.
   */
  private assertStillHeld(): void {
    if (this.held === null) return;
    const { account, token, name } = this.held;
    const row = this.sql.get.get(account);
    if (row?.holder_id === token) return;
    const now = row === undefined ? 'its lock row is gone' : `it is now held by ${describeHolder(toLock(row))}`;
    throw new PopsyncError(
      'locked',
      `this run no longer holds the lock of ${name}: ${now}; stopped before writing to the journal`,
      {
        account: name,
        hint:
          'another run took the lock over, which happens only when this one, on another host, sent no heartbeat ' +
          'for longer than the stale limit; that run carries on. Nothing was copied twice by this run; ' +
          'run again once it has finished',
      },
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
      const attempt = this.db.bookkeeping((): LockAttempt => {
        const now = this.db.now();
        const existing = this.sql.get.get(account);
        const held = existing === undefined ? undefined : toLock(existing);
        const d = decideLock(held, {
          hostname: host,
          now,
          isAlive: o.isAlive ?? processAlive,
          ...(o.staleMs === undefined ? {} : { staleMs: o.staleMs }),
        });
        if (d.action === 'held') return { ok: false, holder: held!, why: d.why };
        const token = randomBytes(12).toString('hex');
        this.sql.put.run({ account, pid, hostname: host, token, command: o.command, now: now.toISOString() });
        return {
          ok: true,
          token,
          tookOver: held === undefined || d.takeover === null ? null : { ...held, reason: d.takeover },
        };
      });
      if (attempt.ok) this.held = { account, token: attempt.token, name: o.name ?? account };
      return attempt;
    } catch (e) {
      throw journalError(e, this.db.path, 'taking the account lock');
    }
  }

  /** Refreshes the heartbeat; false when the lock is no longer ours (taken over). */
  heartbeat(account: string, token: string): boolean {
    try {
      return this.db.bookkeeping(() => this.sql.beat.run({ account, token, now: this.db.nowIso() }).changes === 1);
    } catch (e) {
      throw journalError(e, this.db.path, 'refreshing the account lock');
    }
  }

  releaseLock(account: string, token: string): void {
    if (this.held?.token === token) this.held = null;
    if (!this.db.conn.open) return;
    try {
      this.db.bookkeeping(() => this.sql.drop.run(account, token));
    } catch (e) {
      throw journalError(e, this.db.path, 'releasing the account lock');
    }
  }

  lockHolder(account: string): LockRecord | null {
    return this.db.read('reading the account lock', () => {
      const r = this.sql.get.get(account);
      return r === undefined ? null : toLock(r);
    });
  }
}
