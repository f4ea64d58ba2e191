/**
 * A bench relay (bench-raw.ts rawRelayAlone, safeRelayAlone) as a process of its own, so that
 * its clock can run as popsync's does, from spawn to exit: Node's start-up, loading what it
 * needs, its connections and logins (side by side), the safe relay's journal creation, the
 * copy, and its leaving. relay-cli.ts bundles it with esbuild and runs the bundle with plain
 * node, as bin/popsync.js runs popsync's bundle. Argument: a RelaySpec as JSON; password: PW.
 */
import { readFileSync } from 'node:fs';
import { rawRelayAlone, safeRelayAlone } from './bench-raw.js';
import { formatRelayReport, type RelaySpec } from './relay-spec.js';

async function main(): Promise<void> {
  const spec = JSON.parse(process.argv[2] ?? '') as RelaySpec;
  const password = process.env.PW;
  if (!password) throw new Error('PW must hold the password');
  const ep = { pop3: spec.pop3, imap: spec.imap, ...(spec.caFile ? { ca: readFileSync(spec.caFile) } : {}) };
  let copyMs: number;
  if (spec.kind === 'safe') {
    if (!spec.journal) throw new Error('the safe relay needs a journal');
    copyMs = await safeRelayAlone(ep, spec.popUser, spec.imapUser, password, spec.count, spec.journal);
  } else copyMs = await rawRelayAlone(ep, spec.popUser, spec.imapUser, password, spec.count);
  process.stdout.write(formatRelayReport({ copyMs, copied: spec.count }));
}

main().catch((e: unknown) => {
  process.stderr.write(`relay process failed: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exitCode = 1;
});
