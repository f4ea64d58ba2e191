/**
 * A step of lab/bundle.ts after esbuild has written the bundle: each ES import of a Node built-in
 * in a bundle file becomes a require() (the one lab/bundle.ts's banner gives every file), at the
 * file's top. An ES import of a built-in goes through Node's ES module loader, which resolves it,
 * makes a job of it and builds a facade module whose export list reads every property of the
 * built-in, loading the modules its getters stand for (fs.promises, crypto.webcrypto,
 * util.parseArgs, net's BlockList...). 15 built-ins imported by a file: 63.8 against 60.1 ms of CPU
 * for the process that imports or requires them (20 alternating pairs, lower in 20).
 *
 * esbuild cannot be asked for this: with `format: 'esm'` it writes the built-ins it leaves out as
 * imports; a plugin that hands it `module.exports = require(...)` instead makes a module of each
 * built-in, and of each such module a chunk shared by the files that import it (more files to
 * load, which cost more than the imports saved).
 *
 * The requires go to the file's top, before the file's own code runs, as the imports they replace
 * were (Node evaluates a file's imports first). Named bindings are read there, once: a built-in's
 * exports do not change. Anything this does not recognise fails the build. A file left with no
 * use of require loses the banner's (one createRequire less to run as it loads).
 */
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { join } from 'node:path';

const BUILTINS = new Set(builtinModules.flatMap((m) => [m, `node:${m}`]));

/** esbuild's import statements: `import x from`, `import { a, b as c } from`, `import * as x from`, and both. */
const IMPORT = /^import\s+(?:([\w$]+)\s*,?\s*)?(?:\{([^}]*)\}|\*\s+as\s+([\w$]+))?\s*from\s*"([^"]+)";\n/gm;

/** Rewrites every .js file directly in `dir`; the `bannerLines` lines at each file's top are the banner. */
export function requireBuiltins(dir: string, bannerLines: number): void {
  for (const name of readdirSync(dir)) {
    if (!name.endsWith('.js')) continue;
    const file = join(dir, name);
    const text = readFileSync(file, 'utf8');
    const consts: string[] = [];
    const rest = text.replace(IMPORT, (all, def?: string, named?: string, star?: string, from?: string) => {
      if (!BUILTINS.has(from!)) return all;
      const req = `require(${JSON.stringify(from)})`;
      if (def !== undefined) consts.push(`const ${def} = ${req};`);
      if (star !== undefined) consts.push(`const ${star} = ${req};`);
      if (named !== undefined) {
        const fields: string[] = [];
        for (const s of named.split(',').map((f) => f.trim())) {
          const [, key, as] = /^([\w$]+)(?:\s+as\s+([\w$]+))?$/.exec(s) ?? [];
          if (key === undefined) {
            if (s === '') continue;
            throw new Error(`${file}: an import require-builtins does not read: ${all}`);
          }
          // A built-in's default export is the module itself, which require() returns.
          if (key === 'default') consts.push(`const ${as ?? key} = ${req};`);
          else fields.push(as === undefined ? key : `${key}: ${as}`);
        }
        if (fields.length > 0) consts.push(`const { ${fields.join(', ')} } = ${req};`);
      }
      return '';
    });
    const left = /^\s*(?:import|export)\b[^;]*?from\s*"((?:node:)?[\w/]+)"/gm;
    for (const m of rest.matchAll(left)) {
      if (BUILTINS.has(m[1]!)) throw new Error(`${file}: a statement require-builtins does not read: ${m[0]}`);
    }
    const lines = rest.split('\n');
    const body = lines.slice(bannerLines);
    // A file that requires nothing does without the banner's require (a createRequire per file).
    const banner = consts.length > 0 || /\brequire\b/.test(body.join('\n')) ? lines.slice(0, bannerLines) : [];
    writeFileSync(file, [...banner, ...consts, ...body].join('\n'));
  }
}
