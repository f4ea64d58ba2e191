/**
 * A step of lab/bundle.ts after esbuild and require-builtins.ts: each ES module file of the bundle
 * (an entry or a chunk) becomes a CommonJS file beside it (`popsync.js` -> `popsync.cjs`), for
 * src/code-cache.ts to compile with a V8 code cache (Node 20's ES module loader takes none).
 *
 * esbuild splits code only into ES modules; its transform turns each file into CommonJS on its
 * own: imports of other chunks become require('./chunk-X.cjs'), dynamic import()s of chunks
 * Promise-wrapped requires (still loaded at first use), exports getters (ES modules' live
 * bindings), import.meta.url the file's URL. The transform drops comments, so the `// src/...`
 * and `// node_modules/...` marks esbuild wrote before each module's code are kept at the file's
 * top: they say what a file holds (test/e2e/bundle.test.ts reads them).
 *
 * Also writes the build's identity (a SHA-256 of every file) into code-cache.cjs, whose cache is
 * then another build's cache for any other program. Anything this does not recognise fails the
 * build.
 */
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { transform } from 'esbuild';

const PLACEHOLDER = '@@POPSYNC_BUILD_ID@@';

/** Converts every .js file directly in `dir`; `banner` is the ES banner lab/bundle.ts gave each file. */
export async function commonJsChunks(dir: string, banner: string): Promise<void> {
  const names = readdirSync(dir).filter((n) => n.endsWith('.js'));
  const out = new Map<string, string>();
  for (const name of names) {
    const file = join(dir, name);
    let text = readFileSync(file, 'utf8');
    // The ES banner made a require for the CommonJS code esbuild bundled; CommonJS has its own.
    if (text.startsWith(banner)) text = text.slice(banner.length);
    const marks = [...text.matchAll(/^\/\/ ((?:src|node_modules)\/\S+)$/gm)].map((m) => `// ${m[1]}`);
    const r = await transform(text, {
      format: 'cjs',
      loader: 'js',
      platform: 'node',
      target: 'node20',
      sourcefile: name,
      supported: { 'dynamic-import': false },
      define: { 'import.meta.url': 'popsyncImportMetaUrl' },
      legalComments: 'eof',
      logLevel: 'warning',
    });
    let code = r.code.replace(/\brequire\("\.\/([^"/]+)\.js"\)/g, (_all, base: string) => {
      if (!names.includes(`${base}.js`))
        throw new Error(`commonjs-chunks: ${name} requires ./${base}.js, not in the bundle`);
      return `require("./${base}.cjs")`;
    });
    // Rough (comments and template literals removed first), and only a check: import() calls
    // the transform left would fail in vm.Script, which has no loader for them.
    const bare = code.replace(/\/\*[\s\S]*?\*\//g, '').replace(/`(?:[^`\\]|\\.)*`/g, '``');
    if (/\bimport\(|\bimport\.meta\b/.test(bare)) {
      throw new Error(`commonjs-chunks: ${name} still has an import() or import.meta after the transform`);
    }
    const url = /\bpopsyncImportMetaUrl\b/.test(code)
      ? 'var popsyncImportMetaUrl = require("node:url").pathToFileURL(__filename).href;\n'
      : '';
    // ES modules are strict mode code, and the program was written and tested as such; the
    // transform writes no "use strict", and without it every file ran sloppy (a write to a frozen
    // object or a getter-only property silently dropped where it threw, `this` the global object).
    code = `${marks.join('\n')}${marks.length > 0 ? '\n' : ''}"use strict";\n${url}${code}`;
    out.set(name.replace(/\.js$/, '.cjs'), code);
  }
  const id = createHash('sha256');
  for (const [name, code] of [...out].sort(([a], [b]) => (a < b ? -1 : 1))) id.update(`${name}\n${code}\n`);
  const buildId = id.digest('hex');
  for (const name of names) rmSync(join(dir, name));
  for (const [name, code] of out) {
    if (name === 'code-cache.cjs') writeFileSync(join(dir, name), codeCache(code, buildId));
    else writeFileSync(join(dir, name), code);
  }
}

/**
 * code-cache.cjs with the build's identity in it. Node's require loads it, before the program: it
 * must require no file of the bundle, which would be loaded twice, once by Node and once through
 * the cache. esbuild has it import its runtime's chunk for nothing; that require goes.
 */
function codeCache(code: string, buildId: string): string {
  if (code.split(PLACEHOLDER).length !== 2) throw new Error(`commonjs-chunks: code-cache.cjs has no ${PLACEHOLDER}`);
  const out = code
    .replace(/^var (import_chunk_\w+) = require\("\.\/chunk-\w+\.cjs"\);\n/gm, (line, v: string) =>
      code.split(v).length === 2 ? '' : line,
    )
    .replace(PLACEHOLDER, buildId);
  if (/\brequire\("\.\//.test(out)) throw new Error('commonjs-chunks: code-cache.cjs requires a file of the bundle');
  return out;
}
