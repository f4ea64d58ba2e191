/**
 * Holding the account lock for the length of a run: take it (or wait for it with --wait), keep
 * its heartbeat fresh while the run lasts, give it back at the end. The rules for when a lock
 * is free or abandoned live in journal/lock.ts; this is the part with timers.
 *
 * A process killed with SIGKILL cannot release anything; the next run takes its lock over
 * because the pid is dead (or, on another host, because the heartbeat went stale).
 */
import { PopsyncError } from '../errors.js';
import { Journal, type LockOptions } from '../journal/journal.js';
import { HEARTBEAT_MS, type LockRecord } from '../journal/lock.js';
import type { Logger } from '../log.js';

export interface HoldOptions extends LockOptions {
  logger: Logger;
  /** Poll for this long when the lock is held (--wait); 0: fail at once. */
  waitSeconds?: number;
  signal?: AbortSignal;
  sleep?: (ms: number) => Promise<void>;
  heartbeatMs?: number;
}

export interface HeldLock {
  release(): void;
}

const POLL_MS = 250;

export function describeHolder(h: LockRecord): string {
  return `pid ${h.pid} on ${h.hostname} (${h.command}, started ${h.startedAt}, last heartbeat ${h.heartbeatAt})`;
}

export async function holdAccountLock(journal: Journal, account: string, o: HoldOptions): Promise<HeldLock> {
  const sleep = o.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const deadline = Date.now() + (o.waitSeconds ?? 0) * 1000;
  for (;;) {
    const attempt = journal.tryLock(account, o);
    if (attempt.ok) {
      if (attempt.tookOver) {
        o.logger.warn({ account, previous: attempt.tookOver }, `took over the lock of a run that is gone (${attempt.tookOver.reason}): ${describeHolder(attempt.tookOver)}`);
      }
      const token = attempt.token;
      const timer = setInterval(() => {
        try {
          if (!journal.heartbeat(account, token)) o.logger.error({ account }, 'the account lock was taken over by another run while this one was running');
        } catch (e) {
          o.logger.warn({ err: String(e) }, 'could not refresh the account lock heartbeat');
        }
      }, o.heartbeatMs ?? HEARTBEAT_MS);
      timer.unref();
      let released = false;
      return {
        release() {
          if (released) return;
          released = true;
          clearInterval(timer);
          try {
            journal.releaseLock(account, token);
          } catch (e) {
            // The next run takes an abandoned lock over; a failed release must not hide the run's result.
            o.logger.warn({ err: String(e) }, 'could not release the account lock');
          }
        },
      };
    }
    if (Date.now() >= deadline || o.signal?.aborted) {
      throw new PopsyncError('locked', `another popsync run holds ${account}: ${describeHolder(attempt.holder)}`, {
        account,
        hint: o.waitSeconds
          ? `it did not finish within --wait ${o.waitSeconds}; try again later`
          : 'let it finish, or pass --wait SECONDS to wait for it; a lock left by a killed run is taken over automatically',
      });
    }
    await sleep(Math.min(POLL_MS, Math.max(1, deadline - Date.now())));
  }
}

/**
 * Opens the journal, holds the account lock around `fn`, and gives both back whatever happens
 * (SIGKILL aside, which takeover covers). Every command that writes the journal goes through here.
 */
export async function withLockedJournal<T>(
  path: string,
  source: string,
  o: HoldOptions & { now?: () => Date },
  fn: (journal: Journal) => Promise<T>,
): Promise<T> {
  const journal = Journal.open(path, { source }, o.now ? { now: o.now } : {});
  try {
    const lock = await holdAccountLock(journal, source, o);
    try {
      return await fn(journal);
    } finally {
      lock.release();
    }
  } finally {
    journal.close();
  }
}
