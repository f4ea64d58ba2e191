/**
 * popsync run as the real CLI in a child process against a lab, measured from outside: wall
 * time, CPU (user + system) and peak RSS. Shared by the bench and the alternating pairs
 * (pairs.ts). Where /usr/bin/time exists it reports the child's own rusage at exit, exact where
 * sampling /proc every 25 ms misses the last tick and the end of the run; elsewhere /proc is
 * sampled.
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { RawEndpoints } from './bench-raw.js';
import type { Lab } from './dovecot.js';

export interface CliRun {
  ms: number;
  peakRssMb: number;
  /** User + system CPU of the popsync process. */
  cpuMs: number;
  summary: { copied: number; copiedBytes: number; reconciled: number; reconnects: number; failed: unknown[] };
}

/** The lab's plaintext endpoints, or its pop3s/imaps ones with the CA that verifies them. */
export function labEndpoints(lab: Lab, tls: boolean): RawEndpoints {
  return tls
    ? { pop3: lab.pop3s.port, imap: lab.imaps.port, ca: readFileSync(lab.caFile) }
    : { pop3: lab.pop3.port, imap: lab.imap.port };
}

export interface CliOptions {
  /** The build's bin/popsync.js. */
  bin: string;
  command?: 'migrate' | 'sync';
  ep?: RawEndpoints;
  /** More popsync options after the endpoints. */
  extra?: readonly string[];
  /** Node options before the script (--cpu-prof and the like). */
  nodeArgs?: readonly string[];
}

const TIME = '/usr/bin/time';
let timeSeq = 0;

export function runPopsync(
  lab: Lab,
  popUser: string,
  imapUser: string,
  journal: string,
  opts: CliOptions,
): Promise<CliRun> {
  const ep = opts.ep ?? labEndpoints(lab, false);
  const endpoints = ep.ca
    ? [
        '--pop',
        `pop3s://${popUser}@127.0.0.1:${ep.pop3}`,
        '--pop-ca-file',
        lab.caFile,
        '--imap',
        `imaps://${imapUser}@127.0.0.1:${ep.imap}`,
        '--imap-ca-file',
        lab.caFile,
      ]
    : [
        '--pop',
        `pop3://${popUser}@127.0.0.1:${ep.pop3}`,
        '--pop-tls',
        'none',
        '--imap',
        `imap://${imapUser}@127.0.0.1:${ep.imap}`,
        '--imap-tls',
        'none',
      ];
  const node = [
    ...(opts.nodeArgs ?? []),
    opts.bin,
    opts.command ?? 'migrate',
    ...endpoints,
    '--pop-password-env',
    'PW',
    '--imap-password-env',
    'PW',
    '--journal',
    journal,
    '--json',
    '--no-progress',
    ...(opts.extra ?? []),
  ];
  // %U %S in seconds with 2 decimals, %M in KB: the child's rusage, read when it has exited.
  const timeFile = existsSync(TIME) ? join(lab.dir, `time-${process.pid}-${++timeSeq}.txt`) : undefined;
  const [cmd, args] = timeFile
    ? [TIME, ['-f', '%U %S %M', '-o', timeFile, process.execPath, ...node]]
    : [process.execPath, node];
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(cmd, args, { env: { ...process.env, PW: lab.password }, stdio: ['ignore', 'pipe', 'inherit'] });
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
        // /usr/bin/time writes "Command exited with non-zero status N" first when it did.
        const last = readFileSync(timeFile, 'utf8').trim().split('\n').pop() ?? '';
        rmSync(timeFile, { force: true });
        const [u, s, kb] = last.split(' ').map(Number);
        cpuMs = Math.round(((u ?? 0) + (s ?? 0)) * 1000);
        peakKb = kb ?? 0;
      }
      if (code !== 0) return reject(new Error(`popsync exited ${code}: ${out}`));
      resolve({ ms, peakRssMb: peakKb / 1024, cpuMs, summary: JSON.parse(out) });
    });
  });
}
