/**
 * The CI's list of what failed at least once (test/scripts/failed-attempts.mjs, printed by
 * test.sh from the report json-report.mjs writes): a describe whose beforeAll threw skips its
 * tests instead of failing them, and vitest's stock JSON report carries neither that describe nor
 * its error, so the list left it out.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ROOT } from '../support/cli.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'popsync-failed-attempts-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** What test.sh prints after vitest's output, for the report at `path`. */
function list(path: string): string {
  return execFileSync(process.execPath, ['test/scripts/failed-attempts.mjs', path], { cwd: ROOT, encoding: 'utf8' });
}

describe('failed-attempts.mjs', () => {
  it("lists a describe whose beforeAll threw, with the file and the error, from the report's suiteErrors", () => {
    const report = join(dir, 'report.json');
    const stack = 'Error: the fake server did not start\n    at /r/test/e2e/x.test.ts:9:11';
    writeFileSync(
      report,
      JSON.stringify({
        testResults: [
          {
            name: join(ROOT, 'test/e2e/x.test.ts'),
            status: 'failed',
            message: '',
            assertionResults: [
              { fullName: 'outer inner needs it', status: 'skipped', failureMessages: [] },
              { fullName: 'fine', status: 'passed', failureMessages: [] },
            ],
            suiteErrors: [{ suite: 'outer > inner', errors: [stack] }],
          },
        ],
      }),
    );
    expect(list(report)).toContain(
      '[describe failed] test/e2e/x.test.ts > outer > inner\n  error 1 of 1:\n' +
        '    Error: the fake server did not start\n        at /r/test/e2e/x.test.ts:9:11\n',
    );
  });

  it('a real vitest run through json-report.mjs: the describe, its error and the line that threw', () => {
    const report = join(dir, 'report.json');
    // The fixture runs alone under its own config (never in npm test), in a clean environment: the
    // outer vitest's variables would make this one think it runs inside a worker.
    try {
      execFileSync(
        process.execPath,
        [
          'node_modules/vitest/vitest.mjs',
          'run',
          '--config',
          'fixtures/vitest/vitest.config.ts',
          '--reporter=./test/scripts/json-report.mjs',
          `--outputFile.json=${report}`,
        ],
        { cwd: ROOT, env: { PATH: process.env.PATH ?? '/usr/bin:/bin', NO_COLOR: '1' }, stdio: 'pipe' },
      );
      expect.unreachable('the fixture fails');
    } catch (e) {
      expect((e as { status?: number }).status, String(e)).toBe(1);
    }
    const file = JSON.parse(readFileSync(report, 'utf8')).testResults[0];
    // What the stock report says of it: the file failed, no message, its test skipped, not failed.
    expect(file).toMatchObject({ status: 'failed', message: '' });
    expect(file.assertionResults.map((a: { status: string }) => a.status).sort()).toEqual(['passed', 'skipped']);
    const printed = list(report);
    expect(printed).toContain(
      '[describe failed] fixtures/vitest/hook-fails.fixture.ts > a describe whose setup throws\n  error 1 of 1:\n' +
        '    Error: the fake server did not start\n',
    );
    expect(printed).toMatch(/fixtures\/vitest\/hook-fails\.fixture\.ts:\d+:\d+/);
  });
});
