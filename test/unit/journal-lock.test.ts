/**
 * The account lock: the row rules as a pure function with fake pids and clocks; the lock file
 * (the kernel half) within this process (against a stopped, then killed process: e2e/lock);
 * the row's take/held/release and a taken-over holder that must stop writing; and
 * holdAccountLock with and without --wait.
 */
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { holdAccountLock } from '../../src/engine/lock.js';
import { isPopsyncError } from '../../src/errors.js';
import { Journal } from '../../src/journal/journal.js';
import { LockFile, lockFilePath } from '../../src/journal/lock-file.js';
import { decideLock, STALE_MS, type LockRecord } from '../../src/journal/lock.js';
import { silentLogger } from '../../src/log.js';
import { intent } from '../support/journal-item.js';

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
const at = (ms: number) => new Date(T0.getTime() + ms);
const item = intent;

describe('decideLock (for a run that holds the lock file)', () => {
  it('takes a free lock', () => {
    expect(decideLock(undefined, { hostname: 'here', now: T0, isAlive: alive([]) })).toEqual({
      action: 'take',
      takeover: null,
    });
  });
  it("replaces this host's row of a process that has ended, at once", () => {
    expect(decideLock(rec(), { hostname: 'here', now: T0, isAlive: alive([]) })).toEqual({
      action: 'take',
      takeover: 'holder-gone',
    });
  });
  it("waits for this host's live, beating row: an older popsync that does not use the lock file", () => {
    expect(decideLock(rec(), { hostname: 'here', now: at(30_000), isAlive: alive([4242]) })).toEqual({
      action: 'held',
      why: 'live-row',
    });
  });
  it("replaces this host's live row once its heartbeat is stale (the lock file proves no popsync holds it)", () => {
    expect(decideLock(rec(), { hostname: 'here', now: at(STALE_MS + 1), isAlive: alive([4242]) })).toEqual({
      action: 'take',
      takeover: 'holder-gone',
    });
  });
  it('never judges a pid of another host, only its heartbeat', () => {
    const env = { hostname: 'elsewhere', isAlive: alive([]) };
    expect(decideLock(rec(), { ...env, now: at(STALE_MS) })).toEqual({ action: 'held', why: 'other-host' });
    expect(decideLock(rec(), { ...env, now: at(STALE_MS + 1) })).toEqual({
      action: 'take',
      takeover: 'stale-heartbeat',
    });
    expect(decideLock(rec(), { ...env, now: at(1), staleMs: 0 })).toEqual({
      action: 'take',
      takeover: 'stale-heartbeat',
    });
  });
  it('treats an unreadable heartbeat as stale', () => {
    expect(
      decideLock(rec({ hostname: 'x', heartbeatAt: 'garbage' }), { hostname: 'here', now: T0, isAlive: alive([4242]) }),
    ).toEqual({ action: 'take', takeover: 'stale-heartbeat' });
  });
});

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'popsync-lock-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('LockFile', () => {
  it('admits one holder at a time within a process, and the next after release; the file is 0600', () => {
    const path = lockFilePath(join(dir, 'j.sqlite'));
    const first = LockFile.tryAcquire(path);
    expect(first).not.toBeNull();
    expect(LockFile.tryAcquire(path)).toBeNull();
    expect(statSync(path).mode & 0o777).toBe(0o600);
    first!.release();
    first!.release();
    const second = LockFile.tryAcquire(path);
    expect(second).not.toBeNull();
    second!.release();
  });

  it('names the file when it cannot be created', () => {
    expect(() => LockFile.tryAcquire(join(dir, 'missing', 'j.sqlite.lock'))).toThrow(/lock file .*missing/);
  });
});

describe('the lock row', () => {
  let a: Journal;
  let b: Journal;
  let lockFile: LockFile;
  let clock = T0;
  beforeEach(() => {
    clock = T0;
    a = Journal.open(join(dir, 'j.sqlite'), { source: 's' }, { now: () => clock });
    b = Journal.open(join(dir, 'j.sqlite'), { source: 's' }, { now: () => clock });
    // One process can hold the lock file once; both connections use it as their proof.
    lockFile = LockFile.tryAcquire(lockFilePath(join(dir, 'j.sqlite')))!;
  });
  afterEach(() => {
    a.close();
    b.close();
    lockFile.release();
  });

  it('is replaced when its holder has ended; the old holder can no longer beat or release it', () => {
    const first = a.tryLock('acct', lockFile, { command: 'sync', pid: 999_999_9 });
    expect(first.ok).toBe(true);
    const second = b.tryLock('acct', lockFile, { command: 'sync', isAlive: (pid) => pid !== 999_999_9 });
    expect(second).toMatchObject({ ok: true, tookOver: { pid: 999_999_9, reason: 'holder-gone' } });
    if (!first.ok || !second.ok) return;
    expect(a.heartbeat('acct', first.token)).toBe(false);
    a.releaseLock('acct', first.token);
    expect(b.lockHolder('acct')?.token).toBe(second.token);
  });

  it(
    "another host's row is held while it beats, taken over when stale, and the frozen holder then stops " +
      'before writing',
    () => {
      const first = a.tryLock('acct', lockFile, { command: 'sync', hostname: 'other' });
      if (!first.ok) throw new Error('not taken');
      a.beginAppend('acct', [item('u1'), item('u2')]);
      clock = at(STALE_MS - 1000);
      expect(a.heartbeat('acct', first.token)).toBe(true);
      clock = at(STALE_MS + 1000);
      expect(b.tryLock('acct', lockFile, { command: 'sync' })).toMatchObject({
        ok: false,
        why: 'other-host',
        holder: { hostname: 'other' },
      });
      clock = at(2 * STALE_MS);
      const second = b.tryLock('acct', lockFile, { command: 'sync' });
      expect(second).toMatchObject({ ok: true, tookOver: { reason: 'stale-heartbeat' } });
      b.confirm('acct', 'u1', { destUidValidity: 7n, destUid: 1 });

      // The frozen holder wakes: every write refuses, naming the new holder, and changes nothing.
      const refused = (fn: () => void) => {
        try {
          fn();
        } catch (e) {
          return e;
        }
        throw new Error('did not throw');
      };
      for (const write of [
        () => a.beginAppend('acct', [item('u3')]),
        () => a.confirm('acct', 'u2', { destUidValidity: 7n, destUid: 2 }),
        () => a.markDeleting('acct', ['u1']),
      ]) {
        const e = refused(write);
        expect(isPopsyncError(e) && e.kind).toBe('locked');
        expect((e as Error).message).toMatch(
          new RegExp(`no longer holds the lock of acct: it is now held by pid ${process.pid}`),
        );
      }
      expect(b.get('acct', 'u3')).toBeUndefined();
      expect(b.get('acct', 'u2')?.state).toBe('appending');
      expect(b.get('acct', 'u1')?.state).toBe('done');
      // The new holder writes on.
      b.confirm('acct', 'u2', { destUidValidity: 7n, destUid: 2 });
    },
  );

  it('a connection that took no lock (tests, tools) writes as before', () => {
    a.beginAppend('acct', [item('u1')]);
    expect(a.get('acct', 'u1')?.state).toBe('appending');
  });
});

describe('holdAccountLock', () => {
  const o = { command: 'sync', logger: silentLogger } as const;

  it('fails with kind locked naming the holder, or waits with --wait; release frees lock file and row', async () => {
    // The --wait polls run on fake timers: the test steps the clock instead of sleeping.
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date'] });
    try {
      const path = join(dir, 'j.sqlite');
      const held = await holdAccountLock(path, 'acct', o);
      await expect(holdAccountLock(path, 'acct', o)).rejects.toMatchObject({
        kind: 'locked',
        message: expect.stringContaining(`pid ${process.pid}`),
        context: { hint: expect.stringMatching(/--wait SECONDS.*a stopped run .* keeps it/) },
      });
      setTimeout(() => held.release(), 300);
      let got = false;
      const waiting = holdAccountLock(path, 'acct', { ...o, waitSeconds: 30 }).finally(() => {
        got = true;
      });
      await vi.advanceTimersByTimeAsync(299);
      expect(got, 'still waiting while the first run holds the lock').toBe(false);
      await vi.advanceTimersByTimeAsync(1_000);
      const second = await waiting;
      expect(held.journal.path).toBe(path);
      second.release();
      const third = await holdAccountLock(path, 'acct', o);
      const refused = expect(holdAccountLock(path, 'acct', { ...o, waitSeconds: 0.3 })).rejects.toMatchObject({
        kind: 'locked',
        context: { hint: expect.stringContaining('within --wait 0.3') },
      });
      await vi.advanceTimersByTimeAsync(1_000);
      await refused;
      third.release();
      expect(Journal.lockHolderAt(path, 'acct')).toBeNull();
    } finally {
      vi.useRealTimers();
    }
  });

  it('a run whose row was taken over stops naming its account as the run does, not by the journal key', async () => {
    const path = join(dir, 'j.sqlite');
    const held = await holdAccountLock(path, 'alice@localhost', { ...o, name: 'alice@127.0.0.1:1110' });
    try {
      // What a run on another host does once this one's heartbeat is stale: its own row.
      const other = new Database(path);
      other.prepare(`UPDATE locks SET holder_id = 'theirs', hostname = 'other', pid = 4242`).run();
      other.close();
      let refusal: unknown;
      try {
        held.journal.beginAppend('alice@localhost', [item('u1')]);
      } catch (e) {
        refusal = e;
      }
      expect(refusal).toMatchObject({
        kind: 'locked',
        message: expect.stringMatching(
          /^this run no longer holds the lock of alice@127\.0\.0\.1:1110: it is now held by /,
        ),
        context: { account: 'alice@127.0.0.1:1110' },
      });
    } finally {
      held.release();
    }
  });

  it('the heartbeat that finds the row taken over logs the account as the run names it, not by the key', async () => {
    const path = join(dir, 'j.sqlite');
    const logged: Array<{ obj: unknown; msg: string | undefined }> = [];
    const logger = { ...silentLogger, error: (obj: object | string, msg?: string) => logged.push({ obj, msg }) };
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
    const held = await holdAccountLock(path, 'alice@localhost', {
      ...o,
      logger,
      name: 'alice@127.0.0.1:1110',
      heartbeatMs: 1_000,
    });
    try {
      const other = new Database(path);
      other.prepare(`UPDATE locks SET holder_id = 'theirs', hostname = 'other', pid = 4242`).run();
      other.close();
      await vi.advanceTimersByTimeAsync(1_000);
      expect(logged).toEqual([
        { obj: { account: 'alice@127.0.0.1:1110' }, msg: expect.stringContaining('taken over by another run') },
      ]);
    } finally {
      vi.useRealTimers();
      held.release();
    }
  });

  it('with --wait, waits within it for a journal another process keeps busy, holding nothing between tries; ' +
    "once the wait is out, exit 7 in the journal's words", async () => {
    const path = join(dir, 'j.sqlite');
    Journal.open(path, { source: 'acct' }).close();
    const lockFree = (): boolean => {
      const lf = LockFile.tryAcquire(lockFilePath(path));
      lf?.release();
      return lf !== null;
    };
    // An sqlite3 shell writing it: tried in short tries (each blocks the thread up to 0.25 s),
    // for at least SQLite's busy timeout (5 s) however short the wait, as one try once took.
    const writer = new Database(path, { fileMustExist: true });
    writer.exec('BEGIN IMMEDIATE');
    let slept = 0;
    const pauses: number[] = [];
    const sleep = async (ms: number): Promise<void> => {
      slept++;
      pauses.push(ms);
    };
    try {
      const t0 = Date.now();
      await expect(holdAccountLock(path, 'acct', { ...o, waitSeconds: 0.3, sleep })).rejects.toMatchObject({
        kind: 'locked',
        message: `journal ${path} is busy (database is locked)`,
        context: { hint: expect.stringMatching(/^it was still busy when --wait 0\.3 ran out; another popsync/) },
      });
      // The pauses take no time here: the 5 s were spent in tries of 0.25 s, twenty or so.
      expect(Date.now() - t0).toBeGreaterThanOrEqual(5_000);
      expect(slept).toBeGreaterThanOrEqual(10);
      expect(pauses.slice(0, 4), 'pauses between tries at a busy journal grow').toEqual([250, 500, 1000, 2000]);
      expect(lockFree(), 'the lock file is given back').toBe(true);
    } finally {
      writer.exec('COMMIT');
      writer.close();
    }
    // The writer closed last: no connection of the refused run is left open on the journal.
    expect(existsSync(`${path}-wal`)).toBe(false);

    // A reader since before the run opened it (a backup): the run's "in use" mark cannot be
    // written into the journal file. It finishes while the run waits; the next try takes the lock.
    const reader = new Database(path, { fileMustExist: true });
    reader.exec('BEGIN');
    reader.prepare('SELECT COUNT(*) FROM messages').get();
    let between: boolean | undefined;
    slept = 0;
    const held = await holdAccountLock(path, 'acct', {
      ...o,
      waitSeconds: 30,
      sleep: async () => {
        slept++;
        between = lockFree();
        reader.exec('COMMIT');
        reader.close();
      },
    });
    try {
      expect(slept).toBe(1);
      expect(between, 'the lock file is free while the run waits').toBe(true);
      expect(held.journal.lockHolder('acct')).toMatchObject({ pid: process.pid });
      // Once held, the run's writes wait for another writer as long as ever (5 s), not a try's 0.25 s.
      const shell = new Database(path, { fileMustExist: true });
      shell.exec('BEGIN IMMEDIATE');
      const t0 = Date.now();
      try {
        expect(() => held.journal.beginAppend('acct', [item('u1')])).toThrow(/is busy/);
        expect(Date.now() - t0).toBeGreaterThanOrEqual(4_000);
      } finally {
        shell.exec('ROLLBACK');
        shell.close();
      }
    } finally {
      held.release();
    }
    expect(Journal.lockHolderAt(path, 'acct')).toBeNull();
  }, 30_000);

  it('a signal while waiting for a busy journal ends the wait without another try', async () => {
    const path = join(dir, 'j.sqlite');
    Journal.open(path, { source: 'acct' }).close();
    const reader = new Database(path, { fileMustExist: true });
    reader.exec('BEGIN');
    reader.prepare('SELECT COUNT(*) FROM messages').get();
    const walBytes = (): number => statSync(`${path}-wal`).size;
    const controller = new AbortController();
    const atPause: number[] = [];
    try {
      await expect(
        holdAccountLock(path, 'acct', {
          ...o,
          waitSeconds: 30,
          signal: controller.signal,
          sleep: async () => {
            atPause.push(walBytes());
            controller.abort();
          },
        }),
      ).rejects.toMatchObject({
        kind: 'locked',
        message: expect.stringContaining('"in use" mark could not be written'),
      });
      // Each try at a journal a reader holds writes its mark and takes it back: a try after the
      // signal (which would also block the thread for its busy timeout) shows as more -wal.
      expect(atPause).toHaveLength(1);
      expect(atPause[0]).toBeGreaterThan(0);
      expect(walBytes(), 'no try after the signal').toBe(atPause[0]);
    } finally {
      reader.exec('COMMIT');
      reader.close();
    }
  });

  it('waits for a live row on this host that holds no lock file (an older popsync)', async () => {
    const path = join(dir, 'j.sqlite');
    const j = Journal.open(path, { source: 'acct' });
    const lf = LockFile.tryAcquire(lockFilePath(path))!;
    expect(j.tryLock('acct', lf, { command: 'sync' }).ok).toBe(true);
    lf.release();
    await expect(holdAccountLock(path, 'acct', o)).rejects.toMatchObject({
      kind: 'locked',
      context: { hint: expect.stringContaining('older popsync') },
    });
    j.close();
  });
});
