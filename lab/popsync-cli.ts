/**
 * popsync run as the real CLI in a child process against a lab, measured from outside: wall
 * time, CPU (user + system) and peak RSS (measured-child.ts). Shared by the bench and the
 * alternating pairs (pairs.ts).
 */
import { readFileSync } from 'node:fs';
import type { RawEndpoints } from './bench-raw.js';
import type { Lab } from './dovecot.js';
import { runMeasured } from './measured-child.js';

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

export async function runPopsync(
  lab: Lab,
  popUser: string,
  imapUser: string,
  journal: string,
  opts: CliOptions,
): Promise<CliRun> {
  const ep = opts.ep ?? labEndpoints(lab, false);
  const tls = ep.ca ? { caFile: lab.caFile } : {};
  const node = [
    ...(opts.nodeArgs ?? []),
    opts.bin,
    ...popsyncArgs(
      opts.command ?? 'migrate',
      { user: popUser, port: ep.pop3, ...tls },
      { user: imapUser, port: ep.imap, ...tls },
      journal,
      ['--json', '--no-progress', ...(opts.extra ?? [])],
    ),
  ];
  const run = await runMeasured(node, { ...process.env, PW: lab.password }, lab.dir);
  if (run.code !== 0) throw new Error(`popsync exited ${run.code}: ${run.out}`);
  return { ms: run.ms, peakRssMb: run.peakRssMb, cpuMs: run.cpuMs, summary: JSON.parse(run.out) };
}

/** A user on one side of a popsync run; with `caFile`, over implicit TLS verified by that CA. */
export interface CliEndpoint {
  user: string;
  /** 127.0.0.1 unless given. */
  host?: string;
  port: number;
  caFile?: string;
}

/**
 * popsync's arguments for `command` from `pop` to `imap` (plaintext where no CA file is given),
 * both passwords from $PW, the journal, then `extra`.
 */
export function popsyncArgs(
  command: string,
  pop: CliEndpoint,
  imap: CliEndpoint,
  journal: string,
  extra: readonly string[] = [],
): string[] {
  const side = (option: 'pop' | 'imap', scheme: 'pop3' | 'imap', e: CliEndpoint): string[] => {
    const at = `${e.user}@${e.host ?? '127.0.0.1'}:${e.port}`;
    return e.caFile
      ? [`--${option}`, `${scheme}s://${at}`, `--${option}-ca-file`, e.caFile]
      : [`--${option}`, `${scheme}://${at}`, `--${option}-tls`, 'none'];
  };
  return [
    command,
    ...side('pop', 'pop3', pop),
    ...side('imap', 'imap', imap),
    ...['--pop-password-env', 'PW', '--imap-password-env', 'PW'],
    ...['--journal', journal],
    ...extra,
  ];
}
