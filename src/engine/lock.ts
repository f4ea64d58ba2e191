/**
 * Holding the account lock for the length of a run: take the lock file, then open the journal
 * and write the lock row (or wait for both with --wait), keep the row's heartbeat fresh while
 * the run lasts, give everything back at the end. The rules live in journal/lock.ts (the row)
 * and journal/lock-file.ts (the kernel lock); this is the part with timers.
 *
 * The lock file comes first: a second run on this host never touches the journal while a
 * first one, running or stopped, holds it. A process killed with SIGKILL cannot release
 * anything, and need not: the kernel frees its lock file, and the next run replaces its row.
 *
 * A journal another process keeps busy (not a popsync run: an sqlite3 shell, a backup) is
 * waited for as a holder is, with --wait, and for SQLite's busy timeout (5 s) without it. SQLite
 * waits synchronously, blocking the event loop and with it the SIGINT/SIGTERM handler, so it is
 * waited for in short tries with asynchronous pauses between them, which a signal cuts short.
 */
import { isPopsyncError, PopsyncError } from '../errors.js';
import { BUSY_TIMEOUT_MS, Journal, type LockOptions } from '../journal/journal.js';
import { LockFile, lockFilePath } from '../journal/lock-file.js';
import { describeHolder, HEARTBEAT_MS, type LockRecord } from '../journal/lock.js';
import type { Logger } from '../log.js';

export interface HoldOptions extends LockOptions {
  logger: Logger;
  /** Poll for this long when the lock is held (--wait); 0: fail at once. */
  waitSeconds?: number;
  signal?: AbortSignal;
  sleep?: (ms: number) => Promise<void>;
  heartbeatMs?: number;
  /** Clock for the journal's *_at columns. */
  now?: () => Date;
}

export interface HeldLock {
  journal: Journal;
  /** Drops the row, closes the journal, frees the lock file. Idempotent. */
  release(): void;
}

const POLL_MS = 250;
/** How long one try may block the thread waiting for a busy journal: a signal waits at most this. */
const BUSY_TRY_MS = 250;
/**
 * The pause between tries at a busy journal doubles from POLL_MS up to this. A try at a journal
 * a reader holds writes its mark and takes it back, four pages the -wal keeps until the reader
 * lets go (16 KiB a try), so a long wait tries no more often than the 5 s tries it replaced did.
 */
const BUSY_PAUSE_MAX_MS = 5_000;
/** Up to 2 s for a fresh holder's row to appear, for the message. */
const NAME_POLL_MS = 25;
const NAME_WAIT_POLLS = 80;

type Refusal = { holder: LockRecord | null; why: 'lock-file' | 'live-row' | 'other-host' };
/**
 * The lock file was ours, but the journal stayed busy for a try (BUSY_TRY_MS): another
 * process writing it, or reading it since before this run opened it ('locked', journal/errors.ts,
 * wal-guard.ts). A wait for the account covers it too: that process ends as a run does.
 */
type Busy = { busy: PopsyncError };

/**
 * One attempt: the lock file, the journal and the row, or who holds them, or a busy journal.
 * `waitedMs`: how long the tries before it waited, for the busy journal's message.
 */
function attempt(path: string, account: string, o: HoldOptions, waitedMs: number): HeldLock | Refusal | Busy {
  const lockFile = LockFile.tryAcquire(lockFilePath(path));
  if (lockFile === null) return { holder: holderRow(path, account), why: 'lock-file' };
  let journal: Journal | undefined;
  try {
    journal = Journal.open(
      path,
      { source: account },
      { ...(o.now ? { now: o.now } : {}), busyTimeoutMs: BUSY_TRY_MS, waitedMs },
    );
    const row = journal.tryLock(account, lockFile, o);
    if (!row.ok) {
      journal.close();
      lockFile.release();
      return { holder: row.holder, why: row.why };
    }
    if (row.tookOver) {
      const { reason, ...previous } = row.tookOver;
      o.logger.warn(
        { account, previous },
        reason === 'stale-heartbeat'
          ? `took over the lock of a run on another host that sent no heartbeat for too long: ` +
              `${describeHolder(previous)}`
          : `replaced the lock row of a run that has ended: ${describeHolder(previous)}`,
      );
    }
    // Ours: the run's writes wait for another process as long as ever (db.ts).
    journal.restoreBusyTimeout();
    return hold(journal, lockFile, account, row.token, o);
  } catch (e) {
    // Given back before any wait, so a run waiting keeps no connection open and the lock file free.
    journal?.close();
    lockFile.release();
    if (isPopsyncError(e) && e.kind === 'locked') return { busy: e };
    throw e;
  }
}

/** Who the row names, for the message only: a journal being created this instant may not read. */
function holderRow(path: string, account: string): LockRecord | null {
  try {
    return Journal.lockHolderAt(path, account);
  } catch {
    return null;
  }
}

function hold(journal: Journal, lockFile: LockFile, account: string, token: string, o: HoldOptions): HeldLock {
  // Logged as the run names the account (the source as given), not by the journal key.
  const named = { account: o.name ?? account };
  const timer = setInterval(() => {
    try {
      if (!journal.heartbeat(account, token))
        o.logger.error(
          named,
          'the account lock row was taken over by another run; this run stops before its next journal write',
        );
    } catch (e) {
      o.logger.warn({ ...named, err: String(e) }, 'could not refresh the account lock heartbeat');
    }
  }, o.heartbeatMs ?? HEARTBEAT_MS);
  timer.unref();
  let released = false;
  return {
    journal,
    release() {
      if (released) return;
      released = true;
      clearInterval(timer);
      try {
        journal.releaseLock(account, token);
      } catch (e) {
        // The next run replaces a row whose holder is gone; a failed release must not hide the run's result.
        o.logger.warn({ err: String(e) }, 'could not release the account lock');
      } finally {
        journal.close();
        lockFile.release();
      }
    },
  };
}

function lockedError(path: string, account: string, r: Refusal, waitSeconds: number | undefined): PopsyncError {
  // Named as the rest of the run names it: a user who ran `--pop pop3://alice@127.0.0.1:1110`
  // read of `alice@localhost`, the journal's key, only here.
  const who =
    r.holder === null
      ? `the lock file ${lockFilePath(path)} (it has not recorded its pid yet)`
      : describeHolder(r.holder);
  const because =
    r.why === 'other-host'
      ? 'a run on another host holds it; it is taken over only once its heartbeat is older than 2 minutes'
      : r.why === 'live-row'
        ? 'a live process on this host holds it without the lock file (an older popsync?)'
        : 'a stopped run (Ctrl-Z, SIGSTOP, a suspended machine) keeps it until it continues and ends; a ' +
          'killed one frees it at once';
  return new PopsyncError('locked', `another popsync run holds ${account}: ${who}`, {
    account,
    hint: waitSeconds
      ? `it did not finish within --wait ${waitSeconds}; try again later (${because})`
      : `let it finish, or pass --wait SECONDS to wait for it; ${because}`,
  });
}

/** A journal still busy when the wait ran out: its own words, saying that it was waited for. */
function busyError(e: PopsyncError, waitSeconds: number | undefined): PopsyncError {
  if (!waitSeconds) return e;
  const hint = e.context.hint === undefined ? '' : `; ${e.context.hint}`;
  return e.with({ hint: `it was still busy when --wait ${waitSeconds} ran out${hint}` });
}

/** The default pause between tries: a signal ends it at once (the loop then stops). */
function pauseUntilAborted(signal: AbortSignal | undefined): (ms: number) => Promise<void> {
  return (ms) =>
    new Promise<void>((resolve) => {
      if (signal?.aborted) return resolve();
      const done = (): void => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      signal?.addEventListener('abort', done, { once: true });
    });
}

export async function holdAccountLock(path: string, account: string, o: HoldOptions): Promise<HeldLock> {
  const sleep = o.sleep ?? pauseUntilAborted(o.signal);
  const start = Date.now();
  const deadline = start + (o.waitSeconds ?? 0) * 1000;
  // A busy journal is waited for at least as long as one SQLite busy timeout, as a single try
  // once did, with --wait or without.
  const busyDeadline = Math.max(deadline, start + BUSY_TIMEOUT_MS);
  let busyPause = POLL_MS;
  for (;;) {
    let got = attempt(path, account, o, Date.now() - start);
    if ('journal' in got) return got;
    const until = 'busy' in got ? busyDeadline : deadline;
    if (Date.now() >= until || o.signal?.aborted) {
      if ('busy' in got) throw busyError(got.busy, o.waitSeconds);
      // A holder that took the lock file an instant ago writes its row next. Give it a moment,
      // so the message names a pid and not only a file; if it finishes meanwhile, so much the
      // better: the lock is ours.
      let polls = 0;
      while (got.holder === null && polls++ < NAME_WAIT_POLLS && !o.signal?.aborted) {
        await sleep(NAME_POLL_MS);
        const again = attempt(path, account, o, Date.now() - start);
        if ('journal' in again) return again;
        if ('busy' in again) throw busyError(again.busy, o.waitSeconds);
        got = again;
      }
      throw lockedError(path, o.name ?? account, got, o.waitSeconds);
    }
    const pause = 'busy' in got ? busyPause : POLL_MS;
    if ('busy' in got) busyPause = Math.min(busyPause * 2, BUSY_PAUSE_MAX_MS);
    await sleep(Math.min(pause, Math.max(1, until - Date.now())));
    // Interrupted while pausing: no further try, which could itself block for BUSY_TRY_MS.
    if (o.signal?.aborted)
      throw 'busy' in got
        ? busyError(got.busy, o.waitSeconds)
        : lockedError(path, o.name ?? account, got, o.waitSeconds);
  }
}

/**
 * Holds the account lock (and so the journal) around `fn`, and gives both back whatever
 * happens (SIGKILL aside, which the kernel covers). Every command that writes the journal
 * goes through here.
 */
export async function withLockedJournal<T>(
  path: string,
  source: string,
  o: HoldOptions,
  fn: (journal: Journal) => Promise<T>,
): Promise<T> {
  const lock = await holdAccountLock(path, source, o);
  try {
    return await fn(lock.journal);
  } finally {
    lock.release();
  }
}
