/**
 * A node program run as a child process and measured from outside: wall time from spawn to exit,
 * CPU (user + system) and peak RSS. popsync's CLI (popsync-cli.ts) and the bench's whole-process
 * relays (relay-cli.ts) are run through it, so their rows are measured alike. Where
 * /usr/bin/time exists it reports the child's own rusage at exit, exact where sampling /proc
 * every 25 ms misses the last tick and the end of the run; elsewhere /proc is sampled.
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';

export interface ChildRun {
  ms: number;
  peakRssMb: number;
  /** User + system CPU of the child, all its threads. */
  cpuMs: number;
  /** What it wrote to stdout. */
  out: string;
  /** Its exit code (null when a signal ended it). */
  code: number | null;
}

/** The rusage `/usr/bin/time -f '%U %S %M'` wrote, as CPU milliseconds and peak RSS in KB. */
export function parseTimeReport(text: string): { cpuMs: number; peakKb: number } {
  // "Command exited with non-zero status N" comes first when it did; the figures are the last line.
  const last = text.trim().split('\n').pop() ?? '';
  const m = /^(\d+(?:\.\d+)?) (\d+(?:\.\d+)?) (\d+)$/.exec(last.trim());
  if (!m) throw new Error(`/usr/bin/time wrote no rusage: ${JSON.stringify(text)}`);
  return { cpuMs: Math.round((Number(m[1]) + Number(m[2])) * 1000), peakKb: Number(m[3]) };
}

const TIME = '/usr/bin/time';
let timeSeq = 0;

/**
 * Runs `node ...nodeArgs` (this process's node) with `env`, stdin closed and stderr inherited;
 * `tmpDir` holds /usr/bin/time's report while it runs.
 */
export function runMeasured(nodeArgs: readonly string[], env: NodeJS.ProcessEnv, tmpDir: string): Promise<ChildRun> {
  // %U %S in seconds with 2 decimals, %M in KB: the child's rusage, read when it has exited.
  const timeFile = existsSync(TIME) ? join(tmpDir, `time-${process.pid}-${++timeSeq}.txt`) : undefined;
  const [cmd, args] = timeFile
    ? [TIME, ['-f', '%U %S %M', '-o', timeFile, process.execPath, ...nodeArgs]]
    : [process.execPath, [...nodeArgs]];
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    let peakKb = 0;
    let cpuTicks = 0;
    const sample = timeFile
      ? undefined
      : setInterval(() => {
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
      if (sample) clearInterval(sample);
      const ms = performance.now() - t0;
      let cpuMs = cpuTicks * 10;
      if (timeFile) {
        try {
          ({ cpuMs, peakKb } = parseTimeReport(readFileSync(timeFile, 'utf8')));
        } catch (e) {
          // A child that failed is reported by its caller, with what it said.
          if (code === 0) return reject(e);
        } finally {
          rmSync(timeFile, { force: true });
        }
      }
      resolve({ ms, peakRssMb: peakKb / 1024, cpuMs, out, code });
    });
  });
}
