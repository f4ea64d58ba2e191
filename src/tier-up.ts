/**
 * A later tier-up of popsync's code into V8's optimising compiler (TurboFan), set by
 * bin/popsync.js before the program loads.
 *
 * Why: V8 counts the bytecode each function runs against an interrupt budget, and once a function
 * has used up a few budgets it is compiled by TurboFan, on helper threads. A run is short and its
 * code is large (the CLI, both protocols, the journal, imapflow), so a run compiled ~136 functions
 * that way (--trace-opt), most of which did not run long enough afterwards for the compile to pay:
 * `perf` over a copy of 10,000 small messages put 27% of the process's CPU samples (600 of 2,207)
 * in TurboFan's threads, against 64% on the main thread. With a budget 8 times V8's, a function
 * must run 8 times longer before it is compiled: the code a run spends its time in (per byte and
 * per message) still is, early in the run, and the rest stays in V8's baseline code. Measured in
 * alternating pairs against the same build without it (9b3eb76, CPU user+sys, lab on tmpfs,
 * machine load ~11): 10,000 small messages 0.88 s against 0.97 s (lower in 6 of 6 pairs); the
 * typical mix (3,000 messages) 1.44 s against 1.68 s (5 of 5), peak RSS 117-127 MB against
 * 126-130; the same with TLS 1.80 s against 2.01 s (4 of 4), peak RSS 123-127 MB against 124-134.
 * Against V8's budget on earlier builds: twice it was within the noise, 4 times about half the
 * gain, 16 times no better than 8 times (small 0.85 s against 0.88, lower in 2 of 4 pairs; typical
 * 1.57 s against 1.59, lower in 1 of 4).
 *
 * How: V8 reads `--interrupt-budget` whenever it gives a function a new budget (when its feedback
 * is allocated, and at each tick), so set at run time, before the program loads, it applies to
 * all of popsync's code.
 * The same ticks also move a function from the interpreter to Sparkplug, V8's baseline code, so
 * that comes later too; keeping V8's budget and delaying TurboFan alone through
 * --ticks-before-optimization instead was no cheaper (small mail lower in 2 of 8 pairs, and 1 of 8
 * with small functions no sooner), baseline code at once was dearer (0 of 5), and other budgets no
 * better; 16 times V8's was lower on small mail in 24 of 33 pairs, not on the typical mix (10 of
 * 21) nor with TLS (8 of 21). README's Performance lists every flag tried. Node 20's V8 is built
 * without Maglev (v8_enable_maglev 0 in process.config): --maglev is accepted there and changes
 * nothing.
 *
 * Once the copy begins (engine/copier.ts copyAll), the budget doubles again, to 16 times V8's:
 * what runs from then on is mostly code run once per message or per batch, and a run's CPU then
 * went less into compiling it than it saved. 16 times V8's from the start was measured before
 * (README, Performance) and won on small mail alone; from the copy on, start-up still at 8
 * times, against the build before (alternating pairs, lab on tmpfs, load 4-6): 10,000 small
 * messages 0.61 against 0.66 s (lower in 9 of 10 pairs; set by hand in a trial build, 10 of 10
 * and 5 of 5), the typical mix 1.00 against 1.01 s (5 of 8; 5 of 6 in the trial), TLS both
 * sides 1.44 against 1.40 s and 1.26 against 1.26 s (5 of 10, 2 of 8, and 1 of 5 in the trial: within the noise), 30 ms
 * round trip 0.52 against 0.53 s (3 of 5); peak RSS unchanged. V8's own budget from the copy on
 * cost more (small 0.76 against 0.68 s, 0 of 5); 32 and 64 times were no better than 16 (0.61
 * against 0.65 s and 0.67 against 0.69 s, 4 of 5 each).
 *
 * Only on Node 20 (V8 11.3), where this was measured: a later V8 tiers up through its mid-tier
 * compiler (Maglev) on budgets of its own, and prints "Error: unrecognized flag" for a flag it
 * does not know. Elsewhere nothing is changed.
 */
import { setV8Flag } from './v8-flags.js';

/** V8 11.3's own --interrupt-budget: 66 KiB of bytecode run between a function's ticks. */
export const V8_INTERRUPT_BUDGET = 66 * 1024;

/** How many of V8's budgets popsync's functions run between ticks. */
export const TIER_UP_DELAY = 8;

/** How many of V8's budgets they run between ticks once the copy has begun. */
export const COPY_TIER_UP_DELAY = 16;

/** Whether the later tier-up is set under this Node version (process.versions.node). */
export function tierUpDelayApplies(nodeVersion: string): boolean {
  return nodeVersion.split('.')[0] === '20';
}

/** Sets the later tier-up for the code that runs from now on (see above); nothing on another Node. */
export function delayTierUp(set: (flags: string) => void = setV8Flag): void {
  if (!tierUpDelayApplies(process.versions.node)) return;
  set(`--interrupt-budget=${V8_INTERRUPT_BUDGET * TIER_UP_DELAY}`);
}

/** The copy's later tier-up, for the code that runs from now on (see above); nothing on another Node. */
export function delayTierUpForCopy(set: (flags: string) => void = setV8Flag): void {
  if (!tierUpDelayApplies(process.versions.node)) return;
  set(`--interrupt-budget=${V8_INTERRUPT_BUDGET * COPY_TIER_UP_DELAY}`);
}
