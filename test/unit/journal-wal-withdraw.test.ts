/**
 * A writer that will not run after all takes its "in use" mark back, also when another process
 * holds the journal's write lock for longer than one of --wait's short tries (0.25 s): left in
 * the -wal, the mark would reach the journal file with the next checkpoint, and the next run
 * would refuse the journal as one that lost its -wal.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, expect, it, vi } from 'vitest';
import { PopsyncError } from '../../src/errors.js';
import { Journal } from '../../src/journal/journal.js';

const held = vi.hoisted(() => ({ ms: 0, writer: undefined as ChildProcess | undefined }));

// The opening checkpoint fails (as when a reader keeps the mark out of the journal file), and
// meanwhile another process takes the write lock and keeps it `held.ms`.
vi.mock('../../src/journal/wal-guard.js', async (importOriginal) => {
  const real = await importOriginal<typeof import('../../src/journal/wal-guard.js')>();
  return {
    ...real,
    checkpointMark: (db: Database.Database, path: string, waitedMs: number): void => {
      if (held.ms === 0) {
        real.checkpointMark(db, path, waitedMs);
        return;
      }
      const ready = `${path}.writer-ready`;
      const script =
        `const D = require('better-sqlite3'); const db = new D(${JSON.stringify(path)}); ` +
        `db.exec('BEGIN IMMEDIATE'); require('fs').writeFileSync(${JSON.stringify(ready)}, ''); ` +
        `Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ${held.ms}); db.exec('COMMIT'); db.close();`;
      held.writer = spawn(process.execPath, ['-e', script], { stdio: 'ignore', cwd: process.cwd() });
      const until = Date.now() + 10_000;
      while (!existsSync(ready) && Date.now() < until) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10);
      if (!existsSync(ready)) throw new Error('the writer process did not start');
      throw new PopsyncError('locked', `journal ${path} is being read or written by another process`);
    },
  };
});

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'popsync-withdraw-'));
});
afterEach(() => {
  held.ms = 0;
  rmSync(dir, { recursive: true, force: true });
});

const S = { source: 'alice@pop.example.net' };

it("a try that gives up takes its mark back with the run's busy timeout, not the try's 0.25 s", async () => {
  const path = join(dir, 'j.sqlite');
  Journal.open(path, S).close();
  held.ms = 1500;
  expect(() => Journal.open(path, S, { busyTimeoutMs: 250 })).toThrow(/being read or written by another process/);
  const writer = held.writer!;
  if (writer.exitCode === null) await new Promise((r) => writer.once('exit', r));
  expect(writer.exitCode).toBe(0);
  held.ms = 0;
  const db = new Database(path, { readonly: true, fileMustExist: true });
  expect(db.prepare(`SELECT value FROM meta WHERE key = 'wal_in_use'`).get()).toBeUndefined();
  db.close();
  // What a mark left in the -wal became: the next checkpoint of a last connection (an sqlite3
  // shell) made it the file's and deleted -wal, and the next run refused a sound journal.
  const other = new Database(path, { fileMustExist: true });
  other.prepare('SELECT COUNT(*) FROM messages').get();
  other.close();
  Journal.open(path, S).close();
}, 20_000);
