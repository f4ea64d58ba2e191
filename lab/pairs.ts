/**
 * Before/after in alternating pairs: two builds of popsync (PAIRS_A, PAIRS_B: their
 * bin/popsync.js; A defaults to this checkout's) copy the same mail from one private Dovecot,
 * one after the other, the order swapped every pair, so that load and the server's warm-up fall
 * on both alike. One bench run's single figures move by a quarter on a shared machine; a change
 * is measured here, by its CPU (user + system of the popsync process, its rusage) and by how
 * many pairs it is lower in.
 *
 * PAIRS (default 5) pairs of PAIRS_MIX: typical (PAIRS_MESSAGES, default 3,000, the bench's
 * mix), small (default 10,000 of the bench's small messages), tls (the typical mix over pop3s
 * and imaps), rtt (the typical mix, default 1,000, through lab/slow-proxy.ts at PAIRS_RTT_MS,
 * default 30), or large and large-tls (default 30 messages of 9.5 MB, each a batch of its own
 * held in memory: the worst case of the memory bound, plaintext or over pop3s and imaps).
 * PAIRS_NODE_A and PAIRS_NODE_B add node options to each side (space-separated:
 * `--cpu-prof --cpu-prof-dir=/tmp/prof`, or a flag under test). Each source is listed once
 * before its run, as the bench does. Run it with TMPDIR=/dev/shm: with the lab on a disk, file
 * creation in Dovecot's maildir is the limit for every build alike.
 */
import { join } from 'node:path';
import { loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { listPop3, type RawEndpoints } from './bench-raw.js';
import { benchMix, hugeMessage, smallMix } from './corpus.js';
import { startDovecot } from './dovecot.js';
import { type CliRun, labEndpoints, runPopsync } from './popsync-cli.js';
import { median } from './rounds.js';
import { ServerCpu } from './server-cpu.js';
import { startSlowProxy } from './slow-proxy.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const env = process.env;

interface Side {
  name: 'A' | 'B';
  bin: string;
  nodeArgs: string[];
  runs: Array<CliRun & { serverMs: number }>;
}

const words = (s: string | undefined): string[] => (s ? s.split(' ').filter(Boolean) : []);

async function main(): Promise<void> {
  if (!env.PAIRS_B) throw new Error('PAIRS_B must name the other build (its bin/popsync.js)');
  const mix = env.PAIRS_MIX ?? 'typical';
  if (!['typical', 'small', 'tls', 'rtt', 'large', 'large-tls'].includes(mix))
    throw new Error(`PAIRS_MIX ${mix}: typical, small, tls, rtt, large or large-tls`);
  const pairs = Number(env.PAIRS ?? 5);
  const large = mix.startsWith('large');
  const count = Number(env.PAIRS_MESSAGES ?? (mix === 'small' ? 10000 : mix === 'rtt' ? 1000 : large ? 30 : 3000));
  const rttMs = Number(env.PAIRS_RTT_MS ?? 30);
  const messages =
    mix === 'small'
      ? smallMix(count, 7)
      : large
        ? Array.from({ length: count }, (_, i) => hugeMessage(9.5 * 1024 * 1024, 100 + i))
        : benchMix(count, 42);
  const sides: Side[] = [
    { name: 'A', bin: env.PAIRS_A ?? join(ROOT, 'bin', 'popsync.js'), nodeArgs: words(env.PAIRS_NODE_A), runs: [] },
    { name: 'B', bin: env.PAIRS_B, nodeArgs: words(env.PAIRS_NODE_B), runs: [] },
  ];
  const lab = await startDovecot({ pop3Rawlog: false });
  const proxies =
    mix === 'rtt'
      ? [await startSlowProxy(lab.pop3.port, rttMs / 2), await startSlowProxy(lab.imap.port, rttMs / 2)]
      : [];
  const ep: RawEndpoints = proxies.length
    ? { pop3: proxies[0]!.port, imap: proxies[1]!.port }
    : labEndpoints(lab, mix === 'tls' || mix === 'large-tls');
  try {
    const load = loadavg()
      .map((l) => l.toFixed(1))
      .join(' ');
    process.stdout.write(`pairs: ${pairs} of ${mix}, ${count} messages; load ${load}\n`);
    for (const side of sides) process.stdout.write(`  ${side.name} ${side.bin} ${side.nodeArgs.join(' ')}\n`);
    for (let p = 0; p < pairs; p++) {
      const order = p % 2 ? [sides[1]!, sides[0]!] : [sides[0]!, sides[1]!];
      const line: string[] = [];
      for (const side of order) {
        const src = lab.newUser('pairs-src');
        await lab.seedPop3(src, messages);
        await listPop3(ep, src, lab.password);
        const meter = new ServerCpu(lab.pid);
        const run = await runPopsync(lab, src, lab.newUser('pairs-dst'), join(lab.dir, `${src}.sqlite`), {
          bin: side.bin,
          ep,
          nodeArgs: side.nodeArgs,
        });
        const serverMs = meter.stop().totalMs;
        if (run.summary.copied !== count) throw new Error(`${side.name} copied ${run.summary.copied} of ${count}`);
        side.runs.push({ ...run, serverMs });
        line.push(
          `${side.name} cpu ${(run.cpuMs / 1000).toFixed(2)} s wall ${(run.ms / 1000).toFixed(2)} s ` +
            `rss ${run.peakRssMb.toFixed(0)} MB server ${(serverMs / 1000).toFixed(2)} s`,
        );
      }
      process.stdout.write(`pair ${p + 1}: ${line.join(' | ')}\n`);
    }
    const [a, b] = sides as [Side, Side];
    const lower = a.runs.filter((r, i) => r.cpuMs < b.runs[i]!.cpuMs).length;
    const fasterWall = a.runs.filter((r, i) => r.ms < b.runs[i]!.ms).length;
    const med = (s: Side, f: (r: Side['runs'][number]) => number): string => (median(s.runs.map(f)) / 1000).toFixed(2);
    const rss = (s: Side): number[] => s.runs.map((r) => r.peakRssMb);
    const range = (s: Side): string => `${Math.min(...rss(s)).toFixed(0)}-${Math.max(...rss(s)).toFixed(0)}`;
    const cpu = (r: Side['runs'][number]): number => r.cpuMs;
    const wall = (r: Side['runs'][number]): number => r.ms;
    const server = (r: Side['runs'][number]): number => r.serverMs;
    process.stdout.write(
      `median CPU A ${med(a, cpu)} s vs B ${med(b, cpu)} s (A lower in ${lower} of ${pairs}); ` +
        `wall A ${med(a, wall)} s vs B ${med(b, wall)} s (A faster in ${fasterWall} of ${pairs}); ` +
        `peak RSS A ${range(a)} MB vs B ${range(b)} MB; server CPU A ${med(a, server)} s vs B ${med(b, server)} s\n`,
    );
  } finally {
    for (const p of proxies) await p.close();
    await lab.stop();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`pairs: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
});
