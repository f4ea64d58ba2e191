/**
 * Runs the built popsync binary as a user would (a separate process, minimal environment,
 * passwords through environment variables), so end-to-end tests see exit codes, stdout and
 * stderr exactly as cron does. Needs `npm run build` (test/scripts/ensure-env.sh does it).
 *
 * With `hooks`, the test-only launcher (popsync-with-hooks.mjs) runs instead of bin/popsync.js:
 * the shipped binary has no way to receive them.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const BIN = join(ROOT, 'bin', 'popsync.js');
export const HOOKED_BIN = join(ROOT, 'test', 'support', 'popsync-with-hooks.mjs');

/** Test hooks the launcher injects (see popsync-with-hooks.mjs). */
export interface TestHooks {
  /** The run's clock starts at this ISO time. */
  now?: string;
  /** SIGKILL at a journal step, "3:before" or "3:after". */
  killAt?: string;
  /** Write the running journal step count to this file. */
  stepsFile?: string;
  /** A lock row of another host whose heartbeat is older than this is taken over. */
  staleMs?: number;
}

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface CliOptions {
  env?: Record<string, string>;
  /** Kill the process with SIGKILL after this many milliseconds. */
  killAfterMs?: number;
  timeoutMs?: number;
  hooks?: TestHooks;
}

export function runCli(args: string[], o: CliOptions = {}): Promise<CliResult> {
  return startCli(args, o).done;
}

/** Like runCli, with the child at hand (to stop or signal it) while it runs. */
export function startCli(args: string[], o: CliOptions = {}): { child: ChildProcess; done: Promise<CliResult> } {
  if (!existsSync(join(ROOT, 'dist', 'cli', 'main.js'))) {
    throw new Error('dist/ is missing: run `npm run build` (npm test does it for you)');
  }
  const argv = o.hooks === undefined ? [BIN, ...args] : [HOOKED_BIN, JSON.stringify(o.hooks), ...args];
  let child!: ChildProcess;
  const done = new Promise<CliResult>((resolve, reject) => {
    child = spawn(process.execPath, argv, {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/root', NO_COLOR: '1', ...o.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const timers: NodeJS.Timeout[] = [];
    if (o.killAfterMs !== undefined) timers.push(setTimeout(() => child.kill('SIGKILL'), o.killAfterMs));
    timers.push(setTimeout(() => child.kill('SIGKILL'), o.timeoutMs ?? 120_000));
    child.on('error', reject);
    child.on('close', (code, signal) => {
      for (const t of timers) clearTimeout(t);
      resolve({ code, signal, stdout, stderr });
    });
  });
  return { child, done };
}
