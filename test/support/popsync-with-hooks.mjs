#!/usr/bin/env node
/**
 * TEST-ONLY entry point: the built popsync with test hooks injected, for end-to-end tests that
 * need to move the clock, kill at a journal step, or count steps. bin/popsync.js never reads
 * these hooks; this launcher arms them through the product's injection functions before the
 * program starts, so a variable in a user's environment cannot.
 *
 *   node test/support/popsync-with-hooks.mjs '<json hooks>' <popsync arguments...>
 *
 * hooks: { "now": ISO time, "killAt": "3:before", "stepsFile": path, "staleMs": number,
 *          "peakRssFile": path, "poisonSlabs": true, "connectsFile": path }
 * (test/support/cli.ts builds the call from CliOptions.hooks).
 */
const [node, , json, ...args] = process.argv;
const hooks = JSON.parse(json ?? '{}');
// The bundle of hooked-program.ts (lab/bundle.ts): the program bin/popsync.js runs, plus the setters.
const { configureCrashHook, main, parseKillAt, setClockStart, setStaleLimitMs, SlabPool } = await import(
  new URL('../../dist/test-bundle/hooked-program.js', import.meta.url).href
);
if (hooks.now !== undefined) setClockStart(new Date(hooks.now));
if (hooks.peakRssFile !== undefined) {
  // 'exit' handlers run synchronously as the process ends, after everything else it did.
  const { readFileSync, writeFileSync } = await import('node:fs');
  process.on('exit', () => {
    const m = /VmHWM:\s+(\d+)/.exec(readFileSync('/proc/self/status', 'utf8'));
    if (m) writeFileSync(hooks.peakRssFile, m[1]);
  });
}
if (hooks.connectsFile !== undefined) {
  // Every TCP connect the process starts, by port, written as JSON at exit: counted at the
  // socket, so a test can tell "at once" from a retry or a reconnect without timing the run, even
  // where nothing listens and no server could count them.
  const { Socket } = await import('node:net');
  const { writeFileSync } = await import('node:fs');
  const byPort = {};
  const connect = Socket.prototype.connect;
  Socket.prototype.connect = function (...args) {
    // net.connect() hands its normalized arguments over as one array: [options, callback].
    const first = Array.isArray(args[0]) ? args[0][0] : args[0];
    const port = typeof first === 'object' && first !== null ? first.port : first;
    if (port !== undefined) byPort[port] = (byPort[port] ?? 0) + 1;
    return connect.apply(this, args);
  };
  process.on('exit', () => writeFileSync(hooks.connectsFile, JSON.stringify(byPort)));
}
if (hooks.poisonSlabs === true) {
  // Every slab given back (engine/slabs.ts) is overwritten at once, as if the next batch had
  // already reused it: a body still read or written after its memory was given back then carries
  // '!' bytes, which the destination's copy shows.
  const give = SlabPool.prototype.give;
  SlabPool.prototype.give = function (slabs) {
    for (const s of slabs) s.fill(0x21);
    return give.call(this, slabs);
  };
}
if (hooks.staleMs !== undefined) setStaleLimitMs(hooks.staleMs);
configureCrashHook({
  killAt: hooks.killAt === undefined ? null : parseKillAt(hooks.killAt),
  stepsFile: hooks.stepsFile ?? null,
});
// main() parses argv as node does: the interpreter, a script, then the arguments.
await main([node, 'popsync', ...args]);
