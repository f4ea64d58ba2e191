/**
 * Bad input through the real binary, as a user or cron meets it: every case ends with the
 * documented exit code, a message that says what is wrong, no stack trace and no secret.
 * Nothing here needs a server: each case must be refused before popsync connects anywhere
 * (the addresses given are closed ports, so a case that did connect would show as exit 4/75).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { runCli, type CliResult } from '../support/cli.js';

const SECRET = 'hunter2-bad-input-secret';
const dir = mkdtempSync(join(tmpdir(), 'popsync-bad-input-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Exit code, and the user-facing promises that hold on every failure. */
function expectCleanFailure(r: CliResult, code: number): void {
  expect(r.signal, r.stderr).toBeNull();
  expect(r.code, r.stderr).toBe(code);
  expect(r.stderr).not.toMatch(/^\s+at /m);
  expect(r.stderr + r.stdout).not.toContain(SECRET);
  expect(r.stderr).not.toMatch(/internal error/);
}

const env = { PW: SECRET };
const account = (extra: string[] = []) => [
  '--pop',
  'pop3://alice@127.0.0.1:9',
  '--pop-tls',
  'none',
  '--pop-password-env',
  'PW',
  '--imap',
  'imap://alice@127.0.0.1:9',
  '--imap-tls',
  'none',
  '--imap-password-env',
  'PW',
  '--journal',
  join(dir, 'j.sqlite'),
  '--no-progress',
  ...extra,
];

function configFile(name: string, text: string): string {
  const file = join(dir, name);
  writeFileSync(file, text);
  return file;
}

const ACCOUNT_YAML = `accounts:
  - name: a
    source: { url: 'pop3://alice@127.0.0.1:9', tls: none, password_env: PW }
    destination: { url: 'imap://alice@127.0.0.1:9', tls: none, password_env: PW }
`;

describe('config files', () => {
  it('a 19.5 MB config is refused before it is parsed (exit 2)', async () => {
    const file = configFile(
      'huge.yml',
      ACCOUNT_YAML +
        `    rules:\n${'      - { match: { subject: spam }, folder: Junk }\n'.repeat(400_000)}`.slice(
          0,
          19.5 * 1024 * 1024,
        ),
    );
    const r = await runCli(['migrate', '--config', file, '--no-progress'], { env });
    expectCleanFailure(r, 2);
    expect(r.stderr).toMatch(/the config file .*huge\.yml is larger than 512 KB/);
  });

  it('a YAML alias bomb is exit 2, not an out-of-memory crash or exit 70', async () => {
    const lines = ['l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]'];
    for (let i = 1; i < 9; i++)
      lines.push(
        `l${i}: &l${i} [${Array(9)
          .fill(`*l${i - 1}`)
          .join(', ')}]`,
      );
    const file = configFile('bomb.yml', `${lines.join('\n')}\n${ACCOUNT_YAML}`);
    for (const args of [
      ['config', 'check', file],
      ['sync', '--config', file, '--no-progress'],
    ]) {
      const r = await runCli(args, { env });
      expectCleanFailure(r, 2);
      expect(r.stderr).toContain('too many YAML alias expansions');
    }
  });
});

describe('option values that cannot work are usage errors before connecting', () => {
  it('--timeout of 2,147,484 s or more (Node would fire it after 1 ms): exit 2', async () => {
    const r = await runCli(['migrate', ...account(['--timeout', '2147484'])], { env });
    expectCleanFailure(r, 2);
    expect(r.stderr).toMatch(/--timeout must be at most 2147483 seconds/);
    const file = configFile('timeout.yml', `${ACCOUNT_YAML}    timeout: 30d\n`);
    const c = await runCli(['config', 'check', file], { env });
    expectCleanFailure(c, 2);
    expect(c.stderr).toMatch(/timeout\.yml:5: accounts\[0\]\.timeout: at most 2147483 seconds/);
  });

  it('a folder name with a newline, CR or NUL: exit 2, on the command line and in a config', async () => {
    for (const name of ['Archive\nINBOX', 'Archive\r', 'Arch\u0001ive']) {
      const r = await runCli(['migrate', ...account(['--folder', name])], { env });
      expectCleanFailure(r, 2);
      expect(r.stderr).toMatch(
        /--folder[\s\S]*the folder name contains (a line break \(LF\)|CR|the control character U\+0001)/,
      );
    }
    const file = configFile(
      'folder.yml',
      `${ACCOUNT_YAML}    rules:\n      - match: { subject: x }\n        folder: "Lists\\0/x"\n`,
    );
    const c = await runCli(['migrate', '--config', file], { env });
    expectCleanFailure(c, 2);
    expect(c.stderr).toMatch(/folder\.yml:7: accounts\[0\]\.rules\[0\]\.folder: the folder name contains NUL/);
  });

  it('--flag \\Deleted and \\Recent are refused (copies would arrive marked for deletion): exit 2', async () => {
    for (const flag of ['\\Deleted', '\\deleted', '\\Recent']) {
      const r = await runCli(['sync', ...account(['--flag', '$Migrated', '--flag', flag])], { env });
      expectCleanFailure(r, 2);
      expect(r.stderr).toMatch(/the flag \\(Deleted|Recent) is refused/);
    }
    // A keyword IMAP cannot carry used to be dropped without a word.
    const r = await runCli(['sync', ...account(['--flag', 'Müll'])], { env });
    expectCleanFailure(r, 2);
    expect(r.stderr).toMatch(/invalid flag "Müll"/);
    const file = configFile('flags.yml', `${ACCOUNT_YAML}    flags: ['$Migrated', '\\Deleted']\n`);
    const c = await runCli(['sync', '--config', file], { env });
    expectCleanFailure(c, 2);
    expect(c.stderr).toMatch(/flags\.yml:5: accounts\[0\]\.flags\[1\]: the flag \\Deleted is refused/);
  });
});

describe('a URL in a config file', () => {
  it('a bad url is named by file, line and key, before any account runs, also by config check (exit 2)', async () => {
    const file = configFile(
      'urls.yml',
      `${ACCOUNT_YAML}  - name: b\n    source: { url: 'bob@127.0.0.1:9', password_env: PW }\n` +
        `    destination: { url: 'imap://bob@127.0.0.1:9', tls: none, password_env: PW }\n`,
    );
    // Line 6: the line of account b's source url (ACCOUNT_YAML is 4 lines, `- name: b` the 5th).
    const line = `popsync: ${file}:6: accounts[1].source.url: not a POP3 URL: expected pop3s://user@host[:port]\n`;
    for (const args of [
      ['migrate', '--config', file, '--no-progress'],
      ['config', 'check', file],
    ]) {
      const r = await runCli(args, { env });
      expectCleanFailure(r, 2);
      expect(r.stderr).toContain(line);
      expect(r.stderr).toContain('hint: write pop3s://bob@127.0.0.1:9');
      // Account a (fine, but its servers are closed ports) was never tried.
      expect(r.stderr).not.toMatch(/cannot connect/);
    }
    // A --pop on the command line replaces the url key: the key is not checked.
    const b = ['--account', 'b', '--pop', 'pop3://bob@127.0.0.1:9', '--pop-tls', 'none'];
    const flag = await runCli(['sync', '--config', file, ...b, '--journal', join(dir, 'b.sqlite')], { env });
    expect(flag.stderr).not.toContain('accounts[1].source.url');
  });
});

describe('sync --json prints exactly one JSON object, also when the run fails', () => {
  it('a config error (exit 2)', async () => {
    const file = configFile('bad.yml', `${ACCOUNT_YAML}    batch_mb: lots\n`);
    const r = await runCli(['sync', '--config', file, '--json'], { env });
    expectCleanFailure(r, 2);
    const lines = r.stdout.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0]!)).toMatchObject({
      version: 1,
      command: 'sync',
      ok: false,
      exitCode: 2,
      error: { kind: 'config', message: expect.stringMatching(/batch_mb/) },
    });
  });

  it('a command line commander refuses (exit 2)', async () => {
    const r = await runCli(['sync', ...account(['--json', '--timeout', '2147484'])], { env });
    expectCleanFailure(r, 2);
    expect(JSON.parse(r.stdout)).toMatchObject({
      command: 'sync',
      ok: false,
      exitCode: 2,
      error: { kind: 'usage', message: expect.stringMatching(/--timeout must be at most/) },
    });
  });

  it('migrate --json too, e.g. on a bad option combination (exit 2)', async () => {
    const r = await runCli(['migrate', ...account(['--json', '--report-format', 'csv'])], { env });
    expectCleanFailure(r, 2);
    const lines = r.stdout.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0]!)).toMatchObject({
      command: 'migrate',
      ok: false,
      exitCode: 2,
      error: { kind: 'usage', message: '--report-format needs --report FILE' },
    });
  });

  it('a server that cannot be reached (exit 75, "try later")', async () => {
    const r = await runCli(['sync', ...account(['--json'])], { env });
    expectCleanFailure(r, 75);
    const lines = r.stdout.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0]!)).toMatchObject({
      ok: false,
      exitCode: 75,
      error: { kind: 'temporary', account: 'alice@127.0.0.1:9' },
    });
  });
});

describe('every other command that takes --json prints the same error object', () => {
  /** The one line on stdout, parsed; the text error still goes to stderr. */
  function errorObject(r: CliResult, code: number): Record<string, unknown> {
    expectCleanFailure(r, code);
    const lines = r.stdout.trim().split('\n');
    expect(lines, r.stdout).toHaveLength(1);
    expect(r.stderr).toMatch(/popsync: |error: /);
    return JSON.parse(lines[0]!) as Record<string, unknown>;
  }

  it('status, verify, plan, journal forget-folder, config check: refused input (exit 2)', async () => {
    const cases: Array<[string[], string, RegExp]> = [
      [['status', '--pop', 'alice@127.0.0.1:9'], 'status', /not a POP3 URL/],
      [['verify', '--pop', 'alice@127.0.0.1:9'], 'verify', /not a POP3 URL/],
      [['plan', '--pop', 'alice@127.0.0.1:9'], 'plan', /not a POP3 URL/],
      [['journal', 'forget-folder', '--folder', 'INBOX'], 'journal forget-folder', /needs --journal PATH/],
      [['config', 'check', join(dir, 'no-such.yml')], 'config check', /cannot read the config file/],
    ];
    for (const [args, command, message] of cases) {
      const o = errorObject(await runCli([...args, '--json'], { env }), 2);
      expect(o, args.join(' ')).toMatchObject({ version: 1, command, ok: false, exitCode: 2 });
      expect((o.error as { message: string }).message).toMatch(message);
    }
  });

  it('plan --format json and report merge --format json ask for JSON as --json does', async () => {
    // A server that cannot be reached (plan: exit 4), and a file that cannot be read (exit 2).
    // plan draws no progress, so it has no --no-progress.
    const planArgs = account(['--format', 'json']).filter((a) => a !== '--no-progress');
    const plan = errorObject(await runCli(['plan', ...planArgs], { env }), 4);
    expect(plan).toMatchObject({ command: 'plan', ok: false, exitCode: 4, error: { kind: 'connection' } });
    const merge = errorObject(
      await runCli(['report', 'merge', '--format=json', join(dir, 'no-such-report.json')], { env }),
      2,
    );
    expect(merge).toMatchObject({ command: 'report merge', ok: false, exitCode: 2 });
    // Another format is not JSON: stdout stays empty.
    const table = await runCli(['plan', ...planArgs.slice(0, -1), 'csv'], { env });
    expectCleanFailure(table, 4);
    expect(table.stdout).toBe('');
  });

  it('a command line commander refuses, and a missing journal (exit 5)', async () => {
    const bad = errorObject(await runCli(['status', '--json', '--no-such-option']), 2);
    expect(bad).toMatchObject({ command: 'status', exitCode: 2, error: { kind: 'usage' } });
    const missing = errorObject(await runCli(['status', '--json', '--journal', join(dir, 'never.sqlite')]), 5);
    expect(missing).toMatchObject({ command: 'status', ok: false, exitCode: 5 });
  });
});

describe('status pointed at no journal', () => {
  it('a missing journal: exit 5, and the hint names migrate as well as sync (journal forget-folder too)', async () => {
    for (const command of [['status'], ['journal', 'forget-folder', '--folder', 'INBOX']]) {
      const r = await runCli([...command, '--journal', join(dir, 'never-ran.sqlite')]);
      expectCleanFailure(r, 5);
      expect(r.stderr).toContain(`no journal at ${join(dir, 'never-ran.sqlite')}\n`);
      expect(r.stderr).toMatch(/hint: popsync migrate and popsync sync create the journal on their first run/);
      expect(r.stderr).not.toMatch(/run a sync first/);
    }
  });

  it("an account's default journal that is not there: says it is the default, and what --journal changes", async () => {
    const r = await runCli(['status', '--pop', 'pop3s://alice@pop.example.net'], { env: { HOME: dir } });
    expectCleanFailure(r, 5);
    expect(r.stderr).toMatch(/no journal at .*alice@pop\.example\.net\.sqlite, the default journal of alice@pop/);
    expect(r.stderr).toMatch(/unless given --journal PATH: then give status the same --journal PATH/);
  });

  it('--journal DIR: exit 2, "is a directory", not "disk I/O error" and a hint on corruption', async () => {
    for (const args of [
      ['status', '--journal', dir],
      ['journal', 'forget-folder', '--folder', 'INBOX', '--journal', dir],
      ['migrate', ...account(['--journal', dir])],
      ['sync', ...account(['--journal', dir])],
    ]) {
      const r = await runCli(args, { env });
      expectCleanFailure(r, 2);
      expect(r.stderr).toContain(`popsync: --journal ${dir} is a directory, not a journal\n`);
      expect(r.stderr).not.toMatch(/I\/O|corrupt/);
    }
  });

  it("a directory as a config file's journal: names file, line and key, not a --journal never given", async () => {
    const file = configFile('journal-dir.yml', `${ACCOUNT_YAML}    journal: ${dir}\n`);
    // config check too: it validates the file for a run, so it must not say OK to one every run refuses.
    for (const args of [
      ['migrate', '--config', file, '--no-progress'],
      ['sync', '--config', file, '--no-progress'],
      ['config', 'check', file],
      ['config', 'check', '--json', file],
    ]) {
      const r = await runCli(args, { env });
      expectCleanFailure(r, 2);
      expect(r.stderr).toContain(`popsync: ${file}:5: accounts[0].journal: ${dir} is a directory, not a journal\n`);
      expect(r.stderr).toContain(`hint: give the journal file itself, e.g. journal: ${join(dir, 'alice.sqlite')}`);
      expect(r.stderr).not.toContain('--journal');
    }
    // --journal given on the command line overrides the key, and is what the message names.
    const flag = await runCli(['migrate', '--config', file, '--journal', dir, '--no-progress'], { env });
    expectCleanFailure(flag, 2);
    expect(flag.stderr).toContain(`popsync: --journal ${dir} is a directory, not a journal\n`);
  });
});

describe('the suite keeps out of the home of whoever runs it', () => {
  it('a run the test gives no HOME gets a temp one: a default journal is never in the real home', async () => {
    // Config-file cases above give no --journal: their journals are the account's default one.
    const r = await runCli(['status', '--pop', 'pop3s://alice@pop.example.net']);
    expectCleanFailure(r, 5);
    const path = /no journal at (\S+alice@pop\.example\.net\.sqlite)/.exec(r.stderr)?.[1];
    expect(path, r.stderr).toBeDefined();
    expect(path!.startsWith(join(inject('scratchRoot'), 'home-')), path).toBe(true);
    expect(path!.startsWith(join(homedir(), '.local')), path).toBe(false);
  });
});

describe('verify without the POP3 account', () => {
  it('says verify needs it only to pick the journal, not to connect (exit 2)', async () => {
    const r = await runCli(['verify', '--journal', join(dir, 'j.sqlite'), '--imap', 'imap://alice@127.0.0.1:9'], {
      env,
    });
    expectCleanFailure(r, 2);
    expect(r.stderr).toContain(
      'popsync: verify needs the POP3 account whose copies it checks (--pop pop3s://user@host)',
    );
    expect(r.stderr).toMatch(/never connects to the POP3 server and needs no POP3 password/);
    const account = await runCli(['verify', '--account', 'alice'], { env });
    expectCleanFailure(account, 2);
    expect(account.stderr).toBe('popsync: --account needs --config FILE\n');
  });
});

describe('odd paths and a mistyped command line, as a user meets them', () => {
  it('a --journal whose folder is missing, is a file, or is not a regular file: named as given (exit 2)', async () => {
    const file = join(dir, 'plain-file');
    writeFileSync(file, '');
    const cases: Array<[string, string]> = [
      [join(dir, 'no', 'such', 'j.sqlite'), `--journal ${join(dir, 'no', 'such', 'j.sqlite')}: the folder `],
      [join(file, 'j.sqlite'), `--journal ${join(file, 'j.sqlite')}: ${file} is not a folder`],
      ['/dev/null', '--journal /dev/null is not a regular file, not a journal'],
    ];
    for (const [journal, said] of cases) {
      const args = account().map((a, i, all) => (all[i - 1] === '--journal' ? journal : a));
      const r = await runCli(['migrate', ...args], { env });
      expectCleanFailure(r, 2);
      expect(r.stderr).toContain(`popsync: ${said}`);
      // It was the lock file's ENOENT/ENOTDIR, a file the user never named.
      expect(r.stderr).not.toContain('.lock');
    }
  });

  it('a --log-file that cannot be made ends at once (exit 2); it spun forever under /proc', async () => {
    const r = await runCli(['migrate', ...account(['--log-file', '/proc/popsync-no-such/x.log'])], {
      env,
      timeoutMs: 30_000,
    });
    expectCleanFailure(r, 2);
    expect(r.stderr).toContain('popsync: --log-file: cannot open /proc/popsync-no-such/x.log');
  });

  it('an unknown option or command reads as every popsync error; a missing config file in words', async () => {
    const option = await runCli(['migrate', '--bogus']);
    expectCleanFailure(option, 2);
    expect(option.stderr).toBe("popsync: unknown option '--bogus'\n(run with --help for usage)\n");
    const command = await runCli(['migarte']);
    expectCleanFailure(command, 2);
    expect(command.stderr).toMatch(/^popsync: unknown command 'migarte'\n\(Did you mean migrate\?\)\n/);
    const config = await runCli(['migrate', '--config', join(dir, 'absent.yml')]);
    expectCleanFailure(config, 2);
    expect(config.stderr).toContain(`cannot read the config file ${join(dir, 'absent.yml')}: no such file (ENOENT)`);
  });

  it('--help shows no default of [] for the repeatable --flag', async () => {
    for (const command of ['migrate', 'sync', 'plan']) {
      const r = await runCli([command, '--help']);
      expect(r.code).toBe(0);
      expect(r.stdout).toContain('--flag <flag>');
      expect(r.stdout).not.toMatch(/default:\s+\[\]/);
    }
  });
});
