/**
 * The one clock of a run (journal times, deletion ages). Real time unless a test entry point
 * (test/support/popsync-with-hooks.mjs) moved it with setClockStart before the program ran,
 * so end-to-end tests can make "3 days passed" between two runs. Nothing here reads the
 * environment: a stray variable in a user's shell must never shift `--delete-after-days`.
 */
let offsetMs = 0;

/** Real time, or test time that starts at the injected instant and runs at the real pace. */
export function now(): Date {
  return new Date(Date.now() + offsetMs);
}

/**
 * TEST ENTRY POINT ONLY: the clock reads `start` now and runs on from there. Called by
 * test/support/popsync-with-hooks.mjs, through the bundle of test/support/hooked-program.ts.
 */
export function setClockStart(start: Date): void {
  if (!Number.isFinite(start.getTime())) throw new TypeError('setClockStart needs a valid Date');
  offsetMs = start.getTime() - Date.now();
}
