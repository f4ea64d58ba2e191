/**
 * The per-account run lock, kept in the journal itself (a `locks` row), not in a pid file beside
 * it: the journal is what two runs would corrupt, it moves with the journal, and SQLite's
 * BEGIN IMMEDIATE makes "look, then take" one atomic step across processes.
 *
 * A lock row names its holder (pid, host, a random token, start and heartbeat times). It is
 * taken over, never broken silently, when the holder is provably gone:
 * - same host and the pid no longer exists (or is a zombie: it will never write again), or
 * - its heartbeat is older than the stale limit (holder on another host, a frozen process, or
 *   a pid that was reused after the holder died).
 * Everything else means "held". The decision is a pure function so the rules are tested with
 * fake pids and clocks.
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

/** The holder writes a heartbeat this often... */
export const HEARTBEAT_MS = 20_000;
/** ...and a lock whose heartbeat is older than this is abandoned (six missed beats). */
export const STALE_MS = 120_000;

let staleLimitMs = STALE_MS;

/** TEST ENTRY POINT ONLY: a shorter stale limit, so a test need not wait two minutes. */
export function setStaleLimitMs(ms: number): void {
  if (!Number.isFinite(ms) || ms < 0) throw new TypeError('setStaleLimitMs needs a number of milliseconds >= 0');
  staleLimitMs = ms;
}

export type LockDecision =
  | { action: 'take'; takeover: null }
  | { action: 'take'; takeover: 'dead-pid' | 'stale-heartbeat' }
  | { action: 'held' };

export interface LockEnvironment {
  hostname: string;
  now: Date;
  isAlive(pid: number): boolean;
  staleMs?: number;
}

export function decideLock(existing: LockRecord | undefined, env: LockEnvironment): LockDecision {
  if (existing === undefined) return { action: 'take', takeover: null };
  if (existing.hostname === env.hostname && !env.isAlive(existing.pid)) return { action: 'take', takeover: 'dead-pid' };
  const beat = Date.parse(existing.heartbeatAt);
  if (!Number.isFinite(beat) || env.now.getTime() - beat > (env.staleMs ?? staleLimitMs)) return { action: 'take', takeover: 'stale-heartbeat' };
  return { action: 'held' };
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
