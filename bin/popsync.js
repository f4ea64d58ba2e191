#!/usr/bin/env node
// Thin shim: the program is dist/bundle/ (built by `npm run build`; `npm pack` runs it via `prepack`).
// One bundle and a few lazy chunks, not dist/'s ~120 modules: see lab/bundle.ts.

import { createRequire } from 'node:module';

// Built-ins are required, not imported: Node's ES module loader builds a facade over each one.
const require = createRequire(import.meta.url);

// Loading the program takes half a second on a busy machine; a SIGTERM or Ctrl-C in that time
// would kill the process without a word or exit code 130. Nothing has started yet (no journal,
// no connection), so stopping at once is right; main() installs the real handlers.
const early = (signal) => {
  process.stderr.write(`popsync: interrupted (${signal}) before it started; nothing was done\n`);
  process.exit(130);
};
process.on('SIGINT', early);
process.on('SIGTERM', early);

// The program is CommonJS, compiled through a V8 code cache kept across runs (src/code-cache.ts):
// a compile V8 can skip is most of what loading it costs.
let program;
Promise.resolve()
  .then(() => {
    const dir = require('node:url').fileURLToPath(new URL('../dist/bundle/', import.meta.url));
    program = require('../dist/bundle/code-cache.cjs').openProgram(dir);
    // Written once the command is done, whichever way it ends (exit codes included).
    process.on('exit', () => program.save());
    const y = program.load('young-generation.cjs');
    // V8 takes a cache only under the flags it was made with, and the flags below change as the
    // program runs: each file is compiled, and the cache made, with them at V8's defaults.
    program.guardCompiles(y.withV8FlagsAtDefault);
    // Before the program loads: a young generation that grew to its 32 MB default let dead Buffers pile
    // up between GCs (src/young-generation.ts), a full GC every ~8 MB of Buffers when V8 set its
    // old generation's limit low (src/old-generation.ts), and V8's optimising compiler took a quarter
    // of a run's CPU on code that ran too little to gain from it (src/tier-up.ts).
    y.delayTierUp();
    y.capYoungGeneration();
    y.leaveRoomForBuffers();
    return program.load('popsync.cjs');
  })
  // The program loads synchronously, and Node runs a signal's handlers only when its event loop
  // polls: a poll, between two immediates, so that a signal that came while it loaded stops it
  // here, before it starts (without it, main()'s handlers got it and a migrate went on to connect).
  .then((m) => new Promise((resolve) => setImmediate(() => setImmediate(() => resolve(m)))))
  .then((m) => {
    process.off('SIGINT', early);
    process.off('SIGTERM', early);
    return m.main(process.argv);
  })
  .then(() => {
    // The command is done: journal closed, reports written, every reply that mattered read, the
    // last LOGOUT and QUIT written. Leaving now, once stdout and stderr are flushed, spares the
    // wait for whatever is still in the event loop and Node's teardown of the heap (~5-10 ms a run).
    process.stdout.write('', () => process.stderr.write('', () => process.exit()));
  })
  .catch((err) => {
    if (err && (err.code === 'ERR_MODULE_NOT_FOUND' || err.code === 'MODULE_NOT_FOUND')) {
      // The bundle leaves better-sqlite3 (and a few packages it requires) in node_modules: an
      // install without them is built, and `npm run build` would not help it.
      const pkg = /Cannot find package '([^']+)'/.exec(String(err.message))?.[1];
      process.stderr.write(
        pkg === undefined
          ? 'popsync: not built yet. Run `npm run build` first.\n'
          : `popsync: the package ${pkg} it needs is not installed. Install popsync with npm ` +
              '(npm install -g --allow-scripts=better-sqlite3 ./popsync-<version>.tgz), ' +
              'or run `npm ci` in a checkout.\n',
      );
      process.exit(70);
    }
    if (err && err.code === 'ERR_DLOPEN_FAILED') {
      // better-sqlite3's addon loads with the program (lab/sqlite-bundled.ts): one built for
      // another Node.js (popsync installed, then Node upgraded) or a broken build fails here,
      // before main() could describe it, and every command would end in Node's stack trace.
      // Node's message for another Node.js spans lines ("was compiled against ... NODE_MODULE_VERSION 115").
      const why = String(err.message)
        .trim()
        .replace(/\s*\n\s*/g, ' ');
      process.stderr.write(
        `popsync: the native part of better-sqlite3 it needs could not be loaded: ${why}\n` +
          '  hint: it is built for one Node.js version and platform; reinstall popsync with the Node.js ' +
          'that runs it (npm install -g --allow-scripts=better-sqlite3 ./popsync-<version>.tgz), ' +
          'or run `npm rebuild better-sqlite3` in a checkout.\n',
      );
      process.exit(70);
    }
    throw err;
  });
