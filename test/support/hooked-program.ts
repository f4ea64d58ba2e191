/**
 * TEST-ONLY: the program and the setters of its test hooks, bundled as one program by
 * lab/bundle.ts into dist/test-bundle/ (never shipped), for popsync-with-hooks.mjs. So a hooked
 * run executes the same bundled code as bin/popsync.js, at the same start-up cost, and the
 * setters reach the very module instances main() then uses (one bundle, one copy of each).
 */
export { main } from '../../src/cli/main.js';
export { setClockStart } from '../../src/engine/clock.js';
export { configureCrashHook, parseKillAt } from '../../src/journal/crash-hook.js';
export { setStaleLimitMs } from '../../src/journal/lock.js';
export { SlabPool } from '../../src/engine/slabs.js';
