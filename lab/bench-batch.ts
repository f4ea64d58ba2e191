/**
 * `npm run bench:batch`: many accounts the way a hosting company runs them (issue 9 part 7).
 * 1,000 accounts of a few small messages each (BENCH_ACCOUNTS) on a private Dovecot, run as 4
 * shard processes (`--shard K/4`, one journal folder, the Kubernetes Job's shape) of
 * `--parallel 8` each, under a per-host cap below that (`--max-connections-per-host 6`). Shard
 * 0 is SIGKILLed once a third of its accounts have started, and rerun, as Kubernetes retries
 * a failed index.
 *
 * Checked, not assumed:
 *  - every account's messages are in its destination exactly once (by Message-ID, read from
 *    Dovecot's own maildirs);
 *  - the cap: from Dovecot's log (it logs every login and every disconnect, each with its
 *    session id), replayed in order, the most accounts of one shard with a session open at
 *    once on the POP3 side and on the IMAP side. Log order can only put a disconnect late,
 *    so the count can only err high: a figure at or under the cap proves the cap held;
 *  - the batch reports of the 4 shards merge into one that counts each account once.
 * Printed: accounts per minute (whole job, rerun included), the wall time of each phase, and
 * the peak RSS of each shard process (VmHWM from /proc, sampled while it runs).
 * Figures only, no thresholds: they go into notes and issues, never into a timed test.
 */
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { shardOf } from '../src/app/shard.js';
import { startDovecot, type Lab } from './dovecot.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const ACCOUNTS = Number(process.env.BENCH_ACCOUNTS ?? 1000);
const SHARDS = 4;
const PARALLEL = 8;
const CAP = Number(process.env.BENCH_CAP ?? 6);

interface Account {
  name: string;
  src: string;
  dst: string;
  ids: string[];
}

interface ShardRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  ms: number;
  peakRssMb: number;
  stderr: string;
}

function message(account: number, n: number): Buffer {
  const body = `message ${n} of account ${account}\r\n`.repeat(20 + ((account * 7 + n) % 60));
  return Buffer.from(
    `From: sender${n}@example.net\r\nTo: user${account}@example.net\r\nSubject: account ${account} message ${n}\r\n` +
      `Date: Sat, 28 Nov 2026 10:0${n % 10}:00 +0000\r\nMessage-ID: <b${account}.m${n}@bench.popsync.test>\r\n` +
      `\r\n${body}`,
  );
}

/** Runs one shard; `kill` may SIGKILL it (returns true once it has). */
function runShard(args: string[], env: Record<string, string>, kill?: () => boolean): Promise<ShardRun> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(process.execPath, [join(ROOT, 'bin', 'popsync.js'), ...args], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    let peakKb = 0;
    let killed = false;
    const sample = setInterval(() => {
      try {
        const m = /VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'));
        if (m) peakKb = Math.max(peakKb, Number(m[1]));
      } catch {
        /* already gone */
      }
      if (!killed && kill?.()) {
        killed = true;
        child.kill('SIGKILL');
      }
    }, 50);
    child.stderr.on('data', (d: Buffer) => {
      if (stderr.length < 64 * 1024) stderr += d.toString();
    });
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearInterval(sample);
      resolve({ code, signal, ms: performance.now() - t0, peakRssMb: peakKb / 1024, stderr });
    });
  });
}

/** The Message-IDs stored in a destination's maildir. */
function storedIds(lab: Lab, user: string): string[] {
  const ids: string[] = [];
  for (const sub of ['cur', 'new']) {
    const d = join(lab.maildirOf(user), sub);
    if (!existsSync(d)) continue;
    for (const f of readdirSync(d))
      ids.push(/^Message-ID: (\S+)/im.exec(readFileSync(join(d, f), 'latin1'))?.[1] ?? '?');
  }
  return ids.sort();
}

/**
 * The most accounts of one shard with a session open at once, per side, replaying Dovecot's
 * log: `<service>-login: Info: Login: user=<u>, ..., session=<s>` opens a session,
 * `<service>(u)<pid><s>: Info: Disconnected...` closes it.
 *
 * A session whose end the log never states is left out of the count and listed: counted, it
 * would stay open for the rest of the log and add one to every later moment of its shard.
 * (Seen once in three runs at load 27: a POP3 session of an account that finished normally,
 * its process never logging a line, neither its logout nor anything else.)
 */
function peakPerShard(
  log: string,
  shardOfUser: Map<string, number>,
): { pop3: number[]; imap: number[]; sessions: number; over: string[]; unclosed: string[] } {
  const open = new Map<string, { service: 'pop3' | 'imap'; user: string }>();
  const perUser = new Map<string, number>();
  const active = { pop3: new Array<number>(SHARDS).fill(0), imap: new Array<number>(SHARDS).fill(0) };
  const peak = { pop3: new Array<number>(SHARDS).fill(0), imap: new Array<number>(SHARDS).fill(0) };
  let sessions = 0;
  const over: string[] = [];
  const lines = log.split('\n');
  const END = /(pop3|imap)\([^)]*\)<\d+><([^>]+)>: (?:Info: )?Disconnected/;
  const ended = new Set(lines.flatMap((l) => END.exec(l)?.[2] ?? []));
  const unclosed: string[] = [];
  for (const line of lines) {
    const login = /(pop3|imap)-login: (?:Info: )?Login: user=<([^>]+)>.*session=<([^>]+)>/.exec(line);
    if (login) {
      const service = login[1] as 'pop3' | 'imap';
      const [user, session] = [login[2]!, login[3]!];
      const shard = shardOfUser.get(user);
      if (shard === undefined) continue;
      sessions++;
      if (!ended.has(session)) {
        unclosed.push(session);
        continue;
      }
      open.set(session, { service, user });
      const key = `${service} ${user}`;
      const n = (perUser.get(key) ?? 0) + 1;
      perUser.set(key, n);
      // An account counts once however many connections it has open on that side.
      if (n === 1) {
        active[service][shard]!++;
        peak[service][shard] = Math.max(peak[service][shard]!, active[service][shard]!);
        // Over the cap: which sessions were open, to be looked up in the log.
        if (active[service][shard]! > CAP && over.length === 0)
          for (const [id, o] of open) if (o.service === service && shardOfUser.get(o.user) === shard) over.push(id);
      }
      continue;
    }
    const end = END.exec(line);
    if (end) {
      const s = open.get(end[2]!);
      if (!s) continue;
      open.delete(end[2]!);
      const key = `${s.service} ${s.user}`;
      const n = (perUser.get(key) ?? 1) - 1;
      perUser.set(key, n);
      if (n === 0) active[s.service][shardOfUser.get(s.user)!]!--;
    }
  }
  return { ...peak, sessions, over, unclosed };
}

async function main(): Promise<void> {
  const work = mkdtempSync(join(tmpdir(), 'popsync-bench-batch-'));
  const lab = await startDovecot({ pop3Rawlog: false });
  try {
    process.stdout.write(`seeding ${ACCOUNTS} accounts ...\n`);
    const list: Account[] = [];
    let messages = 0;
    for (let i = 0; i < ACCOUNTS; i++) {
      const src = lab.newUser('s');
      const msgs = Array.from({ length: 1 + (i % 4) }, (_, n) => message(i, n + 1));
      await lab.seedPop3(src, msgs);
      messages += msgs.length;
      list.push({
        name: src,
        src,
        dst: lab.newUser('d'),
        ids: msgs.map((_, n) => `<b${i}.m${n + 1}@bench.popsync.test>`),
      });
    }
    const csv = join(work, 'accounts.csv');
    const rows = list.map(
      (a) =>
        `${a.name},pop3://${a.src}@127.0.0.1:${lab.pop3.port}?tls=none,` +
        `imap://${a.dst}@127.0.0.1:${lab.imap.port}?tls=none`,
    );
    writeFileSync(csv, `name,source,destination\n${rows.join('\n')}\n`, { mode: 0o600 });
    chmodSync(csv, 0o600);
    const journals = join(work, 'journals');
    const args = (k: number) => [
      'migrate',
      '--accounts',
      csv,
      '--journal-dir',
      journals,
      '--shard',
      `${k}/${SHARDS}`,
      '--parallel',
      String(PARALLEL),
      '--max-connections-per-host',
      String(CAP),
      '--pop-password-env',
      'PW',
      '--imap-password-env',
      'PW',
      '--quiet',
      '--report',
      join(work, 'reports', `shard-${k}.json`),
    ];
    const env = { PW: lab.password };
    const shard0 = new Set(list.filter((a) => shardOf(a.name, SHARDS) === 0).map((a) => `${a.name}.sqlite`));
    // A third of shard 0's accounts have a journal (they have started): kill it.
    const killShard0 = () =>
      existsSync(journals) && readdirSync(journals).filter((f) => shard0.has(f)).length >= shard0.size / 3;

    process.stdout.write(`${messages} messages; running ${SHARDS} shards x --parallel ${PARALLEL}, cap ${CAP} ...\n`);
    const t0 = performance.now();
    const first = await Promise.all(
      Array.from({ length: SHARDS }, (_, k) => runShard(args(k), env, k === 0 ? killShard0 : undefined)),
    );
    const firstMs = performance.now() - t0;
    const retry = await runShard(args(0), env);
    const totalMs = performance.now() - t0;

    const problems: string[] = [];
    if (first[0]!.signal !== 'SIGKILL') problems.push(`shard 0 was not killed (exit ${first[0]!.code})`);
    for (const [k, r] of first.entries())
      if (k > 0 && r.code !== 0) problems.push(`shard ${k} exit ${r.code}: ${r.stderr.slice(0, 500)}`);
    if (retry.code !== 0) problems.push(`shard 0 rerun exit ${retry.code}: ${retry.stderr.slice(0, 500)}`);
    let wrong = 0;
    for (const a of list) {
      const got = storedIds(lab, a.dst);
      if (got.join() !== a.ids.join()) {
        wrong++;
        if (wrong <= 5) problems.push(`${a.name}: expected ${a.ids.length} messages once, found ${got.join(' ')}`);
      }
    }

    const shardOfUser = new Map<string, number>();
    for (const a of list) {
      shardOfUser.set(a.src, shardOf(a.name, SHARDS));
      shardOfUser.set(a.dst, shardOf(a.name, SHARDS));
    }
    const peaks = peakPerShard(readFileSync(join(lab.dir, 'dovecot.log'), 'latin1'), shardOfUser);
    if (peaks.sessions === 0) problems.push('no Login lines in dovecot.log: cannot count the cap');
    if (peaks.unclosed.length > 0) {
      const log = readFileSync(join(lab.dir, 'dovecot.log'), 'latin1').split('\n');
      for (const id of peaks.unclosed.slice(0, 3))
        process.stdout.write(`no end line for ${id}:\n${log.filter((l) => l.includes(id)).join('\n')}\n`);
    }
    if (peaks.over.length > 0) {
      // What the log says of each session open when the count first went over the cap.
      const log = readFileSync(join(lab.dir, 'dovecot.log'), 'latin1').split('\n');
      const kept = join(tmpdir(), `popsync-bench-batch-dovecot-${process.pid}.log`);
      writeFileSync(kept, log.join('\n'));
      problems.push(`over the cap; dovecot.log kept as ${kept}; the sessions open then:`);
      for (const id of peaks.over)
        problems.push(...log.filter((l) => l.includes(id)).map((l) => `    ${l.slice(0, 200)}`));
    }
    for (const side of ['pop3', 'imap'] as const)
      if (Math.max(...peaks[side]) > CAP)
        problems.push(`${side}: ${Math.max(...peaks[side])} accounts at once > ${CAP}`);

    const merged = await runShard(
      [
        'report',
        'merge',
        ...Array.from({ length: SHARDS }, (_, k) => join(work, 'reports', `shard-${k}.json`)),
        '--output',
        join(work, 'all.json'),
      ],
      {},
    );
    const all =
      merged.code === 0
        ? (JSON.parse(readFileSync(join(work, 'all.json'), 'utf8')) as {
            totals: { accounts: number; listed: number };
          })
        : null;
    if (all?.totals.accounts !== ACCOUNTS || all.totals.listed !== messages)
      problems.push(`merged report: ${JSON.stringify(all?.totals ?? merged.stderr)}`);

    const perShard = list.reduce(
      (m, a) => m.set(shardOf(a.name, SHARDS), (m.get(shardOf(a.name, SHARDS)) ?? 0) + 1),
      new Map<number, number>(),
    );
    const s = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
    const sizes = [...Array(SHARDS).keys()].map((k) => perShard.get(k) ?? 0).join(' / ');
    const rss = first.map((r) => `${r.peakRssMb.toFixed(0)} MB`).join(', ');
    const mergedText = all ? `${all.totals.accounts} accounts, ${all.totals.listed} messages listed` : 'failed';
    process.stdout.write(
      [
        '',
        `accounts:            ${ACCOUNTS} (${messages} messages), shards ${sizes}`,
        `4 shards at once:    ${s(firstMs)} (shard 0 SIGKILLed after ${s(first[0]!.ms)})`,
        `shard 0 rerun:       ${s(retry.ms)}`,
        `whole job:           ${s(totalMs)}, ${((ACCOUNTS * 60_000) / totalMs).toFixed(0)} accounts/min, ` +
          `${((messages * 1000) / totalMs).toFixed(1)} messages/s`,
        `peak RSS per shard:  ${rss}; rerun ${retry.peakRssMb.toFixed(0)} MB`,
        `cap ${CAP} per host, most accounts of one shard at once (from dovecot.log, ${peaks.sessions} sessions):`,
        `  POP3 per shard:    ${peaks.pop3.join(' / ')}`,
        `  IMAP per shard:    ${peaks.imap.join(' / ')}`,
        `  sessions with no end line in the log (left out): ${peaks.unclosed.length}`,
        `exactly once:        ${ACCOUNTS - wrong} of ${ACCOUNTS} accounts`,
        `merged report:       ${mergedText}`,
        problems.length === 0 ? 'all checks passed' : `PROBLEMS:\n  ${problems.join('\n  ')}`,
        '',
      ].join('\n'),
    );
    if (problems.length > 0) process.exitCode = 1;
  } finally {
    await lab.stop();
    rmSync(work, { recursive: true, force: true });
  }
}

await main();
