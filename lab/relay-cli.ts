/**
 * The bench's relays (bench-raw.ts) run as whole processes, measured from outside as popsync
 * is (measured-child.ts): wall time from spawn to exit, the child's CPU and peak RSS from its
 * rusage. Against these, popsync's whole-process row is held like with like: both pay Node's
 * start-up, loading their code, their logins and their leaving. The in-process relays stay the
 * ceilings of the copy itself.
 *
 * The relay is bundled by esbuild into one CommonJS file (better-sqlite3's JavaScript with it, its
 * addon left in node_modules, as in popsync's bundle: lab/sqlite-bundled.ts) and run with plain
 * node, as popsync's bundle is: tsx's own start-up (~0.3 s of CPU, its loader hooks and
 * on-the-fly compiling) would be charged to the relay and to nothing else. It gets none of
 * bin/popsync.js's V8 settings (src/tier-up.ts, src/young-generation.ts): those are popsync's own
 * tuning, not the least a copier does.
 */
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { checkRawRelay, checkSafeRelay, type RawEndpoints } from './bench-raw.js';
import type { Lab } from './dovecot.js';
import { runMeasured } from './measured-child.js';
import { sqliteBundled } from './sqlite-bundled.js';
import { parseRelayReport, type RelaySpec } from './relay-spec.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

export interface RelayRun {
  /** Spawn to exit. */
  ms: number;
  cpuMs: number;
  peakRssMb: number;
  /** The relay's own clock inside the process: after its logins to the last tagged OK. */
  copyMs: number;
}

/**
 * Bundles lab/relay-process.ts into dist/lab/ (under the checkout, so that better-sqlite3
 * resolves from node_modules) and returns the bundle's path.
 */
export async function bundleRelay(): Promise<string> {
  const outfile = join(ROOT, 'dist', 'lab', 'relay-process.cjs');
  await build({
    absWorkingDir: ROOT,
    entryPoints: ['lab/relay-process.ts'],
    outfile,
    bundle: true,
    format: 'cjs',
    platform: 'node',
    target: 'node20',
    plugins: [sqliteBundled(ROOT)],
    logLevel: 'warning',
  });
  return outfile;
}

/**
 * One relay run as a process of its own, then its check (the destination's STATUS, and the safe
 * relay's journal) after it has exited, outside its clock. `journal` is the safe relay's;
 * `atExit` runs as soon as the process has exited, before the check (a server CPU meter's stop).
 */
export async function runRelay(
  lab: Lab,
  bundle: string,
  kind: RelaySpec['kind'],
  ep: RawEndpoints,
  popUser: string,
  imapUser: string,
  count: number,
  journal?: string,
  atExit?: () => void,
): Promise<RelayRun> {
  if ((kind === 'safe') !== (journal !== undefined)) throw new Error('the safe relay, and only it, has a journal');
  const spec: RelaySpec = {
    kind,
    pop3: ep.pop3,
    imap: ep.imap,
    ...(ep.ca ? { caFile: lab.caFile } : {}),
    popUser,
    imapUser,
    count,
    ...(journal ? { journal } : {}),
  };
  const run = await runMeasured([bundle, JSON.stringify(spec)], { ...process.env, PW: lab.password }, lab.dir);
  atExit?.();
  if (run.code !== 0) throw new Error(`${kind} relay process exited ${run.code}: ${run.out}`);
  const { copyMs } = parseRelayReport(run.out, count);
  if (journal) await checkSafeRelay(ep, imapUser, lab.password, count, journal);
  else await checkRawRelay(ep, imapUser, lab.password, count);
  return { ms: run.ms, cpuMs: run.cpuMs, peakRssMb: run.peakRssMb, copyMs };
}
