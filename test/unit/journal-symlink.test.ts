/**
 * A journal named through a symlink: SQLite keeps its -wal and -shm beside the file the symlink
 * names, and popsync must look for -wal there and keep its own -step and .lock there too
 * (journal/sidecars.ts). Beside the symlink it found no -wal, and a second run through the
 * journal's own path took another lock file.
 */
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { holdAccountLock } from '../../src/engine/lock.js';
import { isPopsyncError } from '../../src/errors.js';
import { Journal } from '../../src/journal/journal.js';
import { checkpointMark } from '../../src/journal/wal-guard.js';
import { silentLogger } from '../../src/log.js';
import { intent } from '../support/journal-item.js';

let dir: string;
let real: string;
let link: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'popsync-symlink-'));
  mkdirSync(join(dir, 'data'));
  real = join(dir, 'data', 'j.sqlite');
  link = join(dir, 'j.sqlite');
  // Relative, as `ln -s data/j.sqlite j.sqlite` makes it.
  symlinkSync(join('data', 'j.sqlite'), link);
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

const A = 'alice@pop.example.net';
const S = { source: A };
const item = intent;

function meta(path: string): Record<string, string> {
  const db = new Database(path, { readonly: true, fileMustExist: true });
  const rows = db.prepare(`SELECT key, value FROM meta WHERE key LIKE 'wal_%'`).all() as Array<{
    key: string;
    value: string;
  }>;
  db.close();
  return Object.fromEntries(rows.map((r) => [r.key, r.value]));
}

describe('a journal named through a symlink', () => {
  it('is removed, when bound by mistake, with the files beside the file it names', () => {
    Journal.open(link, S).close();
    let hint = '';
    try {
      Journal.open(link, { source: 'bob@pop.example.net' }).close();
    } catch (e) {
      hint = isPopsyncError(e) ? String(e.context.hint) : '';
    }
    expect(hint).toContain(`remove ${real} (and its -wal, -shm, -step and .lock files) and the symlink ${link}`);
    // Named by its own path, the hint names that path alone.
    try {
      Journal.open(real, { source: 'bob@pop.example.net' }).close();
    } catch (e) {
      hint = isPopsyncError(e) ? String(e.context.hint) : '';
    }
    expect(hint).toContain(`remove ${real} (and its -wal, -shm, -step and .lock files) and run again`);
  });

  it('keeps -step and .lock beside the file itself, where SQLite keeps -wal and -shm', async () => {
    const held = await holdAccountLock(link, A, { command: 'sync', logger: silentLogger });
    try {
      held.journal.beginAppend(A, [item('u1')]);
      expect(readdirSync(dir).sort()).toEqual(['data', 'j.sqlite']);
      expect(readdirSync(join(dir, 'data')).sort()).toEqual(
        ['j.sqlite', 'j.sqlite-shm', 'j.sqlite-step', 'j.sqlite-wal', 'j.sqlite.lock'].sort(),
      );
    } finally {
      held.release();
    }
  });

  it('and through its own path is one journal with one lock: the second run is kept out before it writes', async () => {
    // With a lock file beside each name, the second run got in, wrote its "in use" mark over the
    // first run's, was refused by the lock row, and took the mark out as it closed.
    const first = await holdAccountLock(link, A, { command: 'sync', logger: silentLogger });
    try {
      first.journal.beginAppend(A, [item('u1')]);
      const before = meta(real);
      let kind = '';
      let message = '';
      try {
        (await holdAccountLock(real, A, { command: 'sync', logger: silentLogger })).release();
      } catch (e) {
        if (!isPopsyncError(e)) throw e;
        ({ kind, message } = e);
      }
      expect(kind).toBe('locked');
      expect(message).toContain(`another popsync run holds ${A}: pid ${process.pid}`);
      expect(meta(real)).toEqual(before);
      // The first run goes on, its mark and count in the journal file.
      first.journal.beginAppend(A, [item('u2')]);
      expect(meta(real)).toMatchObject({ wal_in_use: before.wal_in_use });
    } finally {
      first.release();
    }
  });

  it('is used after a kill with its -wal in place, whatever -step says (killed between a commit and its count)', () => {
    const j = Journal.open(link, S);
    j.beginAppend(A, [item('u1')]);
    const stepFile = join(dir, 'data', 'j.sqlite-step');
    const before = readFileSync(stepFile, 'utf8');
    j.confirm(A, 'u1', { destUidValidity: 7n, destUid: 1 });
    // What a SIGKILL leaves: the journal file and its -wal as they are, -step one commit behind.
    const killed = join(dir, 'killed');
    mkdirSync(killed);
    for (const f of ['j.sqlite', 'j.sqlite-wal']) copyFileSync(join(dir, 'data', f), join(killed, f));
    writeFileSync(join(killed, 'j.sqlite-step'), before);
    j.close();
    const killedLink = join(dir, 'killed.sqlite');
    symlinkSync(join(killed, 'j.sqlite'), killedLink);
    // status and plan first (read-only), then the next run.
    expect(Journal.inspect(killedLink)?.accounts[0]?.messages.counts).toMatchObject({ done: 1 });
    const resumed = Journal.open(killedLink, S);
    expect(resumed.get(A, 'u1')).toMatchObject({ state: 'done', destUid: 1 });
    resumed.close();
    expect(existsSync(join(killed, 'j.sqlite-wal'))).toBe(false);
  });

  it('that lost its -wal is still refused, naming the -wal beside the file itself', () => {
    const j = Journal.open(link, S);
    j.beginAppend(A, [item('u1')]);
    const killed = join(dir, 'killed');
    mkdirSync(killed);
    for (const f of ['j.sqlite', 'j.sqlite-step']) copyFileSync(join(dir, 'data', f), join(killed, f));
    j.close();
    const killedLink = join(dir, 'killed.sqlite');
    symlinkSync(join(killed, 'j.sqlite'), killedLink);
    let message = '';
    try {
      Journal.open(killedLink, S).close();
    } catch (e) {
      if (!isPopsyncError(e)) throw e;
      message = e.message;
    }
    expect(message).toContain(`journal ${killedLink} has lost its write-ahead log (${join(killed, 'j.sqlite-wal')})`);
  });

  it('whose mark a reader keeps out of the file is refused naming the -wal beside the file itself', () => {
    Journal.open(real, S).close();
    // A reader on an older snapshot (an sqlite3 shell with a transaction open): the checkpoint
    // cannot copy what was written after it.
    const reader = new Database(real, { fileMustExist: true });
    const writer = new Database(link, { fileMustExist: true });
    try {
      writer.pragma('journal_mode = WAL');
      reader.exec('BEGIN');
      reader.prepare('SELECT COUNT(*) FROM meta').get();
      writer.prepare(`INSERT INTO meta (key, value) VALUES ('x', 'y')`).run();
      writer.pragma('busy_timeout = 0');
      let hint = '';
      try {
        checkpointMark(writer, link, 0);
      } catch (e) {
        if (!isPopsyncError(e)) throw e;
        hint = e.context.hint ?? '';
      }
      expect(hint).toContain(`a ${real}-wal lost after a killed run would then go unnoticed`);
    } finally {
      reader.close();
      writer.close();
    }
  });
});
