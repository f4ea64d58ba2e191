/**
 * lab/defer-requires.ts, the esbuild plugin lab/bundle.ts uses for what imapflow loads and popsync
 * rarely uses: a small CommonJS package that counts its own loads, imported the ways imapflow and
 * libmime import encoding-japanese and socks (a named and a default ES import, a require), and one
 * that requires a module only inside a function (as iconv-lite its encodings), bundled with and
 * without the plugin, and the bundle imported. With it, the modules' code is not in the bundle's
 * file, loading the bundle leaves them unloaded and the first use loads them, once, with every
 * export intact; without it (the control) the package loads with the bundle. Here, not in
 * test/unit: esbuild runs as a child process.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { build, type Plugin } from 'esbuild';
import { afterAll, describe, expect, it } from 'vitest';
import { deferRequires } from '../../lab/defer-requires.js';

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

type Bundled = {
  loadsAtStart: number;
  use: () => unknown[];
  loads: () => number;
  tables: () => number[];
  tableLoads: () => number;
  /** The text of the bundle's own file. */
  text: string;
};

/** Bundles `dir`/entry.mjs into `dir`/out.mjs as lab/bundle.ts does, with `plugins`. */
function bundleEntry(dir: string, plugins: Plugin[]) {
  return build({
    absWorkingDir: dir,
    entryPoints: ['entry.mjs'],
    outfile: join(dir, 'out.mjs'),
    bundle: true,
    format: 'esm',
    platform: 'node',
    logLevel: 'silent',
    plugins,
    // What lab/bundle.ts gives every chunk: the plugin's files are loaded by require().
    banner: { js: "import { createRequire } from 'node:module';\nconst require = createRequire(import.meta.url);" },
  });
}

/** Bundles a fixture whose package counts its loads in globalThis[counter]; imports the bundle. */
async function bundleFixture(counter: string, plugins: Plugin[]): Promise<Bundled> {
  const dir = mkdtempSync(join(tmpdir(), 'popsync-defer-'));
  dirs.push(dir);
  const pkg = join(dir, 'node_modules', 'heavy');
  mkdirSync(pkg, { recursive: true });
  writeFileSync(join(pkg, 'package.json'), '{ "name": "heavy", "main": "index.js" }\n');
  writeFileSync(
    join(pkg, 'index.js'),
    `globalThis[${JSON.stringify(counter)}] = (globalThis[${JSON.stringify(counter)}] ?? 0) + 1;\n` +
      'exports.answer = () => 42;\n' +
      'exports.Maker = class Maker { static make() { return this.name; } };\n',
  );
  writeFileSync(join(dir, 'cjs-user.cjs'), "const heavy = require('heavy');\nexports.use = () => heavy.answer();\n");
  const codec = join(dir, 'node_modules', 'codec');
  mkdirSync(join(codec, 'tables'), { recursive: true });
  writeFileSync(join(codec, 'package.json'), '{ "name": "codec", "main": "index.js" }\n');
  writeFileSync(join(codec, 'index.js'), "exports.tables = () => require('./tables');\n");
  const tableCounter = JSON.stringify(`${counter}Tables`);
  writeFileSync(
    join(codec, 'tables', 'index.js'),
    `globalThis[${tableCounter}] = (globalThis[${tableCounter}] ?? 0) + 1;\n` +
      "module.exports = [1, 2, 3].concat(require('./more.json'));\n",
  );
  writeFileSync(join(codec, 'tables', 'more.json'), '[4]\n');
  writeFileSync(
    join(dir, 'entry.mjs'),
    "import { answer, Maker } from 'heavy';\n" +
      "import heavy from 'heavy';\n" +
      "import cjsUser from './cjs-user.cjs';\n" +
      "import { tables as codecTables } from 'codec';\n" +
      'export const tables = () => codecTables();\n' +
      `export const tableLoads = () => globalThis[${JSON.stringify(`${counter}Tables`)}] ?? 0;\n` +
      `export const loadsAtStart = globalThis[${JSON.stringify(counter)}] ?? 0;\n` +
      `export const loads = () => globalThis[${JSON.stringify(counter)}] ?? 0;\n` +
      'export const use = () => [answer(), Maker.make(), heavy.answer(), cjsUser.use()];\n',
  );
  await bundleEntry(dir, plugins);
  // The plugin loaded the package here to read its export names: only the bundle's loads count.
  (globalThis as Record<string, unknown>)[counter] = 0;
  const b = (await import(pathToFileURL(join(dir, 'out.mjs')).href)) as Omit<Bundled, 'text'>;
  return { ...b, text: readFileSync(join(dir, 'out.mjs'), 'utf8') };
}

describe('deferRequires', () => {
  it('loads the package at its first use, not with the bundle; every export works', async () => {
    const b = await bundleFixture('deferredLoads', [
      deferRequires({ deferred: ['heavy'], lazy: ['node_modules/codec/tables/index.js'] }),
    ]);
    // Not even compiled with the bundle: the code is in files of its own.
    expect(b.text).not.toContain('exports.answer');
    expect(b.text).not.toContain('[1, 2, 3]');
    expect(b.loadsAtStart).toBe(0);
    expect(b.tableLoads()).toBe(0);
    expect(b.loads()).toBe(0);
    expect(b.use()).toEqual([42, 'Maker', 42, 42]);
    expect(b.use()).toEqual([42, 'Maker', 42, 42]);
    expect(b.loads()).toBe(1);
    expect(b.tables()).toEqual([1, 2, 3, 4]);
    expect(b.tables()).toEqual([1, 2, 3, 4]);
    expect(b.tableLoads()).toBe(1);
  });

  it('control: without the plugin the package loads with the bundle', async () => {
    const b = await bundleFixture('plainLoads', []);
    expect(b.text).toContain('exports.answer');
    expect(b.text).toContain('[1, 2, 3]');
    expect(b.loadsAtStart).toBe(1);
    expect(b.use()).toEqual([42, 'Maker', 42, 42]);
  });

  it('a module that is a class (as sonic-boom): constructed, called and instanceof through the stand-in', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'popsync-defer-'));
    dirs.push(dir);
    const pkg = join(dir, 'node_modules', 'boom');
    mkdirSync(pkg, { recursive: true });
    writeFileSync(join(pkg, 'package.json'), '{ "name": "boom", "main": "index.js" }\n');
    writeFileSync(
      join(pkg, 'index.js'),
      'globalThis.boomLoads = (globalThis.boomLoads ?? 0) + 1;\n' +
        'function Boom(n) { if (!(this instanceof Boom)) return new Boom(n); this.n = n; }\n' +
        'Boom.prototype.twice = function () { return 2 * this.n; };\n' +
        'module.exports = Boom;\nmodule.exports.Boom = Boom;\n',
    );
    // As pino's tools.js: the class required as it loads, `instanceof` asked before any is built.
    writeFileSync(
      join(dir, 'user.cjs'),
      "const Boom = require('boom');\nconst worker = require('node:worker_threads');\n" +
        'exports.isBoom = (x) => x instanceof Boom;\n' +
        'exports.make = (n) => new Boom(n);\nexports.call = (n) => Boom(n);\n' +
        'exports.named = (n) => new Boom.Boom(n);\n' +
        'exports.main = () => worker.isMainThread;\n',
    );
    writeFileSync(
      join(dir, 'entry.mjs'),
      "import user from './user.cjs';\nexport const loadsAtStart = globalThis.boomLoads ?? 0;\nexport { user };\n",
    );
    await bundleEntry(dir, [
      deferRequires({
        deferred: ['boom'],
        edits: {
          'user.cjs': [
            ["const worker = require('node:worker_threads');\n", ''],
            ['worker.isMainThread', "require('node:worker_threads').isMainThread"],
          ],
        },
      }),
    ]);
    const text = readFileSync(join(dir, 'out.mjs'), 'utf8');
    expect(text).not.toContain('twice');
    expect(text).not.toContain('const worker');
    (globalThis as Record<string, unknown>).boomLoads = 0;
    type User = Record<'isBoom' | 'make' | 'call' | 'named' | 'main', (x?: unknown) => unknown>;
    const b = (await import(pathToFileURL(join(dir, 'out.mjs')).href)) as { loadsAtStart: number; user: User };
    expect(b.loadsAtStart).toBe(0);
    expect(b.user.isBoom({})).toBe(false);
    expect((globalThis as Record<string, unknown>).boomLoads).toBe(0);
    const made = b.user.make(3) as { twice(): number };
    expect(made.twice()).toBe(6);
    expect(b.user.isBoom(made)).toBe(true);
    expect(b.user.isBoom({})).toBe(false);
    expect((b.user.call(4) as { twice(): number }).twice()).toBe(8);
    expect(b.user.isBoom(b.user.named(5))).toBe(true);
    expect((globalThis as Record<string, unknown>).boomLoads).toBe(1);
    expect(b.user.main()).toBe(true);
  });

  it('an edit whose text is no longer in the file fails the build', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'popsync-defer-'));
    dirs.push(dir);
    writeFileSync(join(dir, 'entry.mjs'), 'export const a = 1;\n');
    await expect(
      bundleEntry(dir, [deferRequires({ edits: { 'entry.mjs': [['const b = 2;', ''] as const] } })]),
    ).rejects.toThrow(/no longer has const b = 2;/);
  });
  it('edits a file reached through a node_modules that is a symlink (a copy of the checkout, pnpm)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'popsync-defer-'));
    dirs.push(dir);
    mkdirSync(join(dir, 'store', 'pkg'), { recursive: true });
    writeFileSync(join(dir, 'store', 'pkg', 'package.json'), '{ "name": "pkg", "main": "index.js" }\n');
    writeFileSync(join(dir, 'store', 'pkg', 'index.js'), "exports.said = 'as shipped';\n");
    mkdirSync(join(dir, 'app'));
    symlinkSync(join(dir, 'store'), join(dir, 'app', 'node_modules'));
    writeFileSync(join(dir, 'app', 'entry.mjs'), "export { said } from 'pkg';\n");
    await bundleEntry(join(dir, 'app'), [
      deferRequires({ edits: { 'node_modules/pkg/index.js': [["'as shipped'", "'as edited'"] as const] } }),
    ]);
    const text = readFileSync(join(dir, 'app', 'out.mjs'), 'utf8');
    expect(text).toContain('as edited');
    expect(text).not.toContain('as shipped');
  });

  it('a file to edit that the build never loads fails the build', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'popsync-defer-'));
    dirs.push(dir);
    writeFileSync(join(dir, 'entry.mjs'), 'export const a = 1;\n');
    writeFileSync(join(dir, 'unused.js'), 'const b = 2;\n');
    await expect(
      bundleEntry(dir, [deferRequires({ edits: { 'unused.js': [['const b = 2;', ''] as const] } })]),
    ).rejects.toThrow(/unused\.js was to be edited but was never loaded/);
  });

  it('a deferred module defers in turn what `within` names for it (as pino its transports)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'popsync-defer-'));
    dirs.push(dir);
    for (const [name, code] of [
      [
        'outer',
        "globalThis.outerLoads = (globalThis.outerLoads ?? 0) + 1;\nconst inner = require('inner');\n" +
          "exports.hello = () => 'hi';\nexports.useInner = () => inner.deep();\n",
      ],
      ['inner', "globalThis.innerLoads = (globalThis.innerLoads ?? 0) + 1;\nexports.deep = () => 'innermost';\n"],
    ] as const) {
      mkdirSync(join(dir, 'node_modules', name), { recursive: true });
      writeFileSync(join(dir, 'node_modules', name, 'package.json'), `{ "name": "${name}", "main": "index.js" }\n`);
      writeFileSync(join(dir, 'node_modules', name, 'index.js'), code);
    }
    writeFileSync(join(dir, 'entry.mjs'), "import outer from 'outer';\nexport { outer };\n");
    await bundleEntry(dir, [deferRequires({ deferred: ['outer'], within: { outer: { deferred: ['inner'] } } })]);
    expect(readFileSync(join(dir, 'out.mjs'), 'utf8')).not.toContain("'hi'");
    expect(readFileSync(join(dir, 'deferred', 'outer.cjs'), 'utf8')).not.toContain('innermost');
    expect(readFileSync(join(dir, 'deferred', 'deferred', 'inner.cjs'), 'utf8')).toContain('innermost');
    const g = globalThis as Record<string, unknown>;
    g.outerLoads = 0;
    g.innerLoads = 0;
    const b = (await import(pathToFileURL(join(dir, 'out.mjs')).href)) as {
      outer: { hello(): string; useInner(): string };
    };
    expect([g.outerLoads, g.innerLoads]).toEqual([0, 0]);
    expect(b.outer.hello()).toBe('hi');
    expect([g.outerLoads, g.innerLoads]).toEqual([1, 0]);
    expect(b.outer.useInner()).toBe('innermost');
    expect(b.outer.useInner()).toBe('innermost');
    expect([g.outerLoads, g.innerLoads]).toEqual([1, 1]);
  });
});
