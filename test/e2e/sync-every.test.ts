/**
 * `popsync sync --every` against a real Dovecot: one long-running process, mail delivered
 * between its cycles arrives exactly once, each cycle that moved something prints one line,
 * a cycle that cannot reach the server backs off, a bad password stops it with exit 3, and
 * SIGTERM ends it with exit 0.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, type AddressInfo } from 'node:net';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Journal, type RunRecord } from '../../src/journal/journal.js';
import type { Lab } from '../../lab/dovecot.js';
import { BIN, ROOT, runCli } from '../support/cli.js';
import { useLab } from '../support/lab-fixture.js';
import { destinationMessages, digests, sourceMessages } from '../support/mailboxes.js';
import { mail, syncArgs } from './sync-helpers.js';

let lab: Lab;
let dir: string;
useLab('every', {}, (l, d) => {
  lab = l;
  dir = d;
});

interface Daemon {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

function startDaemon(args: string[], env: Record<string, string>): Daemon {
  const child = spawn(process.execPath, [BIN, ...args], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/root', NO_COLOR: '1', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => {
    out += d.toString();
  });
  child.stderr!.on('data', (d: Buffer) => {
    err += d.toString();
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('close', (code, signal) => resolve({ code, signal })),
  );
  return { child, stdout: () => out, stderr: () => err, exited };
}

/** Polls `check` until it holds; fails with `what` after `ms` (a bound, not a timing assertion). */
async function until(what: string, check: () => boolean | Promise<boolean>, ms = 45_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function finishedRuns(journal: string): RunRecord[] {
  try {
    const snap = Journal.inspect(journal);
    return (snap?.accounts[0]?.runs ?? []).filter((r) => r.finishedAt !== null);
  } catch {
    // Read while the daemon creates the journal: ask again on the next poll.
    return [];
  }
}

const copiedIn = (stdout: string) =>
  stdout
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => {
      const m = /^popsync: (\d+) new messages? copied /.exec(l);
      if (!m) throw new Error(`unexpected stdout line: ${l}`);
      return Number(m[1]);
    });

describe('sync --every', () => {
  it(
    'copies mail delivered between cycles exactly once, one line per cycle that moved something, and exits ' +
      '0 on SIGTERM',
    async () => {
      const pop = lab.newUser('src');
      const imap = lab.newUser('dst');
      const journal = join(dir, `${pop}.sqlite`);
      await lab.seedPop3(pop, [mail(`${pop}-1`), mail(`${pop}-2`), mail(`${pop}-3`)]);
      const d = startDaemon(syncArgs(lab, pop, imap, journal, ['--every', '1s', '--no-progress']), {
        PW: lab.password,
      });
      try {
        await until('the first three messages', async () => (await destinationMessages(lab, imap)).length >= 3);
        await until('the first summary line', () => d.stdout().includes('\n'));
        // Idle cycles run and print nothing.
        const idleFrom = finishedRuns(journal).length;
        await until('two idle cycles', () => finishedRuns(journal).length >= idleFrom + 2);
        expect(copiedIn(d.stdout())).toEqual([3]);

        await lab.seedPop3(pop, [mail(`${pop}-4`), mail(`${pop}-5`)]);
        await until('the two new messages', async () => (await destinationMessages(lab, imap)).length >= 5);
        const after = finishedRuns(journal).length;
        await until('two more cycles after the copy', () => finishedRuns(journal).length >= after + 2);

        const lines = copiedIn(d.stdout());
        expect(lines.reduce((a, b) => a + b, 0)).toBe(5);
        expect(lines.length).toBeGreaterThanOrEqual(2);
        const dest = await destinationMessages(lab, imap);
        expect(digests(dest.map((m) => m.body))).toEqual(digests(await sourceMessages(lab, pop)));
      } catch (e) {
        throw new Error(`${String(e)}\nstdout:\n${d.stdout()}\nstderr:\n${d.stderr()}`);
      } finally {
        d.child.kill('SIGTERM');
      }
      const end = await d.exited;
      expect({ ...end, stderr: d.stderr() }).toEqual({
        code: 0,
        signal: null,
        stderr: expect.not.stringMatching(/error|exit \d/i),
      });

      // Every cycle was an ordinary sync run: status shows the last one.
      const status = await runCli(['status', '--journal', journal, '--json']);
      expect(status.code).toBe(0);
      const account = JSON.parse(status.stdout).accounts[0];
      expect(account.copied).toBe(5);
      expect(account.lastRun).toMatchObject({ command: 'sync' });
      // The cycle SIGTERM met: finished, or (on a slow machine, mid-cycle) recorded as interrupted.
      if (account.lastRun.result !== 'ok') expect(account.lastRun).toMatchObject({ result: 'interrupted' });
      expect(account.lastError).toBeNull();
      expect(account.lock).toBeNull();
    },
  );

  it('every: in the config file keeps sync running the same way', async () => {
    const pop = lab.newUser('src');
    const imap = lab.newUser('dst');
    const config = join(dir, `${pop}.yml`);
    writeFileSync(
      config,
      [
        'defaults:',
        '  every: 1s',
        'accounts:',
        `  - name: ${pop}`,
        `    source: { url: 'pop3://${pop}@127.0.0.1:${lab.pop3.port}', tls: none, password_env: PW }`,
        `    destination: { url: 'imap://${imap}@127.0.0.1:${lab.imap.port}', tls: none, password_env: PW }`,
        `    journal: ${pop}.sqlite`,
        '',
      ].join('\n'),
    );
    const d = startDaemon(['sync', '--config', config, '--no-progress'], { PW: lab.password });
    try {
      await until('the first cycle', () => finishedRuns(join(dir, `${pop}.sqlite`)).length >= 1);
      await lab.seedPop3(pop, [mail(`${pop}-1`), mail(`${pop}-2`)]);
      await until('the two messages', async () => (await destinationMessages(lab, imap)).length >= 2);
    } catch (e) {
      throw new Error(`${String(e)}\nstdout:\n${d.stdout()}\nstderr:\n${d.stderr()}`);
    } finally {
      d.child.kill('SIGTERM');
    }
    expect(await d.exited).toEqual({ code: 0, signal: null });
    expect(copiedIn(d.stdout()).reduce((a, b) => a + b, 0)).toBe(2);
    expect(digests((await destinationMessages(lab, imap)).map((m) => m.body))).toEqual(
      digests(await sourceMessages(lab, pop)),
    );
  });

  it('backs off while the server cannot be reached, and SIGTERM while it waits exits 0 at once', async () => {
    const pop = lab.newUser('src');
    const imap = lab.newUser('dst');
    const args = syncArgs(lab, pop, imap, join(dir, `${pop}.sqlite`), ['--every', '1s', '--no-progress']);
    // Nothing listens on port 1 of loopback: every connection is refused, which sync calls "try again later" (75).
    args[args.indexOf(`pop3://${pop}@127.0.0.1:${lab.pop3.port}`)] = `pop3://${pop}@127.0.0.1:1`;
    const d = startDaemon(args, { PW: lab.password });
    try {
      await until('three backoff lines', () => (d.stderr().match(/trying again in/g) ?? []).length >= 3);
    } finally {
      d.child.kill('SIGTERM');
    }
    expect(await d.exited).toEqual({ code: 0, signal: null });
    const waits = [...d.stderr().matchAll(/trying again in (\d+)s/g)].map((m) => Number(m[1]));
    // 1 s, 2 s, 4 s (±10%, rounded to seconds): each wait longer than the one before.
    expect(waits.slice(0, 3)).toEqual([1, 2, 4]);
    expect(d.stdout()).toBe('');
  });

  it('SIGTERM while a server keeps it waiting exits 0 at once, not after --timeout', async () => {
    // A POP3 server that accepts and never greets: the cycle waits on it.
    const silent = createServer(() => {});
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const port = (silent.address() as AddressInfo).port;
    const pop = lab.newUser('src');
    const imap = lab.newUser('dst');
    const args = syncArgs(lab, pop, imap, join(dir, `${pop}.sqlite`), [
      '--every',
      '1s',
      '--no-progress',
      '--timeout',
      '600',
    ]);
    args[args.indexOf(`pop3://${pop}@127.0.0.1:${lab.pop3.port}`)] = `pop3://${pop}@127.0.0.1:${port}`;
    const connected = new Promise<void>((r) => silent.once('connection', () => r()));
    const journal = join(dir, `${pop}.sqlite`);
    const d = startDaemon(args, { PW: lab.password });
    try {
      await connected;
      d.child.kill('SIGTERM');
      // Bounded by the test's timeout, far below the 600 s the socket could otherwise hold it.
      expect(await d.exited).toEqual({ code: 0, signal: null });
    } finally {
      d.child.kill('SIGKILL');
      silent.close();
    }
    // The stop was asked for: status calls the cycle interrupted, not an error (it used to).
    const status = await runCli(['status', '--journal', journal, '--json']);
    const account = JSON.parse(status.stdout).accounts[0];
    expect(account.lastRun).toMatchObject({ result: 'interrupted' });
    expect(account.lastError).toBeNull();
  });

  it('SIGTERM between cycles just exits 0: there is no batch in flight to finish', async () => {
    const pop = lab.newUser('src');
    const imap = lab.newUser('dst');
    const journal = join(dir, `${pop}.sqlite`);
    const d = startDaemon(syncArgs(lab, pop, imap, journal, ['--every', '1h', '--no-progress']), {
      PW: lab.password,
    });
    try {
      await until('the first cycle', () => finishedRuns(journal).length >= 1);
    } finally {
      d.child.kill('SIGTERM');
    }
    expect(await d.exited).toEqual({ code: 0, signal: null });
    expect(d.stderr()).not.toMatch(/finishing the batch|in flight/);
  });

  it('stops with exit 3 when the password is wrong: waiting does not fix that', async () => {
    const pop = lab.newUser('src');
    const imap = lab.newUser('dst');
    await lab.seedPop3(pop, [mail(`${pop}-1`)]);
    const d = startDaemon(syncArgs(lab, pop, imap, join(dir, `${pop}.sqlite`), ['--every', '1s', '--no-progress']), {
      PW: 'wrong',
    });
    const end = await Promise.race([d.exited, new Promise<null>((r) => setTimeout(() => r(null), 45_000))]);
    if (end === null) d.child.kill('SIGKILL');
    expect(end).toEqual({ code: 3, signal: null });
    expect(d.stderr()).toMatch(/stopped syncing this account \(exit 3\)/);
  });
});
