/**
 * Socket reads that died are freed by a scavenge run after every SCAVENGE_EVERY_BYTES of them:
 * the count is pure, and on Node 20 readsDied() must really run one (V8 has no call for it but
 * --expose-gc's gc(), got at run time), without leaving gc() to other contexts.
 */
import { constants, PerformanceObserver } from 'node:perf_hooks';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import { DeadBytes, readsDied, SCAVENGE_EVERY_BYTES, scavengeApplies } from '../../src/engine/scavenge.js';

/**
 * Forced young-generation GCs (gc()'s, never V8's own) seen while `work` runs; their entries
 * arrive after it, so this waits for them.
 */
async function forcedScavengesDuring(work: () => void): Promise<number> {
  let seen = 0;
  const observer = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      const d = (e as { detail?: { kind?: number; flags?: number } }).detail;
      if (
        d?.kind === constants.NODE_PERFORMANCE_GC_MINOR &&
        ((d.flags ?? 0) & constants.NODE_PERFORMANCE_GC_FLAGS_FORCED) !== 0
      )
        seen++;
    }
  });
  observer.observe({ entryTypes: ['gc'] });
  work();
  await new Promise((r) => setTimeout(r, 50));
  observer.disconnect();
  return seen;
}

describe('scavenges after dead socket reads', () => {
  it('says a scavenge is due once every so many bytes died, counting from the last', () => {
    const dead = new DeadBytes(100);
    expect(dead.add(60)).toBe(false);
    expect(dead.add(39)).toBe(false);
    expect(dead.add(1)).toBe(true);
    expect(dead.add(99)).toBe(false);
    expect(dead.add(250)).toBe(true);
    expect(dead.add(1)).toBe(false);
  });

  it('is done only on Node 20, where it was measured', () => {
    expect(scavengeApplies('20.20.2')).toBe(true);
    expect(scavengeApplies('22.11.0')).toBe(false);
  });

  it.runIf(scavengeApplies(process.versions.node))('runs a scavenge once enough died, and only then', async () => {
    expect(await forcedScavengesDuring(() => readsDied(1))).toBe(0);
    expect(await forcedScavengesDuring(() => readsDied(SCAVENGE_EVERY_BYTES))).toBe(1);
    // The flag that gave gc() was put back: a context made now has none.
    expect(runInNewContext('typeof gc')).toBe('undefined');
  });
});
