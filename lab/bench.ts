/**
 * `npm run bench`: popsync's throughput and memory beside the raw limit of the same servers,
 * measured in the same run on the same corpus. Figures only, no thresholds: they go into
 * notes and issues, never into a timed test.
 *
 * The raw ceilings use bare sockets, not our clients, so they measure the servers:
 *  - POP3: every RETR written at once down one connection (PIPELINING), bytes counted as they
 *    arrive until the last terminator;
 *  - IMAP, four ways of sending (SINK_MODES): APPEND with non-synchronising literals ({n+},
 *    LITERAL+) over 1 and over 4 connections, and MULTIAPPEND (RFC 3502) of 50 and of 100
 *    messages per command over 1, every command written at once, until the last tagged OK.
 * popsync runs as the real CLI in its own process; its peak RSS and CPU are sampled from
 * /proc, and the server's CPU is that of Dovecot's whole process tree (the children its master
 * reaped included), so "where the time goes" is popsync's CPU beside the server's.
 *
 * Mixes: a typical one (BENCH_MESSAGES, default 3,000), 10,000 small messages
 * (BENCH_SMALL_MESSAGES), and a typical one at 30 ms round trip (BENCH_RTT_MS,
 * BENCH_RTT_MESSAGES: every connection through lab/slow-proxy.ts; tc netem is not available
 * here, the kernel has no sch_netem). Then cron's no-op sync (BENCH_SYNC_MESSAGES, 0 skips) and
 * the memory cases of issue 7 (BENCH_LARGE=0 skips): one 200 MB message (BENCH_LARGE_MB), and
 * one whose header block alone is 100 MB (BENCH_HEADER_MB), each copied alone, peak RSS beside
 * the README's bound. BENCH_POPSYNC names another build's bin/popsync.js, for before/after.
 */
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import net from 'node:net';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { benchMix, hugeMessage } from './corpus.js';
import { startDovecot, type Lab } from './dovecot.js';
import { startSlowProxy } from './slow-proxy.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const MB = 1024 * 1024;
/** README "Memory": the peak RSS popsync stays under whatever the message sizes. */
const PEAK_RSS_BOUND_MB = 200;

/** Reads lines/bytes from a socket until `done(buffer)` says so. */
function session(port: number): { sock: net.Socket; until(pred: (all: string) => boolean): Promise<string> } {
  const sock = net.connect(port, '127.0.0.1');
  let acc = '';
  let waiter: { pred: (s: string) => boolean; resolve: (s: string) => void } | null = null;
  sock.on('data', (d: Buffer) => {
    acc += d.toString('latin1');
    if (waiter?.pred(acc)) {
      const w = waiter;
      waiter = null;
      const out = acc;
      acc = '';
      w.resolve(out);
    }
  });
  return {
    sock,
    until: (pred) =>
      new Promise((resolve, reject) => {
        sock.once('error', reject);
        if (pred(acc)) {
          const out = acc;
          acc = '';
          resolve(out);
        } else waiter = { pred, resolve };
      }),
  };
}

async function rawPop3(lab: Lab, user: string, count: number): Promise<number> {
  const s = session(lab.pop3.port);
  await s.until((a) => a.includes('\r\n'));
  s.sock.write(`USER ${user}\r\nPASS ${lab.password}\r\n`);
  await s.until((a) => (a.match(/\r\n/g) ?? []).length >= 2);
  const t0 = performance.now();
  let cmds = '';
  for (let i = 1; i <= count; i++) cmds += `RETR ${i}\r\n`;
  s.sock.write(cmds);
  // A dot-stuffed body never contains CRLF.CRLF, so terminators count whole messages.
  let seen = 0;
  let tail = '';
  await new Promise<void>((resolve) => {
    s.sock.removeAllListeners('data');
    s.sock.on('data', (d: Buffer) => {
      const text = tail + d.toString('latin1');
      let i = text.indexOf('\r\n.\r\n');
      while (i >= 0) {
        seen++;
        i = text.indexOf('\r\n.\r\n', i + 5);
      }
      tail = text.slice(-4);
      if (seen >= count) resolve();
    });
  });
  const ms = performance.now() - t0;
  s.sock.end('QUIT\r\n');
  return ms;
}

/** How a raw IMAP sink sends: over `conns` connections, `multi` messages per APPEND command. */
interface SinkMode {
  label: string;
  conns: number;
  /** 1: one APPEND per message; more: MULTIAPPEND (RFC 3502) of up to this many. */
  multi: number;
}

const SINK_MODES: SinkMode[] = [
  { label: 'raw APPEND {n+}, 1 conn', conns: 1, multi: 1 },
  { label: 'raw APPEND {n+}, 4 conns', conns: 4, multi: 1 },
  { label: 'raw MULTIAPPEND x50, 1 conn', conns: 1, multi: 50 },
  { label: 'raw MULTIAPPEND x100, 1 conn', conns: 1, multi: 100 },
];

/**
 * The server's ceiling for one way of sending: every command written at once with
 * non-synchronising literals ({n+}, LITERAL+) into one user's INBOX, messages dealt round-robin
 * over the connections, until the last tagged OK. Logins happen before the clock starts.
 */
async function rawImap(port: number, lab: Lab, user: string, messages: Buffer[], mode: SinkMode): Promise<number> {
  const parts = Array.from({ length: mode.conns }, (_, c) => messages.filter((_, i) => i % mode.conns === c));
  const sessions = await Promise.all(
    parts.map(async () => {
      const s = session(port);
      await s.until((a) => a.includes('\r\n'));
      s.sock.write(`a LOGIN ${user} ${lab.password}\r\n`);
      await s.until((a) => /^a (OK|NO|BAD)/m.test(a));
      return s;
    }),
  );
  const t0 = performance.now();
  await Promise.all(
    sessions.map(async (s, c) => {
      const mine = parts[c]!;
      const commands: Buffer[][] = [];
      for (let i = 0; i < mine.length; i += mode.multi) commands.push(mine.slice(i, i + mode.multi));
      let okCount = 0;
      const done = new Promise<void>((resolve, reject) => {
        s.sock.removeAllListeners('data');
        let acc = '';
        s.sock.on('data', (d: Buffer) => {
          acc += d.toString('latin1');
          const lines = acc.split('\r\n');
          acc = lines.pop() ?? '';
          for (const l of lines) {
            if (/^t\d+ OK/.test(l)) okCount++;
            else if (/^t\d+ (NO|BAD)/.test(l)) reject(new Error(`raw APPEND refused: ${l}`));
          }
          if (okCount >= commands.length) resolve();
        });
      });
      for (const [i, batch] of commands.entries()) {
        const pieces: Buffer[] = [Buffer.from(`t${i} APPEND INBOX`)];
        for (const m of batch) pieces.push(Buffer.from(` {${m.length}+}\r\n`), m);
        pieces.push(Buffer.from('\r\n'));
        if (!s.sock.write(Buffer.concat(pieces))) await new Promise((r) => s.sock.once('drain', r));
      }
      await done;
      s.sock.end('z LOGOUT\r\n');
    }),
  );
  return performance.now() - t0;
}

/**
 * CPU time (ms) of a process tree: every live process under `root` with the CPU of the children
 * each has reaped. Dovecot's master reaps its imap and pop3 processes, so their CPU stays
 * counted after a connection closes.
 */
function treeCpuMs(root: number): number {
  const procs = new Map<number, { ppid: number; ticks: number }>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      procs.set(Number(name), {
        ppid: Number(f[1]),
        ticks: Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]),
      });
    } catch {
      /* gone meanwhile */
    }
  }
  let ticks = 0;
  for (const [pid, p] of procs) {
    for (let q: number | undefined = pid; q !== undefined && q > 1; q = procs.get(q)?.ppid) {
      if (q === root) {
        ticks += p.ticks;
        break;
      }
    }
  }
  return ticks * 10; // USER_HZ is 100 on Linux
}

interface CliRun {
  ms: number;
  peakRssMb: number;
  /** User + system CPU of the popsync process. */
  cpuMs: number;
  summary: { copied: number; copiedBytes: number; reconciled: number; reconnects: number; failed: unknown[] };
}

/** The popsync under test: BENCH_POPSYNC names another build's bin/popsync.js (a before/after run). */
const POPSYNC_BIN = process.env.BENCH_POPSYNC ?? join(ROOT, 'bin', 'popsync.js');

interface Ports {
  pop3: number;
  imap: number;
}

function popsync(
  lab: Lab,
  popUser: string,
  imapUser: string,
  journal: string,
  command: 'migrate' | 'sync' = 'migrate',
  tls = false,
  ports: Ports = { pop3: lab.pop3.port, imap: lab.imap.port },
): Promise<CliRun> {
  const endpoints = tls
    ? [
        '--pop',
        `pop3s://${popUser}@127.0.0.1:${lab.pop3s.port}`,
        '--pop-ca-file',
        lab.caFile,
        '--imap',
        `imaps://${imapUser}@127.0.0.1:${lab.imaps.port}`,
        '--imap-ca-file',
        lab.caFile,
      ]
    : [
        '--pop',
        `pop3://${popUser}@127.0.0.1:${ports.pop3}`,
        '--pop-tls',
        'none',
        '--imap',
        `imap://${imapUser}@127.0.0.1:${ports.imap}`,
        '--imap-tls',
        'none',
      ];
  const args = [
    POPSYNC_BIN,
    command,
    ...endpoints,
    '--pop-password-env',
    'PW',
    '--imap-password-env',
    'PW',
    '--journal',
    journal,
    '--json',
    '--no-progress',
  ];
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(process.execPath, args, {
      env: { ...process.env, PW: lab.password },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    let peakKb = 0;
    let cpuTicks = 0;
    const sample = setInterval(() => {
      try {
        const m = /VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'));
        if (m) peakKb = Math.max(peakKb, Number(m[1]));
        const stat = readFileSync(`/proc/${child.pid}/stat`, 'utf8');
        const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
        cpuTicks = Number(f[11]) + Number(f[12]);
      } catch {
        /* process already gone */
      }
    }, 25);
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
    });
    child.on('error', reject);
    child.on('close', (code) => {
      clearInterval(sample);
      const ms = performance.now() - t0;
      if (code !== 0) return reject(new Error(`popsync exited ${code}: ${out}`));
      resolve({ ms, peakRssMb: peakKb / 1024, cpuMs: cpuTicks * 10, summary: JSON.parse(out) });
    });
  });
}

function row(label: string, msgs: number, bytes: number, ms: number, extra = ''): string {
  const s = ms / 1000;
  const rate = (msgs / s).toFixed(0).padStart(8);
  const mbs = (bytes / MB / s).toFixed(1).padStart(8);
  return `${label.padEnd(34)} ${rate} msg/s ${mbs} MB/s ${s.toFixed(2).padStart(8)} s ${extra}`;
}

let userSeq = 0;
const fresh = (what: string): string => `bench-${what}-${++userSeq}`;

/**
 * One mix: the raw sinks of the same server (each before and after popsync, the faster kept:
 * right after seeding, the disk is still flushing), popsync itself, and their ratio. With
 * `rttMs` every connection, raw or popsync's, goes through a relay that holds each chunk
 * rttMs/2 in each direction.
 */
async function mixSection(lab: Lab, title: string, messages: Buffer[], rttMs = 0): Promise<void> {
  const bytes = messages.reduce((a, m) => a + m.length, 0);
  const largest = Math.max(...messages.map((m) => m.length));
  process.stdout.write(
    `\n== ${title}: ${messages.length} messages, ${(bytes / MB).toFixed(1)} MB ` +
      `(largest ${(largest / MB).toFixed(2)} MB), ` +
      `${rttMs ? `${rttMs} ms round trip (delaying relay)` : 'loopback'} ==\n`,
  );
  const proxies = rttMs
    ? [await startSlowProxy(lab.pop3.port, rttMs / 2), await startSlowProxy(lab.imap.port, rttMs / 2)]
    : [];
  const ports: Ports = proxies.length
    ? { pop3: proxies[0]!.port, imap: proxies[1]!.port }
    : { pop3: lab.pop3.port, imap: lab.imap.port };
  try {
    const src = fresh('src');
    await lab.seedPop3(src, messages);
    const sinks = new Map<SinkMode, { ms: number; serverMs: number }>();
    const measureSinks = async (): Promise<void> => {
      for (const mode of SINK_MODES) {
        const cpu0 = treeCpuMs(lab.pid);
        const ms = await rawImap(ports.imap, lab, fresh('raw'), messages, mode);
        const serverMs = treeCpuMs(lab.pid) - cpu0;
        const best = sinks.get(mode);
        if (!best || ms < best.ms) sinks.set(mode, { ms, serverMs });
      }
    };
    await measureSinks();
    const cpu0 = treeCpuMs(lab.pid);
    const run = await popsync(lab, src, fresh('dst'), join(lab.dir, `${src}.sqlite`), 'migrate', false, ports);
    const serverMs = treeCpuMs(lab.pid) - cpu0;
    if (run.summary.copied + run.summary.reconciled !== messages.length)
      throw new Error(`popsync copied ${run.summary.copied} (+${run.summary.reconciled}) of ${messages.length}`);
    await measureSinks();
    for (const mode of SINK_MODES) {
      const m = sinks.get(mode)!;
      process.stdout.write(
        `${row(mode.label, messages.length, bytes, m.ms, `server CPU ${(m.serverMs / 1000).toFixed(2)} s`)}\n`,
      );
    }
    process.stdout.write(
      `${row(
        'popsync migrate (whole process)',
        messages.length,
        bytes,
        run.ms,
        `server CPU ${(serverMs / 1000).toFixed(2)} s (POP3+IMAP), popsync CPU ${(run.cpuMs / 1000).toFixed(2)} s, ` +
          `peak RSS ${run.peakRssMb.toFixed(0)} MB`,
      )}\n`,
    );
    const [bestMode, best] = [...sinks].sort((a, b) => a[1].ms - b[1].ms)[0]!;
    const single = sinks.get(SINK_MODES[0]!)!;
    process.stdout.write(
      `popsync / best raw sink (${bestMode.label.replace('raw ', '')}): ${(best.ms / run.ms).toFixed(2)}x; ` +
        `/ raw APPEND 1 conn: ${(single.ms / run.ms).toFixed(2)}x\n`,
    );
  } finally {
    for (const p of proxies) await p.close();
  }
}

/** Small messages (about 0.6-2 KB), deterministic in (count, seed), each with its own Message-ID. */
function smallMix(count: number, seed: number): Buffer[] {
  let x = seed;
  const next = (): number => {
    x = (x * 1103515245 + 12345) % 2 ** 31;
    return x / 2 ** 31;
  };
  return Array.from({ length: count }, (_, i) => {
    const body = `Line ${i} of a short note.\r\n`.repeat(10 + Math.floor(next() * 50));
    return Buffer.from(
      `From: "Sender ${i % 97}" <s${i % 97}@example.org>\r\nTo: <rcpt@example.net>\r\n` +
        `Subject: note ${i}\r\nDate: Mon, 1 Jan 2024 10:00:00 +0000\r\n` +
        `Message-ID: <small-${seed}-${i}@bench>\r\n\r\n${body}`,
    );
  });
}

async function main(): Promise<void> {
  const count = Number(process.env.BENCH_MESSAGES ?? 3000);
  const messages = benchMix(count, 42);
  const bytes = messages.reduce((a, m) => a + m.length, 0);
  const lab = await startDovecot({ pop3Rawlog: false });
  try {
    await lab.seedPop3('bench-src', messages);
    process.stdout.write(
      `popsync ${POPSYNC_BIN}; Dovecot on loopback, ${process.env.HOSTNAME ?? 'this machine'}; load average ${loadavg()
        .map((l) => l.toFixed(1))
        .join(' ')}\n`,
    );
    const popBefore = await rawPop3(lab, 'bench-src', count);
    const noopJournal = join(lab.dir, 'bench.sqlite');
    const first = await popsync(lab, 'bench-src', 'bench-dst', noopJournal);
    if (first.summary.copied !== count) throw new Error(`popsync copied ${first.summary.copied} of ${count}`);
    const popMs = Math.min(popBefore, await rawPop3(lab, 'bench-src', count));
    const noop = await popsync(lab, 'bench-src', 'bench-dst', noopJournal);
    process.stdout.write(
      `${row('raw POP3 RETR, pipelined, 1 conn', count, bytes, popMs, '(faster of before/after)')}\n`,
    );
    process.stdout.write(
      `popsync no-op rerun (${count} journaled): ${(noop.ms / 1000).toFixed(2)} s, start-up included, ` +
        `peak RSS ${noop.peakRssMb.toFixed(0)} MB\n`,
    );

    await mixSection(lab, 'typical mix', messages);
    await mixSection(lab, 'small messages', smallMix(Number(process.env.BENCH_SMALL_MESSAGES ?? 10_000), 7));
    const rtt = Number(process.env.BENCH_RTT_MS ?? 30);
    if (rtt > 0)
      await mixSection(lab, 'typical mix', benchMix(Number(process.env.BENCH_RTT_MESSAGES ?? 1000), 43), rtt);

    // Cron's case: `sync` over a large mailbox where nothing is new. The journal is filled by a
    // real first sync (not written directly), so it holds exactly what production would.
    const syncCount = Number(process.env.BENCH_SYNC_MESSAGES ?? 20_000);
    if (syncCount > 0) {
      const tiny = Array.from({ length: syncCount }, (_, i) =>
        Buffer.from(`From: a@example.org\r\nSubject: ${i}\r\nMessage-ID: <${i}@bench>\r\n\r\n${i}\r\n`),
      );
      await lab.seedPop3('bench-sync-src', tiny);
      const journal = join(lab.dir, 'bench-sync.sqlite');
      const firstSync = await popsync(lab, 'bench-sync-src', 'bench-sync-dst', journal, 'sync');
      // Settled by reconciliation after a reconnect counts as copied: it is in the destination once.
      if (firstSync.summary.copied + firstSync.summary.reconciled !== syncCount)
        throw new Error(`sync copied ${firstSync.summary.copied} (+${firstSync.summary.reconciled}) of ${syncCount}`);
      // Three no-op runs: the first after a 20,000-message copy also pays for caches and the
      // server's index that the copy left cold; cron's steady state is the later ones.
      const idle: CliRun[] = [];
      for (let i = 0; i < 3; i++) idle.push(await popsync(lab, 'bench-sync-src', 'bench-sync-dst', journal, 'sync'));
      process.stdout.write(
        `\npopsync sync first run (${syncCount} tiny messages): ${(firstSync.ms / 1000).toFixed(2)} s\n`,
      );
      process.stdout.write(
        `popsync sync no-op (${syncCount} journaled), 3 runs: ` +
          `${idle.map((r) => (r.ms / 1000).toFixed(2)).join(' s, ')} s, start-up included, ` +
          `peak RSS ${Math.max(...idle.map((r) => r.peakRssMb)).toFixed(0)} MB\n`,
      );
    }

    process.stdout.write('\n');
    if (process.env.BENCH_LARGE !== '0') await largeMessages(lab);
  } finally {
    await lab.stop();
  }
}

/** A message of `headerMb` MB whose header block is all of it but a short body. */
function hugeHeader(headerMb: number): Buffer {
  const field = `X-Filler: ${'h'.repeat(986)}\r\n`;
  const count = Math.ceil((headerMb * MB) / field.length);
  return Buffer.concat([
    Buffer.from(
      'From: "Big Header" <big@example.com>\r\nTo: <someone@example.org>\r\nSubject: a 100 MB header ' +
        'block\r\nMessage-ID: <huge-header@example.com>\r\n',
    ),
    Buffer.from(field.repeat(count)),
    Buffer.from('\r\nA short body.\r\n'),
  ]);
}

async function largeMessages(lab: Lab): Promise<void> {
  const largeMb = Number(process.env.BENCH_LARGE_MB ?? 200);
  const cases: Array<[string, () => Buffer, boolean]> = [
    [`one ${largeMb} MB message`, () => hugeMessage(largeMb * MB, 200), false],
    [`one ${largeMb} MB message, TLS both sides`, () => hugeMessage(largeMb * MB, 201), true],
    [
      `one message with a ${Number(process.env.BENCH_HEADER_MB ?? 100)} MB header block`,
      () => hugeHeader(Number(process.env.BENCH_HEADER_MB ?? 100)),
      false,
    ],
  ];
  for (const [i, [label, make, tls]] of cases.entries()) {
    await lab.seedPop3(`bench-large-src-${i}`, [make()]);
    const run = await popsync(
      lab,
      `bench-large-src-${i}`,
      `bench-large-dst-${i}`,
      join(lab.dir, `bench-large-${i}.sqlite`),
      'migrate',
      tls,
    );
    if (run.summary.copied !== 1) throw new Error(`popsync copied ${run.summary.copied} of 1 (${label})`);
    const verdict = run.peakRssMb < PEAK_RSS_BOUND_MB ? 'within' : 'OVER';
    process.stdout.write(
      `popsync migrate, ${label}: ${(run.ms / 1000).toFixed(2)} s, peak RSS ${run.peakRssMb.toFixed(0)} MB ` +
        `(bound ${PEAK_RSS_BOUND_MB} MB: ${verdict})\n`,
    );
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`bench failed: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exitCode = 1;
});
