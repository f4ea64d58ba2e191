/**
 * How a run ends when it is stopped or a server lies, through the real binary against the
 * scripted servers: the documented exit code, one clear message, no stack trace, no secret,
 * and with `--json` exactly one JSON object on stdout whatever happened.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { BIN, ROOT, type CliResult } from '../support/cli.js';
import { startFakeImap, FAKE_PASSWORD, FAKE_USER, type FakeImap, type FakeImapOptions } from '../support/fake-imap.js';
import { startFakePop3, type FakePop3, type FakePop3Options } from '../support/fake-pop3.js';

const dir = mkdtempSync(join(tmpdir(), 'popsync-endings-'));
let servers: Array<FakePop3 | FakeImap> = [];
afterEach(async () => {
  await Promise.all(servers.map((s) => s.close()));
  servers = [];
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const POP_PASSWORD = 'pop-secret-in-endings';
let journals = 0;

function message(i: number): string {
  return (
    `From: a${i}@example.org\r\nTo: b@example.org\r\nSubject: message ${i}\r\nMessage-ID: ` +
    `<m${i}@example.org>\r\n\r\nbody ${i}\r\n`
  );
}

async function servePair(
  pop: FakePop3Options,
  imap: FakeImapOptions = {},
  timeoutSeconds = 30,
): Promise<{ pop: FakePop3; imap: FakeImap; args: (cmd: string, extra?: string[]) => string[] }> {
  const p = await startFakePop3({ user: 'src', password: POP_PASSWORD, ...pop });
  const i = await startFakeImap(imap);
  servers.push(p, i);
  const journal = join(dir, `j${journals++}.sqlite`);
  return {
    pop: p,
    imap: i,
    args: (cmd, extra = []) => [
      cmd,
      '--pop',
      `pop3://src@127.0.0.1:${p.port}`,
      '--pop-tls',
      'none',
      '--pop-password-env',
      'POP_PW',
      '--imap',
      `imap://${FAKE_USER}@127.0.0.1:${i.port}`,
      '--imap-tls',
      'none',
      '--imap-password-env',
      'IMAP_PW',
      '--journal',
      journal,
      '--no-progress',
      '--timeout',
      String(timeoutSeconds),
      ...extra,
    ],
  };
}

interface Spawned {
  child: ReturnType<typeof spawn>;
  done: Promise<CliResult>;
  /** What it has written to stderr so far. */
  stderr(): string;
}

function spawnCli(args: string[]): Spawned {
  const child = spawn(process.execPath, [BIN, ...args], {
    cwd: ROOT,
    env: {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      HOME: dir,
      NO_COLOR: '1',
      POP_PW: POP_PASSWORD,
      IMAP_PW: FAKE_PASSWORD,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => {
    stdout += d.toString();
  });
  child.stderr!.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  // A generous bound on the whole child, not a timing assertion: a hang fails the test, not the suite.
  const guard = setTimeout(() => child.kill('SIGKILL'), 60_000);
  const done = new Promise<CliResult>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(guard);
      resolve({ code, signal, stdout, stderr });
    });
  });
  return { child, done, stderr: () => stderr };
}

function expectClean(r: CliResult, code: number): void {
  expect(r.signal, r.stderr).toBeNull();
  expect(r.code, r.stderr).toBe(code);
  expect(r.stderr).not.toMatch(/^\s+at /m);
  expect(r.stderr).not.toMatch(/internal error/);
  expect(r.stderr + r.stdout).not.toContain(POP_PASSWORD);
  expect(r.stderr + r.stdout).not.toContain(FAKE_PASSWORD);
}

/** Resolves once `cond` holds, checking whenever the servers saw something. */
async function until(cond: () => boolean): Promise<void> {
  while (!cond()) await new Promise((r) => setTimeout(r, 20));
}

/** Written when the signal arrives; then one closing line. */
const NOTICE =
  '\npopsync: SIGTERM: finishing the batches already being stored (at most 2 per account), then stopping ' +
  '(press Ctrl-C again to stop at once)\n';

describe('interrupted before anything was stored', () => {
  it(
    'SIGTERM while the first batch is being fetched: exit 130, the notice and one closing line, no ' + 'stack trace',
    async () => {
      const { pop, args } = await servePair({
        messages: [message(1), message(2)],
        // The first RETR never answers: the run is stopped while it waits for it.
        handlers: { RETR: () => undefined },
      });
      const run = spawnCli(args('migrate'));
      await until(() => pop.commands('RETR').length > 0);
      run.child.kill('SIGTERM');
      const r = await run.done;
      expectClean(r, 130);
      expect(r.stderr).toBe(`${NOTICE}popsync: interrupted; the journal is consistent, run again to resume\n`);
      expect(r.stdout).toBe('');
    },
  );

  it('SIGTERM while the POP3 server has not even greeted: exit 130 at once, not at --timeout', async () => {
    // A timeout longer than the child's guard: only the interrupt can end this run in time. A server
    // that has not greeted answers nothing: answered, the CAPA popsync writes before the greeting
    // would be read as one (its +OK) with a stray line after it, a protocol error (exit 4) when the
    // signal came late on a loaded machine.
    const { pop, args } = await servePair(
      { messages: [message(1)], handlers: { GREETING: () => undefined, CAPA: () => undefined } },
      {},
      600,
    );
    const run = spawnCli(args('sync'));
    await until(() => pop.connections > 0);
    run.child.kill('SIGTERM');
    const r = await run.done;
    expectClean(r, 130);
    expect(r.stderr).toBe(`${NOTICE}popsync: interrupted; the journal is consistent, run again to resume\n`);
  });

  it('SIGTERM during the reconnect backoff ends the wait: no further connection is made', async () => {
    const { pop, args } = await servePair({
      messages: [message(1), message(2)],
      handlers: { RETR: (ctx) => ctx.drop() },
    });
    const run = spawnCli(args('migrate', ['--reconnect-attempts', '10']));
    // The second backoff is 2 s; the signal arrives while the run sleeps through it.
    await until(() => run.stderr().split('reconnecting').length - 1 >= 2);
    const connections = pop.connections;
    run.child.kill('SIGTERM');
    const r = await run.done;
    expectClean(r, 130);
    expect(r.stderr).toMatch(/popsync: interrupted; the journal is consistent, run again to resume\n$/);
    expect(pop.connections).toBe(connections);
  });
});

describe('interrupted while storing', () => {
  it('SIGTERM with two batches being appended: both are finished and recorded, as the notice says', async () => {
    let release: () => void = () => undefined;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    // One message per batch; the replies to the first two APPENDs wait for the test. The copier
    // writes the second batch while the first one's replies are awaited, so both are in flight.
    const { imap, args } = await servePair(
      { messages: [1, 2, 3, 4, 5].map(message) },
      { onAppend: (a) => (a.n <= 2 ? { kind: 'ok', after: gate } : undefined) },
    );
    const cmd = args('migrate', ['--batch-messages', '1']);
    const run = spawnCli(cmd);
    await until(() => imap.appends.length === 2);
    run.child.kill('SIGTERM');
    // The handler writes its notice just before it aborts: from here on, the run knows.
    await until(() => run.stderr().includes('SIGTERM: '));
    release();
    const r = await run.done;
    expectClean(r, 130);
    expect(r.stderr).toBe(`${NOTICE}popsync: interrupted; the journal is consistent, run again to resume\n`);
    expect(imap.mailboxes.get('INBOX')!.messages).toHaveLength(2);
    expect(imap.appends).toHaveLength(2);
    const journal = cmd[cmd.indexOf('--journal') + 1]!;
    const status = spawnCli(['status', '--journal', journal, '--json']);
    const s = await status.done;
    // The third batch was routed and its intent journaled while the window was full, so that it
    // could go the moment a reply freed it; interrupted, it was never written, and its intent was
    // withdrawn: nothing is left for the next run to look for in the destination.
    expect(JSON.parse(s.stdout).accounts[0]).toMatchObject({ copied: 2, pending: { appending: 0 } });
    const again = await spawnCli(cmd).done;
    expectClean(again, 0);
    expect(imap.mailboxes.get('INBOX')!.messages).toHaveLength(5);
    const after = await spawnCli(['status', '--journal', journal, '--json']).done;
    expect(JSON.parse(after.stdout).accounts[0]).toMatchObject({ copied: 5, pending: { appending: 0 } });
  });
});

describe('an IMAP server that lies about the UIDs it gave', () => {
  it('the same APPENDUID for every APPEND is a server fault: exit 4, naming the server', async () => {
    const { imap, args } = await servePair(
      { messages: [message(1), message(2), message(3)] },
      { onAppend: () => ({ kind: 'ok', appendUid: 7 }) },
    );
    const r = await spawnCli(args('migrate')).done;
    expectClean(r, 4);
    expect(r.stderr).toContain(`127.0.0.1:${imap.port}`);
    expect(r.stderr).toMatch(/UID 7/);
  });
});

describe('flags the destination does not keep', () => {
  it('are named in a warning (once per folder), not dropped silently; the run succeeds', async () => {
    const { imap, args } = await servePair(
      { messages: [message(1), message(2), message(3)] },
      // Like a server whose PERMANENTFLAGS lack \*: system flags stay, keywords vanish.
      { keepFlag: (f) => f.startsWith('\\') },
    );
    const r = await spawnCli(args('migrate', ['--flag', '$Migrated', '--flag', '\\Seen', '--batch-messages', '1']))
      .done;
    expectClean(r, 0);
    const warnings = r.stderr.split('\n').filter((l) => l.includes('did not keep'));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain(`IMAP server 127.0.0.1:${imap.port} did not keep $Migrated on the copies in "INBOX"`);
    expect(warnings[0]).not.toContain('\\Seen');
    expect(imap.mailboxes.get('INBOX')!.messages.map((m) => m.flags)).toEqual([['\\Seen'], ['\\Seen'], ['\\Seen']]);
  });
});

describe('interrupting a command that only reads', () => {
  it('plan waiting for a silent server stops at the first SIGTERM: exit 130, nothing written', async () => {
    const { pop, args } = await servePair(
      { messages: [message(1), message(2)], handlers: { TOP: () => undefined } },
      {},
      600,
    );
    const output = join(dir, 'plan.html');
    const run = spawnCli(args('plan', ['--output', output]).filter((a) => a !== '--no-progress'));
    await until(() => pop.commands('TOP').length > 0);
    run.child.kill('SIGTERM');
    const r = await run.done;
    expectClean(r, 130);
    expect(r.stderr).toBe('\npopsync: interrupted (SIGTERM); nothing was changed\n');
    expect(existsSync(output)).toBe(false);
  });

  it('with --json, the error object on stdout too', async () => {
    const { pop, args } = await servePair(
      { messages: [message(1), message(2)], handlers: { TOP: () => undefined } },
      {},
      600,
    );
    const run = spawnCli(args('plan', ['--json']).filter((a) => a !== '--no-progress'));
    await until(() => pop.commands('TOP').length > 0);
    run.child.kill('SIGTERM');
    const r = await run.done;
    expectClean(r, 130);
    expect(JSON.parse(r.stdout)).toMatchObject({
      command: 'plan',
      ok: false,
      exitCode: 130,
      error: { kind: 'interrupted', message: 'interrupted (SIGTERM); nothing was changed' },
    });
  });
});

describe('interrupting a run that waits for the lock another run holds', () => {
  it('SIGTERM during --wait: exit 130 (interrupted), not 7 (locked)', async () => {
    const { pop, args } = await servePair({ messages: [message(1)], handlers: { RETR: () => undefined } }, {}, 600);
    // The first run holds the lock while it waits for a RETR that never comes.
    const holder = spawnCli(args('sync'));
    await until(() => pop.commands('RETR').length > 0);
    const waiter = spawnCli(args('sync', ['--wait', '600', '--verbose']));
    // The account is resolved and the journal named just before the lock is tried.
    await until(() => /journal/.test(waiter.stderr()));
    waiter.child.kill('SIGTERM');
    const r = await waiter.done;
    expectClean(r, 130);
    expect(r.stderr).toMatch(/popsync: interrupted; the journal is consistent, run again to resume\n$/);
    holder.child.kill('SIGKILL');
    await holder.done;
  });
});

describe('an IMAP server that reuses a UID from an earlier run', () => {
  it('an APPENDUID below the UIDNEXT it announced is a server fault: exit 4, not a bug (70)', async () => {
    const { pop, imap, args } = await servePair(
      { messages: [message(1)] },
      { onAppend: () => ({ kind: 'ok', appendUid: 1 }) },
    );
    expectClean(await spawnCli(args('migrate')).done, 0);
    // A new message; the server announces UIDNEXT 2, then names UID 1 again.
    pop.mailbox.push({ uidl: 'uid-new', body: Buffer.from(message(2)) });
    const r = await spawnCli(args('migrate')).done;
    expectClean(r, 4);
    expect(r.stderr).toContain(
      `IMAP server 127.0.0.1:${imap.port} gave UID 1 in "INBOX" to a new message below the UIDNEXT 2 it had announced`,
    );
  });
});

describe('a destination whose SPECIAL-USE folder has a name no command can carry', () => {
  it('a \\Junk folder named with a line break: no folder for the role (exit 2), nothing appended', async () => {
    const { imap, args } = await servePair(
      { messages: [message(1)] },
      { capabilities: ['IMAP4rev1', 'UIDPLUS', 'LITERAL+', 'SPECIAL-USE'], specialUse: { 'Ju\r\nnk': '\\Junk' } },
    );
    const r = await spawnCli(args('migrate', ['--folder', '\\Junk', '--reconnect-attempts', '1'])).done;
    expectClean(r, 2);
    expect(r.stderr).toContain('popsync: the destination has no folder marked \\Junk (SPECIAL-USE)');
    expect(r.stderr).not.toContain('reconnecting');
    expect(imap.appends).toHaveLength(0);
  });
});
