/**
 * Room above the old generation for memory outside the JS heap, installed by bin/popsync.js
 * before the program loads (young-generation.ts, the file it loads first, re-exports it).
 *
 * Why: V8 (11.3, Node 20) starts a full GC once the old generation plus the external memory
 * allocated since the last full GC (Buffers' bytes) reaches a limit it sets at each full GC: the
 * old generation's size times a growing factor, at least 8 MB more. The factor comes from how
 * fast the last full GCs ran against how fast the old generation grew, up to 4. popsync's old
 * generation is small (11-13 MB on the typical mix) and grows slowly while Buffers come and go by
 * the tens of MB (slabs, socket reads, spool reads), so once a fast full GC measured a ratio above
 * ~45 the factor fell to 1.2-1.6, the limit to ~23 MB, and every ~8 MB of Buffers started the
 * next full GC: 8-14 of them a run on the typical mix instead of 2, 40-70 ms of CPU, in about
 * half the runs of any build (--trace-gc-verbose: "[HeapController] factor 1.3 based on
 * speed_ratio=151" against "factor 4.0 ... speed_ratio=32" in the cheap runs).
 *
 * How: `--heap-growing-percent` replaces V8's factor, and V8 reads it at every full GC, so set at
 * run time it takes effect at the next one. After each GC it is set for the old generation's
 * size then: a limit ROOM_BYTES above it (the factor capped at V8's own maximum of 4, the one it
 * chose in the cheap runs), so the batches in flight (three batch caps, receive-ahead.ts) fit
 * between full GCs. Past ROOM_BYTES of old generation V8 decides again as it would (a large
 * heap's factor of 4 would leave room for hundreds of MB; that was never measured here).
 *
 * Only on Node 20, where this was measured: another V8 may compute its limit otherwise (later ones
 * count external memory apart from the old generation), or not know the flag.
 */
import { PerformanceObserver } from 'node:perf_hooks';
import { getHeapSpaceStatistics } from 'node:v8';
import { setV8Flag } from './v8-flags.js';

/** The room V8's limit should leave above the old generation for Buffers between full GCs. */
export const ROOM_BYTES = 32 * 1024 * 1024;

/** V8's largest growing factor, 4 (MemoryController::MaxGrowingFactor), as a percent above 1. */
const MAX_PERCENT = 300;

/**
 * The --heap-growing-percent for an old generation of `oldBytes`: the factor that puts V8's limit
 * `room` above it, at most V8's maximum; 0 (V8's own factor) once the old generation reaches `room`.
 */
export function growingPercentFor(oldBytes: number, room: number = ROOM_BYTES): number {
  if (oldBytes >= room) return 0;
  if (oldBytes <= 0) return MAX_PERCENT;
  return Math.min(MAX_PERCENT, Math.floor((100 * room) / oldBytes));
}

/** The old generation's bytes in use: every heap space but the young generation's. */
function oldGenerationBytes(): number {
  let n = 0;
  for (const s of getHeapSpaceStatistics()) if (!s.space_name.startsWith('new_')) n += s.space_used_size;
  return n;
}

/** Whether the room is kept under this Node version (process.versions.node). */
export function roomApplies(nodeVersion: string): boolean {
  return nodeVersion.split('.')[0] === '20';
}

/**
 * Keeps V8's growing factor at growingPercentFor(the old generation) from now on, checked after
 * every GC; returns a function that gives V8 its own factor back.
 */
export function leaveRoomForBuffers(room: number = ROOM_BYTES): () => void {
  if (!roomApplies(process.versions.node)) return () => {};
  let percent = 0;
  const set = (next: number): void => {
    if (next === percent) return;
    percent = next;
    setV8Flag(`--heap-growing-percent=${next}`);
  };
  const check = (): void => set(growingPercentFor(oldGenerationBytes(), room));
  const observer = new PerformanceObserver(check);
  observer.observe({ entryTypes: ['gc'] });
  check();
  return () => {
    observer.disconnect();
    set(0);
  };
}
