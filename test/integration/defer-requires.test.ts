/**
 * lab/defer-requires.ts, the esbuild plugin lab/bundle.ts uses for encoding-japanese and socks:
 * a small CommonJS package that counts its own loads, imported the ways imapflow and libmime
 * import those two (a named and a default ES import, a require), bundled with and without the
 * plugin, and the bundle imported. With it, loading the bundle leaves the package unloaded and
 * the first use loads it, once, with every export intact; without it (the control) the package
 * loads with the bundle. Here, not in test/unit: esbuild runs as a child process.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
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

type Bundled = { loadsAtStart: number; use: () => unknown[]; loads: () => number };

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
  writeFileSync(
    join(dir, 'entry.mjs'),
    "import { answer, Maker } from 'heavy';\n" +
      "import heavy from 'heavy';\n" +
      "import cjsUser from './cjs-user.cjs';\n" +
      `export const loadsAtStart = globalThis[${JSON.stringify(counter)}] ?? 0;\n` +
      `export const loads = () => globalThis[${JSON.stringify(counter)}] ?? 0;\n` +
      'export const use = () => [answer(), Maker.make(), heavy.answer(), cjsUser.use()];\n',
  );
  await build({
    absWorkingDir: dir,
    entryPoints: ['entry.mjs'],
    outfile: join(dir, 'out.mjs'),
    bundle: true,
    format: 'esm',
    platform: 'node',
    logLevel: 'silent',
    plugins,
  });
  // The plugin loaded the package here to read its export names: only the bundle's loads count.
  (globalThis as Record<string, unknown>)[counter] = 0;
  return (await import(pathToFileURL(join(dir, 'out.mjs')).href)) as Bundled;
}

describe('deferRequires', () => {
  it('loads the package at its first use, not with the bundle; every export works', async () => {
    const b = await bundleFixture('deferredLoads', [deferRequires(['heavy'])]);
    expect(b.loadsAtStart).toBe(0);
    expect(b.loads()).toBe(0);
    expect(b.use()).toEqual([42, 'Maker', 42, 42]);
    expect(b.use()).toEqual([42, 'Maker', 42, 42]);
    expect(b.loads()).toBe(1);
  });

  it('control: without the plugin the package loads with the bundle', async () => {
    const b = await bundleFixture('plainLoads', []);
    expect(b.loadsAtStart).toBe(1);
    expect(b.use()).toEqual([42, 'Maker', 42, 42]);
  });
});
