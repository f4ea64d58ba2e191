/**
 * The suite cleans up after itself: a child popsync the tests give no HOME gets one in the
 * run's scratch root (test/support/scratch-root.ts), and nothing of it is left in the temp dir
 * once vitest ends. Vitest ends its workers without their 'exit' handlers, so a worker's own
 * clean-up never ran and one popsync-home-* per worker piled up in /tmp (438 of them).
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ROOT } from '../support/cli.js';

const temp = mkdtempSync(join(tmpdir(), 'popsync-scratch-check-'));
afterAll(() => rmSync(temp, { recursive: true, force: true }));

describe('the test suite', () => {
  it('leaves no popsync scratch dir behind in the temp dir, and removes those of runs that were killed', () => {
    // A root left by a vitest that was killed (its pid gone), and one of a run still going (ours).
    const ended = spawnSync(process.execPath, ['-e', '']).pid;
    const killedRun = join(temp, `popsync-tests-${ended}-0123456789ab`);
    const liveRun = join(temp, `popsync-tests-${process.pid}-0123456789ab`);
    for (const root of [killedRun, liveRun]) mkdirSync(join(root, 'home-x'), { recursive: true });
    // A nested vitest run of one test that runs popsync without a HOME, in a temp dir of its own.
    const run = spawnSync(
      process.execPath,
      [
        join(ROOT, 'node_modules', 'vitest', 'vitest.mjs'),
        'run',
        'test/e2e/cli-bad-input.test.ts',
        '-t',
        'keeps out of the home',
      ],
      {
        cwd: ROOT,
        env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? temp, TMPDIR: temp, NO_COLOR: '1' },
        encoding: 'utf8',
        timeout: 120_000,
      },
    );
    expect(run.status, run.stdout + run.stderr).toBe(0);
    expect(run.stdout).toMatch(/1 passed/);
    expect(readdirSync(temp).filter((f) => f.startsWith('popsync-'))).toEqual([basename(liveRun)]);
  });
});
