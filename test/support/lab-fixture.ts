/**
 * The lab lifecycle every end-to-end file needs: one private Dovecot and one temp dir for the
 * file, started before its tests and removed after them, even when a test fails.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { startDovecot, type Lab, type StartOptions } from '../../lab/dovecot.js';
import { popsyncArgs } from '../../lab/popsync-cli.js';
import { startSlowProxy, type ProxyObserver } from '../../lab/slow-proxy.js';
import { runCli, type CliResult } from './cli.js';

export function useLab(prefix: string, options: StartOptions, bind: (lab: Lab, dir: string) => void): void {
  let lab: Lab | undefined;
  let dir: string | undefined;
  beforeAll(async () => {
    lab = await startDovecot(options);
    dir = mkdtempSync(join(tmpdir(), `popsync-${prefix}-`));
    bind(lab, dir);
  });
  afterAll(async () => {
    await lab?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });
}

/** A command line against the lab over plaintext loopback, passwords from $PW. */
export function labArgs(
  command: string,
  lab: Lab,
  pop: string,
  imap: string,
  journal: string,
  extra: string[] = [],
): string[] {
  return loopbackArgs(command, { pop3: lab.pop3.port, imap: lab.imap.port }, pop, imap, journal, extra);
}

/**
 * The same against any POP3 and IMAP port on loopback: a scripted server, or a relay in front
 * of the lab.
 */
export function loopbackArgs(
  command: string,
  ports: { pop3: number; imap: number },
  pop: string,
  imap: string,
  journal: string,
  extra: string[] = [],
): string[] {
  return popsyncArgs(command, { user: pop, port: ports.pop3 }, { user: imap, port: ports.imap }, journal, extra);
}

/**
 * `popsync <command> --json --no-progress` against the lab through two relays that hold every
 * chunk 15 ms each way (a 30 ms round trip, lab/slow-proxy.ts), each relay's traffic shown to
 * its observer.
 */
export async function runAtRoundTrip(
  lab: Lab,
  command: string,
  pop: string,
  imap: string,
  journal: string,
  observe: { pop3?: ProxyObserver; imap?: ProxyObserver } = {},
  extra: string[] = [],
): Promise<CliResult> {
  const popSlow = await startSlowProxy(lab.pop3.port, 15, observe.pop3);
  const imapSlow = await startSlowProxy(lab.imap.port, 15, observe.imap);
  try {
    const ports = { pop3: popSlow.port, imap: imapSlow.port };
    return await runCli(loopbackArgs(command, ports, pop, imap, journal, ['--json', '--no-progress', ...extra]), {
      env: { PW: lab.password },
    });
  } finally {
    await Promise.all([popSlow.close(), imapSlow.close()]);
  }
}
