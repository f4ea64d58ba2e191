/**
 * The account lock: the takeover rules as a pure function with fake pids and clocks, then the
 * journal's atomic take/held/release between two connections to one file.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { holdAccountLock } from '../../src/engine/lock.js';
import { Journal } from '../../src/journal/journal.js';
import { decideLock, processAlive, STALE_MS, type LockRecord } from '../../src/journal/lock.js';
import { silentLogger } from '../../src/log.js';

const T0 = new Date('2030-01-01T00:00:00Z');
const rec = (o: Partial<LockRecord> = {}): LockRecord => ({
  account: 'a',
  pid: 4242,
  hostname: 'here',
  token: 't',
  command: 'sync',
  startedAt: T0.toISOString(),
  heartbeatAt: T0.toISOString(),
  ...o,
});
const alive = (pids: number[]) => (pid: number) => pids.includes(pid);

describe('decideLock', () => {
  it('takes a free lock', () => {
    expect(decideLock(undefined, { hostname: 'here', now: T0, isAlive: alive([]) })).toEqual({ action: 'take', takeover: null });
  });
  it('is held while the holder lives and beats', () => {
    expect(decideLock(rec(), { hostname: 'here', now: new Date(T0.getTime() + 30_000), isAlive: alive([4242]) })).toEqual({ action: 'held' });
  });
  it('takes over a dead pid on this host at once', () => {
    expect(decideLock(rec(), { hostname: 'here', now: T0, isAlive: alive([]) })).toEqual({ action: 'take', takeover: 'dead-pid' });
  });
  it('never judges a pid of another host, only its heartbeat', () => {
    const env = { hostname: 'elsewhere', isAlive: alive([]) };
    expect(decideLock(rec(), { ...env, now: new Date(T0.getTime() + STALE_MS) })).toEqual({ action: 'held' });
    expect(decideLock(rec(), { ...env, now: new Date(T0.getTime() + STALE_MS + 1) })).toEqual({ action: 'take', takeover: 'stale-heartbeat' });
  });
  it('takes over a live pid whose heartbeat went stale (pid reused, frozen process)', () => {
    expect(decideLock(rec(), { hostname: 'here', now: new Date(T0.getTime() + STALE_MS + 1), isAlive: alive([4242]) })).toEqual({ action: 'take', takeover: 'stale-heartbeat' });
  });
});

describe('processAlive', () => {
  it('knows this process, a finished one, and a zombie', () => {
    expect(processAlive(process.pid)).toBe(true);
    const done = spawnSync(process.execPath, ['-e', '0']);
    expect(processAlive(done.pid!)).toBe(false);
    expect(processAlive(0)).toBe(false);
  });
});

let dir: string;
let a: Journal;
let b: Journal;
let clock = T0;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'popsync-lock-'));
  a = Journal.open(join(dir, 'j.sqlite'), { source: 's' }, { now: () => clock });
  b = Journal.open(join(dir, 'j.sqlite'), { source: 's' }, { now: () => clock });
  clock = T0;
});
afterEach(() => {
  a.close();
  b.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('Journal lock', () => {
  it('lets one of two connections hold an account, and the other after release', () => {
    const first = a.tryLock('acct', { command: 'sync', isAlive: () => true });
    expect(first.ok).toBe(true);
    const second = b.tryLock('acct', { command: 'sync', isAlive: () => true });
    expect(second).toMatchObject({ ok: false, holder: { pid: process.pid, command: 'sync' } });
    expect(b.tryLock('other-account', { command: 'sync' }).ok).toBe(true);
    if (first.ok) a.releaseLock('acct', first.token);
    expect(b.tryLock('acct', { command: 'migrate' }).ok).toBe(true);
  });

  it('takes over a lock whose holder died, and the old holder can no longer beat or release it', () => {
    const first = a.tryLock('acct', { command: 'sync', pid: 999_999_9 });
    expect(first.ok).toBe(true);
    const second = b.tryLock('acct', { command: 'sync', isAlive: (pid) => pid !== 999_999_9 });
    expect(second).toMatchObject({ ok: true, tookOver: { pid: 999_999_9, reason: 'dead-pid' } });
    if (!first.ok || !second.ok) return;
    expect(a.heartbeat('acct', first.token)).toBe(false);
    a.releaseLock('acct', first.token);
    expect(b.lockHolder('acct')?.token).toBe(second.token);
  });

  it('takes over a stale heartbeat, and a heartbeat keeps a lock fresh', () => {
    const first = a.tryLock('acct', { command: 'sync', isAlive: () => true, hostname: 'other' });
    if (!first.ok) throw new Error('not taken');
    clock = new Date(T0.getTime() + STALE_MS - 1000);
    expect(a.heartbeat('acct', first.token)).toBe(true);
    clock = new Date(T0.getTime() + STALE_MS + 1000);
    expect(b.tryLock('acct', { command: 'sync', isAlive: () => true }).ok).toBe(false);
    clock = new Date(T0.getTime() + 2 * STALE_MS);
    expect(b.tryLock('acct', { command: 'sync', isAlive: () => true })).toMatchObject({ ok: true, tookOver: { reason: 'stale-heartbeat' } });
  });

  it('holdAccountLock fails with kind locked naming the holder, or waits with --wait', async () => {
    const held = await holdAccountLock(a, 'acct', { command: 'sync', logger: silentLogger });
    await expect(holdAccountLock(b, 'acct', { command: 'sync', logger: silentLogger })).rejects.toMatchObject({
      kind: 'locked',
      message: expect.stringContaining(`pid ${process.pid}`),
    });
    setTimeout(() => held.release(), 300);
    const t0 = Date.now();
    const second = await holdAccountLock(b, 'acct', { command: 'sync', logger: silentLogger, waitSeconds: 5 });
    expect(Date.now() - t0).toBeGreaterThanOrEqual(250);
    second.release();
    const third = await holdAccountLock(a, 'acct', { command: 'sync', logger: silentLogger });
    await expect(holdAccountLock(b, 'acct', { command: 'sync', logger: silentLogger, waitSeconds: 0.3 })).rejects.toMatchObject({ kind: 'locked' });
    third.release();
  });
});
