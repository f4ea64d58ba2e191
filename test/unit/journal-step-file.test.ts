/**
 * `<journal>-step` is written and read as a file of its own only: something else planted or left
 * at its name (a symlink, a hard link, a FIFO) is never written through, and never holds a run or
 * a `status` up. Without a -step of its own a run is only unprotected by it: after a kill, its
 * journal is refused if it lost its -wal, as before -step existed.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import {
  copyFileSync,
  linkSync,
  lstatSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Journal } from '../../src/journal/journal.js';
import { readStepFile } from '../../src/journal/wal-step.js';
import { intent } from '../support/journal-item.js';

const REPO = resolve(import.meta.dirname, '../..');
let dir: string;
let path: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'popsync-step-'));
  path = join(dir, 'j.sqlite');
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

const S = { source: 'alice@pop.example.net' };
const item = intent;

/** The step file is this run's own: a regular file, one link, 0600, naming the run's count. */
function expectOwnStepFile(step: string): void {
  const st = lstatSync(`${path}-step`);
  expect(st.isFile()).toBe(true);
  expect(st.nlink).toBe(1);
  expect(st.mode & 0o777).toBe(0o600);
  expect(readStepFile(path)?.step).toBe(step);
}

/** Runs `code` (an ES module body with `Journal` in scope) in a child, for what could block for ever. */
function inChild(code: string): { status: number | null; signal: NodeJS.Signals | null; stdout: string } {
  const script = join(dir, 'child.mjs');
  writeFileSync(script, `const { Journal } = await import(process.env.JOURNAL_MODULE);\n${code}\n`);
  const r = spawnSync(process.execPath, ['--import', 'tsx', script], {
    cwd: REPO,
    env: { ...process.env, JOURNAL_MODULE: join(REPO, 'src/journal/journal.ts') },
    encoding: 'utf8',
    timeout: 20_000,
  });
  return { status: r.status, signal: r.signal, stdout: r.stdout };
}

describe('the -step file', () => {
  it('is never written through a symlink planted at its name', () => {
    const victim = join(dir, 'precious.txt');
    writeFileSync(victim, 'precious\n');
    symlinkSync(victim, `${path}-step`);
    const j = Journal.open(path, S);
    j.beginAppend(S.source, [item('u1')]);
    expect(readFileSync(victim, 'utf8')).toBe('precious\n');
    expectOwnStepFile('1');
    j.close();
    expect(readFileSync(victim, 'utf8')).toBe('precious\n');
  });

  it('is never written through a hard link (a backup made with cp -al, say)', () => {
    const j = Journal.open(path, S);
    j.beginAppend(S.source, [item('u1')]);
    const backup = join(dir, 'backup-step');
    // A killed run's -step, hard-linked into a backup.
    linkSync(`${path}-step`, backup);
    const saved = readFileSync(backup, 'utf8');
    j.close();
    linkSync(backup, `${path}-step`);
    const again = Journal.open(path, S);
    again.beginAppend(S.source, [item('u2')]);
    expect(readFileSync(backup, 'utf8')).toBe(saved);
    expectOwnStepFile('1');
    again.close();
    expect(statSync(backup).nlink).toBe(1);
  });

  it('does not hold a run up when a FIFO sits at its name, nor a status of a killed journal', () => {
    execFileSync('mkfifo', [`${path}-step`]);
    const run = inChild(
      `const j = Journal.open(${JSON.stringify(path)}, ${JSON.stringify(S)});\n` +
        `j.beginAppend(${JSON.stringify(S.source)}, [{ uidl: 'u1', size: 10, sha256: 'c'.repeat(64), ` +
        `messageId: null, folder: 'INBOX', destUidValidity: 7n, destUidNext: 1 }]);\n` +
        `const { readFileSync } = await import('node:fs');\n` +
        `console.log(readFileSync(${JSON.stringify(`${path}-step`)}, 'utf8').split('\\n')[1]);\n` +
        'j.close();',
    );
    expect(run).toMatchObject({ signal: null, status: 0, stdout: '1\n' });
    // A killed run's journal file without its -wal, and a FIFO for -step: refused, at once.
    const j = Journal.open(path, S);
    j.beginAppend(S.source, [item('u1')]);
    const copy = join(dir, 'copy.sqlite');
    copyFileSync(path, copy);
    j.close();
    execFileSync('mkfifo', [`${copy}-step`]);
    const look = inChild(
      `try { Journal.inspect(${JSON.stringify(copy)}); console.log('read'); } ` + 'catch (e) { console.log(e.kind); }',
    );
    expect(look).toMatchObject({ signal: null, status: 0, stdout: 'journal\n' });
  }, 60_000);
});
