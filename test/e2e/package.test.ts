/**
 * popsync as a user installs it: `npm pack` a copy of the sources, `npm install -g` the tarball
 * into an empty prefix, and run the installed binary from a directory that is not the checkout
 * - `--version`, the man page, and a real migration against the Dovecot lab.
 *
 * The copy keeps `npm pack` (whose prepack builds dist/) from rewriting the checkout's dist/
 * under other test files that are running it. The install uses the npm cache (--prefer-offline);
 * the registry is only asked for what the cache lacks.
 *
 * better-sqlite3 compiles from source when prebuild-install cannot download its binary (no
 * GitHub here), which takes minutes on a loaded 2-core machine. So that this test stays about
 * install and not about a C++ compiler, it puts the binary this checkout already built where
 * prebuild-install looks for a download it made earlier (~/.npm/_prebuilds, the name derived as
 * in prebuild-install's util.cachedPrebuild) - only when nothing is there yet. Without it the
 * test still passes, slowly: hence the long timeouts.
 */
import { spawnSync } from 'node:child_process';
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  symlinkSync,
} from 'node:fs';
import { createHash } from 'node:crypto';
import { homedir, tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Lab } from '../../lab/dovecot.js';
import { realisticMix } from '../../lab/corpus.js';
import { ROOT } from '../support/cli.js';
import { useLab } from '../support/lab-fixture.js';
import { destinationMessages, digests, sourceMessages } from '../support/mailboxes.js';

const INSTALL_TIMEOUT = 600_000;

let lab: Lab;
let labDir: string;
useLab('package', {}, (l, d) => {
  lab = l;
  labDir = d;
});

let work: string;
let tarball: string;
let prefix: string;
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string; name: string };

/** npm and the installed binary see a plain user environment, not vitest's or npm test's. */
function userEnv(extra: Record<string, string> = {}): Record<string, string> {
  return {
    PATH: [join(prefix ?? '/nonexistent', 'bin'), dirname(process.execPath), '/usr/bin', '/bin'].join(':'),
    HOME: homedir(),
    NO_COLOR: '1',
    ...extra,
  };
}

function run(cmd: string, args: string[], cwd: string, env: Record<string, string> = userEnv()) {
  const r = spawnSync(cmd, args, { cwd, env, encoding: 'utf8', timeout: INSTALL_TIMEOUT, maxBuffer: 64 * 1024 * 1024 });
  if (r.error) throw r.error;
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function seedPrebuildCache(): void {
  const sqlite = JSON.parse(readFileSync(join(ROOT, 'node_modules/better-sqlite3/package.json'), 'utf8')) as {
    version: string;
  };
  const binary = join(ROOT, 'node_modules/better-sqlite3/build/Release/better_sqlite3.node');
  if (!existsSync(binary)) return;
  const platform = `${process.platform}-${process.arch}`;
  const asset = `better-sqlite3-v${sqlite.version}-node-v${process.versions.modules}-${platform}`;
  const url = `https://github.com/WiseLibs/better-sqlite3/releases/download/v${sqlite.version}/${asset}.tar.gz`;
  const cacheDir = join(homedir(), '.npm', '_prebuilds');
  const cached = join(cacheDir, `${createHash('sha512').update(url).digest('hex').slice(0, 6)}-${basename(url)}`);
  if (existsSync(cached)) return;
  mkdirSync(cacheDir, { recursive: true });
  const tmp = `${cached}.${process.pid}.tmp`;
  const r = run(
    'tar',
    ['-czf', tmp, '-C', join(ROOT, 'node_modules/better-sqlite3'), 'build/Release/better_sqlite3.node'],
    ROOT,
  );
  if (r.code === 0) renameSync(tmp, cached);
  else rmSync(tmp, { force: true });
}

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'popsync-package-'));
  const src = join(work, 'src-copy');
  mkdirSync(src);
  for (const f of ['package.json', 'package-lock.json', 'tsconfig.json', 'README.md', 'LICENSE', 'bin', 'src', 'lab'])
    cpSync(join(ROOT, f), join(src, f), { recursive: true });
  symlinkSync(join(ROOT, 'node_modules'), join(src, 'node_modules'));
  const out = join(work, 'out');
  mkdirSync(out);
  const packed = run('npm', ['pack', '--pack-destination', out], src);
  expect(packed.code, packed.stderr).toBe(0);
  tarball = join(out, readdirSync(out).find((f) => f.endsWith('.tgz'))!);

  seedPrebuildCache();
  // npm reads its global npmrc from <prefix>/etc/npmrc, so --prefix alone would drop the machine's
  // own (a build machine's registry CA is set there: without it every registry request failed TLS
  // and the install hung until the timeout). Read where it is before the prefix changes it.
  const globalConfig = run('npm', ['config', 'get', 'globalconfig'], work).stdout.trim();
  prefix = join(work, 'prefix');
  const installed = run(
    'npm',
    [
      'install',
      '-g',
      '--prefix',
      prefix,
      '--globalconfig',
      globalConfig,
      '--prefer-offline',
      '--no-audit',
      '--no-fund',
      '--allow-scripts=better-sqlite3',
      tarball,
    ],
    work,
  );
  expect(installed.code, installed.stderr).toBe(0);
}, INSTALL_TIMEOUT);

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('the packed and installed popsync', () => {
  it('ships the built program, man page and licence, and no sources, lab or test code', () => {
    const listing = run('tar', ['-tzf', tarball], work);
    const files = listing.stdout.trim().split('\n');
    for (const f of [
      'package/bin/popsync.js',
      'package/dist/bundle/popsync.cjs',
      'package/dist/bundle/code-cache.cjs',
      'package/dist/bundle/young-generation.cjs',
      'package/man/popsync.1',
      'package/LICENSE',
      'package/README.md',
      'package/package.json',
    ]) {
      expect(files).toContain(f);
    }
    expect(files.filter((f) => /^package\/(src|test|lab|dist\/lab)\/|\.map$|\.ts$/.test(f))).toEqual([]);
    // bin/popsync.js runs the bundle (lab/bundle.ts); tsc's module-per-file dist/ is for the tests.
    expect(files.filter((f) => f.startsWith('package/dist/') && !f.startsWith('package/dist/bundle/'))).toEqual([]);
    // Installing must not build: nothing in the installed manifest runs at install time.
    const manifest = JSON.parse(readFileSync(join(prefix, 'lib/node_modules/popsync/package.json'), 'utf8')) as {
      scripts?: Record<string, string>;
    };
    for (const hook of ['preinstall', 'install', 'postinstall', 'prepare'])
      expect(manifest.scripts?.[hook]).toBeUndefined();
  });

  it('reports the package version and has its man page installed', () => {
    const v = run(join(prefix, 'bin', 'popsync'), ['--version'], work);
    expect(v.code).toBe(0);
    expect(v.stdout.trim()).toBe(pkg.version);
    const page = readFileSync(join(prefix, 'share/man/man1/popsync.1'), 'utf8');
    expect(page).toContain(`"popsync ${pkg.version}"`);
    expect(page).toContain('\\-\\-pop\\-password\\-env');
  });

  it('runs through npx from the tarball, without installing it', () => {
    const r = run(
      'npx',
      ['--yes', '--prefer-offline', '--allow-scripts=better-sqlite3', '--package', tarball, 'popsync', '--version'],
      work,
    );
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe(pkg.version);
  });

  it('migrates a real mailbox, run from outside the checkout', async () => {
    const pop = lab.newUser('src');
    const imap = lab.newUser('dst');
    await lab.seedPop3(pop, realisticMix(30, 3));
    const source = await sourceMessages(lab, pop);
    const r = run(
      join(prefix, 'bin', 'popsync'),
      [
        'migrate',
        '--pop',
        `pop3://${pop}@127.0.0.1:${lab.pop3.port}`,
        '--pop-ca-file',
        lab.caFile,
        '--imap',
        `imap://${imap}@127.0.0.1:${lab.imap.port}`,
        '--imap-ca-file',
        lab.caFile,
        '--pop-password-env',
        'PW',
        '--imap-password-env',
        'PW',
        '--journal',
        join(labDir, `${pop}.sqlite`),
        '--json',
        '--no-progress',
      ],
      work,
      userEnv({ PW: lab.password }),
    );
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ copied: source.length, failed: [] });
    expect(digests((await destinationMessages(lab, imap)).map((m) => m.body))).toEqual(digests(source));
  });
});
