/**
 * An esbuild plugin for lab/bundle.ts: bundled code that imports or requires one of the named
 * CommonJS packages gets a stand-in instead, an object with a getter for each of the package's
 * exports that loads the real package (bundled as usual) at the first read. So the package's
 * code runs when it is first used, not when its importer loads.
 *
 * For packages imapflow loads at start but uses only on paths popsync rarely or never takes:
 * encoding-japanese (imapflow and libmime decode ISO-2022-JP / EUC-JP text with it) builds its
 * conversion tables as it loads, 13 ms of CPU in every run that connects; socks (proxy
 * connections, which popsync never configures) with ip-address, 5 ms. It holds for importers
 * that read an export when they use it: esbuild's ES-module interop reads `SocksClient` of
 * `import { SocksClient } from 'socks'` at each use, and the CommonJS requirer (libmime's
 * charset.js) calls `encodingJapanese.convert(...)`; `const { x } = require(...)` would load the
 * package at once, which is still correct, only not deferred.
 *
 * The export names are read by loading the package here, at build time.
 */
import { createRequire } from 'node:module';
import { dirname, relative } from 'node:path';
import type { Plugin } from 'esbuild';

const NAMESPACE = 'deferred';

export function deferRequires(packages: readonly string[]): Plugin {
  const names = new Set(packages);
  const requireHere = createRequire(import.meta.url);
  return {
    name: 'defer-requires',
    setup(build) {
      const root = build.initialOptions.absWorkingDir ?? process.cwd();
      build.onResolve({ filter: /^[^./]/ }, async (args) => {
        if (!names.has(args.path) || args.pluginData?.real === true) return undefined;
        const real = await build.resolve(args.path, {
          kind: args.kind,
          resolveDir: args.resolveDir,
          importer: args.importer,
          pluginData: { real: true },
        });
        if (real.errors.length > 0) return { errors: real.errors };
        // Relative: the path is printed in the bundle's comments.
        return { path: relative(root, real.path), namespace: NAMESPACE, pluginData: { file: real.path } };
      });
      build.onLoad({ filter: /.*/, namespace: NAMESPACE }, (args) => {
        const file = (args.pluginData as { file: string }).file;
        const keys = Object.keys(requireHere(file) as object);
        return {
          loader: 'js',
          resolveDir: dirname(file),
          contents: [
            'let real;',
            // The stand-in requires the real file by its path, which the filter above passes by.
            `const load = () => (real ??= require(${JSON.stringify(`./${relative(dirname(file), file)}`)}));`,
            `for (const key of ${JSON.stringify(keys)})`,
            '  Object.defineProperty(module.exports, key, { enumerable: true, get: () => load()[key] });',
          ].join('\n'),
        };
      });
    },
  };
}
