/**
 * The deployment files the README shows: the systemd units pass `systemd-analyze verify` and
 * are the ones printed in the README, and the Dockerfile builds the way the packaging test
 * installs (npm ci, npm pack, npm install -g of the tarball) into a non-root image with a
 * /state volume. No Docker engine runs here, so the Dockerfile is checked, not built.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from '../support/cli.js';

const UNITS = join(ROOT, 'deploy', 'systemd');
const unitFiles = readdirSync(UNITS).filter((f) => /\.(service|timer)$/.test(f));
const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
const hasSystemdAnalyze = spawnSync('systemd-analyze', ['--version']).status === 0;

describe('systemd units', () => {
  it('are the oneshot service, its timer and the long-running service', () => {
    expect(unitFiles.sort()).toEqual(['popsync-alice-every.service', 'popsync-alice.service', 'popsync-alice.timer']);
  });

  it.skipIf(!hasSystemdAnalyze).each(unitFiles)(
    '%s passes systemd-analyze verify (system and user manager)',
    (unit) => {
      const runtime = mkdtempSync(join(tmpdir(), 'popsync-units-'));
      try {
        for (const scope of [[], ['--user']]) {
          const r = spawnSync('systemd-analyze', ['verify', ...scope, join(UNITS, unit)], {
            encoding: 'utf8',
            env: { PATH: process.env.PATH ?? '/usr/bin:/bin', XDG_RUNTIME_DIR: runtime },
          });
          // verify exits 0 but still prints what it ignored (unknown keys, bad values).
          expect({ scope, status: r.status, stderr: r.stderr }).toEqual({ scope, status: 0, stderr: '' });
        }
      } finally {
        rmSync(runtime, { recursive: true, force: true });
      }
    },
  );

  it.each(unitFiles)('%s is printed in the README as it is in deploy/systemd', (unit) => {
    // The README shows the unit without its first comment line, under a "# ~/.config/..." line.
    const body = readFileSync(join(UNITS, unit), 'utf8').split('\n').slice(1).join('\n').trim();
    expect(readme).toContain(`# ~/.config/systemd/user/${unit}\n${body}`);
  });
});

describe('Dockerfile', () => {
  const text = readFileSync(join(ROOT, 'Dockerfile'), 'utf8').replace(/\\\n\s*/g, ' ');
  const lines = text.split('\n').filter((l) => l.trim() !== '' && !l.startsWith('#'));
  const stages: string[][] = [];
  for (const l of lines) {
    if (/^FROM /i.test(l)) stages.push([]);
    stages.at(-1)?.push(l);
  }
  const [build, runtime] = stages as [string[], string[]];

  it('has a build stage and a runtime stage, both on Node 20 slim', () => {
    expect(stages).toHaveLength(2);
    expect(build[0]).toBe('FROM node:20-slim AS build');
    expect(runtime[0]).toBe('FROM node:20-slim');
  });

  it('builds with the npm commands the packaging test runs', () => {
    const runs = build.filter((l) => l.startsWith('RUN ')).join('\n');
    expect(runs).toContain('npm ci --no-audit --no-fund');
    const install = 'npm install -g --prefix /opt/popsync --no-audit --no-fund --allow-scripts=better-sqlite3';
    expect(runs).toMatch(new RegExp(String.raw`npm pack --pack-destination (\S+)\n.*${install} \1/popsync-\*\.tgz`));
    // The package test installs with the same flags, plus --prefer-offline (it runs offline) and
    // --globalconfig (the build machine's own npmrc, which --prefix would drop; an image's npm has
    // nothing there to lose). Compared without layout: the formatter wraps a long argument list.
    const packageTest = readFileSync(join(ROOT, 'test/e2e/package.test.ts'), 'utf8')
      .replace(/\s+/g, '')
      .replace(/,([\])])/g, '$1');
    expect(packageTest).toContain(
      "['install','-g','--prefix',prefix,'--globalconfig',globalConfig,'--prefer-offline','--no-audit'," +
        "'--no-fund','--allow-scripts=better-sqlite3',tarball]",
    );
    expect(packageTest).toContain("run('npm',['pack','--pack-destination',out],src)");
  });

  it('copies only files that exist and that .dockerignore lets through', () => {
    const ignored = readFileSync(join(ROOT, '.dockerignore'), 'utf8')
      .split('\n')
      .filter((l) => l !== '' && !l.startsWith('#'));
    for (const l of build.filter((x) => x.startsWith('COPY ') && !x.includes('--from'))) {
      const sources = l.split(/\s+/).slice(1, -1);
      for (const s of sources) {
        expect(existsSync(join(ROOT, s)), s).toBe(true);
        expect(ignored, s).not.toContain(s);
      }
    }
  });

  it('runs popsync as a non-root user with journals on a /state volume', () => {
    const user = runtime.find((l) => l.startsWith('USER '))?.split(/\s+/)[1];
    expect(user).toBeDefined();
    expect(['root', '0']).not.toContain(user);
    expect(runtime).toContain('VOLUME /state');
    expect(runtime).toContain('ENTRYPOINT ["popsync"]');
    expect(runtime.join('\n')).toMatch(/XDG_STATE_HOME=\/state/);
    expect(runtime.join('\n')).toMatch(/COPY --from=build \/opt\/popsync \/opt\/popsync/);
  });
});
