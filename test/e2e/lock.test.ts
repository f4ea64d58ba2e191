/**
 * The account lock between processes, against the real Dovecot: runs on one account queue or
 * refuse (exit 7), and never both copy. A stopped holder (SIGSTOP: Ctrl-Z, a suspended
 * laptop) is never taken over, however old its heartbeat; a killed one frees the lock at once.
 */
import type { ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { realisticMix } from '../../lab/corpus.js';
import type { Lab } from '../../lab/dovecot.js';
import { LockFile, lockFilePath } from '../../src/journal/lock-file.js';
import { labArgs, useLab } from '../support/lab-fixture.js';
import { runCli, startCli } from '../support/cli.js';
import { destinationMessages, digests, sourceMessages } from '../support/mailboxes.js';

let lab: Lab;
let dir: string;

useLab('lock', {}, (l, d) => {
  lab = l;
  dir = d;
});

const env = () => ({ PW: lab.password });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Waits until the run has committed `n` journal steps: it is copying, not connecting. */
async function waitForSteps(stepsFile: string, n: number, child: ChildProcess): Promise<void> {
  for (;;) {
    if (existsSync(stepsFile) && Number(readFileSync(stepsFile, 'utf8').trim()) >= n) return;
    if (child.exitCode !== null || child.signalCode !== null)
      throw new Error('the first run ended before it was stopped');
    await sleep(5);
  }
}

describe('the account lock', () => {
  it('migrate --wait queues a second run behind the first instead of exiting 7', async () => {
    const pop = lab.newUser('src');
    const imap = lab.newUser('dst');
    const journal = join(dir, `${pop}.sqlite`);
    await lab.seedPop3(pop, realisticMix(30, 31));
    const [a, b] = await Promise.all(
      [0, 1].map(() => runCli(labArgs('migrate', lab, pop, imap, journal, ['--wait', '60']), { env: env() })),
    );
    expect([a!.code, b!.code], a!.stderr + b!.stderr).toEqual([0, 0]);
    expect(await destinationMessages(lab, imap)).toHaveLength(30);
  });

  it('a stopped run is never taken over, even long past the stale limit: 0 duplicates after SIGCONT', async () => {
    const pop = lab.newUser('src');
    const imap = lab.newUser('dst');
    const journal = join(dir, `${pop}.sqlite`);
    const stepsFile = join(dir, `${pop}.steps`);
    const count = 300;
    await lab.seedPop3(pop, realisticMix(count, 47));
    const args = (cmd: string, extra: string[] = []) =>
      labArgs(cmd, lab, pop, imap, journal, ['--batch-messages', '5', ...extra]);

    const first = startCli(args('migrate'), { env: env(), hooks: { stepsFile } });
    await waitForSteps(stepsFile, 3, first.child);
    first.child.kill('SIGSTOP');
    try {
      const copiedWhileStopped = (await destinationMessages(lab, imap)).length;
      expect(copiedWhileStopped).toBeLessThan(count);
      // Its heartbeat is now far older than the (shortened) stale limit: the old rule took over here.
      await sleep(300);
      const second = await runCli(args('migrate'), { env: env(), hooks: { staleMs: 100 } });
      expect(second.code, second.stderr).toBe(7);
      expect(second.stderr).toContain(`pid ${first.child.pid}`);
      expect(second.stderr).toMatch(/a stopped run .* keeps it/);
      const status = JSON.parse((await runCli(['status', '--journal', journal, '--json'])).stdout);
      expect(status.accounts[0].lock).toMatchObject({ pid: first.child.pid, command: 'migrate' });
      const third = startCli(args('sync', ['--wait', '120']), { env: env(), hooks: { staleMs: 100 } });
      await sleep(1000);
      expect(third.child.exitCode, 'sync --wait must still be waiting').toBeNull();
      first.child.kill('SIGCONT');
      const [a, c] = await Promise.all([first.done, third.done]);
      expect(a.code, a.stderr).toBe(0);
      expect(c.code, c.stderr).toBe(0);
    } finally {
      first.child.kill('SIGCONT');
    }
    const dest = await destinationMessages(lab, imap);
    expect(dest).toHaveLength(count);
    expect(digests(dest.map((m) => m.body))).toEqual(digests(await sourceMessages(lab, pop)));
  });

  it('a killed run frees the lock at once: the next run (no --wait) resumes it, 0 duplicates', async () => {
    const pop = lab.newUser('src');
    const imap = lab.newUser('dst');
    const journal = join(dir, `${pop}.sqlite`);
    const stepsFile = join(dir, `${pop}.steps`);
    const count = 200;
    await lab.seedPop3(pop, realisticMix(count, 53));
    const args = labArgs('migrate', lab, pop, imap, journal, ['--batch-messages', '5']);
    const first = startCli(args, { env: env(), hooks: { stepsFile } });
    await waitForSteps(stepsFile, 3, first.child);
    first.child.kill('SIGKILL');
    expect((await first.done).signal).toBe('SIGKILL');
    // Its row is still in the journal, but status knows the holder is gone.
    const status = JSON.parse((await runCli(['status', '--journal', journal, '--json'])).stdout);
    expect(status.accounts[0].lock).toBeNull();
    const next = await runCli(args, { env: env() });
    expect(next.code, next.stderr).toBe(0);
    expect(next.stderr).toMatch(/replaced the lock row of a run that has ended/);
    const dest = await destinationMessages(lab, imap);
    expect(dest).toHaveLength(count);
    expect(digests(dest.map((m) => m.body))).toEqual(digests(await sourceMessages(lab, pop)));
  });

  it("another host's lock row is respected while it beats, and taken over once its heartbeat is stale", async () => {
    const pop = lab.newUser('src');
    const imap = lab.newUser('dst');
    const journal = join(dir, `${pop}.sqlite`);
    await lab.seedPop3(pop, realisticMix(3, 71));
    const args = labArgs('migrate', lab, pop, imap, journal);
    expect((await runCli(args, { env: env() })).code).toBe(0);
    // A run on another host sharing this journal (a network file system whose locks do not reach us).
    const setRow = (heartbeat: Date) => {
      const db = new Database(journal);
      db.prepare(
        `INSERT OR REPLACE INTO locks (account, pid, hostname, holder_id, command, started_at, heartbeat_at) ` +
          `VALUES (?, 4242, 'elsewhere.example', 'x', 'sync', ?, ?)`,
      ).run(`${pop}@localhost`, heartbeat.toISOString(), heartbeat.toISOString());
      db.close();
    };
    setRow(new Date());
    const held = await runCli(args, { env: env() });
    expect(held.code, held.stderr).toBe(7);
    expect(held.stderr).toMatch(/pid 4242 on elsewhere\.example.*\n.*a run on another host holds it/s);
    // Named as the run names its source (as given), not by the journal's key (`localhost`).
    const given = `${pop}@127.0.0.1:${lab.pop3.port}`;
    expect(held.stderr).toContain(`another popsync run holds ${given}: `);
    expect(held.stderr).toContain(`\n  account: ${given}\n`);
    // status: with --pop, the same name; with the journal alone, the journal's key.
    const status = (extra: string[]) => runCli(['status', '--journal', journal, ...extra]);
    expect((await status(['--pop', `pop3://${given}`])).stdout.startsWith(`${given}  (journal `)).toBe(true);
    expect((await status([])).stdout.startsWith(`${pop}@localhost  (journal `)).toBe(true);
    setRow(new Date(Date.now() - 3_600_000));
    const taken = await runCli(args, { env: env() });
    expect(taken.code, taken.stderr).toBe(0);
    expect(taken.stderr).toMatch(
      /took over the lock of a run on another host that sent no heartbeat for too long: pid 4242 on elsewhere\.example/,
    );
    expect(await destinationMessages(lab, imap)).toHaveLength(3);
  });

  it('--wait for a journal kept busy by another process honours Ctrl-C within a short try, not a 5 s one', async () => {
    const pop = lab.newUser('src');
    const imap = lab.newUser('dst');
    const journal = join(dir, `${pop}.sqlite`);
    await lab.seedPop3(pop, realisticMix(2, 83));
    const args = labArgs('migrate', lab, pop, imap, journal);
    expect((await runCli(args, { env: env() })).code).toBe(0);
    // A backup reading it since before the run: the run's "in use" mark cannot reach the file.
    const reader = new Database(journal, { fileMustExist: true });
    try {
      reader.exec('BEGIN');
      reader.prepare('SELECT COUNT(*) FROM messages').get();
      const walBytes = () => (existsSync(`${journal}-wal`) ? statSync(`${journal}-wal`).size : 0);
      const before = walBytes();
      const run = startCli([...args, '--wait', '60'], { env: env() });
      // A try has just committed its mark and now waits for the reader to let the checkpoint
      // through: the moment a try that blocks the event loop for its whole busy timeout is longest.
      while (walBytes() === before) {
        if (run.child.exitCode !== null) throw new Error(`the run ended before it tried: ${(await run.done).stderr}`);
        await sleep(2);
      }
      const signalled = Date.now();
      run.child.kill('SIGINT');
      const r = await run.done;
      const took = Date.now() - signalled;
      expect(r.code, r.stderr).toBe(130);
      expect(r.stderr).toContain('interrupted; the journal is consistent');
      expect(r.stderr).not.toMatch(/\n\s+at /);
      // Honoured within a try (a fraction of a second), not after SQLite's 5 s busy timeout: the
      // bound is half of it, generous for a loaded machine, and the old try always took all of it.
      expect(took, r.stderr).toBeLessThan(2_500);
    } finally {
      reader.exec('COMMIT');
      reader.close();
    }
    // The interrupted try took its mark back: the next run finds a sound journal.
    const next = await runCli(args, { env: env() });
    expect(next.code, next.stderr).toBe(0);
  });

  it('the lock file is the kernel lock: held by a stopped process, free the moment it is killed', async () => {
    const journal = join(dir, 'kernel.sqlite');
    const module = join(process.cwd(), 'src/journal/lock-file.ts');
    const script = `const { LockFile } = await import(${JSON.stringify(module)});
if (!LockFile.tryAcquire(${JSON.stringify(lockFilePath(journal))})) process.exit(3);
process.stdout.write('held\\n');
setInterval(() => {}, 1000);`;
    const { spawn } = await import('node:child_process');
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    try {
      await new Promise<void>((resolve, reject) => {
        child.stdout.once('data', () => resolve());
        child.once('exit', (code) => reject(new Error(`holder exited ${code}`)));
      });
      child.kill('SIGSTOP');
      expect(LockFile.tryAcquire(lockFilePath(journal))).toBeNull();
      const gone = new Promise((r) => child.once('exit', r));
      child.kill('SIGKILL');
      await gone;
      const mine = LockFile.tryAcquire(lockFilePath(journal));
      expect(mine).not.toBeNull();
      mine!.release();
    } finally {
      child.kill('SIGKILL');
    }
  });
});
