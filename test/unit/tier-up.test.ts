/**
 * popsync's code must tier up into TurboFan later than V8's default on the running Node, and
 * later again once the copy begins: the budget is set after start-up, so a child process sets
 * it (or not), runs one small function a fixed number of times and reports whether V8 has
 * optimised it by then (%GetOptimizationStatus).
 * Compiles are made synchronous in the child, so the answer does not depend on a helper thread.
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import {
  COPY_TIER_UP_DELAY,
  delayTierUp,
  delayTierUpForCopy,
  TIER_UP_DELAY,
  tierUpDelayApplies,
  V8_INTERRUPT_BUDGET,
} from '../../src/tier-up.js';

const MODULE = fileURLToPath(new URL('../../src/tier-up.ts', import.meta.url));

/** V8's status bit for a function running optimised code (src/runtime/runtime.h, kOptimized). */
const OPTIMIZED = 1 << 4;

/** Calls of a small function by which V8's own budget has it optimised and 8 times it has not. */
const CALLS = 20_000;

/** Calls by which 8 times V8's budget has it optimised and the copy's 16 times has not. */
const COPY_CALLS = 50_000;

/**
 * Whether a function called `calls` times in a child is optimised by then: with V8's budget
 * (false), the later tier-up set at start (true), or that and the copy's after it ('copy').
 */
function optimisedAfterCalls(delayed: boolean | 'copy', calls = CALLS): boolean {
  const code = `
    import { delayTierUp, delayTierUpForCopy } from ${JSON.stringify(MODULE)};
    if (${delayed !== false}) delayTierUp();
    if (${delayed === 'copy'}) delayTierUpForCopy();
    const status = new Function('f', 'return %GetOptimizationStatus(f)');
    function f(a, b) { return (a * 31 + b) | 0; }
    let s = 0;
    for (let i = 0; i < ${calls}; i++) s = f(s, i);
    process.stdout.write(String(status(f)));
  `;
  const r = spawnSync(
    process.execPath,
    ['--allow-natives-syntax', '--no-concurrent-recompilation', '--import', 'tsx', '--input-type=module', '-e', code],
    { encoding: 'utf8' },
  );
  if (r.status !== 0) throw new Error(r.stderr);
  return (Number(r.stdout) & OPTIMIZED) !== 0;
}

describe('later tier-up', () => {
  it('asks V8 for 8 times its own interrupt budget', () => {
    const set: string[] = [];
    delayTierUp((flags) => set.push(flags));
    expect(set).toEqual(tierUpDelayApplies(process.versions.node) ? ['--interrupt-budget=540672'] : []);
    expect(V8_INTERRUPT_BUDGET * TIER_UP_DELAY).toBe(540_672);
  });

  it('asks V8 for 16 times its own interrupt budget once the copy begins', () => {
    const set: string[] = [];
    delayTierUpForCopy((flags) => set.push(flags));
    expect(set).toEqual(tierUpDelayApplies(process.versions.node) ? ['--interrupt-budget=1081344'] : []);
    expect(V8_INTERRUPT_BUDGET * COPY_TIER_UP_DELAY).toBe(1_081_344);
  });

  it('is applied only on Node 20, where it was measured (a later V8 tiers up through Maglev)', () => {
    expect(tierUpDelayApplies('20.20.2')).toBe(true);
    expect(tierUpDelayApplies('22.11.0')).toBe(false);
    expect(tierUpDelayApplies('2.0.0')).toBe(false);
  });

  it.runIf(tierUpDelayApplies(process.versions.node))('takes effect when set at run time', () => {
    // The control proves the function would have been optimised by then with V8's own budget.
    expect(optimisedAfterCalls(false)).toBe(true);
    expect(optimisedAfterCalls(true)).toBe(false);
  });

  it.runIf(tierUpDelayApplies(process.versions.node))('the copy budget holds back more', () => {
    expect(optimisedAfterCalls(true, COPY_CALLS)).toBe(true);
    expect(optimisedAfterCalls('copy', COPY_CALLS)).toBe(false);
  });
});
