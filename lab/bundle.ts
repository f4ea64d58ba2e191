/**
 * The program bin/popsync.js runs: src/ and its npm dependencies bundled by esbuild into
 * dist/bundle/, after tsc (which stays: it type-checks, and writes dist/ modules one per source
 * file for whoever wants to load one). `npm run build` runs it.
 *
 * Why: loading popsync as 120-140 ES modules of dist/ plus the CommonJS trees of imapflow, pino
 * and commander (resolving, reading and compiling each file) cost ~120 ms of CPU beyond Node's
 * own start before `--version` printed, ~310 ms before a run that connects got its first refusal;
 * from a few larger files, ~65 and ~130 ms, ~120 with defer-requires.ts (README, Performance).
 *
 * - ESM with code splitting: each dynamic import() in src/ stays lazy as its own chunk (imapflow
 *   and libmime, ora and cli-progress, the config file's yaml and zod, plan rendering...), so a
 *   run never compiles what it does not use; code shared by several becomes a shared chunk.
 * - better-sqlite3's native addon stays in node_modules, required by its path in the package (see
 *   lab/sqlite-bundled.ts); its JavaScript is bundled. So do the packages src/ loads with
 *   createRequire (postal-mime, csv-parse, re2js): esbuild leaves those calls alone, and they
 *   resolve from dist/bundle/ up to node_modules.
 * - The CJS modules in the bundle call require() for Node's built-ins, which an ES module does not
 *   have: the banner gives every chunk one.
 * - dist/bundle/ is two levels below the package root, as dist/cli/ is, so src/cli/version.ts's
 *   `../../package.json` next to import.meta.url is the same file from either build.
 * - src/young-generation.ts is an entry of its own: bin/popsync.js runs it before it loads
 *   the program, and it imports only node: modules.
 * - The npm packages are bundled too: left in node_modules (esbuild's `packages: 'external'`)
 *   they cost 137 ms against 125 for `--version` and 320 against 204 for a run that connects,
 *   imapflow's ~110 CommonJS files being most of the difference. One file without the lazy
 *   chunks: 159 and 207 ms.
 * - Not minified: profiles and an internal error's trace keep popsync's function names;
 *   minifying saved ~4 ms of start-up CPU.
 *
 * In a checkout it also bundles test/support/hooked-program.ts into dist/test-bundle/ (never
 * shipped): the same program plus the setters of its test hooks, for the tests' hooked launcher,
 * so crash and clock tests run the bundled code at its start-up cost too. The copies of the
 * sources that `npm pack` builds from in the Dockerfile and the packaging test hold no test/.
 *
 *   tsx lab/bundle.ts        (writes dist/bundle/ and dist/test-bundle/, replacing what was there)
 */
import { existsSync, rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { commonJsChunks } from './commonjs-chunks.js';
import { deferRequires } from './defer-requires.js';
import { requireBuiltins } from './require-builtins.js';
import { sqliteBundled } from './sqlite-bundled.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const BANNER =
  "import { createRequire as popsyncCreateRequire } from 'node:module';\n" +
  'const require = popsyncCreateRequire(import.meta.url);';
const HOOKED = 'test/support/hooked-program.ts';

await bundle('dist/bundle', {
  popsync: 'src/cli/main.ts',
  'young-generation': 'src/young-generation.ts',
  'code-cache': 'src/code-cache.ts',
});
await commonJsChunks(fileURLToPath(new URL('../dist/bundle', import.meta.url)), `${BANNER}\n`);
if (existsSync(new URL(`../${HOOKED}`, import.meta.url))) {
  await bundle('dist/test-bundle', { 'hooked-program': HOOKED });
}

async function bundle(outdir: string, entryPoints: Record<string, string>): Promise<void> {
  rmSync(new URL(`../${outdir}`, import.meta.url), { recursive: true, force: true });
  await build({
    absWorkingDir: ROOT,
    entryPoints,
    outdir,
    bundle: true,
    splitting: true,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    // Loaded with imapflow, used only on paths popsync rarely or never takes: files of their own,
    // loaded at their first use (see defer-requires.ts).
    plugins: [
      sqliteBundled(ROOT),
      deferRequires({
        // pino: loaded by the first line logged (src/cli/logger.ts), which most runs never write.
        deferred: ['encoding-japanese', 'socks', 'node_modules/libmime/lib/mimetypes.js', 'pino'],
        lazy: ['node_modules/iconv-lite/encodings/index.js'],
        // Node's own modules that imapflow imports for what popsync does not use: dns for proxies
        // (loading it sets up c-ares, which reads /etc/resolv.conf and nsswitch.conf: ~1 ms before
        // the IMAP login, also for an IP address), zlib for COMPRESS=DEFLATE (imapflow-adapter.ts
        // asks the capability before imapflow reads it). Loaded by their first use instead. And
        // imapflow's download() and downloadMany(), which popsync never calls, import their module
        // (with mailsplit and libbase64: 86 KB of the chunk every IMAP run compiled) when called.
        edits: {
          'node_modules/imapflow/dist/esm/imap-flow.js': [
            [
              "import zlib from 'node:zlib';",
              "const zlib = new Proxy({}, { get: (_, key) => require('node:zlib')[key] });",
            ],
            ["import { downloadMessage, downloadMessageParts } from './download.js';", ''],
            [
              'return await downloadMessage(this, range, part, options);',
              "return await (await import('./download.js')).downloadMessage(this, range, part, options);",
            ],
            [
              'return await downloadMessageParts(this, range, parts, options);',
              "return await (await import('./download.js')).downloadMessageParts(this, range, parts, options);",
            ],
          ],
          // Commands popsync sends rarely (LIST: SPECIAL-USE roles) or never (SEARCH, IDLE, QUOTA,
          // and AUTHENTICATE, which imapflow-adapter.ts sends itself): their modules, LIST's with
          // its table of localised folder names, load when the command is first run.
          'node_modules/imapflow/dist/esm/imap-commands.js': [
            [
              "import list from './commands/list.js';",
              'const lazyCommand = (load) => async (...args) => (await load()).default(...args);',
            ],
            ["['LIST', list],", "['LIST', lazyCommand(() => import('./commands/list.js'))],"],
            ["import search from './commands/search.js';", ''],
            ["['SEARCH', search],", "['SEARCH', lazyCommand(() => import('./commands/search.js'))],"],
            ["import idle from './commands/idle.js';", ''],
            ["['IDLE', idle],", "['IDLE', lazyCommand(() => import('./commands/idle.js'))],"],
            ["import quota from './commands/quota.js';", ''],
            ["['QUOTA', quota],", "['QUOTA', lazyCommand(() => import('./commands/quota.js'))],"],
            ["import authenticate from './commands/authenticate.js';", ''],
            [
              "['AUTHENTICATE', authenticate]",
              "['AUTHENTICATE', lazyCommand(() => import('./commands/authenticate.js'))]",
            ],
          ],
          // commander runs a child process only for a subcommand that is an executable of its own,
          // which popsync has none of; loading node:child_process (with dgram, ~2 ms) waits for that.
          'node_modules/commander/lib/command.js': [
            [
              "const childProcess = require('node:child_process');",
              "const childProcess = new Proxy({}, { get: (_, key) => require('node:child_process')[key] });",
            ],
          ],
          'node_modules/imapflow/dist/esm/proxy-connection.js': [
            [
              "import dns from 'node:dns';",
              "const dns = new Proxy({}, { get: (_, key) => require('node:dns')[key] });",
            ],
          ],
        },
        within: {
          pino: {
            deferred: ['sonic-boom', 'node_modules/pino/lib/transport.js'],
            // pino loads worker_threads (~3 ms) for one test in the SonicBoom set-up that popsync's
            // loggers never run (a --log-format json file is its only SonicBoom, and synchronous).
            edits: {
              'node_modules/pino/lib/tools.js': [
                ["const { isMainThread } = require('worker_threads')", ''],
                ['!opts.sync && isMainThread', "!opts.sync && require('worker_threads').isMainThread"],
              ],
            },
          },
        },
      }),
    ],
    banner: { js: BANNER },
    // Third-party licence comments go to the end of each file; the packages' own LICENSE files
    // ship too, as they stay dependencies (installed beside the bundle).
    legalComments: 'eof',
    logLevel: 'warning',
  });
  requireBuiltins(fileURLToPath(new URL(`../${outdir}`, import.meta.url)), BANNER.split('\n').length);
}
