/**
 * The V8 code cache bin/popsync.js compiles the program through (src/code-cache.ts), as a user's
 * runs meet it: a second run takes every file from it, also after a migration whose GC flags
 * changed as it ran (v8-flags.ts); a damaged file is refused by its SHA-256 before V8 reads it
 * (V8 itself crashed on one) and the run goes on; a directory or file that is not the user's alone
 * is never read; POPSYNC_NO_CODE_CACHE turns it off. What the cache did is read from
 * POPSYNC_DEBUG_CODE_CACHE=1's lines, never from timing.
 */
import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { Lab } from '../../lab/dovecot.js';
import { realisticMix } from '../../lab/corpus.js';
import { BIN, ROOT, runCli } from '../support/cli.js';
import { labArgs, useLab } from '../support/lab-fixture.js';

let lab: Lab;
let dir: string;
useLab('code-cache', {}, (l, d) => {
  lab = l;
  dir = d;
});

const VERSION = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;

const homes: string[] = [];
afterAll(() => {
  for (const h of homes) rmSync(h, { recursive: true, force: true });
});

/** A fresh XDG_CACHE_HOME, removed after the file; the cache is its popsync/ directory. */
function cacheHome(): string {
  const h = mkdtempSync(join(tmpdir(), 'popsync-cc-'));
  homes.push(h);
  return h;
}

/** `popsync --version` with the cache's debug lines; `umask` for the process when given. */
function version(home: string, env: Record<string, string> = {}, umask?: string) {
  const argv =
    umask === undefined
      ? [process.execPath, BIN]
      : ['sh', '-c', `umask ${umask} && exec "$0" "$1" --version`, process.execPath, BIN];
  const [cmd, ...args] = umask === undefined ? [...argv, '--version'] : argv;
  const r = spawnSync(cmd!, args, {
    encoding: 'utf8',
    // Only a run that would never end meets this.
    timeout: 60_000,
    env: {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      HOME: home,
      XDG_CACHE_HOME: home,
      POPSYNC_DEBUG_CODE_CACHE: '1',
      ...env,
    },
  });
  return { status: r.status, stdout: r.stdout, lines: r.stderr.split('\n').filter((l) => l !== '') };
}

/** The one cache file under `home`. */
function cacheFile(home: string): string {
  const files = readdirSync(join(home, 'popsync')).filter((f) => /^code-[0-9a-f]+\.bin$/.test(f));
  expect(files).toHaveLength(1);
  return join(home, 'popsync', files[0]!);
}

const USED_ALL = /^popsync: code cache: used for (\d+) of \1 files$/;

describe('the code cache', () => {
  it('is written by a first run, private whatever the umask, and a second run takes every file from it', () => {
    const home = cacheHome();
    const first = version(home, {}, '000');
    expect(first.status).toBe(0);
    expect(first.stdout.trim()).toBe(VERSION);
    expect(first.lines[0]).toBe(`popsync: code cache: absent (${join(home, 'popsync')})`);
    expect(first.lines[1]).toMatch(
      /^popsync: code cache: used for 0 of \d+ files; written code-[0-9a-f]+\.bin \(\d+ bytes/,
    );
    expect(first.lines).toHaveLength(2);
    expect(statSync(join(home, 'popsync')).mode & 0o777).toBe(0o700);
    expect(statSync(cacheFile(home)).mode & 0o777).toBe(0o600);
    // No temporary file left behind: written whole, then renamed.
    expect(readdirSync(join(home, 'popsync'))).toHaveLength(1);
    const second = version(home);
    expect(second.status).toBe(0);
    expect(second.stdout.trim()).toBe(VERSION);
    expect(second.lines).toHaveLength(1);
    expect(second.lines[0]).toMatch(USED_ALL);
    expect(Number(USED_ALL.exec(second.lines[0]!)![1])).toBeGreaterThan(5);
  });

  it('damaged on disk is refused by its checksum before V8 reads it; the run goes on and writes it anew', () => {
    const home = cacheHome();
    expect(version(home).status).toBe(0);
    const file = cacheFile(home);
    const bytes = readFileSync(file);
    // Eight bytes flipped in the middle of V8's data: what crashed V8 itself (V8_Fatal, SIGSEGV).
    for (let i = 0; i < 8; i++) bytes[Math.floor(bytes.length / 2) + i * 97]! ^= 0xff;
    writeFileSync(file, bytes);
    const damaged = version(home);
    expect(damaged.status).toBe(0);
    expect(damaged.stdout.trim()).toBe(VERSION);
    expect(damaged.lines[0]).toMatch(
      /^popsync: code cache: ignored: code-[0-9a-f]+\.bin: damaged \(its SHA-256 does not match\)$/,
    );
    expect(damaged.lines[1]).toMatch(/; written code-/);
    expect(version(home).lines[0]).toMatch(USED_ALL);
    // Cut short, or not a cache at all: the same.
    writeFileSync(file, readFileSync(file).subarray(0, 1000));
    const cut = version(home);
    expect(cut.status).toBe(0);
    expect(cut.lines[0]).toMatch(/: not a popsync code cache$|: damaged \(its SHA-256 does not match\)$/);
  });

  it("in a directory or file others can write, or not the user's, is never read, nor written there", () => {
    const home = cacheHome();
    expect(version(home).status).toBe(0);
    const cdir = join(home, 'popsync');
    const file = cacheFile(home);
    const before = readFileSync(file);
    chmodSync(cdir, 0o777);
    const openDir = version(home);
    expect(openDir.status).toBe(0);
    expect(openDir.stdout.trim()).toBe(VERSION);
    expect(openDir.lines[0]).toBe(`popsync: code cache: ignored: ${cdir} is writable by others (mode 777)`);
    expect(openDir.lines[1]).toMatch(/; not written: .* is writable by others \(mode 777\)$/);
    expect(readFileSync(file).equals(before)).toBe(true);
    chmodSync(cdir, 0o700);
    chmodSync(file, 0o666);
    const openFile = version(home);
    expect(openFile.status).toBe(0);
    expect(openFile.lines[0]).toBe(`popsync: code cache: ignored: ${file} is writable by others (mode 666)`);
    chmodSync(file, 0o600);
    expect(version(home).lines[0]).toMatch(USED_ALL);
    // Another user's (only root can give a file away; the tests run as root in CI and here).
    if (process.getuid?.() === 0) {
      chownSync(file, 4242, 4242);
      const theirs = version(home);
      expect(theirs.status).toBe(0);
      expect(theirs.lines[0]).toBe(`popsync: code cache: ignored: ${file} is owned by uid 4242, not 0`);
      chownSync(cdir, 4242, 4242);
      const theirDir = version(home);
      expect(theirDir.lines[0]).toBe(`popsync: code cache: ignored: ${cdir} is owned by uid 4242, not 0`);
    }
  });

  it('is neither read nor written with POPSYNC_NO_CODE_CACHE set', () => {
    const home = cacheHome();
    const off = version(home, { POPSYNC_NO_CODE_CACHE: '1' });
    expect(off.status).toBe(0);
    expect(off.stdout.trim()).toBe(VERSION);
    expect(off.lines).toEqual(['popsync: code cache: off (POPSYNC_NO_CODE_CACHE)']);
    expect(existsSync(join(home, 'popsync'))).toBe(false);
    expect(version(home).status).toBe(0);
    expect(version(home, { POPSYNC_NO_CODE_CACHE: '1' }).lines).toEqual([
      'popsync: code cache: off (POPSYNC_NO_CODE_CACHE)',
    ]);
  });

  it('that cannot be written (a home that is a file) costs nothing but itself: the run succeeds', () => {
    const home = cacheHome();
    writeFileSync(join(home, 'popsync'), 'not a directory\n');
    const r = version(home);
    expect(r.status).toBe(0);
    expect(r.stdout.trim()).toBe(VERSION);
    expect(r.lines[0]).toBe(`popsync: code cache: ignored: ${join(home, 'popsync')} is not a directory`);
    expect(r.lines[1]).toMatch(/; not written: /);
    expect(r.lines.join('\n')).not.toMatch(/\n\s+at /);
    // A directory that cannot be made, with ENOENT: Node's recursive mkdirSync looped there forever.
    const proc = version(home, { XDG_CACHE_HOME: '/proc/popsync-none' });
    expect(proc.status).toBe(0);
    expect(proc.stdout.trim()).toBe(VERSION);
    expect(proc.lines[1]).toMatch(/; not written: ENOENT: .*'\/proc\/popsync-none'$/);
  });

  it('a signal that comes while the program loads (synchronously) stops it before it starts: exit 130', () => {
    // The signal is sent from inside the load: the first file's top level is about to run.
    const preload = join(cacheHome(), 'signal-in-load.cjs');
    writeFileSync(
      preload,
      "const vm = require('node:vm');\n" +
        'const run = vm.Script.prototype.runInThisContext;\n' +
        'let sent = false;\n' +
        'vm.Script.prototype.runInThisContext = function (...args) {\n' +
        "  if (!sent) { sent = true; process.kill(process.pid, 'SIGTERM'); }\n" +
        '  return run.apply(this, args);\n' +
        '};\n',
    );
    const home = cacheHome();
    // Nothing listens on port 1: a run that went on would end in exit 4, "cannot connect".
    const r = spawnSync(
      process.execPath,
      [
        '--require',
        preload,
        BIN,
        'migrate',
        '--pop',
        'pop3://u@127.0.0.1:1',
        '--imap',
        'imap://u@127.0.0.1:1',
        '--pop-password-env',
        'PW',
        '--imap-password-env',
        'PW',
        '--journal',
        join(home, 'j.sqlite'),
      ],
      { encoding: 'utf8', timeout: 60_000, env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: home, PW: 'x' } },
    );
    expect(r.stderr).toBe('popsync: interrupted (SIGTERM) before it started; nothing was done\n');
    expect(r.status).toBe(130);
    expect(existsSync(join(home, 'j.sqlite'))).toBe(false);
  });

  it("is taken whole by a migration's second run: flags changed in a run are V8's defaults at compiles", async () => {
    // Two mailboxes, so that the second run copies as the first did (a first run's work, not a no-op).
    const home = cacheHome();
    const env = { PW: lab.password, XDG_CACHE_HOME: home, POPSYNC_DEBUG_CODE_CACHE: '1' };
    const lines: string[][] = [];
    for (const n of [1, 2]) {
      const pop = lab.newUser('src');
      const imap = lab.newUser('dst');
      await lab.seedPop3(pop, realisticMix(200, 20 + n));
      const r = await runCli(
        labArgs('migrate', lab, pop, imap, join(dir, `${pop}.sqlite`), ['--json', '--no-progress']),
        {
          env,
        },
      );
      expect(r.code).toBe(0);
      expect(JSON.parse(r.stdout)).toMatchObject({ copied: 200, failed: [] });
      lines.push(r.stderr.split('\n').filter((l) => l !== ''));
    }
    expect(lines[0]!.at(-1)).toMatch(/^popsync: code cache: used for 0 of \d+ files; written /);
    expect(lines[1]).toHaveLength(1);
    expect(lines[1]![0]).toMatch(USED_ALL);
  });
});
