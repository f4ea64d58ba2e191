/**
 * Single-process CPU of two builds in alternating pairs, for `--version` and for cron's no-op
 * `sync` (a journal that already holds every message the source lists): start-up, where the code
 * cache (src/code-cache.ts) matters most. CCACHE_A, CCACHE_B: the bins; CCACHE_PAIRS (default 12);
 * CCACHE_MESSAGES (default 300, the typical mix) in the source; CCACHE_FRESH=1: see below;
 * CCACHE_COLD=1: A's cache ($XDG_CACHE_HOME/popsync, XDG_CACHE_HOME required) is removed before
 * each of A's runs, which then makes it again (a first run's cost). CPU is the child's wait4
 * rusage (code-cache-rusage.py, microseconds: /usr/bin/time's hundredths are too coarse for a
 * 100 ms run). From the experiment of branch ccache (dff8409).
 *
 *   TMPDIR=/dev/shm XDG_CACHE_HOME=/dev/shm/x CCACHE_A=... CCACHE_B=... npx tsx lab/code-cache-single.ts
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { benchMix } from './corpus.js';
import { startDovecot } from './dovecot.js';
import { labEndpoints, popsyncArgs, runPopsync } from './popsync-cli.js';

const RUSAGE = fileURLToPath(new URL('code-cache-rusage.py', import.meta.url));

const env = process.env;
const bins = { A: env.CCACHE_A ?? '', B: env.CCACHE_B ?? '' };
const pairs = Number(env.CCACHE_PAIRS ?? 12);
const count = Number(env.CCACHE_MESSAGES ?? 300);

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

const lab = await startDovecot({ pop3Rawlog: false });
try {
  const src = lab.newUser('src');
  const dst = lab.newUser('dst');
  await lab.seedPop3(src, benchMix(count, 7));
  const journal = join(lab.dir, 'journal.sqlite');
  const ep = labEndpoints(lab, false);
  const first = await runPopsync(lab, src, dst, journal, { bin: bins.B, command: 'sync', ep });
  process.stdout.write(`seeded: ${count} messages, first sync copied ${JSON.stringify(first.summary.copied)}\n`);
  for (const what of ['--version', 'no-op sync'] as const) {
    const cpu: Record<'A' | 'B', number[]> = { A: [], B: [] };
    const run = async (side: 'A' | 'B'): Promise<number> => {
      const args =
        what === '--version'
          ? [bins[side], '--version']
          : [
              bins[side],
              ...popsyncArgs('sync', { user: src, port: ep.pop3 }, { user: dst, port: ep.imap }, journal, [
                '--json',
                '--no-progress',
              ]),
            ];
      if (side === 'A' && env.CCACHE_COLD === '1' && env.XDG_CACHE_HOME)
        rmSync(join(env.XDG_CACHE_HOME, 'popsync'), { recursive: true, force: true });
      const out = join(lab.dir, 'rusage.txt');
      const r = spawnSync('python3', [RUSAGE, out, process.execPath, ...args], {
        env: { ...env, PW: lab.password },
        stdio: ['ignore', 'ignore', 'inherit'],
      });
      if (r.status !== 0) throw new Error(`${side} ${what} exited ${r.status}`);
      const ms = Number(readFileSync(out, 'utf8').split(' ')[0]);
      rmSync(out);
      return ms;
    };
    // With CCACHE_FRESH=1 and XDG_CACHE_HOME set, each case's cache is made by that case's own run.
    if (env.CCACHE_FRESH === '1' && env.XDG_CACHE_HOME)
      rmSync(join(env.XDG_CACHE_HOME, 'popsync'), { recursive: true, force: true });
    await run('A'); // untimed: a warm cache for A (and disk caches for both)
    await run('B');
    let lower = 0;
    for (let i = 0; i < pairs; i++) {
      const order: ('A' | 'B')[] = i % 2 ? ['B', 'A'] : ['A', 'B'];
      const got: Partial<Record<'A' | 'B', number>> = {};
      for (const side of order) got[side] = await run(side);
      cpu.A.push(got.A!);
      cpu.B.push(got.B!);
      if (got.A! < got.B!) lower++;
    }
    process.stdout.write(
      `${what}: A ${cpu.A.join(' ')} | B ${cpu.B.join(' ')} ms\n` +
        `${what}: median CPU A ${median(cpu.A)} ms vs B ${median(cpu.B)} ms (A lower in ${lower} of ${pairs})\n`,
    );
  }
} finally {
  await lab.stop();
}
