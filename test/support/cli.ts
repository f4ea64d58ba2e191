/**
 * Runs the built popsync binary as a user would (a separate process, minimal environment,
 * passwords through environment variables), so end-to-end tests see exit codes, stdout and
 * stderr exactly as cron does. Needs `npm run build` (test/scripts/ensure-env.sh does it).
 *
 * With `hooks`, the test-only launcher (popsync-with-hooks.mjs) runs instead of bin/popsync.js:
 * the shipped binary has no way to receive them.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { inject } from 'vitest';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const BIN = join(ROOT, 'bin', 'popsync.js');
const HOOKED_BIN = join(ROOT, 'test', 'support', 'popsync-with-hooks.mjs');

/** Test hooks the launcher injects (see popsync-with-hooks.mjs). */
interface TestHooks {
  /** The run's clock starts at this ISO time. */
  now?: string;
  /** SIGKILL at a journal step, "3:before" or "3:after". */
  killAt?: string;
  /** Write the running journal step count to this file. */
  stepsFile?: string;
  /** A lock row of another host whose heartbeat is older than this is taken over. */
  staleMs?: number;
  /** At exit, write the process's peak RSS (VmHWM from /proc/self/status, in KiB) to this file. */
  peakRssFile?: string;
  /** Overwrite every slab of received bodies given back (engine/slabs.ts): use after give-back shows. */
  poisonSlabs?: boolean;
  /** At exit, write the TCP connects the process started, by port (JSON: {"port": count}), to this file. */
  connectsFile?: string;
}

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** With `peakRss`: the child's peak resident set (VmHWM, read as it exits) in MiB. */
  peakRssMb?: number;
}

export interface CliOptions {
  env?: Record<string, string>;
  timeoutMs?: number;
  hooks?: TestHooks;
  /** Report the child's peak RSS (Linux; through the hooked launcher). */
  peakRss?: boolean;
}

/**
 * HOME for a child given none: a temp dir of this test process, so a run without --journal (its
 * default journal is $HOME/.local/state/popsync/USER@HOST.sqlite) or a stored OAuth token never
 * reads or leaves state in the home of whoever runs the suite. One per process, as a user has
 * one home: a file's runs still find the default journal an earlier run of it created. It lives
 * in the run's scratch root, which the main vitest process removes at the end
 * (test/support/scratch-root.ts): an 'exit' handler here never ran, as vitest ends its workers
 * without one.
 */
let scratchHome: string | undefined;
function testHome(): string {
  if (scratchHome === undefined) {
    const root = inject('scratchRoot');
    mkdirSync(root, { recursive: true, mode: 0o700 });
    scratchHome = mkdtempSync(join(root, 'home-'));
  }
  return scratchHome;
}

export function runCli(args: string[], o: CliOptions = {}): Promise<CliResult> {
  return startCli(args, o).done;
}

/** Like runCli, with the child at hand (to stop or signal it) while it runs. */
export function startCli(args: string[], o: CliOptions = {}): { child: ChildProcess; done: Promise<CliResult> } {
  const hooked = o.hooks !== undefined || o.peakRss === true;
  // bin/popsync.js runs dist/bundle/, the hooked launcher dist/test-bundle/ (lab/bundle.ts builds both).
  if (!existsSync(join(ROOT, 'dist', ...(hooked ? ['test-bundle', 'hooked-program.js'] : ['bundle', 'popsync.cjs'])))) {
    throw new Error('dist/ is missing: run `npm run build` (npm test does it for you)');
  }
  const rssFile = o.peakRss ? join(mkdtempSync(join(tmpdir(), 'popsync-rss-')), 'peak') : null;
  const hooks = rssFile === null ? o.hooks : { ...o.hooks, peakRssFile: rssFile };
  const argv = hooks === undefined ? [BIN, ...args] : [HOOKED_BIN, JSON.stringify(hooks), ...args];
  let child!: ChildProcess;
  const done = new Promise<CliResult>((resolve, reject) => {
    child = spawn(process.execPath, argv, {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: testHome(), NO_COLOR: '1', ...o.env },
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
    const timers: NodeJS.Timeout[] = [];
    timers.push(setTimeout(() => child.kill('SIGKILL'), o.timeoutMs ?? 120_000));
    child.on('error', reject);
    child.on('close', (code, signal) => {
      for (const t of timers) clearTimeout(t);
      let peak: { peakRssMb?: number } = {};
      if (rssFile !== null) {
        peak = existsSync(rssFile) ? { peakRssMb: Number(readFileSync(rssFile, 'utf8')) / 1024 } : {};
        rmSync(dirname(rssFile), { recursive: true, force: true });
      }
      resolve({ code, signal, stdout, stderr, ...peak });
    });
  });
  return { child, done };
}
