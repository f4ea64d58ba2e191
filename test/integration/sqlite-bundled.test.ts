/**
 * lab/sqlite-bundled.ts bundles better-sqlite3's JavaScript and leaves its native addon in
 * node_modules: the two must be one version, so the build refuses a package.json whose dependency
 * is not the exact version installed (a range would let npm install another beside the bundle).
 * What the bundle loads at run time is checked through the binary in test/e2e/bundle.test.ts.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { sqliteBundled } from '../../lab/sqlite-bundled.js';

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** A checkout whose package.json depends on better-sqlite3 `wanted`, with `installed` in node_modules. */
function checkout(wanted: string, installed: string): string {
  const root = mkdtempSync(join(tmpdir(), 'popsync-sqlite-bundled-'));
  dirs.push(root);
  writeFileSync(join(root, 'package.json'), JSON.stringify({ dependencies: { 'better-sqlite3': wanted } }));
  mkdirSync(join(root, 'node_modules', 'better-sqlite3', 'lib'), { recursive: true });
  writeFileSync(join(root, 'node_modules', 'better-sqlite3', 'package.json'), JSON.stringify({ version: installed }));
  writeFileSync(join(root, 'node_modules', 'better-sqlite3', 'lib', 'database.js'), '');
  return root;
}

describe('sqliteBundled', () => {
  it('takes a dependency on the exact version installed', () => {
    expect(sqliteBundled(checkout('12.11.1', '12.11.1')).name).toBe('sqlite-bundled');
  });

  it('refuses a range, or another version than the one installed', () => {
    expect(() => sqliteBundled(checkout('^12.11.1', '12.11.1'))).toThrow(/needs one exact version/);
    expect(() => sqliteBundled(checkout('12.11.1', '12.12.0'))).toThrow(/node_modules has 12.12.0/);
  });
});
