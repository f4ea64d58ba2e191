/**
 * The per-account run lock has two halves. The kernel half (lock-file.ts) decides on this
 * host: its lock is released only by the holder's death, so a live holder, even one stopped
 * for hours, is never taken over. The journal half is a `locks` row naming the holder (pid,
 * host, a random token, start and heartbeat times): what the "locked" error and `status` show,
 * the token every journal write checks (journal.ts), and the only defence left when two hosts
 * share a journal on a file system that does not pass fcntl locks between them.
 *
 * Once a run holds the lock file, the row it finds means:
 * - none, or this host's row of a process that is gone: take it;
 * - this host's row of a live pid with a fresh heartbeat: held. No popsync that uses the lock
 *   file can be behind it, so it is an older popsync that only knew the row (or a reused pid,
 *   which clears when the heartbeat ages); waiting is cheap, running beside it is not;
 * - another host's row with a fresh heartbeat: held (its lock file may not reach us);
 * - another host's row whose heartbeat is older than the stale limit: taken over, with a
 *   warning. That host may only be frozen; if it wakes, its next journal write finds the row
 *   is no longer its own and it stops before any side effect.
 * The decision is a pure function so the rules are tested with fake pids and clocks.
 */
import { readFileSync } from 'node:fs';

export interface LockRecord {
  account: string;
  pid: number;
  hostname: string;
  token: string;
  command: string;
  startedAt: string;
  heartbeatAt: string;
}

export function describeHolder(h: LockRecord): string {
  return `pid ${h.pid} on ${h.hostname} (${h.command}, started ${h.startedAt}, last heartbeat ${h.heartbeatAt})`;
}

/** The holder writes a heartbeat this often... */
export const HEARTBEAT_MS = 20_000;
/** ...and another host's row whose heartbeat is older than this is abandoned (six missed beats). */
export const STALE_MS = 120_000;

let staleLimitMs = STALE_MS;

/**
 * TEST ENTRY POINT ONLY: a shorter stale limit, so a test need not wait two minutes. Called by
 * test/support/popsync-with-hooks.mjs, through the bundle of test/support/hooked-program.ts.
 */
export function setStaleLimitMs(ms: number): void {
  if (!Number.isFinite(ms) || ms < 0) throw new TypeError('setStaleLimitMs needs a number of milliseconds >= 0');
  staleLimitMs = ms;
}

export type LockDecision =
  | { action: 'take'; takeover: null }
  | { action: 'take'; takeover: 'holder-gone' | 'stale-heartbeat' }
  | { action: 'held'; why: 'live-row' | 'other-host' };

/** For a run that already holds the lock file: without it, the lock is held, whatever the row says. */
export interface LockEnvironment {
  hostname: string;
  now: Date;
  isAlive(pid: number): boolean;
  staleMs?: number;
}

export function decideLock(existing: LockRecord | undefined, env: LockEnvironment): LockDecision {
  if (existing === undefined) return { action: 'take', takeover: null };
  const beat = Date.parse(existing.heartbeatAt);
  const fresh = Number.isFinite(beat) && env.now.getTime() - beat <= (env.staleMs ?? staleLimitMs);
  if (existing.hostname === env.hostname) {
    return fresh && env.isAlive(existing.pid)
      ? { action: 'held', why: 'live-row' }
      : { action: 'take', takeover: 'holder-gone' };
  }
  return fresh ? { action: 'held', why: 'other-host' } : { action: 'take', takeover: 'stale-heartbeat' };
}

/**
 * Whether a process exists and can still run. kill(pid, 0) says "exists" for zombies too (and
 * this container has them: children nobody reaps), so /proc's state letter has the last word.
 * EPERM means it exists under another user: alive.
 */
export function processAlive(pid: number): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // "pid (comm) S ...": comm may hold spaces and parentheses, so read after the last ')'.
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    // No /proc (not Linux) or the process just ended: trust kill().
    return true;
  }
}
