/**
 * TEST-ONLY. A kill switch for the crash-resume test, after isync's `-Ts k` / `countStep()`:
 * the test runs a scenario once to count its journal steps, then for every step k kills the
 * process just before or just after that step's commit, resumes, and checks that every message
 * arrived exactly once.
 *
 * A "step" is one committed write transaction of Journal (a beginAppend batch is one step).
 * Opening a journal (schema and binding) is not a step: it changes no message's state.
 *
 * Only a test entry point arms it (configureCrashHook; test/support/popsync-with-hooks.mjs for
 * the CLI): the shipped binary reads no environment variable here, so nothing a user's shell
 * holds can make popsync kill itself. Disarmed, each call is one boolean test.
 *
 *   killAt {step k, before|after}  SIGKILL self just before / just after commit of step k (1-based)
 *   stepsFile <path>               after each step, write the running step count to <path>
 *
 * "before" fires inside the transaction, after its writes and just ahead of COMMIT, which is the
 * harshest point: the writes exist in SQLite's page cache (maybe in the WAL) but are not committed.
 *
 * SIGKILL rather than exit(): no exit handlers, no flushing, no finally blocks, just like a power
 * cut or the OOM killer.
 */
import { writeFileSync } from 'node:fs';
import { PopsyncError } from '../errors.js';

export interface KillAt {
  step: number;
  when: 'before' | 'after';
}

/**
 * "3:before" -> { step: 3, when: 'before' }; the test launcher (through dist/) parses its hooks with it.
 * @public
 */
export function parseKillAt(value: string): KillAt {
  const m = /^([1-9][0-9]*):(before|after)$/.exec(value.trim());
  if (m === null || m[1] === undefined || m[2] === undefined) {
    throw new PopsyncError(
      'internal',
      `a kill point must look like "3:before" or "3:after", not ${JSON.stringify(value)}`,
    );
  }
  return { step: Number(m[1]), when: m[2] as KillAt['when'] };
}

interface HookConfig {
  killAt: KillAt | null;
  stepsFile: string | null;
}

let config: HookConfig = { killAt: null, stepsFile: null };
let active = false;
let steps = 0;

/**
 * TEST ENTRY POINT ONLY: arms (or, with nulls, disarms) the hook for this process. Called by
 * test/support/popsync-with-hooks.mjs, through the bundle of test/support/hooked-program.ts.
 */
export function configureCrashHook(c: HookConfig): void {
  config = { ...c };
  active = c.killAt !== null || c.stepsFile !== null;
}

function die(): never {
  process.kill(process.pid, 'SIGKILL');
  // SIGKILL to oneself is fatal before the syscall returns to JS; the wait only guarantees that
  // not one more line of popsync runs should the kernel take a moment.
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10_000);
  throw new PopsyncError('internal', 'crash hook: SIGKILL did not stop the process');
}

/** Call as the last thing inside a write transaction, before COMMIT. */
export function beforeCommit(): void {
  if (!active) return;
  const k = config.killAt;
  if (k !== null && k.when === 'before' && k.step === steps + 1) die();
}

/** Call right after a write transaction committed. */
export function afterCommit(): void {
  steps += 1;
  if (!active) return;
  if (config.stepsFile !== null) writeFileSync(config.stepsFile, `${steps}\n`);
  const k = config.killAt;
  if (k !== null && k.when === 'after' && k.step === steps) die();
}
