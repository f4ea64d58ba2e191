/**
 * `npm run bench`: popsync's throughput and memory beside the raw limit of the same servers,
 * measured in the same run on the same corpus. Figures only, no thresholds: they go into
 * notes and issues, never into a timed test.
 *
 * The raw ceilings use bare sockets, not our clients, so they measure the servers
 * (bench-raw.ts): pipelined POP3 RETR (the source's limit); five ways of storing pre-built
 * messages (SINK_MODES: APPEND with {n+} literals over 1 and 4 connections, MULTIAPPEND of 50
 * and 100 over 1, and of 100 over 2 connections each into a folder of its own: the
 * destination's); and a raw relay, RETR pipelined into MULTIAPPEND x100 as
 * each message arrives with no hashing and no journal: the fastest POP3->IMAP copy this
 * machine can do, what popsync is really to be held against. Beside it a safe relay: the same
 * with what exactly-once cannot do without (both digests of every message, its intent fsynced in
 * a journal before the APPEND, the APPENDUID journaled after): the ceiling for a copier with
 * popsync's guarantees, and with the raw relay what those guarantees cost at least. Each is
 * measured before and after popsync and the faster kept (right after seeding, the disk is still
 * flushing).
 * popsync runs as the real CLI in its own process, timed from spawn to exit, its CPU and peak
 * RSS from its rusage (popsync-cli.ts, measured-child.ts). The relays above run inside this
 * process, their clocks from after their logins to their last reply: the ceilings of the copy
 * itself. Like with like, both relays also run as processes of their own, bundled and started
 * as popsync is and measured the same way (relay-cli.ts: start-up, logins side by side, the safe
 * relay's journal creation, the copy, leaving), and popsync's whole process is held against
 * theirs. Its copy phase (first RETR to last APPEND OK) is also read off its connections in
 * plaintext by the relays they pass (bench-phase.ts: at 30 ms the same run's, on loopback a
 * second run's) and held against the in-process relays. The server's CPU is
 * that of Dovecot's whole process tree, split by process (server-cpu.ts: pop3, imap, and their
 * -login processes, which carry TLS), so "where the time goes" is popsync's CPU beside each
 * server's. Each row's client CPU is popsync's, or for a raw
 * client this process's: what the least a Node client can do (TLS included) costs.
 *
 * Mixes, each section skipped when its count is 0: a typical one (BENCH_MESSAGES, default
 * 3,000), the same typical one with TLS on both sides (BENCH_TLS_MESSAGES, default
 * BENCH_MESSAGES: pop3s and imaps verified against the lab's CA, raw clients included),
 * 10,000 small messages (BENCH_SMALL_MESSAGES), and a typical one at 30 ms round trip
 * (BENCH_RTT_MS, BENCH_RTT_MESSAGES: every connection through lab/slow-proxy.ts; tc netem is
 * not available here, the kernel has no sch_netem); at that round trip, a typical mix routed into 2
 * folders with 1 and with 2 APPEND connections, into a Dovecot offering LITERAL- as Gmail does
 * (BENCH_FOLDERS_MESSAGES, default 300). With the TLS section beside a plaintext
 * one of the same count, what TLS cost: time, popsync's CPU, the servers' (their login
 * processes). Then full and resumed TLS handshakes as popsync opens them (BENCH_HANDSHAKES,
 * default 100), on this Dovecot and on one in high-performance login mode. Then cron's no-op sync
 * (BENCH_SYNC_MESSAGES, 0 skips) and the memory cases of issue 7 (BENCH_LARGE=0 skips): one
 * 200 MB message (BENCH_LARGE_MB), and one whose header block alone is 100 MB
 * (BENCH_HEADER_MB), each copied alone, peak RSS beside the README's bound. BENCH_POPSYNC names
 * another build's bin/popsync.js, for before/after.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect, createSecureContext, type TLSSocket } from 'node:tls';
import { fileURLToPath } from 'node:url';
import { openSocket } from '../src/net/connect.js';
import { listPop3, type RawEndpoints, rawImap, rawPop3, rawRelay, SINK_MODES, safeRelay } from './bench-raw.js';
import { benchMix, hugeMessage, smallMix } from './corpus.js';
import { startDovecot, type Lab } from './dovecot.js';
import { formatServerCpu, ServerCpu, type ServerCpuSplit } from './server-cpu.js';
import { type ProxyObserver, startSlowProxy } from './slow-proxy.js';
import { CopyPhase } from './bench-phase.js';
import { type CliRun, labEndpoints, runPopsync } from './popsync-cli.js';
import { bundleRelay, runRelay } from './relay-cli.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const MB = 1024 * 1024;
/** README "Memory": the peak RSS popsync stays under whatever the message sizes. */
const PEAK_RSS_BOUND_MB = 200;

/** The popsync under test: BENCH_POPSYNC names another build's bin/popsync.js (a before/after run). */
const POPSYNC_BIN = process.env.BENCH_POPSYNC ?? join(ROOT, 'bin', 'popsync.js');

/** BENCH_CPU_PROF=DIR: every popsync run writes a V8 CPU profile there (node --cpu-prof). */
const PROFILE_ARGS = process.env.BENCH_CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_CPU_PROF}`] : [];

function popsync(
  lab: Lab,
  popUser: string,
  imapUser: string,
  journal: string,
  command: 'migrate' | 'sync' = 'migrate',
  ep: RawEndpoints = labEndpoints(lab, false),
  extra: readonly string[] = [],
): Promise<CliRun> {
  return runPopsync(lab, popUser, imapUser, journal, { bin: POPSYNC_BIN, command, ep, extra, nodeArgs: PROFILE_ARGS });
}

function row(label: string, msgs: number, bytes: number, ms: number, extra = ''): string {
  const s = ms / 1000;
  const rate = (msgs / s).toFixed(0).padStart(8);
  const mbs = (bytes / MB / s).toFixed(1).padStart(8);
  return `${label.padEnd(38)} ${rate} msg/s ${mbs} MB/s ${s.toFixed(2).padStart(8)} s ${extra}`;
}

let userSeq = 0;
const fresh = (what: string): string => `bench-${what}-${++userSeq}`;

interface MixOptions {
  /** Every connection through a relay that holds each chunk rttMs/2 in each direction. */
  rttMs?: number;
  /** pop3s and imaps for everyone, raw clients included. */
  tls?: boolean;
  /** Also run popsync again over the same journal, with nothing left to copy. */
  noopRerun?: boolean;
}

interface Measured {
  ms: number;
  server: ServerCpuSplit;
  /**
   * CPU of the client: popsync's process or a whole-process relay's (their rusage), or this
   * one's for a raw client run in it (its TLS included).
   */
  clientMs: number;
  /** A whole-process relay's: its peak RSS, and its own clock of the copy inside the process. */
  peakRssMb?: number;
  copyMs?: number;
}

/**
 * Runs a raw client under a server CPU meter; `what` calls its argument as the last reply
 * arrives. The client's CPU is this process's, so it includes the meter's own sampling.
 */
async function metered(lab: Lab, what: (atEnd: () => void) => Promise<number>): Promise<Measured> {
  const meter = new ServerCpu(lab.pid);
  const cpu0 = process.cpuUsage();
  let cpu: NodeJS.CpuUsage | undefined;
  const ms = await what(() => {
    cpu = process.cpuUsage(cpu0);
    meter.sample();
  });
  cpu ??= process.cpuUsage(cpu0);
  return { ms, server: meter.stop(), clientMs: (cpu.user + cpu.system) / 1000 };
}

/** Keeps the faster of two measurements of the same thing under `key`. */
function keepFaster<K>(into: Map<K, Measured>, key: K, m: Measured): void {
  const best = into.get(key);
  if (!best || m.ms < best.ms) into.set(key, m);
}

/**
 * One mix: the raw ceilings of the same server (each before and after popsync, the faster
 * kept: right after seeding, the disk is still flushing), popsync itself, and its ratios.
 */
/** What the TLS section is compared by with the plaintext one. */
interface MixResult {
  count: number;
  popsync: Measured;
  relay: Measured;
  safe: Measured;
  safeProcess: Measured;
}

/** The relays' bundle (relay-cli.ts), built once per bench. */
let relayBundle: Promise<string> | undefined;

/** A relay run as a process of its own, timed from spawn to exit, with the server's CPU meanwhile. */
async function relayProcess(
  lab: Lab,
  kind: 'raw' | 'safe',
  ep: RawEndpoints,
  popUser: string,
  count: number,
): Promise<Measured> {
  relayBundle ??= bundleRelay();
  const bundle = await relayBundle;
  const dst = fresh(`${kind}-process`);
  const journal = kind === 'safe' ? join(lab.dir, `${dst}.sqlite`) : undefined;
  const meter = new ServerCpu(lab.pid);
  let server: ServerCpuSplit | undefined;
  // The server's CPU up to the relay's exit, as popsync's row: the check after it is not the relay's.
  const run = await runRelay(lab, bundle, kind, ep, popUser, dst, count, journal, () => {
    server = meter.stop();
  });
  return { ms: run.ms, server: server!, clientMs: run.cpuMs, peakRssMb: run.peakRssMb, copyMs: run.copyMs };
}

async function mixSection(lab: Lab, title: string, messages: Buffer[], opts: MixOptions = {}): Promise<MixResult> {
  const { rttMs = 0, tls = false } = opts;
  const count = messages.length;
  const bytes = messages.reduce((a, m) => a + m.length, 0);
  const largest = Math.max(...messages.map((m) => m.length));
  const where = rttMs ? `${rttMs} ms round trip (delaying relay)` : `loopback${tls ? ', TLS both sides' : ''}`;
  process.stdout.write(
    `\n== ${title}: ${count} messages, ${(bytes / MB).toFixed(1)} MB ` +
      `(largest ${(largest / MB).toFixed(2)} MB), ${where} ==\n`,
  );
  // popsync's copy phase is read off its connections by the relays it goes through (bench-phase.ts):
  // at a round trip the delaying ones every client shares, in the run measured; on a plaintext
  // loopback zero-delay ones, in a second run of popsync alone, so that no relay (a hop, and CPU in
  // this process: some 8% of the whole process on the loaded build machine) is in the figures every
  // other row is compared with. Only while popsync runs is anything watched.
  let phase: CopyPhase | null = null;
  const watch =
    (side: 'pop3' | 'imap'): ProxyObserver =>
    (conn, dir, chunk, at) =>
      phase?.[side](conn, dir, chunk, at);
  const relays = async (delayMs: number) => [
    await startSlowProxy(lab.pop3.port, delayMs, watch('pop3')),
    await startSlowProxy(lab.imap.port, delayMs, watch('imap')),
  ];
  const proxies = rttMs ? await relays(rttMs / 2) : tls ? [] : await relays(0);
  const through = (p: typeof proxies): RawEndpoints => ({ pop3: p[0]!.port, imap: p[1]!.port });
  const ep: RawEndpoints = rttMs ? through(proxies) : labEndpoints(lab, tls);
  /** popsync once more, on a source of its own, watched; what the relays (and meters) cost this process. */
  const watched = async (at: RawEndpoints): Promise<{ run: CliRun; phase: CopyPhase; benchCpuMs: number }> => {
    const src = fresh('src');
    await lab.seedPop3(src, messages);
    await listPop3(at, src, lab.password);
    const observed = new CopyPhase(rttMs / 2);
    phase = observed;
    const cpu0 = process.cpuUsage();
    try {
      const run = await popsync(lab, src, fresh('dst'), join(lab.dir, `${src}.sqlite`), 'migrate', at);
      const cpu = process.cpuUsage(cpu0);
      return { run, phase: observed, benchCpuMs: (cpu.user + cpu.system) / 1000 };
    } finally {
      phase = null;
    }
  };
  try {
    // popsync's source empties as it goes; the raw readers (RETR only) share one of their own.
    const src = fresh('src');
    const rawSrc = fresh('rawsrc');
    await lab.seedPop3(src, messages);
    await lab.seedPop3(rawSrc, messages);
    // The server state the raw readers' source is in when the safe relay runs (listPop3).
    await listPop3(ep, src, lab.password);
    const raw = new Map<string, Measured>();
    const relayLabel = 'raw relay POP3 -> MULTIAPPEND x100';
    const safeLabel = 'safe relay: + digests, journal';
    const relayProcessLabel = 'raw relay, whole process';
    const safeProcessLabel = 'safe relay, whole process';
    const measureRaw = async (): Promise<void> => {
      const pw = lab.password;
      keepFaster(raw, 'pop3', await metered(lab, (end) => rawPop3(ep, rawSrc, pw, count, end)));
      for (const mode of SINK_MODES)
        keepFaster(raw, mode.label, await metered(lab, (end) => rawImap(ep, fresh('raw'), pw, messages, mode, end)));
      keepFaster(
        raw,
        relayLabel,
        await metered(lab, (end) => rawRelay(ep, rawSrc, fresh('relay'), pw, count, 100, end)),
      );
      const safeDst = fresh('safe');
      const safeJournal = join(lab.dir, `${safeDst}.sqlite`);
      keepFaster(
        raw,
        safeLabel,
        await metered(lab, (end) => safeRelay(ep, rawSrc, safeDst, pw, count, safeJournal, undefined, end)),
      );
      keepFaster(raw, relayProcessLabel, await relayProcess(lab, 'raw', ep, rawSrc, count));
      keepFaster(raw, safeProcessLabel, await relayProcess(lab, 'safe', ep, rawSrc, count));
    };
    await measureRaw();
    const journal = join(lab.dir, `${src}.sqlite`);
    const dst = fresh('dst');
    const meter = new ServerCpu(lab.pid);
    const observed = rttMs ? new CopyPhase(rttMs / 2) : null;
    phase = observed;
    const benchCpu0 = process.cpuUsage();
    const run = await popsync(lab, src, dst, journal, 'migrate', ep);
    phase = null;
    const benchCpu = process.cpuUsage(benchCpu0);
    const server = meter.stop();
    if (run.summary.copied + run.summary.reconciled !== count)
      throw new Error(`popsync copied ${run.summary.copied} (+${run.summary.reconciled}) of ${count}`);
    const noop = opts.noopRerun ? await popsync(lab, src, dst, journal, 'migrate', ep) : undefined;
    // The relays run in this process: what they cost (with the meters' sampling) is shown beside the phase.
    const seen = observed
      ? { phase: observed, benchCpuMs: (benchCpu.user + benchCpu.system) / 1000, run: null }
      : proxies.length > 0
        ? await watched(through(proxies))
        : null;
    await measureRaw();

    const line = (label: string, m: Measured, extra = ''): void => {
      const cpu = `client CPU ${(m.clientMs / 1000).toFixed(2)} s, server CPU ${formatServerCpu(m.server)}`;
      process.stdout.write(`${row(label, count, bytes, m.ms, `${cpu}${extra}`)}\n`);
    };
    line('raw POP3 RETR, pipelined, 1 conn', raw.get('pop3')!);
    for (const mode of SINK_MODES) line(mode.label, raw.get(mode.label)!);
    const relay = raw.get(relayLabel)!;
    line(relayLabel, relay);
    const safe = raw.get(safeLabel)!;
    line(safeLabel, safe);
    // Their own clock of the copy, inside the process, says what of the whole was outside the copy.
    const processExtra = (m: Measured): string =>
      `; peak RSS ${m.peakRssMb!.toFixed(0)} MB; copy ${(m.copyMs! / 1000).toFixed(2)} s of it`;
    const relayProcessRun = raw.get(relayProcessLabel)!;
    line(relayProcessLabel, relayProcessRun, processExtra(relayProcessRun));
    const safeProcess = raw.get(safeProcessLabel)!;
    line(safeProcessLabel, safeProcess, processExtra(safeProcess));
    line(
      'popsync migrate (whole process)',
      { ms: run.ms, server, clientMs: run.cpuMs },
      `; peak RSS ${run.peakRssMb.toFixed(0)} MB`,
    );
    const copyMs = seen?.phase.ms ?? null;
    if (seen === null || copyMs === null)
      process.stdout.write(
        tls
          ? 'popsync copy phase: not measured under TLS (a relay sees no commands)\n'
          : 'popsync copy phase: not seen (no RETR or no APPEND reply passed the relays)\n',
      );
    else {
      const how =
        seen.run === null
          ? 'the same run, read by the delaying relays'
          : `a second run through zero-delay relays (its whole process ${(seen.run.ms / 1000).toFixed(2)} s)`;
      const relays = `${how}; relays and meters: ${(seen.benchCpuMs / 1000).toFixed(2)} s CPU in the bench process`;
      process.stdout.write(`${row('popsync copy phase (1st RETR..last OK)', count, bytes, copyMs, relays)}\n`);
    }
    const sinks = SINK_MODES.map((mode) => [mode, raw.get(mode.label)!] as const);
    const [bestMode, best] = [...sinks].sort((a, b) => a[1].ms - b[1].ms)[0]!;
    const single = raw.get(SINK_MODES[0]!.label)!;
    process.stdout.write(
      `popsync / raw relay: ${(relay.ms / run.ms).toFixed(2)}x; ` +
        `/ best raw sink (${bestMode.label.replace('raw ', '')}): ${(best.ms / run.ms).toFixed(2)}x; ` +
        `/ raw APPEND 1 conn: ${(single.ms / run.ms).toFixed(2)}x\n`,
    );
    process.stdout.write(
      `popsync / safe relay: ${(safe.ms / run.ms).toFixed(2)}x; ` +
        `safe relay / raw relay: ${(relay.ms / safe.ms).toFixed(2)}x (what the invariants cost at least)\n`,
    );
    // Like for like: whole process against whole process, each clock from spawn to exit.
    process.stdout.write(
      `popsync / safe relay, whole processes: ${(safeProcess.ms / run.ms).toFixed(2)}x; ` +
        `/ raw relay, whole processes: ${(relayProcessRun.ms / run.ms).toFixed(2)}x; ` +
        `client CPU, popsync / safe relay process: ${(run.cpuMs / safeProcess.clientMs).toFixed(2)}x\n`,
    );
    // Like for like: each relay's clock, too, runs from after its logins to its last reply.
    if (copyMs !== null)
      process.stdout.write(
        `popsync copy phase / raw relay: ${(relay.ms / copyMs).toFixed(2)}x; ` +
          `/ safe relay: ${(safe.ms / copyMs).toFixed(2)}x\n`,
      );
    // CPU beside time: on a shared machine the servers' share moves the wall-clock ratios, while
    // the clients' CPU says what each copier itself costs (popsync's includes its start-up).
    process.stdout.write(
      `client CPU, popsync / safe relay: ${(run.cpuMs / safe.clientMs).toFixed(2)}x; ` +
        `safe relay / raw relay: ${(safe.clientMs / relay.clientMs).toFixed(2)}x\n`,
    );
    if (noop)
      process.stdout.write(
        `popsync no-op rerun (${count} journaled): ${(noop.ms / 1000).toFixed(2)} s, start-up included, ` +
          `peak RSS ${noop.peakRssMb.toFixed(0)} MB\n`,
      );
    return { count, popsync: { ms: run.ms, server, clientMs: run.cpuMs }, relay, safe, safeProcess };
  } finally {
    for (const p of proxies) await p.close();
  }
}

/** What TLS on both sides cost, the same mix in plaintext beside it: time, and whose CPU. */
function tlsCost(plain: MixResult, tls: MixResult): void {
  const sec = (ms: number): string => `${(ms / 1000).toFixed(2)} s`;
  const login = (m: Measured): number =>
    m.server.byName.filter(([n]) => n.endsWith('-login')).reduce((a, [, ms]) => a + ms, 0);
  const line = (who: string, p: Measured, t: Measured): string =>
    `${who} ${(t.ms / p.ms).toFixed(2)}x the plaintext time; its CPU +${sec(t.clientMs - p.clientMs)}, ` +
    `the server's +${sec(t.server.totalMs - p.server.totalMs)} (login processes, which carry TLS: ` +
    `+${sec(login(t) - login(p))})`;
  process.stdout.write(`TLS: ${line('popsync', plain.popsync, tls.popsync)}\n`);
  process.stdout.write(`TLS: ${line('raw relay', plain.relay, tls.relay)}\n`);
  process.stdout.write(`TLS: ${line('safe relay', plain.safe, tls.safe)}\n`);
  process.stdout.write(`TLS: ${line('safe relay, whole process', plain.safeProcess, tls.safeProcess)}\n`);
}

/**
 * Full and resumed TLS handshakes: `n` connections to imaps one after another, each read up to
 * the greeting (by which time TLS 1.3's tickets are in), as popsync opens them
 * (src/net/connect.ts, which offers the last session) on the bench's Dovecot (its default
 * login mode: a login process, with its own ticket key, per connection), and on one in
 * high-performance login mode, where they resume; there also with no session offered.
 */
async function handshakeSection(lab: Lab, n: number): Promise<void> {
  process.stdout.write(`\n== TLS handshakes to imaps, ${n} one after another ==\n`);
  const shared = await startDovecot({ pop3Rawlog: false, sharedLoginProcesses: true });
  try {
    const cases = [
      ['default login mode, as popsync connects', lab, true],
      ['high-performance login mode, no session offered', shared, false],
      ['high-performance login mode, as popsync connects', shared, true],
    ] as const;
    for (const [label, l, ours] of cases) {
      const ca = readFileSync(l.caFile, 'utf8');
      const target = { protocol: 'IMAP', host: '127.0.0.1', port: l.imaps.port, ca: [ca], connectTimeoutMs: 10_000 };
      const context = createSecureContext({ ca });
      let resumed = 0;
      const m = await metered(l, async (atEnd) => {
        const t0 = performance.now();
        for (let i = 0; i < n; i++) {
          const s = ours
            ? ((await openSocket(target, true)) as TLSSocket)
            : await new Promise<TLSSocket>((resolve, reject) => {
                const c = tlsConnect({ host: target.host, port: target.port, secureContext: context }, () =>
                  resolve(c),
                );
                c.once('error', reject);
              });
          if (s.isSessionReused()) resumed++;
          await new Promise((r) => s.once('data', r));
          s.destroy();
        }
        atEnd();
        return performance.now() - t0;
      });
      process.stdout.write(
        `Dovecot, ${label}: ${resumed} of ${n} resumed; per connection ${(m.ms / n).toFixed(2)} ms, ` +
          `client CPU ${(m.clientMs / n).toFixed(2)} ms, server CPU ${(m.server.totalMs / n).toFixed(2)} ms\n`,
      );
    }
  } finally {
    await shared.stop();
  }
}

/**
 * `--append-connections` (src/imap/append-pool.ts): the typical mix routed into two folders
 * by a rule (every other message has the List-Id it matches), through the delaying relay, into
 * a second Dovecot that offers LITERAL- instead of LITERAL+ as Gmail does, so each message over
 * 4 KiB waits a round trip for the server's '+': with 1 and with 2 APPEND connections, one
 * folder on each. Not on the LITERAL+ Dovecot above: one connection there never waits for a
 * round trip, and on loopback popsync's own CPU is the limit, so a second one gains nothing.
 */
async function appendConnectionsSection(count: number, rttMs: number): Promise<void> {
  const lab = await startDovecot({ pop3Rawlog: false, imapLiteralMinus: true });
  const proxies = [await startSlowProxy(lab.pop3.port, rttMs / 2), await startSlowProxy(lab.imap.port, rttMs / 2)];
  const ep: RawEndpoints = { pop3: proxies[0]!.port, imap: proxies[1]!.port };
  try {
    const messages = benchMix(count, 44).map((m, i) =>
      i % 2 === 0 ? Buffer.concat([Buffer.from('List-Id: <bench.lists.example>\r\n'), m]) : m,
    );
    const bytes = messages.reduce((a, m) => a + m.length, 0);
    process.stdout.write(
      `\n== typical mix into 2 folders: ${count} messages, ${(bytes / MB).toFixed(1)} MB, ${rttMs} ms round ` +
        'trip, Dovecot offering LITERAL- (as Gmail) ==\n',
    );
    for (const conns of [1, 2]) {
      const src = fresh('src');
      const dst = fresh('dst');
      await lab.seedPop3(src, messages);
      // The rule only: the command line's endpoints stand for the account's.
      const config = join(lab.dir, `${src}.yml`);
      writeFileSync(
        config,
        [
          'accounts:',
          `  - source: { url: 'pop3://${src}@127.0.0.1:${ep.pop3}', tls: none }`,
          `    destination: { url: 'imap://${dst}@127.0.0.1:${ep.imap}', tls: none }`,
          '    rules:',
          '      - { match: { list_id: bench.lists.example }, folder: Lists }',
          '',
        ].join('\n'),
      );
      const meter = new ServerCpu(lab.pid);
      const run = await popsync(lab, src, dst, join(lab.dir, `${src}.sqlite`), 'migrate', ep, [
        '--config',
        config,
        '--append-connections',
        String(conns),
      ]);
      const server = meter.stop();
      if (run.summary.copied + run.summary.reconciled !== count)
        throw new Error(`popsync copied ${run.summary.copied} (+${run.summary.reconciled}) of ${count}`);
      const cpu = `client CPU ${(run.cpuMs / 1000).toFixed(2)} s, server CPU ${formatServerCpu(server)}`;
      process.stdout.write(
        `${row(`popsync, ${conns} APPEND connection${conns > 1 ? 's' : ''}`, count, bytes, run.ms, cpu)}\n`,
      );
    }
  } finally {
    for (const p of proxies) await p.close();
    await lab.stop();
  }
}

async function main(): Promise<void> {
  const count = Number(process.env.BENCH_MESSAGES ?? 3000);
  const lab = await startDovecot({ pop3Rawlog: false });
  try {
    process.stdout.write(
      `popsync ${POPSYNC_BIN}; Dovecot on loopback, ${process.env.HOSTNAME ?? 'this machine'}; load average ${loadavg()
        .map((l) => l.toFixed(1))
        .join(' ')}\n`,
    );
    const plain =
      count > 0 ? await mixSection(lab, 'typical mix', benchMix(count, 42), { noopRerun: true }) : undefined;
    const tlsCount = Number(process.env.BENCH_TLS_MESSAGES ?? count);
    if (tlsCount > 0) {
      const tls = await mixSection(lab, 'typical mix', benchMix(tlsCount, 42), { tls: true });
      if (plain?.count === tls.count) tlsCost(plain, tls);
    }
    const handshakes = Number(process.env.BENCH_HANDSHAKES ?? 100);
    if (handshakes > 0) await handshakeSection(lab, handshakes);
    const small = Number(process.env.BENCH_SMALL_MESSAGES ?? 10_000);
    if (small > 0) await mixSection(lab, 'small messages', smallMix(small, 7));
    const rtt = Number(process.env.BENCH_RTT_MS ?? 30);
    const rttCount = Number(process.env.BENCH_RTT_MESSAGES ?? 1000);
    if (rtt > 0 && rttCount > 0) await mixSection(lab, 'typical mix', benchMix(rttCount, 43), { rttMs: rtt });
    const foldersCount = Number(process.env.BENCH_FOLDERS_MESSAGES ?? 300);
    if (rtt > 0 && foldersCount > 0) await appendConnectionsSection(foldersCount, rtt);

    // Cron's case: `sync` over a large mailbox where nothing is new. The journal is filled by a
    // real first sync (not written directly), so it holds exactly what production would.
    const syncCount = Number(process.env.BENCH_SYNC_MESSAGES ?? 20_000);
    if (syncCount > 0) {
      const tiny = Array.from({ length: syncCount }, (_, i) =>
        Buffer.from(`From: a@example.org\r\nSubject: ${i}\r\nMessage-ID: <${i}@bench>\r\n\r\n${i}\r\n`),
      );
      await lab.seedPop3('bench-sync-src', tiny);
      const journal = join(lab.dir, 'bench-sync.sqlite');
      // Each run beside the server's CPU in it, so a slow run says whose time it was (a bench once
      // took 2.4 s for what took 0.4 s in the next: Dovecot's, from the lab's maildir names).
      const measured = async (): Promise<{ run: CliRun; server: ServerCpuSplit }> => {
        const meter = new ServerCpu(lab.pid);
        const run = await popsync(lab, 'bench-sync-src', 'bench-sync-dst', journal, 'sync');
        return { run, server: meter.stop() };
      };
      const cpu = (m: { run: CliRun; server: ServerCpuSplit }): string =>
        `${(m.run.ms / 1000).toFixed(2)} s (popsync CPU ${(m.run.cpuMs / 1000).toFixed(2)} s, ` +
        `server CPU ${formatServerCpu(m.server)})`;
      const firstSync = await measured();
      // Settled by reconciliation after a reconnect counts as copied: it is in the destination once.
      const { copied, reconciled } = firstSync.run.summary;
      if (copied + reconciled !== syncCount) throw new Error(`sync copied ${copied} (+${reconciled}) of ${syncCount}`);
      // Three no-op runs: the first after a 20,000-message copy also pays for caches and the
      // server's index that the copy left cold; cron's steady state is the later ones.
      const idle: Array<{ run: CliRun; server: ServerCpuSplit }> = [];
      for (let i = 0; i < 3; i++) idle.push(await measured());
      process.stdout.write(`\npopsync sync first run (${syncCount} tiny messages): ${cpu(firstSync)}\n`);
      process.stdout.write(
        `popsync sync no-op (${syncCount} journaled), 3 runs, start-up included: ${idle.map(cpu).join('; ')}; ` +
          `peak RSS ${Math.max(...idle.map((m) => m.run.peakRssMb)).toFixed(0)} MB\n`,
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
      labEndpoints(lab, tls),
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
