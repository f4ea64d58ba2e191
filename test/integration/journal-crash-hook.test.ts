/**
 * The crash hook in a separate process, killed for real by its own SIGKILL at a chosen step, as
 * the crash-resume e2e tests do: what the journal holds afterwards is exactly the steps
 * committed before the kill. Spawns node (tsx), so it lives in the integration tier, not unit.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Journal } from '../../src/journal/journal.js';

const REPO = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const ALICE = { source: 'alice@pop.example.net:995' };
const A = 'alice';

let dir: string;
let path: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'popsync-crash-hook-'));
  path = join(dir, 'journal.db');
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('crash hook in a killed process', () => {
  // A separate process, killed for real, as the crash-resume e2e test will do.
  const CHILD = `
const { Journal } = await import(process.env.JOURNAL_MODULE);
const { configureCrashHook, parseKillAt } = await import(process.env.CRASH_HOOK_MODULE);
const hooks = JSON.parse(process.argv[3]);
configureCrashHook({ killAt: hooks.killAt ? parseKillAt(hooks.killAt) : null, stepsFile: hooks.stepsFile ?? null });
const j = Journal.open(process.argv[2], { source: 'alice@pop.example.net:995' });
const it = (uidl, next) =>
  ({ uidl, size: 10, sha256: 'b'.repeat(64), messageId: null, folder: 'INBOX',
     destUidValidity: 7n, destUidNext: next });
j.beginAppend('alice', [it('u1', 1), it('u2', 1)]);   // step 1
j.confirm('alice', 'u1', { destUidValidity: 7n, destUid: 1 }); // step 2
j.fail('alice', 'u2', 'refused');                   // step 3
j.close();
`;

  function runChild(hooks: { killAt?: string; stepsFile?: string }): {
    signal: NodeJS.Signals | null;
    status: number | null;
    stderr: string;
  } {
    const script = join(dir, 'child.mjs');
    writeFileSync(script, CHILD);
    const r = spawnSync(process.execPath, ['--import', 'tsx', script, path, JSON.stringify(hooks)], {
      cwd: REPO,
      env: {
        ...process.env,
        JOURNAL_MODULE: join(REPO, 'src/journal/journal.ts'),
        CRASH_HOOK_MODULE: join(REPO, 'src/journal/crash-hook.ts'),
      },
      encoding: 'utf8',
      timeout: 30_000,
    });
    return { signal: r.signal, status: r.status, stderr: r.stderr };
  }

  function snapshot(): { u1: string | undefined; u2: string | undefined } {
    const j = Journal.open(path, ALICE);
    const s = { u1: j.get(A, 'u1')?.state, u2: j.get(A, 'u2')?.state };
    j.close();
    return s;
  }

  it('a clean run writes its step count to the steps file', () => {
    const stepsFile = join(dir, 'steps');
    const r = runChild({ stepsFile });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(readFileSync(stepsFile, 'utf8').trim()).toBe('3');
    expect(snapshot()).toEqual({ u1: 'done', u2: 'failed' });
  });

  it('2:after dies by SIGKILL with steps 1 and 2 committed', () => {
    const stepsFile = join(dir, 'steps');
    const r = runChild({ killAt: '2:after', stepsFile });
    expect(r.signal).toBe('SIGKILL');
    expect(readFileSync(stepsFile, 'utf8').trim()).toBe('2');
    expect(snapshot()).toEqual({ u1: 'done', u2: 'appending' });
  });

  it('2:before dies by SIGKILL with only step 1 committed', () => {
    const r = runChild({ killAt: '2:before' });
    expect(r.signal).toBe('SIGKILL');
    expect(snapshot()).toEqual({ u1: 'appending', u2: 'appending' });
  });

  it('1:before dies with nothing committed', () => {
    const r = runChild({ killAt: '1:before' });
    expect(r.signal).toBe('SIGKILL');
    expect(snapshot()).toEqual({ u1: undefined, u2: undefined });
  });
});
