/**
 * Runs the built popsync binary as a user would (a separate process, minimal environment,
 * passwords through environment variables), so end-to-end tests see exit codes, stdout and
 * stderr exactly as cron does. Needs `npm run build` (test/scripts/ensure-env.sh does it).
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const BIN = join(ROOT, 'bin', 'popsync.js');

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
}

export function runCli(args: string[], o: CliOptions = {}): Promise<CliResult> {
  if (!existsSync(join(ROOT, 'dist', 'cli', 'main.js'))) {
    throw new Error('dist/ is missing: run `npm run build` (npm test does it for you)');
  }
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/root', NO_COLOR: '1', ...o.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timers: NodeJS.Timeout[] = [];
    if (o.killAfterMs !== undefined) timers.push(setTimeout(() => child.kill('SIGKILL'), o.killAfterMs));
    timers.push(setTimeout(() => child.kill('SIGKILL'), o.timeoutMs ?? 120_000));
    child.on('error', reject);
    child.on('close', (code, signal) => {
      for (const t of timers) clearTimeout(t);
      resolve({ code, signal, stdout, stderr });
    });
  });
}
