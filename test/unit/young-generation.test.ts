/**
 * The young-generation cap must actually hold on the running Node: V8 flags set after start-up
 * are often ignored (--max-semi-space-size is), so a child process does the same fixed work with
 * and without the cap and reports how large new space grew.
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { capApplies, growthFactorFor, YOUNG_GENERATION_BYTES } from '../../src/young-generation.js';

const MODULE = fileURLToPath(new URL('../../src/young-generation.ts', import.meta.url));

/** New space in bytes after a fixed allocation workload, in a child with or without the cap. */
function newSpaceAfterWork(capped: boolean): number {
  const code = `
    import { getHeapSpaceStatistics } from 'node:v8';
    import { capYoungGeneration } from ${JSON.stringify(MODULE)};
    if (${capped}) capYoungGeneration();
    let keep = [];
    for (let i = 0; i < 3e6; i++) {
      keep.push({ a: i, b: [i] });
      if (keep.length > 20000) keep = [];
      // Work comes in events, as popsync's does: the check runs between them.
      if (i % 2000 === 0) await new Promise((r) => setImmediate(r));
    }
    const ns = getHeapSpaceStatistics().find((s) => s.space_name === 'new_space');
    process.stdout.write(String(ns.space_size));
  `;
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(r.stderr);
  return Number(r.stdout);
}

describe('young generation cap', () => {
  it('stops growth at the cap and lets new space grow below it', () => {
    expect(growthFactorFor(YOUNG_GENERATION_BYTES, YOUNG_GENERATION_BYTES)).toBe(1);
    expect(growthFactorFor(YOUNG_GENERATION_BYTES * 4, YOUNG_GENERATION_BYTES)).toBe(1);
    expect(growthFactorFor(YOUNG_GENERATION_BYTES / 2, YOUNG_GENERATION_BYTES)).toBe(2);
  });

  it('is applied only on Node 20, where the flag was measured (another V8 may not know it)', () => {
    expect(capApplies('20.20.2')).toBe(true);
    expect(capApplies('22.11.0')).toBe(false);
    expect(capApplies('2.0.0')).toBe(false);
  });

  it.runIf(capApplies(process.versions.node))('holds new space at the cap where the same work grows it past', () => {
    // The control proves the workload would grow new space past the cap (V8's default is 32 MB).
    expect(newSpaceAfterWork(false)).toBeGreaterThan(YOUNG_GENERATION_BYTES);
    expect(newSpaceAfterWork(true)).toBeLessThanOrEqual(YOUNG_GENERATION_BYTES);
  });
});
