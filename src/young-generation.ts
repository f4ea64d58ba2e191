/**
 * A cap on V8's young generation (new space), installed by bin/popsync.js before the program
 * loads.
 *
 * Why: a copy allocates little JS per megabyte of mail but many Buffers (socket reads, message
 * bodies), whose memory lives outside the JS heap and is freed only when the GC finds their
 * objects dead. V8 runs a young-generation GC when new space fills with JS objects, and grows
 * new space up to 32 MB (two 16 MB semi-spaces) under a steady allocation rate. So the larger
 * new space grew, the rarer the GCs, and the more dead Buffers piled up between them, on top of
 * the new space itself: on the typical mix with TLS (3,000 messages, 260 MB) the peak RSS was
 * 149-176 MB with about 50 MB of heap and up to 60 MB of Buffers at the peak, while live
 * batches are at most 30 MB. Kept at 8 MB, the peak was 118-119 MB at the same popsync CPU.
 *
 * How: `--max-semi-space-size` only takes effect at process start (set later it changes
 * nothing; checked on Node 20), and re-executing node to pass it would cost a second process.
 * V8 reads `--semi-space-growth-factor` each time it grows new space, so after every GC the
 * factor is set to 1 (no growth) once new space reached the cap, and back to V8's default 2
 * below it (V8 also shrinks new space when allocation is slow, and must be able to grow it
 * back). Growth steps double from 2 MB, so a power of two is never overshot by a single step.
 *
 * Only on Node 20, where this was measured: V8 prints "Error: unrecognized flag" on stderr for a
 * flag it does not know, and a later V8 may drop or rename this one. Elsewhere nothing is
 * changed, and the young generation grows as V8 decides (a higher peak, the same copy).
 */
import { PerformanceObserver } from 'node:perf_hooks';
import { getHeapSpaceStatistics } from 'node:v8';
import { setV8Flag } from './v8-flags.js';

// bin/popsync.js loads this file alone before the program (lab/bundle.ts): the old generation's
// setting and the later tier-up come with it.
export { leaveRoomForBuffers } from './old-generation.js';
export { delayTierUp } from './tier-up.js';

/** New space (both semi-spaces) is kept at or below this many bytes. */
export const YOUNG_GENERATION_BYTES = 8 * 1024 * 1024;

/** V8's own default for --semi-space-growth-factor. */
const V8_GROWTH_FACTOR = 2;

/** The growth factor V8 should use next, given the bytes new space now takes. */
export function growthFactorFor(newSpaceBytes: number, cap: number): number {
  return newSpaceBytes >= cap ? 1 : V8_GROWTH_FACTOR;
}

function newSpaceBytes(): number {
  return getHeapSpaceStatistics().find((s) => s.space_name === 'new_space')?.space_size ?? 0;
}

/** Whether the cap is applied under this Node version (process.versions.node). */
export function capApplies(nodeVersion: string): boolean {
  return nodeVersion.split('.')[0] === '20';
}

/** Keeps new space at or below `cap` from now on; returns a function that stops doing so. */
export function capYoungGeneration(cap: number = YOUNG_GENERATION_BYTES): () => void {
  if (!capApplies(process.versions.node)) return () => {};
  let factor = V8_GROWTH_FACTOR;
  const check = (): void => {
    const next = growthFactorFor(newSpaceBytes(), cap);
    if (next === factor) return;
    factor = next;
    setV8Flag(`--semi-space-growth-factor=${next}`);
  };
  const observer = new PerformanceObserver(check);
  observer.observe({ entryTypes: ['gc'] });
  check();
  return () => {
    observer.disconnect();
    if (factor !== V8_GROWTH_FACTOR) setV8Flag(`--semi-space-growth-factor=${V8_GROWTH_FACTOR}`);
  };
}

/** For bin/popsync.js's code cache (code-cache.ts): compiles under V8's default flags. */
export { withV8FlagsAtDefault } from './v8-flags.js';
