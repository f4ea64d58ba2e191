/**
 * A young-generation GC (a scavenge) after every SCAVENGE_EVERY_BYTES of socket reads that died:
 * copied into slabs (slabs.ts) or written to a spool file (spool.ts).
 *
 * Why: a socket read is a Buffer whose memory lives outside the JS heap, and it is freed only
 * when a GC finds it dead. V8 runs a scavenge when its young generation fills with JS objects
 * (8 MB, young-generation.ts), and popsync allocates little JS per MB of mail, so on the typical
 * mix (260 MB, 3,000 messages) about 21 scavenges ran a run, one every ~12 MB of mail read, and
 * the reads already copied lay dead in between: 30-49 MB of external memory after each scavenge
 * (--trace-gc-verbose), beside the batches held. V8 counts that memory, since the last full GC,
 * against its old generation's limit (old-generation.ts), and the process's peak RSS held its
 * high-water mark. With a scavenge after every 8 MB of dead reads (47 scavenges in all against
 * 21, each ~1 ms: what survives is only the batches' few objects) the peak RSS of the typical mix
 * was 108-116 MB against 122-129 MB (TLS 121-125 against 126-129), at no more CPU.
 *
 * How: V8 has no call for a scavenge but the `gc` function of --expose-gc, which a context
 * created once the flag is set gets as a global (node:vm); the flag is put back at once, so no
 * other context gets one. Only on Node 20, where this was measured (the same guard as
 * young-generation.ts); elsewhere nothing is done.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

export const SCAVENGE_EVERY_BYTES = 8 * 1024 * 1024;

/** Counts dead bytes; says when another scavenge is due. Pure, for tests. */
export class DeadBytes {
  private since = 0;

  constructor(private readonly every: number) {}

  /** `n` more bytes died; true when `every` bytes have since the last time it said so. */
  add(n: number): boolean {
    this.since += n;
    if (this.since < this.every) return false;
    this.since = 0;
    return true;
  }
}

/** Whether scavenges are run under this Node version (process.versions.node). */
export function scavengeApplies(nodeVersion: string): boolean {
  return nodeVersion.split('.')[0] === '20';
}

type GcFunction = (options: { type: 'minor' }) => void;

/** V8's gc(), got once; null where scavenges are not run. */
let gc: GcFunction | null | undefined;

function gcFunction(): GcFunction | null {
  if (gc !== undefined) return gc;
  gc = null;
  if (!scavengeApplies(process.versions.node)) return gc;
  setFlagsFromString('--expose-gc');
  try {
    gc = runInNewContext('gc') as GcFunction;
  } finally {
    setFlagsFromString('--no-expose-gc');
  }
  return gc;
}

const dead = new DeadBytes(SCAVENGE_EVERY_BYTES);

/** `n` bytes of socket reads are dead (copied or written out): a scavenge once enough are. */
export function readsDied(n: number): void {
  if (dead.add(n)) gcFunction()?.({ type: 'minor' });
}
