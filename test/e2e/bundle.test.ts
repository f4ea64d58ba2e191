/**
 * bin/popsync.js runs the esbuild bundle (lab/bundle.ts), and the bundle keeps what src/ loads
 * lazily out of start-up: imapflow only once a run connects, ora and cli-progress only for a
 * terminal's progress display, the config file's yaml and zod only with a config file. A loader
 * hook (NODE_OPTIONS --import) lists every ES module the child loads; esbuild marks each bundled
 * package's code with a `// node_modules/<package>/...` comment, so the chunks that were loaded
 * tell which packages were. Also: the tests' hooked launcher runs its own bundle of the same
 * program, and the "not built yet" exit 70 from a checkout without dist/.
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, cpSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { Module } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Script } from 'node:vm';
import { describe, expect, it } from 'vitest';
import type { Lab } from '../../lab/dovecot.js';
import { realisticMix } from '../../lab/corpus.js';
import { BIN, ROOT, runCli } from '../support/cli.js';
import { labArgs, useLab } from '../support/lab-fixture.js';

let lab: Lab;
let dir: string;
useLab('bundle', {}, (l, d) => {
  lab = l;
  dir = d;
});

const HOOK = `
import { appendFileSync } from 'node:fs';
let file;
export function initialize(data) { file = data.file; }
export async function load(url, context, next) { appendFileSync(file, url + '\\n'); return next(url, context); }
export async function resolve(specifier, context, next) {
  const r = await next(specifier, context);
  if (r.url.startsWith('node:')) appendFileSync(file, r.url + '\\n');
  return r;
}
`;

let runs = 0;

/**
 * Runs popsync with the hook; returns the result, the checkout's files it loaded (as ES modules, or
 * as the program's CommonJS files, which src/code-cache.ts compiles and puts in require's cache)
 * and those it required (require's cache at exit: the deferred files of dist/bundle/deferred/), relative,
 * and the public built-in modules Node loaded (process.moduleLoadList at exit: `dns`, `zlib`...).
 */
async function runTraced(args: string[], env: Record<string, string> = {}, hooks?: { now: string }) {
  const n = ++runs;
  const list = join(dir, `loaded-${n}.txt`);
  const requiredList = join(dir, `required-${n}.txt`);
  const builtinList = join(dir, `builtins-${n}.txt`);
  const preload = join(dir, `trace-${n}.mjs`);
  writeFileSync(list, '');
  writeFileSync(requiredList, '');
  writeFileSync(builtinList, '');
  writeFileSync(
    preload,
    "import { appendFileSync } from 'node:fs';\n" +
      "import { createRequire, register } from 'node:module';\n" +
      `register('data:text/javascript,' + ${JSON.stringify(encodeURIComponent(HOOK))}, ` +
      `{ data: { file: ${JSON.stringify(list)} } });\n` +
      "process.on('exit', () => appendFileSync(" +
      `${JSON.stringify(requiredList)}, Object.keys(createRequire(import.meta.url).cache).join('\\n')));\n` +
      "process.on('exit', () => appendFileSync(" +
      `${JSON.stringify(builtinList)}, process.moduleLoadList.join('\\n')));\n`,
  );
  const r = await runCli(args, { env: { NODE_OPTIONS: `--import=${preload}`, ...env }, hooks });
  const relative = (p: string): string => p.slice(ROOT.length).replace(/^\//, '');
  const loaded = readFileSync(list, 'utf8')
    .split('\n')
    .filter((u) => u.startsWith('file://'))
    .map((u) => fileURLToPath(u))
    .filter((p) => p.startsWith(ROOT))
    .map(relative);
  const required = readFileSync(requiredList, 'utf8')
    .split('\n')
    .filter((p) => p.startsWith(ROOT))
    .map(relative);
  loaded.push(...required.filter((f) => /^dist\/bundle\/[^/]+\.cjs$/.test(f)));
  const builtins = readFileSync(builtinList, 'utf8')
    .split('\n')
    .filter((m) => m.startsWith('NativeModule ') && !m.startsWith('NativeModule internal/'))
    .map((m) => m.slice('NativeModule '.length));
  // Built-ins loaded by an ES import (through the loader hook), not by require().
  const importedBuiltins = [
    ...new Set(
      readFileSync(list, 'utf8')
        .split('\n')
        .filter((u) => u.startsWith('node:')),
    ),
  ];
  return { r, loaded, required, builtins, importedBuiltins };
}

/** The deferred files of dist/bundle/ a run required (lab/defer-requires.ts). */
const deferredIn = (required: string[]): string[] =>
  required.filter((f) => f.startsWith('dist/bundle/deferred/')).map((f) => f.slice('dist/bundle/deferred/'.length));

/** The npm packages whose code the loaded bundle files hold. */
function packagesIn(files: string[]): Set<string> {
  const found = new Set<string>();
  for (const f of files) {
    for (const m of readFileSync(join(ROOT, f), 'utf8').matchAll(/^\/\/ node_modules\/((?:@[^/]+\/)?[^/]+)\//gm)) {
      found.add(m[1]!);
    }
  }
  return found;
}

/** popsync's own source files whose code the loaded bundle files hold (esbuild's `// src/...` marks). */
function sourcesIn(files: string[]): Set<string> {
  const found = new Set<string>();
  for (const f of files) {
    for (const m of readFileSync(join(ROOT, f), 'utf8').matchAll(/^\/\/ (src\/\S+\.ts)$/gm)) found.add(m[1]!);
  }
  return found;
}

/** Report renderers: loaded by a run that writes a report (report-file.ts) or by `report merge`. */
const RENDERERS = [
  'batch-render',
  'batch-html',
  'batch-text',
  'plan-render',
  'plan-html',
  'plan-csv',
  'plan-stats',
].map((m) => `src/report/${m}.ts`);

const LAZY = ['imapflow', 'ora', 'cli-progress', 'yaml', 'zod'];

describe('the bundle bin/popsync.js runs', () => {
  it('--version loads only the bundle, and none of the lazily loaded packages', async () => {
    const { r, loaded, required, builtins, importedBuiltins } = await runTraced(['--version']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe(
      (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version,
    );
    expect(loaded).toContain('dist/bundle/popsync.cjs');
    // better-sqlite3 is the one package left out of the bundle (its native binding).
    const outside = loaded.filter((f) => !/^(bin\/popsync\.js$|dist\/bundle\/|node_modules\/better-sqlite3\/)/.test(f));
    expect(outside).toEqual([]);
    const packages = packagesIn(loaded.filter((f) => f.startsWith('dist/bundle/')));
    // commander is bundled and always loaded: a scan that found nothing would not pass this.
    expect(packages).toContain('commander');
    expect(LAZY.filter((p) => packages.has(p))).toEqual([]);
    // pino is a deferred file of its own, loaded by the first line logged (src/cli/logger.ts).
    expect(['pino', 'sonic-boom', 'thread-stream'].filter((p) => packages.has(p))).toEqual([]);
    // require's cache is read: of node_modules, only better-sqlite3's native addon is in it, its
    // JavaScript being bundled (lab/sqlite-bundled.ts): no lib/*.js, no `bindings`.
    expect(required.filter((f) => f.startsWith('node_modules/'))).toEqual([
      'node_modules/better-sqlite3/build/Release/better_sqlite3.node',
    ]);
    expect(deferredIn(required)).toEqual([]);
    // Built-ins are required, not imported (lab/require-builtins.ts): only the banner's node:module,
    // which gives each file its require, goes through Node's ES module loader.
    expect(importedBuiltins).toEqual(['node:module']);
    // A password or token command (node:child_process, with dgram) and the password prompt
    // (node:readline) load their modules when used, and commander's executable subcommands too.
    expect(builtins).toContain('fs');
    expect(builtins.filter((m) => /^(child_process|dgram|readline)(\/|$)/.test(m))).toEqual([]);
  });

  it('a run that logs a warning loads pino then, without its transports or sonic-boom', async () => {
    const pop = lab.newUser('src');
    const imap = lab.newUser('dst');
    await lab.seedPop3(pop, realisticMix(2, 12));
    const pw = join(dir, `pw-${pop}`);
    writeFileSync(pw, `${lab.password}\n`, { mode: 0o644 });
    const args = labArgs('migrate', lab, pop, imap, join(dir, `${pop}.sqlite`), ['--json', '--no-progress']);
    const at = args.indexOf('--pop-password-env');
    args.splice(at, 2, '--pop-password-file', pw);
    const { r, required } = await runTraced(args, { PW: lab.password });
    expect(r.code).toBe(0);
    expect(r.stderr).toContain(`popsync: warning: password file ${pw} can be read by other users`);
    expect(deferredIn(required)).toEqual(['pino.cjs']);
  });

  it('a migration loads imapflow once it connects, and no progress display with --no-progress', async () => {
    const pop = lab.newUser('src');
    const imap = lab.newUser('dst');
    await lab.seedPop3(pop, realisticMix(20, 11));
    const { r, loaded, required, builtins, importedBuiltins } = await runTraced(
      labArgs('migrate', lab, pop, imap, join(dir, `${pop}.sqlite`), ['--json', '--no-progress']),
      { PW: lab.password },
    );
    expect(importedBuiltins).toEqual(['node:module']);
    expect(builtins.filter((m) => /^(child_process|dgram|readline)(\/|$)/.test(m))).toEqual([]);
    const sources = sourcesIn(loaded.filter((f) => f.startsWith('dist/bundle/')));
    expect(sources).toContain('src/engine/copier.ts');
    expect(RENDERERS.filter((m) => sources.has(m))).toEqual([]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ copied: 20, failed: [] });
    const packages = packagesIn(loaded.filter((f) => f.startsWith('dist/bundle/')));
    expect(packages).toContain('imapflow');
    // imapflow imports node:dns for proxies (its load reads /etc/resolv.conf and nsswitch.conf)
    // and node:zlib for COMPRESS: loaded at their first use, which this server and popsync never
    // ask for (lab/bundle.ts). moduleLoadList was read: net, which every run loads, is in it.
    expect(builtins).toContain('net');
    expect(builtins.filter((m) => m === 'dns' || m === 'zlib')).toEqual([]);
    // Nor imapflow's download(), which popsync never calls, with the MIME parser it imports, nor
    // the commands it sends rarely or never: each a chunk of its own, loaded when first run.
    expect(packages).not.toContain('@zone-eu/mailsplit');
    const lazyImapflow = readdirSync(join(ROOT, 'dist/bundle')).filter((f) =>
      /^(download|list|search|idle|quota|authenticate)-\w+\.cjs$/.test(f),
    );
    expect(lazyImapflow.map((f) => f.split('-')[0]).sort()).toEqual([
      'authenticate',
      'download',
      'idle',
      'list',
      'quota',
      'search',
    ]);
    expect(loaded.filter((f) => lazyImapflow.includes(f.slice('dist/bundle/'.length)))).toEqual([]);
    // It logged nothing: its logger (and imapflow's, the same) never built a pino logger.
    expect(deferredIn(required)).toEqual([]);
    expect(['ora', 'cli-progress', 'yaml', 'zod'].filter((p) => packages.has(p))).toEqual([]);
  });

  it("the tests' hooked launcher runs the same program, bundled with its hooks", async () => {
    const { r, loaded } = await runTraced(['--version'], {}, { now: '2030-01-01T00:00:00Z' });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(loaded).toContain('dist/test-bundle/hooked-program.js');
    const outside = loaded.filter(
      (f) => !/^(test\/support\/popsync-with-hooks\.mjs$|dist\/test-bundle\/|node_modules\/better-sqlite3\/)/.test(f),
    );
    expect(outside).toEqual([]);
  });

  it('a checkout that was never built says so: exit 70 and what to run', () => {
    const bare = join(dir, 'unbuilt');
    mkdirSync(join(bare, 'bin'), { recursive: true });
    copyFileSync(BIN, join(bare, 'bin', 'popsync.js'));
    writeFileSync(join(bare, 'package.json'), '{ "type": "module" }\n');
    const r = spawnSync(process.execPath, [join(bare, 'bin', 'popsync.js'), '--version'], { encoding: 'utf8' });
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe('popsync: not built yet. Run `npm run build` first.\n');
    expect(r.status).toBe(70);
  });

  it('a build whose npm dependencies are missing names the package, not a build', () => {
    // The program as the tarball ships it, without the node_modules npm install puts beside it.
    const bare = join(dir, 'no-dependencies');
    mkdirSync(join(bare, 'bin'), { recursive: true });
    copyFileSync(BIN, join(bare, 'bin', 'popsync.js'));
    copyFileSync(join(ROOT, 'package.json'), join(bare, 'package.json'));
    cpSync(join(ROOT, 'dist', 'bundle'), join(bare, 'dist', 'bundle'), { recursive: true });
    const r = spawnSync(process.execPath, [join(bare, 'bin', 'popsync.js'), '--version'], { encoding: 'utf8' });
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe(
      'popsync: the package better-sqlite3 it needs is not installed. Install popsync with npm ' +
        '(npm install -g --allow-scripts=better-sqlite3 ./popsync-<version>.tgz), or run `npm ci` in a checkout.\n',
    );
    expect(r.status).toBe(70);
  });

  it('a native addon that does not load (another Node.js, a broken build) is exit 70 and says so, no stack', () => {
    // The program as the tarball ships it, beside a better-sqlite3 whose addon Node cannot load:
    // what an install made under Node 20 meets after an upgrade to Node 22 (ERR_DLOPEN_FAILED).
    const bare = join(dir, 'bad-addon');
    mkdirSync(join(bare, 'bin'), { recursive: true });
    copyFileSync(BIN, join(bare, 'bin', 'popsync.js'));
    copyFileSync(join(ROOT, 'package.json'), join(bare, 'package.json'));
    cpSync(join(ROOT, 'dist', 'bundle'), join(bare, 'dist', 'bundle'), { recursive: true });
    const release = join(bare, 'node_modules', 'better-sqlite3', 'build', 'Release');
    mkdirSync(release, { recursive: true });
    writeFileSync(join(release, 'better_sqlite3.node'), 'not an ELF file\n');
    const r = spawnSync(process.execPath, [join(bare, 'bin', 'popsync.js'), '--version'], { encoding: 'utf8' });
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(
      /^popsync: the native part of better-sqlite3 it needs could not be loaded: \S*better_sqlite3\.node: .+\n/,
    );
    expect(r.stderr).toContain('\n  hint: it is built for one Node.js version and platform; reinstall popsync with');
    expect(r.stderr).not.toMatch(/\n\s+at /);
    expect(r.stderr.trimEnd().split('\n')).toHaveLength(2);
    expect(r.status).toBe(70);
  });

  it('better-sqlite3 installed without its addon (install script not run) says that, not "not installed"', () => {
    // What `npm install --ignore-scripts` leaves: the package's files, and no build/ beside them.
    const bare = join(dir, 'no-addon');
    mkdirSync(join(bare, 'bin'), { recursive: true });
    copyFileSync(BIN, join(bare, 'bin', 'popsync.js'));
    copyFileSync(join(ROOT, 'package.json'), join(bare, 'package.json'));
    cpSync(join(ROOT, 'dist', 'bundle'), join(bare, 'dist', 'bundle'), { recursive: true });
    mkdirSync(join(bare, 'node_modules', 'better-sqlite3'), { recursive: true });
    copyFileSync(
      join(ROOT, 'node_modules', 'better-sqlite3', 'package.json'),
      join(bare, 'node_modules', 'better-sqlite3', 'package.json'),
    );
    const r = spawnSync(process.execPath, [join(bare, 'bin', 'popsync.js'), '--version'], { encoding: 'utf8' });
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(
      /^popsync: the native part of better-sqlite3 it needs could not be loaded: \S*better_sqlite3\.node is missing: /,
    );
    expect(r.stderr).toContain('better-sqlite3 was installed without running its install script, or the script failed');
    expect(r.stderr).not.toContain('is not installed');
    expect(r.stderr).toContain('--allow-scripts=better-sqlite3');
    expect(r.status).toBe(70);
  });

  it('every file of the program is strict mode code, as the ES modules it is built from are', () => {
    // The CommonJS files (lab/commonjs-chunks.ts) are compiled in a function as Node's require
    // does (src/code-cache.ts); a `with` statement is a syntax error only in strict mode code, so
    // compiling each with one added, without running it, tells a strict file from a sloppy one.
    const bundle = join(ROOT, 'dist', 'bundle');
    const files = readdirSync(bundle).filter((f) => f.endsWith('.cjs'));
    expect(files).toContain('popsync.cjs');
    const sloppy = files.filter((f) => {
      try {
        new Script(Module.wrap(`${readFileSync(join(bundle, f), 'utf8')}\n;with ({}) {}\n`), { filename: f });
        return true;
      } catch (e) {
        if (e instanceof SyntaxError && /strict mode/i.test(e.message)) return false;
        throw e;
      }
    });
    expect(sloppy).toEqual([]);
  });

  it('the process ends when the command is done, whatever is left in the event loop, with its exit code', () => {
    // A preload that keeps the event loop alive forever stands for a late handle (a socket that is
    // never closed, a library's timer). The timeout only catches a process that would never end.
    const preload = join(dir, 'keep-alive.cjs');
    writeFileSync(preload, 'setInterval(() => {}, 1e9);\n');
    const run = (args: string[]) =>
      spawnSync(process.execPath, ['--require', preload, BIN, ...args], { encoding: 'utf8', timeout: 60_000 });
    const version = run(['--version']);
    expect(version.signal).toBeNull();
    expect(version.status).toBe(0);
    expect(version.stdout.trim()).toBe(
      (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version,
    );
    const usage = run(['migrate', '--bogus']);
    expect(usage.signal).toBeNull();
    expect(usage.status).toBe(2);
    expect(usage.stderr).toContain("unknown option '--bogus'");
  });
});
