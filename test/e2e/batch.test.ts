/**
 * Many accounts against the real Dovecot lab: `--accounts FILE.csv` with one journal per
 * account (`--journal-dir`), several at once (`--parallel`), a failing account that leaves the
 * others alone, two batches over one list at once, and the Kubernetes Job's command line run
 * as local shard processes, one SIGKILLed and rerun: every account arrives exactly once.
 */
import { chmodSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import type { Lab } from '../../lab/dovecot.js';
import { realisticMix } from '../../lab/corpus.js';
import { BIN, ROOT, runCli, startCli } from '../support/cli.js';
import { useLab } from '../support/lab-fixture.js';
import { destinationMessages, digests, sourceMessages } from '../support/mailboxes.js';
import { readFileSync } from 'node:fs';
import { spawn } from 'node:child_process';

let lab: Lab;
let dir: string;
useLab('batch', {}, (l, d) => {
  lab = l;
  dir = d;
});

interface Account {
  name: string;
  src: string;
  dst: string;
}

/** `n` source mailboxes of `per` messages each, and an empty destination for each. */
async function accounts(n: number, per: number, seed: number): Promise<Account[]> {
  const out: Account[] = [];
  for (let i = 0; i < n; i++) {
    const src = lab.newUser('src');
    await lab.seedPop3(src, realisticMix(per, seed + i));
    out.push({ name: src, src, dst: lab.newUser('dst') });
  }
  return out;
}

function csv(path: string, rows: Account[], passwords?: (a: Account) => [string, string]): string {
  const header = passwords ? 'name,source,destination,source_password,destination_password' : 'name,source,destination';
  const lines = rows.map((a) => {
    const source = `pop3://${a.src}@127.0.0.1:${lab.pop3.port}?tls=none`;
    const base = `${a.name},${source},imap://${a.dst}@127.0.0.1:${lab.imap.port}?tls=none`;
    return passwords
      ? `${base},${passwords(a)
          .map((p) => `"${p.replace(/"/g, '""')}"`)
          .join(',')}`
      : base;
  });
  writeFileSync(path, [header, ...lines].join('\n') + '\n', { mode: 0o600 });
  chmodSync(path, 0o600);
  return path;
}

/** Every account's destination holds its source's messages, each exactly once. */
async function expectEachOnce(list: Account[]): Promise<void> {
  for (const a of list) {
    const source = await sourceMessages(lab, a.src);
    const dest = await destinationMessages(lab, a.dst);
    expect({ account: a.name, got: digests(dest.map((m) => m.body)) }).toEqual({
      account: a.name,
      got: digests(source),
    });
  }
}

/** The objects of a stream of pretty-printed JSON objects, one per account. */
function jsonObjects(stdout: string): Array<Record<string, unknown>> {
  return stdout
    .split(/\n(?=\{)/)
    .filter((s) => s.trim() !== '')
    .map((s) => JSON.parse(s) as Record<string, unknown>);
}

const env = () => ({ PW: lab.password });
const pwFlags = ['--pop-password-env', 'PW', '--imap-password-env', 'PW'];

describe('migrate --accounts', () => {
  it(
    'copies every account of a list once, several at once, one journal each, names on every line; a rerun ' +
      'copies nothing',
    async () => {
      const list = await accounts(8, 3, 100);
      const file = csv(join(dir, 'a.csv'), list);
      const journals = join(dir, 'journals-a');
      const args = [
        'migrate',
        '--accounts',
        file,
        '--journal-dir',
        journals,
        '--parallel',
        '4',
        '--max-connections-per-host',
        '2',
        ...pwFlags,
      ];

      const r1 = await runCli([...args, '--json', '--no-progress'], { env: env() });
      expect(r1.stderr).toBe('');
      expect(r1.code).toBe(0);
      const summaries = jsonObjects(r1.stdout);
      expect(summaries.map((s) => s.name).sort()).toEqual(list.map((a) => a.name).sort());
      for (const s of summaries) expect(s).toMatchObject({ copied: 3, failed: [] });
      for (const a of list) expect(existsSync(join(journals, `${a.name}.sqlite`))).toBe(true);
      await expectEachOnce(list);

      // status over the whole list: one line per account, then the totals.
      const st = await runCli(['status', '--accounts', file, '--journal-dir', journals]);
      expect(st.code).toBe(0);
      const stLines = st.stdout.trimEnd().split('\n');
      expect(stLines).toHaveLength(list.length + 1);
      for (const a of list)
        expect(stLines.find((l) => l.startsWith(a.name))).toMatch(
          /\s+ok\s+copied 3, failed 0, deleted 0, last run \S+ migrate$/,
        );
      expect(stLines.at(-1)).toBe(
        `total: ${list.length} accounts (${list.length} ok); copied ${3 * list.length}, failed 0, deleted 0`,
      );
      const stJson = JSON.parse(
        (await runCli(['status', '--accounts', file, '--journal-dir', journals, '--json'])).stdout,
      );
      expect(stJson.totals).toMatchObject({ accounts: list.length, copied: 3 * list.length });
      expect(stJson.accounts.map((x: { name: string }) => x.name)).toEqual(list.map((a) => a.name));

      const r2 = await runCli([...args, '--no-progress'], { env: env() });
      expect(r2.code).toBe(0);
      // Text summaries: every line names its account; the last one sums the batch up.
      const lines = r2.stdout.split('\n').filter((l) => l !== '');
      // The grand total: the accounts' outcomes, then what they copied (nothing, on a rerun) and the time.
      expect(lines.pop()).toMatch(
        new RegExp(`^popsync: ${list.length} accounts: ${list.length} ok; 0 messages copied \\(0 B\\) in \\d`),
      );
      expect(lines.length).toBeGreaterThan(list.length);
      for (const l of lines) expect(list.some((a) => l.startsWith(`${a.name}: `))).toBe(true);
      for (const a of list) expect(r2.stdout).toMatch(new RegExp(`${a.name}:\\s+copied:\\s+0 messages`));
      await expectEachOnce(list);
    },
  );

  it(
    'a failing account leaves the others; the exit code is the worst account’s; password columns need a ' +
      'private file',
    async () => {
      const list = await accounts(4, 2, 200);
      const bad = list[1]!;
      const file = csv(join(dir, 'pw.csv'), list, (a) => [a === bad ? 'wrong "password"' : lab.password, lab.password]);
      const args = [
        'migrate',
        '--accounts',
        file,
        '--journal-dir',
        join(dir, 'journals-pw'),
        '--parallel',
        '2',
        '--no-progress',
      ];

      chmodSync(file, 0o640);
      const refused = await runCli(args);
      expect(refused.code).toBe(2);
      expect(refused.stderr).toContain(`${file} holds passwords but its mode is 0640`);

      chmodSync(file, 0o600);
      const r = await runCli([...args, '--json']);
      expect(r.code).toBe(3);
      expect(r.stderr).toContain(`popsync: account ${bad.name}:`);
      expect(r.stderr + r.stdout).not.toContain('wrong');
      // One JSON object per account, the failed one's too, each with its name.
      const objects = jsonObjects(r.stdout);
      expect(objects.map((o) => o.name).sort()).toEqual(list.map((a) => a.name).sort());
      expect(objects.find((o) => o.name === bad.name)).toMatchObject({ ok: false, exitCode: 3, command: 'migrate' });
      await expectEachOnce(list.filter((a) => a !== bad));
      expect(await destinationMessages(lab, bad.dst)).toHaveLength(0);
      // Without --json, the batch ends with its total, naming the failed account.
      const text = await runCli([...args, '--quiet']);
      expect(text.code).toBe(3);
      expect(text.stdout).toMatch(
        new RegExp(`^popsync: 4 accounts: 3 ok, 1 exit 3 \\(${bad.name}\\); 0 messages copied \\(0 B\\) in \\S+\n$`),
      );
    },
  );

  it('sync and plan take a list too: lines and objects name their account', async () => {
    const list = await accounts(3, 2, 500);
    const file = csv(join(dir, 'sync.csv'), list);
    const journals = join(dir, 'journals-sync');
    const plan = await runCli(['plan', '--accounts', file, '--journal-dir', journals, ...pwFlags], { env: env() });
    expect(plan.code).toBe(0);
    for (const a of list) expect(plan.stdout).toContain(`${a.src}@127.0.0.1:${lab.pop3.port}`);
    // plan writes nothing, not even the journal folder.
    expect(existsSync(journals)).toBe(false);

    const sync = await runCli(['sync', '--accounts', file, '--journal-dir', journals, '--parallel', '2', ...pwFlags], {
      env: env(),
    });
    expect({ code: sync.code, stderr: sync.stderr }).toEqual({ code: 0, stderr: '' });
    const lines = sync.stdout.trimEnd().split('\n').sort();
    expect(lines).toEqual(
      list
        .map((a) => expect.stringMatching(new RegExp(`^${a.name}: popsync: 2 new messages copied .* from ${a.src}@`)))
        .sort(),
    );
    await expectEachOnce(list);
    const again = await runCli(
      ['sync', '--accounts', file, '--journal-dir', journals, '--parallel', '2', '--json', ...pwFlags],
      { env: env() },
    );
    expect(again.code).toBe(0);
    const objects = again.stdout
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(objects.map((o) => [o.name, o.copied, o.ok]).sort()).toEqual(list.map((a) => [a.name, 0, true]).sort());
  });

  it(
    '--max-connections-per-host caps the accounts running at once on one server, whatever ' + '--parallel says',
    async () => {
      const list = await accounts(6, 20, 600);
      const file = csv(join(dir, 'cap.csv'), list);
      const journals = join(dir, 'journals-cap');
      const r = await runCli(
        [
          'migrate',
          '--accounts',
          file,
          '--journal-dir',
          journals,
          '--parallel',
          '6',
          '--max-connections-per-host',
          '2',
          '--quiet',
          ...pwFlags,
        ],
        { env: env() },
      );
      expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
      await expectEachOnce(list);
      // The journals' run records say when each account ran: never more than 2 at once (all
      // six share one POP3 and one IMAP server). Each run lies within its account's slot.
      const st = JSON.parse(
        (await runCli(['status', '--accounts', file, '--journal-dir', journals, '--json'])).stdout,
      ) as {
        accounts: Array<{ status: { lastRun: { startedAt: string; finishedAt: string } } }>;
      };
      const runs = st.accounts.map(
        (a) => [Date.parse(a.status.lastRun.startedAt), Date.parse(a.status.lastRun.finishedAt)] as const,
      );
      const peak = Math.max(...runs.map(([t]) => runs.filter(([s, e]) => s <= t && t < e).length));
      expect(peak).toBeLessThanOrEqual(2);
      expect(peak).toBeGreaterThanOrEqual(1);
    },
  );

  it('two batches over one list at once copy each account once (the per-account lock)', async () => {
    const list = await accounts(10, 4, 300);
    const file = csv(join(dir, 'twice.csv'), list);
    const args = [
      'migrate',
      '--accounts',
      file,
      '--journal-dir',
      join(dir, 'journals-twice'),
      '--parallel',
      '3',
      '--no-progress',
      '--quiet',
      ...pwFlags,
    ];
    const [a, b] = await Promise.all([
      runCli(args, { env: env() }),
      runCli([...args.slice(0, -5), '--parallel', '8', '--max-connections-per-host', '8', ...pwFlags], { env: env() }),
    ]);
    // An account the other batch holds is exit 7 ("locked") for this one.
    for (const r of [a, b]) expect([0, 7]).toContain(r.code);
    // Eight accounts listening for an interrupt at once are no "possible memory leak".
    for (const r of [a, b]) expect(r.stderr).not.toMatch(/MaxListeners|Warning/);
    await expectEachOnce(list);
  });
});

/** The parts of deploy/kubernetes/migrate-job.yaml the tests read. */
interface JobSpec {
  backoffLimitPerIndex: number;
  template: {
    spec: {
      containers: Array<{ name: string; args: string[]; volumeMounts: Array<{ name: string; mountPath: string }> }>;
      initContainers: Array<{ command: string[] }>;
      volumes: Array<{ name: string } & Record<string, unknown>>;
    };
  };
}

/** Runs `command` on an 80x24 pseudo-terminal (script(1)); stdout and stderr both go to it. */
function onTerminal(command: string, env: Record<string, string>): Promise<string> {
  return new Promise((resolve) => {
    const child = spawn('script', ['-qfec', `stty cols 80 rows 24; ${command}; echo "exit=$?"`, '/dev/null'], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const out: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.on('close', () => resolve(Buffer.concat(out).toString('utf8')));
  });
}

describe('the batch view', () => {
  it('on a terminal: counts, rate, ETA within 80 columns, then the grand total; plain lines in a pipe', async () => {
    const list = await accounts(6, 3, 700);
    const file = csv(join(dir, 'view.csv'), list);
    // One source reached through 0.0.0.0 (this host, not a loopback name): its account warns that
    // tls=none sends the password in clear, a line wider than the terminal printed while the view is
    // up, as any account's warning or reconnect notice may be (a loaded machine's timeouts).
    writeFileSync(file, readFileSync(file, 'utf8').replace(`${list[2]!.src}@127.0.0.1:`, `${list[2]!.src}@0.0.0.0:`));
    const args = [
      'migrate',
      '--accounts',
      file,
      '--journal-dir',
      join(dir, 'journals-view'),
      '--parallel',
      '2',
      ...pwFlags,
    ];
    const out = await onTerminal(`node ${BIN} ${args.join(' ')}`, env());
    expect(out).toMatch(/exit=0/);
    // What the terminal shows, less its cursor movements: no line wider than the terminal.
    // biome-ignore lint/suspicious/noControlCharactersInRegex: the escapes are what is removed
    const shown = out.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '').split(/\r?\n/);
    // The view's own block is its header and its indented lines; each account's summary
    // (`name: popsync migrate: ...`) and its warnings are whole lines the terminal wraps, and the
    // block is erased before them and drawn again below, so their width is not the view's.
    expect(shown.some((l) => l.startsWith('popsync: warning: POP3 ') && l.length > 80)).toBe(true);
    const view = shown.filter((l) => l.startsWith('popsync migrate: ') || l.startsWith('  '));
    expect(view.length).toBeGreaterThan(3);
    for (const line of view) expect({ line, width: line.length <= 80 }).toEqual({ line, width: true });
    expect(shown).toContain('popsync migrate: 6/6 accounts: 6 done, 0 failed, 0 running, 0 waiting');
    expect(shown.find((l) => l.startsWith('  18 messages, '))).toMatch(/accounts\/min, ETA 0s$/);
    expect(shown.find((l) => l.startsWith('popsync: 6 accounts:'))).toMatch(
      /^popsync: 6 accounts: 6 ok; 18 messages copied \(\d+\.\d KiB\) in \S+$/,
    );
    // The view has the terminal: accounts draw no progress lines of their own.
    expect(out).not.toMatch(/: popsync: (connecting|listing)/);
    await expectEachOnce(list);

    // Not a terminal: a plain line as accounts finish, the last one with all of them.
    const piped = await runCli(args, { env: env() });
    expect(piped.code).toBe(0);
    const batchLines = piped.stderr.split('\n').filter((l) => l.startsWith('popsync: batch: '));
    expect(batchLines.length).toBeGreaterThan(0);
    expect(batchLines.at(-1)).toMatch(
      /^popsync: batch: 6\/6 accounts: 6 done, 0 failed, 0 running, 0 waiting; 0 messages/,
    );
  }, 120_000);
});

describe('the Kubernetes Job, run as local shard processes', () => {
  const manifest = readFileSync(join(ROOT, 'deploy', 'kubernetes', 'migrate-job.yaml'), 'utf8');
  const job = manifest
    .split(/^---$/m)
    .map((d) => parse(d) as { kind: string; spec: JobSpec })
    .find((d) => d.kind === 'Job')!;
  const pod = job.spec.template.spec;
  const container = pod.containers.find((c) => c.name === 'popsync')!;

  /** The container's args as the kubelet expands them, with the volumes' mount points moved under `root`. */
  function jobArgs(index: number, root: string): string[] {
    return container.args.map((a) =>
      a
        .replaceAll('$(JOB_COMPLETION_INDEX)', String(index))
        .replace(/^\/state\//, `${root}/state/`)
        .replace(/^\/run\/popsync\//, `${root}/run/`),
    );
  }

  it('is an Indexed Job of N pods, each taking share $(JOB_COMPLETION_INDEX) of N', () => {
    expect(job.spec).toMatchObject({ completionMode: 'Indexed', completions: 3, parallelism: 3 });
    expect(job.spec.backoffLimitPerIndex).toBeGreaterThan(0);
    expect(container.args.join(' ')).toContain('--shard $(JOB_COMPLETION_INDEX)/3');
    // The image's entrypoint is popsync: the Job gives args only.
    expect(container).not.toHaveProperty('command');
    // No password on the command line: the list comes from a Secret, through a 0600 copy.
    expect(container.args.filter((a) => /pass/i.test(a))).toEqual([]);
    const state = container.volumeMounts.find((m) => m.mountPath === '/state')!;
    expect(pod.volumes.find((v) => v.name === state.name)).toHaveProperty('persistentVolumeClaim');
    expect(pod.initContainers[0]!.command).toEqual([
      'install',
      '-m',
      '0600',
      '/secrets/accounts.csv',
      '/run/popsync/accounts.csv',
    ]);
    expect(pod.volumes.find((v) => v.name === 'secrets')).toMatchObject({ secret: { secretName: 'popsync-accounts' } });
  });

  it('3 shards over 30 accounts, one SIGKILLed mid-run and rerun: every account exactly once', async () => {
    const root = join(dir, 'job');
    mkdirSync(join(root, 'run'), { recursive: true });
    const list = await accounts(30, 3, 400);
    csv(join(root, 'run', 'accounts.csv'), list, () => [lab.password, lab.password]);

    const shards = [0, 1, 2].map(
      (k) =>
        // Shard 0 is killed after its journals' 8th committed step: mid-way through its accounts.
        startCli(jobArgs(k, root), {
          env: { JOB_COMPLETION_INDEX: String(k) },
          ...(k === 0 ? { hooks: { killAt: '8:after' } } : {}),
        }).done,
    );
    const [killed, ...others] = await Promise.all(shards);
    expect(killed!.signal).toBe('SIGKILL');
    for (const r of others) expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });

    // Kubernetes retries the failed index with the same command line.
    const retry = await runCli(jobArgs(0, root), { env: { JOB_COMPLETION_INDEX: '0' } });
    expect(retry.code).toBe(0);
    // The killed run's lock rows are replaced (and said so, naming each account); nothing else.
    const warnings = retry.stderr.split('\n').filter((l) => l !== '');
    expect(warnings.length).toBeGreaterThan(0);
    for (const w of warnings)
      expect(w).toMatch(/^popsync: warning: replaced the lock row of a run that has ended: .*\(name=src-\S+ account=/);
    await expectEachOnce(list);
    // Every account ran in exactly one shard: one journal each, named by the account.
    for (const a of list) expect(existsSync(join(root, 'state', 'journals', `${a.name}.sqlite`))).toBe(true);
  });
});
