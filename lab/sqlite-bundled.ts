/**
 * An esbuild plugin for lab/bundle.ts (popsync) and lab/relay-cli.ts (the bench's relays, which
 * load it as popsync does): better-sqlite3's JavaScript (lib/, 13 CommonJS files) is bundled, and
 * its native addon is required by its path in the package, resolved from the bundle's directory up
 * to node_modules at run time. Left in node_modules, the package cost every run 13 files
 * resolved, read and compiled one by one, and `bindings`' search for the addon (requires that
 * fail, stack traces to find its own file): 5.4-8.2 against 1.8-2.0 ms of CPU to load the package
 * and open a database (8 runs each).
 *
 * - The bundled JavaScript must be the version of the addon beside it: the build refuses a
 *   dependency on better-sqlite3 that is not one exact version (npm then installs that one), or
 *   node_modules holding another.
 * - The addon loads as the package's code loads (the journal's), as the whole package did: a
 *   missing package fails as an import of it would have (ERR_MODULE_NOT_FOUND naming it), so
 *   bin/popsync.js says which package to install (exit 70) instead of showing require's stack.
 *   The package there without its addon (`npm install --ignore-scripts`, a failed compile) fails
 *   as an addon Node cannot load (ERR_DLOPEN_FAILED), saying so: "not installed" was untrue.
 * - database.js is edited to take the addon so; an edit whose text is gone fails the build.
 */
import { readFileSync, realpathSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Plugin } from 'esbuild';

/** better-sqlite3's native addon, where its install (prebuilt or compiled) puts it in the package. */
const ADDON = 'better-sqlite3/build/Release/better_sqlite3.node';
const NAMESPACE = 'sqlite-addon';
const NO_ADDON = 'better-sqlite3 was installed without running its install script, or the script failed';

const EDITS: ReadonlyArray<readonly [string, string]> = [
  ['let DEFAULT_ADDON;', `let DEFAULT_ADDON = require('${ADDON}');`],
  ["DEFAULT_ADDON || (DEFAULT_ADDON = require('bindings')('better_sqlite3.node'))", 'DEFAULT_ADDON'],
];

/** `root`: the checkout (its package.json and node_modules). */
export function sqliteBundled(root: string): Plugin {
  const wanted = (
    JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { dependencies: Record<string, string> }
  ).dependencies['better-sqlite3'];
  const installed = (
    JSON.parse(readFileSync(join(root, 'node_modules/better-sqlite3/package.json'), 'utf8')) as { version: string }
  ).version;
  if (wanted !== installed) {
    throw new Error(
      `better-sqlite3: package.json wants ${wanted}, node_modules has ${installed}: bundling needs one exact version`,
    );
  }
  // The real path, as esbuild gives it (node_modules may be a symlink).
  const database = realpathSync(join(root, 'node_modules/better-sqlite3/lib/database.js'));
  return {
    name: 'sqlite-bundled',
    setup(b) {
      let edited = false;
      b.onLoad({ filter: /[\\/]better-sqlite3[\\/]lib[\\/]database\.js$/ }, async (args) => {
        if (args.path !== database) return undefined;
        edited = true;
        let text = await readFile(args.path, 'utf8');
        for (const [from, to] of EDITS) {
          if (text.split(from).length !== 2) throw new Error(`sqlite-bundled: ${args.path} no longer has ${from}`);
          text = text.replace(from, () => to);
        }
        return { contents: text, loader: 'js' };
      });
      // Bundled unedited, database.js would bundle `bindings`, which cannot find the addon from there.
      b.onEnd((result) =>
        result.errors.length > 0 || edited
          ? undefined
          : { errors: [{ text: `sqlite-bundled: ${database} was never loaded, so never edited` }] },
      );
      // database.js's require gets the wrapper below; the wrapper's own is left to Node.
      b.onResolve({ filter: /^better-sqlite3\/build\/Release\/better_sqlite3\.node$/ }, (args) =>
        args.namespace === NAMESPACE ? { path: args.path, external: true } : { path: args.path, namespace: NAMESPACE },
      );
      b.onLoad({ filter: /.*/, namespace: NAMESPACE }, (args) => ({
        contents: [
          'try {',
          `  module.exports = require(${JSON.stringify(args.path)});`,
          '} catch (e) {',
          `  const missing = ${JSON.stringify(`Cannot find module '${args.path}'`)};`,
          "  if (e.code !== 'MODULE_NOT_FOUND' || !e.message.startsWith(missing)) throw e;",
          // The package without its addon: installed with its install script not run or failed.
          '  let installed = true;',
          "  try { require.resolve('better-sqlite3/package.json'); } catch { installed = false; }",
          '  const err = new Error(installed',
          `    ? ${JSON.stringify(`${args.path} is missing: ${NO_ADDON}`)}`,
          `    : "Cannot find package 'better-sqlite3' imported from popsync");`,
          "  err.code = installed ? 'ERR_DLOPEN_FAILED' : 'ERR_MODULE_NOT_FOUND';",
          '  throw err;',
          '}',
        ].join('\n'),
        loader: 'js',
      }));
    },
  };
}
