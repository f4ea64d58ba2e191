/**
 * An esbuild plugin for lab/bundle.ts: modules the bundle's code loads but popsync rarely or never
 * uses are built as files of their own beside the bundle (deferred/<name>.cjs), and the bundle
 * loads such a file only when the module is first used. So neither compiling nor running their
 * code is paid by a run that does not use them: V8 scans all of a bundle file's source when it
 * loads it, used or not, and imapflow's chunk was 1.7 MB, of which these modules were ~1.2 MB
 * (about 25 ms of CPU, at each run that connects, to decode and scan it).
 *
 * Two kinds, by how the bundled code loads the module:
 * - `deferred`: required as its importer loads, used later. Importers get a stand-in instead, an
 *   object with a getter for each of the module's exports that loads the real module at the first
 *   read. For encoding-japanese (imapflow and libmime decode ISO-2022-JP / EUC-JP text with it; it
 *   builds its conversion tables as it loads), socks with ip-address and smart-buffer (proxy
 *   connections, which popsync never configures), libmime's table of MIME types (popsync never
 *   asks it for a file type). It holds for importers that read an export when they use it:
 *   esbuild's ES-module interop reads `SocksClient` of `import { SocksClient } from 'socks'` at
 *   each use, and the CommonJS requirer (libmime's charset.js) calls `encodingJapanese.convert(...)`;
 *   `const { x } = require(...)` would load the module at once, which is still correct, only not
 *   deferred.
 * - `lazy`: already required only inside the function that needs it, so the require itself is
 *   left to run then, of the file beside the bundle. For iconv-lite's encodings and their tables
 *   (~700 KB), which iconv-lite requires at its first conversion: imapflow converts a folder
 *   name only when it is not ASCII, and text only in a charset other than UTF-8.
 *
 * The files are required by a path relative to the requiring chunk, with the `require` that
 * lab/bundle.ts's banner gives every chunk; chunks are all in the bundle's directory. The export
 * names of a deferred module are read by loading it here, at build time.
 */
import { realpathSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join, relative } from 'node:path';
import { build, type Plugin } from 'esbuild';

const NAMESPACE = 'deferred';
const DIR = 'deferred';

export interface OutsourcedModules {
  /** Package names or files (relative to the build's working directory) required at load, used later. */
  deferred?: readonly string[];
  /** The same, for modules the bundled code requires only when it uses them. */
  lazy?: readonly string[];
  /**
   * Files (relative to the build's working directory) whose text is edited as it is bundled: each
   * [from, to] once, exactly, or the build fails (so a dependency's update cannot silently undo it).
   * For a require that runs as the file loads and whose export is used in one rarely taken place.
   */
  edits?: Readonly<Record<string, ReadonlyArray<readonly [string, string]>>>;
  /**
   * For a `deferred` module (as named there): what its own file defers in turn, as this plugin
   * does for the bundle. Its files are in `deferred/` beside that file, required relative to it.
   * pino: deferred as a whole (a run that logs nothing never loads it), its transports and
   * sonic-boom deferred within it as they were in the bundle.
   */
  within?: Readonly<Record<string, OutsourcedModules>>;
}

export function deferRequires(modules: OutsourcedModules | readonly string[]): Plugin {
  const spec: OutsourcedModules = Array.isArray(modules) ? { deferred: modules } : (modules as OutsourcedModules);
  const requireHere = createRequire(import.meta.url);
  return {
    name: 'defer-requires',
    setup(b) {
      const root = b.initialOptions.absWorkingDir ?? process.cwd();
      const requireThere = createRequire(join(root, 'package.json'));
      const o = b.initialOptions;
      const outdir = o.outdir ?? dirname(o.outfile ?? join(root, 'out.js'));
      /** Real file -> how the bundle treats it. */
      const targets = new Map<string, { kind: 'deferred' | 'lazy'; out: string; within?: OutsourcedModules }>();
      for (const kind of ['deferred', 'lazy'] as const) {
        for (const m of spec[kind] ?? []) {
          // Real paths, as esbuild gives them: node_modules may be a symlink (the package test's
          // copy of the checkout, pnpm), and a path through it would match nothing, silently.
          const file = realpathSync(m.includes('/') && !m.startsWith('@') ? join(root, m) : requireThere.resolve(m));
          const within = kind === 'deferred' ? spec.within?.[m] : undefined;
          targets.set(file, { kind, out: `./${DIR}/${outputName(m)}.cjs`, ...(within ? { within } : {}) });
        }
      }
      // Only imports whose last segment could name a target are resolved twice.
      const last = new Set<string>();
      for (const m of [...(spec.deferred ?? []), ...(spec.lazy ?? [])]) {
        const parts = m.replace(/\.js$/, '').split('/');
        last.add(parts.at(-1) === 'index' ? parts.at(-2)! : parts.at(-1)!);
        if (!m.includes('/') || m.startsWith('@')) last.add(m);
      }
      const filter = new RegExp(`(^|/)(${[...last].map(escapeRegExp).join('|')})(\\.js|/index\\.js)?$`);

      b.onStart(async () => {
        // Each module built whole into its own CommonJS file (what it requires is bundled with it).
        await Promise.all(
          [...targets].map(([file, t]) =>
            build({
              absWorkingDir: root,
              entryPoints: [file],
              outfile: join(outdir, t.out),
              bundle: true,
              format: 'cjs',
              platform: 'node',
              target: o.target ?? 'node20',
              legalComments: 'eof',
              logLevel: 'warning',
              plugins: t.within ? [deferRequires(t.within)] : [],
            }),
          ),
        );
        return {};
      });

      const edits = new Map(Object.entries(spec.edits ?? {}).map(([f, e]) => [realpathSync(join(root, f)), e]));
      if (edits.size > 0) {
        const edited = new Set<string>();
        b.onLoad({ filter: new RegExp(`^(${[...edits.keys()].map(escapeRegExp).join('|')})$`) }, async (args) => {
          edited.add(args.path);
          let text = await readFile(args.path, 'utf8');
          for (const [from, to] of edits.get(args.path) ?? []) {
            if (text.split(from).length !== 2) throw new Error(`defer-requires: ${args.path} no longer has ${from}`);
            text = text.replace(from, () => to);
          }
          return { contents: text, loader: 'js' };
        });
        // A file to edit that the build never loaded was reached by another path, or is no longer
        // used: either way the bundle is not what the edits say.
        b.onEnd((result) => {
          if (result.errors.length > 0) return;
          const missed = [...edits.keys()].filter((f) => !edited.has(f));
          if (missed.length > 0) {
            return {
              errors: missed.map((f) => ({ text: `defer-requires: ${f} was to be edited but was never loaded` })),
            };
          }
          return undefined;
        });
      }

      b.onResolve({ filter: new RegExp(`^\\./${DIR}/[^/]+\\.cjs$`) }, (args) =>
        args.namespace === NAMESPACE ? { path: args.path, external: true } : undefined,
      );
      b.onResolve({ filter }, async (args) => {
        if (args.pluginData?.real === true) return undefined;
        const real = await b.resolve(args.path, {
          kind: args.kind,
          resolveDir: args.resolveDir,
          importer: args.importer,
          pluginData: { real: true },
        });
        if (real.errors.length > 0) return { errors: real.errors };
        const t = targets.get(real.path);
        if (t === undefined) return undefined;
        if (t.kind === 'lazy') return { path: t.out, external: true };
        // Relative: the path is printed in the bundle's comments.
        return { path: relative(root, real.path), namespace: NAMESPACE, pluginData: { file: real.path, out: t.out } };
      });
      b.onLoad({ filter: /.*/, namespace: NAMESPACE }, (args) => {
        const { file, out } = args.pluginData as { file: string; out: string };
        const exported = requireHere(file) as object;
        const keys = Object.keys(exported);
        return {
          loader: 'js',
          resolveDir: dirname(file),
          contents: [
            'let real;',
            `const load = () => (real ??= require(${JSON.stringify(out)}));`,
            ...(typeof exported === 'function' ? callableStandIn() : []),
            `for (const key of ${JSON.stringify(keys)})`,
            '  Object.defineProperty(module.exports, key, { enumerable: true, get: () => load()[key] });',
          ].join('\n'),
        };
      });
    },
  };
}

/**
 * The stand-in of a module that is a function (a class, a factory): called or constructed, it
 * loads the module and hands the call on, so `new SonicBoom(opts)` builds a real SonicBoom.
 * `x instanceof StandIn` asks the real class, once loaded; before that no instance can exist.
 */
function callableStandIn(): string[] {
  return [
    'module.exports = function standIn(...args) {',
    '  return new.target === undefined ? load().apply(this, args) : Reflect.construct(load(), args);',
    '};',
    'Object.defineProperty(module.exports, Symbol.hasInstance, {',
    '  value: (x) => real !== undefined && x instanceof real,',
    '});',
  ];
}

/** socks -> socks; node_modules/libmime/lib/mimetypes.js -> libmime-lib-mimetypes. */
function outputName(module: string): string {
  return module
    .replace(/^node_modules\//, '')
    .replace(/(\/index)?\.js$/, '')
    .replace(/[^\w.-]+/g, '-');
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
