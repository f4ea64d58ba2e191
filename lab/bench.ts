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
 * measured before and after the whole processes below and the faster kept (right after
 * seeding, the disk is still flushing).
 * popsync runs as the real CLI in its own process, timed from spawn to exit, its CPU and peak
 * RSS from its rusage (popsync-cli.ts, measured-child.ts). The relays above run inside this
 * process, their clocks from after their logins to their last reply: the ceilings of the copy
 * itself. Like with like, both relays also run as processes of their own, bundled and started
 * as popsync is and measured the same way (relay-cli.ts: start-up, logins side by side, the safe
 * relay's journal creation, the copy, leaving), and popsync's whole process is held against
 * theirs. A single whole run moves by a quarter on a shared machine, so these three run in
 * rounds (BENCH_REPEAT, default 5, 3 for the TLS mix): popsync, the safe relay, the raw relay,
 * again and again, each on the same mail into a fresh destination and checked after; their rows
 * are medians (min-max), the whole-process ratios are the medians' and, popsync's against the
 * safe relay's, also counted round by round (rounds.ts). Its copy phase (first RETR to last
 * APPEND OK) is also read off its connections in plaintext by the relays they pass
 * (bench-phase.ts: at 30 ms the same runs', their median; on loopback a further run's) and held
 * against the in-process relays. The server's CPU is
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
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect, createSecureContext, type TLSSocket } from 'node:tls';
import { fileURLToPath } from 'node:url';
import { openSocket } from '../src/net/connect.js';
import {
  checkInbox,
  listPop3,
  type RawEndpoints,
  rawImap,
  rawPop3,
  rawRelay,
  SINK_MODES,
  safeRelay,
} from './bench-raw.js';
import { benchMix, hugeMessage, smallMix } from './corpus.js';
import { startDovecot, type Lab } from './dovecot.js';
import { formatServerCpu, ServerCpu, type ServerCpuSplit } from './server-cpu.js';
import { type ProxyObserver, startSlowProxy } from './slow-proxy.js';
import { CopyPhase } from './bench-phase.js';
import { type CliRun, labEndpoints, runPopsync } from './popsync-cli.js';
import { bundleRelay, runRelay } from './relay-cli.js';
import { median, medianServerCpu, perRound, roundCount, spread } from './rounds.js';

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

/**
 * Removes users' mail (home, Maildir, Dovecot's index) and journals once they are checked,
 * outside every clock. Kept, they grew the lab's tmpfs by gigabytes over the typical section
 * (every round's three destinations, the raw sinks) and on through later sections, so later runs
 * took pages of memory this VM had not backed for a while: the first touch of such a page cost
 * 7-13 us of system CPU instead of ~1.3 us (a 64 MB probe every 2 s), charged to whichever process
 * touched it, Dovecot's included. popsync touches the most new pages a run (on the small mix some
 * 15,000 page faults and 34 MB of journal and spool writes, the safe relay 8,500 and 20 MB) and
 * runs first in each round, so it paid most: on the small mix after the typical section its CPU
 * was 0.68-0.72 s against 0.55-0.57 s with the section run alone, its system CPU 0.11-0.24 s
 * against 0.06-0.12 s (perf: clear_page_erms under page faults, 12.6% of its samples against
 * none), with the same reads and writes, counts and sizes. With each run's mail removed once
 * checked, runs reuse the pages earlier ones freed, as in a section run alone.
 */
function forget(lab: Lab, users: readonly string[], journals: readonly string[] = []): void {
  // maxRetries: a server process may still be finishing in a maildir (ENOTEMPTY).
  for (const u of users) rmSync(join(lab.dir, 'home', u), { recursive: true, force: true, maxRetries: 10 });
  for (const j of journals) for (const ext of ['', '-wal', '-shm']) rmSync(`${j}${ext}`, { force: true });
}

/**
 * Runs measured and checked, whose mail is removed at the next round's start: clients leave
 * without awaiting QUIT's and LOGOUT's replies, so Dovecot may still be expunging a source
 * (10,000 files) or closing a destination when the check is done.
 */
const checked: Array<{ users: string[]; journals: string[] }> = [];

function forgetChecked(lab: Lab): void {
  for (const c of checked.splice(0)) forget(lab, c.users, c.journals);
}

/** Everything a section left in the lab: every user's mail and every journal. */
function forgetAll(lab: Lab): void {
  checked.length = 0;
  forget(lab, readdirSync(join(lab.dir, 'home')));
  for (const f of readdirSync(lab.dir)) if (/\.sqlite(-wal|-shm)?$/.test(f)) rmSync(join(lab.dir, f), { force: true });
}

interface MixOptions {
  /** Rounds of the whole processes: popsync, the safe relay's, the raw relay's, in that order. */
  rounds: number;
  /** Every connection through a relay that holds each chunk rttMs/2 in each direction. */
  rttMs?: number;
  /** pop3s and imaps for everyone, raw clients included. */
  tls?: boolean;
  /** Also run popsync again over the same journal, with nothing left to copy. */
  noopRerun?: boolean;
}

/**
 * Rounds of whole processes per mix unless BENCH_REPEAT says: a round of the TLS mix takes some
 * 8 s on the build machine, one of the others 2–4 s.
 */
const DEFAULT_ROUNDS = { typical: 5, tls: 3, small: 5, rtt: 5 } as const;

function roundsFor(mix: keyof typeof DEFAULT_ROUNDS): number {
  return roundCount(process.env.BENCH_REPEAT, DEFAULT_ROUNDS[mix]);
}

interface Measured {
  ms: number;
  server: ServerCpuSplit;
  /**
   * CPU of the client: popsync's process or a whole-process relay's (their rusage), or this
   * one's for a raw client run in it (its TLS included).
   */
  clientMs: number;
  /** A whole process's peak RSS; a whole-process relay's own clock of the copy inside it. */
  peakRssMb?: number;
  copyMs?: number;
}

/** One whole process's runs, one a round, and each of their figures' median. */
interface Repeated {
  runs: Measured[];
  median: Measured;
}

function repeated(runs: Measured[]): Repeated {
  const of = (pick: (m: Measured) => number | undefined): number | undefined => {
    const xs = runs.map(pick).filter((x): x is number => x !== undefined);
    return xs.length === runs.length ? median(xs) : undefined;
  };
  const peakRssMb = of((m) => m.peakRssMb);
  const copyMs = of((m) => m.copyMs);
  return {
    runs,
    median: {
      ms: median(runs.map((m) => m.ms)),
      server: medianServerCpu(runs.map((m) => m.server)),
      clientMs: median(runs.map((m) => m.clientMs)),
      ...(peakRssMb === undefined ? {} : { peakRssMb }),
      ...(copyMs === undefined ? {} : { copyMs }),
    },
  };
}

/** "0.98-1.10": the least and the greatest, in `unit`s of ms (1000: seconds, 2 decimals). */
function range(xs: readonly number[], unit = 1000, digits = 2): string {
  const s = spread(xs);
  return `${(s.min / unit).toFixed(digits)}-${(s.max / unit).toFixed(digits)}`;
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

/** What the TLS section is compared by with the plaintext one (the whole processes' medians). */
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
  checked.push({ users: [dst], journals: journal ? [journal] : [] });
  return { ms: run.ms, server: server!, clientMs: run.cpuMs, peakRssMb: run.peakRssMb, copyMs: run.copyMs };
}

/**
 * One mix: the raw ceilings in this process (each before and after the whole processes, the
 * faster kept: right after seeding, the disk is still flushing), then `rounds` rounds of
 * popsync's whole process, the safe relay's and the raw relay's, in that order, each on the
 * same mail into a fresh destination; their medians, and the ratios of those.
 */
async function mixSection(lab: Lab, title: string, messages: Buffer[], opts: MixOptions): Promise<MixResult> {
  const { rttMs = 0, tls = false, rounds } = opts;
  const count = messages.length;
  const bytes = messages.reduce((a, m) => a + m.length, 0);
  const largest = Math.max(...messages.map((m) => m.length));
  const where = rttMs ? `${rttMs} ms round trip (delaying relay)` : `loopback${tls ? ', TLS both sides' : ''}`;
  process.stdout.write(
    `\n== ${title}: ${count} messages, ${(bytes / MB).toFixed(1)} MB ` +
      `(largest ${(largest / MB).toFixed(2)} MB), ${where} ==\n`,
  );
  // popsync's copy phase is read off its connections by the relays it goes through (bench-phase.ts):
  // at a round trip the delaying ones every client shares, in the runs measured; on a plaintext
  // loopback zero-delay ones, in a further run of popsync alone, so that no relay (a hop, and CPU in
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
    // popsync's source empties as it goes, so each round's popsync has one of its own, all seeded
    // here, away from every measurement; the relays (RETR only) share one.
    const sources: string[] = [];
    const seed0 = performance.now();
    for (let r = 0; r < rounds; r++) {
      const src = fresh('src');
      await lab.seedPop3(src, messages);
      // Listed once, as the relays' source has been read before they run.
      await listPop3(ep, src, lab.password);
      sources.push(src);
    }
    const seedMs = performance.now() - seed0;
    const rawSrc = fresh('rawsrc');
    await lab.seedPop3(rawSrc, messages);
    const raw = new Map<string, Measured>();
    const relayLabel = 'raw relay POP3 -> MULTIAPPEND x100';
    const safeLabel = 'safe relay: + digests, journal';
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
    };
    await measureRaw();

    // The whole processes, round after round in the same order, so that what loads the machine
    // meanwhile falls on all three alike and each round's popsync is paired with the safe relay
    // run right after it. Every run is checked (its destination, the safe relay's journal, or
    // popsync's own report), outside its clock.
    const popsyncRuns: Measured[] = [];
    const safeRuns: Measured[] = [];
    const rawRuns: Measured[] = [];
    const phases: number[] = [];
    /** At a round trip, what the delaying relays and the meters cost this process while popsync ran. */
    const benchCpus: number[] = [];
    let last: { src: string; dst: string; journal: string } | undefined;
    const rounds0 = performance.now();
    for (const src of sources) {
      forgetChecked(lab);
      const journal = join(lab.dir, `${src}.sqlite`);
      const dst = fresh('dst');
      const meter = new ServerCpu(lab.pid);
      const observed = rttMs ? new CopyPhase(rttMs / 2) : null;
      phase = observed;
      const benchCpu0 = process.cpuUsage();
      const run = await popsync(lab, src, dst, journal, 'migrate', ep);
      const benchCpu = process.cpuUsage(benchCpu0);
      phase = null;
      const server = meter.stop();
      if (run.summary.copied + run.summary.reconciled !== count)
        throw new Error(`popsync copied ${run.summary.copied} (+${run.summary.reconciled}) of ${count}`);
      await checkInbox('popsync', ep, dst, lab.password, count);
      popsyncRuns.push({ ms: run.ms, server, clientMs: run.cpuMs, peakRssMb: run.peakRssMb });
      if (observed?.ms != null) phases.push(observed.ms);
      benchCpus.push((benchCpu.user + benchCpu.system) / 1000);
      last = { src, dst, journal };
      // The no-op rerun needs the last round's source, destination and journal.
      if (!opts.noopRerun || src !== sources.at(-1)) checked.push({ users: [src, dst], journals: [journal] });
      safeRuns.push(await relayProcess(lab, 'safe', ep, rawSrc, count));
      rawRuns.push(await relayProcess(lab, 'raw', ep, rawSrc, count));
    }
    const roundsMs = performance.now() - rounds0;
    const noop =
      opts.noopRerun && last ? await popsync(lab, last.src, last.dst, last.journal, 'migrate', ep) : undefined;
    if (last) checked.push({ users: [last.src, last.dst], journals: [last.journal] });
    // The relays run in this process: what they cost (with the meters' sampling) is shown beside the phase.
    const seen = proxies.length > 0 && !rttMs ? await watched(through(proxies)) : null;
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

    const pop = repeated(popsyncRuns);
    const safeProcess = repeated(safeRuns);
    const rawProcess = repeated(rawRuns);
    const sec = (ms: number): string => (ms / 1000).toFixed(2);
    const vsSafe = perRound(
      safeRuns.map((m) => m.ms),
      popsyncRuns.map((m) => m.ms),
    );
    const vsRaw = perRound(
      rawRuns.map((m) => m.ms),
      popsyncRuns.map((m) => m.ms),
    );
    process.stdout.write(
      `-- whole processes: ${rounds} round${rounds > 1 ? 's' : ''} of popsync, safe relay, raw relay, ` +
        `each into a fresh destination, in ${(roundsMs / 1000).toFixed(1)} s (popsync's sources seeded before, ` +
        `in ${(seedMs / 1000).toFixed(1)} s); the rows below are medians (min-max) --\n`,
    );
    for (const [i, p] of popsyncRuns.entries())
      process.stdout.write(
        `round ${i + 1}: popsync ${sec(p.ms)} s (CPU ${sec(p.clientMs)}) | ` +
          `safe relay ${sec(safeRuns[i]!.ms)} s (CPU ${sec(safeRuns[i]!.clientMs)}) | ` +
          `raw relay ${sec(rawRuns[i]!.ms)} s (CPU ${sec(rawRuns[i]!.clientMs)}) | ` +
          `popsync / safe relay ${vsSafe[i]!.toFixed(2)}x\n`,
      );
    // Each figure's median on its own: the median wall time and the median CPU may be different runs'.
    const medianLine = (label: string, r: Repeated, extra = ''): void => {
      const m = r.median;
      const figures =
        `wall ${range(r.runs.map((x) => x.ms))} s; ` +
        `client CPU ${sec(m.clientMs)} s (${range(r.runs.map((x) => x.clientMs))}), ` +
        `server CPU ${formatServerCpu(m.server, range(r.runs.map((x) => x.server.totalMs)))}; ` +
        `peak RSS ${m.peakRssMb!.toFixed(0)} MB (${range(
          r.runs.map((x) => x.peakRssMb!),
          1,
          0,
        )})`;
      process.stdout.write(`${row(label, count, bytes, m.ms, `${figures}${extra}`)}\n`);
    };
    // Their own clock of the copy, inside the process, says what of the whole was outside the copy.
    const copyOf = (r: Repeated): string =>
      `; copy ${sec(r.median.copyMs!)} s of it (${range(r.runs.map((x) => x.copyMs!))})`;
    medianLine('raw relay, whole process, median', rawProcess, copyOf(rawProcess));
    medianLine('safe relay, whole process, median', safeProcess, copyOf(safeProcess));
    medianLine('popsync migrate, whole process, median', pop);
    const copyMs = rttMs ? (phases.length === rounds ? median(phases) : null) : (seen?.phase.ms ?? null);
    if (copyMs === null)
      process.stdout.write(
        tls
          ? 'popsync copy phase: not measured under TLS (a relay sees no commands)\n'
          : 'popsync copy phase: not seen (no RETR or no APPEND reply passed the relays)\n',
      );
    else {
      const how =
        seen === null
          ? `the same runs, read by the delaying relays: median of ${rounds} (${range(phases)} s); ` +
            `relays and meters: ${sec(median(benchCpus))} s CPU in the bench process (median)`
          : `a further run through zero-delay relays (its whole process ${sec(seen.run.ms)} s); ` +
            `relays and meters: ${sec(seen.benchCpuMs)} s CPU in the bench process`;
      process.stdout.write(`${row('popsync copy phase (1st RETR..last OK)', count, bytes, copyMs, how)}\n`);
    }
    const p = pop.median;
    const sinks = SINK_MODES.map((mode) => [mode, raw.get(mode.label)!] as const);
    const [bestMode, best] = [...sinks].sort((a, b) => a[1].ms - b[1].ms)[0]!;
    const single = raw.get(SINK_MODES[0]!.label)!;
    // popsync's figures from here on are its medians.
    process.stdout.write(
      `popsync / raw relay: ${(relay.ms / p.ms).toFixed(2)}x; ` +
        `/ best raw sink (${bestMode.label.replace('raw ', '')}): ${(best.ms / p.ms).toFixed(2)}x; ` +
        `/ raw APPEND 1 conn: ${(single.ms / p.ms).toFixed(2)}x\n`,
    );
    process.stdout.write(
      `popsync / safe relay: ${(safe.ms / p.ms).toFixed(2)}x; ` +
        `safe relay / raw relay: ${(relay.ms / safe.ms).toFixed(2)}x (what the invariants cost at least)\n`,
    );
    // Like for like: whole process against whole process, each clock from spawn to exit; the
    // ratio of the medians, and round by round, as each popsync and the relays after it ran.
    const held = vsSafe.filter((x) => x >= 0.8).length;
    process.stdout.write(
      `popsync / safe relay, whole processes: ${(safeProcess.median.ms / p.ms).toFixed(2)}x ` +
        `(medians; per round ${range(vsSafe, 1)}x, >= 0.8 in ${held} of ${rounds}); ` +
        `/ raw relay, whole processes: ${(rawProcess.median.ms / p.ms).toFixed(2)}x (per round ${range(vsRaw, 1)}x); ` +
        `client CPU, popsync / safe relay process: ${(p.clientMs / safeProcess.median.clientMs).toFixed(2)}x\n`,
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
      `client CPU, popsync / safe relay: ${(p.clientMs / safe.clientMs).toFixed(2)}x; ` +
        `safe relay / raw relay: ${(safe.clientMs / relay.clientMs).toFixed(2)}x\n`,
    );
    if (noop)
      process.stdout.write(
        `popsync no-op rerun (${count} journaled): ${sec(noop.ms)} s, start-up included, ` +
          `peak RSS ${noop.peakRssMb.toFixed(0)} MB\n`,
      );
    return { count, popsync: p, relay, safe, safeProcess: safeProcess.median };
  } finally {
    for (const p of proxies) await p.close();
    forgetAll(lab);
  }
}

/** What TLS on both sides cost, the same mix in plaintext beside it: time, and whose CPU. */
function tlsCost(plain: MixResult, tls: MixResult): void {
  // A single in-process run can cost less under TLS than its plaintext twin did: "-0.01 s", not "+-0.01 s".
  const delta = (ms: number): string => `${ms < 0 ? '-' : '+'}${(Math.abs(ms) / 1000).toFixed(2)} s`;
  const login = (m: Measured): number =>
    m.server.byName.filter(([n]) => n.endsWith('-login')).reduce((a, [, ms]) => a + ms, 0);
  const line = (who: string, p: Measured, t: Measured): string =>
    `${who} ${(t.ms / p.ms).toFixed(2)}x the plaintext time; its CPU ${delta(t.clientMs - p.clientMs)}, ` +
    `the server's ${delta(t.server.totalMs - p.server.totalMs)} (login processes, which carry TLS: ` +
    `${delta(login(t) - login(p))})`;
  process.stdout.write(`TLS: ${line('popsync (medians)', plain.popsync, tls.popsync)}\n`);
  process.stdout.write(`TLS: ${line('raw relay', plain.relay, tls.relay)}\n`);
  process.stdout.write(`TLS: ${line('safe relay', plain.safe, tls.safe)}\n`);
  process.stdout.write(`TLS: ${line('safe relay, whole process (medians)', plain.safeProcess, tls.safeProcess)}\n`);
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
  // Read before anything starts, so that a wrong BENCH_REPEAT costs no seeding.
  const rounds = {
    typical: roundsFor('typical'),
    tls: roundsFor('tls'),
    small: roundsFor('small'),
    rtt: roundsFor('rtt'),
  };
  const lab = await startDovecot({ pop3Rawlog: false });
  try {
    process.stdout.write(
      `popsync ${POPSYNC_BIN}; Dovecot on loopback, ${process.env.HOSTNAME ?? 'this machine'}; load average ${loadavg()
        .map((l) => l.toFixed(1))
        .join(' ')}\n`,
    );
    const plain =
      count > 0
        ? await mixSection(lab, 'typical mix', benchMix(count, 42), { noopRerun: true, rounds: rounds.typical })
        : undefined;
    const tlsCount = Number(process.env.BENCH_TLS_MESSAGES ?? count);
    if (tlsCount > 0) {
      const tls = await mixSection(lab, 'typical mix', benchMix(tlsCount, 42), { tls: true, rounds: rounds.tls });
      if (plain?.count === tls.count) tlsCost(plain, tls);
    }
    const handshakes = Number(process.env.BENCH_HANDSHAKES ?? 100);
    if (handshakes > 0) await handshakeSection(lab, handshakes);
    const small = Number(process.env.BENCH_SMALL_MESSAGES ?? 10_000);
    if (small > 0) await mixSection(lab, 'small messages', smallMix(small, 7), { rounds: rounds.small });
    const rtt = Number(process.env.BENCH_RTT_MS ?? 30);
    const rttCount = Number(process.env.BENCH_RTT_MESSAGES ?? 1000);
    if (rtt > 0 && rttCount > 0)
      await mixSection(lab, 'typical mix', benchMix(rttCount, 43), { rttMs: rtt, rounds: rounds.rtt });
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
