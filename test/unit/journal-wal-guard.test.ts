/**
 * A journal that lost its write-ahead log is refused (kind journal, exit 5), never taken for a
 * new one; a journal closed cleanly, or killed with its -wal intact, opens as always; a writer
 * that cannot put its "in use" mark into the main file does not run.
 * A "lost -wal" is made by copying the main file alone while a connection holds data in the
 * WAL: what a backup, a copy to a new machine or a cleanup that deletes -wal leaves behind.
 */
import { execFileSync } from 'node:child_process';
import {
  closeSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isPopsyncError } from '../../src/errors.js';
import { Journal } from '../../src/journal/journal.js';
import { LockFile, lockFilePath } from '../../src/journal/lock-file.js';
import { assertWalIntact, fileState } from '../../src/journal/wal-guard.js';
import { readStepFile } from '../../src/journal/wal-step.js';
import { printable } from '../../src/report/summary.js';
import { intent } from '../support/journal-item.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'popsync-wal-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

const S = { source: 'alice@pop.example.net' };
const item = intent;

function refusal(fn: () => unknown): { kind: string; message: string; hint: string } {
  try {
    fn();
  } catch (e) {
    if (!isPopsyncError(e)) throw e;
    return { kind: e.kind, message: e.message, hint: e.context.hint ?? '' };
  }
  throw new Error('did not throw');
}

describe('a journal that lost its -wal', () => {
  it('is not what a read-only look sees when a writer opens the journal between its stat and its read', () => {
    // Seen in the 50-pair sync race: the loser's journal-name lookup stat'ed no -wal, then read
    // the winner's fresh "in use" mark, and refused a healthy journal (exit 5).
    const path = join(dir, 'j.sqlite');
    Journal.open(path, S).close();
    const stale = fileState(path);
    expect(stale.walBytes).toBe(0);
    const writer = Journal.open(path, S);
    const reader = new Database(path, { readonly: true, fileMustExist: true });
    try {
      expect(() => assertWalIntact(reader, path, 1, stale)).not.toThrow();
    } finally {
      reader.close();
      writer.close();
    }
  });

  it('is refused when a run was using it (rows only in the WAL), also by the read-only views', () => {
    const path = join(dir, 'j.sqlite');
    const copy = join(dir, 'copy.sqlite');
    const j = Journal.open(path, S);
    j.beginAppend(S.source, [item('u1'), item('u2')]);
    copyFileSync(path, copy);
    j.close();
    expect(existsSync(`${copy}-wal`)).toBe(false);
    const r = refusal(() => Journal.open(copy, S));
    expect(r.kind).toBe('journal');
    expect(r.message).toContain(`journal ${copy} has lost its write-ahead log (${copy}-wal)`);
    expect(r.message).toMatch(/did not close it/);
    expect(r.hint).toMatch(/put the .*-wal file back/);
    // Read-only views refuse it too, also after one of them left an empty -wal behind.
    for (let i = 0; i < 2; i++) {
      expect(refusal(() => Journal.peek(copy, S, S.source)).kind).toBe('journal');
      expect(refusal(() => Journal.inspect(copy)).kind).toBe('journal');
    }
    expect(refusal(() => Journal.open(copy, S)).kind).toBe('journal');
    // Refused without being changed: restoring the -wal later still works.
    expect(statSync(copy).size).toBeGreaterThan(0);
  });

  it(
    'is refused when it is an SQLite file with no tables (a journal killed before its first checkpoint, ' +
      '-wal gone)',
    () => {
      // What popsync before this change left: WAL switched on first, every table in the WAL.
      const path = join(dir, 'old.sqlite');
      const db = new Database(path);
      db.pragma('journal_mode = WAL');
      db.exec(
        `CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT); INSERT INTO meta VALUES ('schema_version', ` +
          `'4'), ('source', '${S.source}')`,
      );
      const copy = join(dir, 'copy.sqlite');
      copyFileSync(path, copy);
      db.close();
      expect(statSync(copy).size).toBe(4096);
      const r = refusal(() => Journal.open(copy, S));
      expect(r).toMatchObject({
        kind: 'journal',
        message: expect.stringMatching(/lost its write-ahead log.*no tables/),
      });
      expect(refusal(() => Journal.peek(copy, S, S.source)).kind).toBe('journal');
    },
  );

  it('a writer whose "in use" mark a reader keeps out of the main file does not run (exit 7), and takes its mark ' +
    'back', () => {
    // A reader whose snapshot predates the mark (an sqlite3 shell with a transaction open, a
    // backup) keeps every later page out of the main file. The writer used to run anyway, its
    // mark in the -wal alone: killed, and that -wal lost, its journal read as one closed cleanly.
    const path = join(dir, 'j.sqlite');
    Journal.open(path, S).close();
    expect(existsSync(`${path}-wal`)).toBe(false);
    // Read-write, as the sqlite3 shell opens it: closing last, it checkpoints and deletes -wal.
    const reader = new Database(path, { fileMustExist: true });
    reader.exec('BEGIN');
    reader.prepare('SELECT COUNT(*) FROM messages').get();
    let r: ReturnType<typeof refusal>;
    try {
      r = refusal(() => Journal.open(path, S));
    } finally {
      reader.exec('COMMIT');
      reader.close();
    }
    expect(r.kind).toBe('locked');
    expect(r.message).toContain(
      `journal ${path} is being read or written by another process: this run's "in use" mark could not be written`,
    );
    expect(r.hint).toMatch(/let that process finish .* and run again/);
    // The reader closed last and emptied the WAL into the main file: the withdrawn mark went
    // with it, so the journal is not taken for one that lost its -wal.
    expect(existsSync(`${path}-wal`)).toBe(false);
    const j = Journal.open(path, S);
    j.beginAppend(S.source, [item('u1')]);
    // With the reader gone, the mark is in the main file: a copy of it alone is refused.
    const copy = join(dir, 'copy.sqlite');
    copyFileSync(path, copy);
    j.close();
    expect(refusal(() => Journal.open(copy, S)).message).toMatch(/lost its write-ahead log/);
  }, 20_000);

  it('opens as always after a clean close (no -wal left), and after a kill that left its -wal', () => {
    const path = join(dir, 'j.sqlite');
    const j = Journal.open(path, S);
    j.beginAppend(S.source, [item('u1')]);
    j.close();
    expect(existsSync(`${path}-wal`)).toBe(false);
    const again = Journal.open(path, S);
    expect(again.get(S.source, 'u1')?.state).toBe('appending');
    again.beginAppend(S.source, [item('u2')]);
    // A killed run: the main file and its -wal copied together, as they were.
    const copy = join(dir, 'copy.sqlite');
    killedCopy(path, copy);
    again.close();
    const resumed = Journal.open(copy, S);
    expect(resumed.get(S.source, 'u2')?.state).toBe('appending');
    resumed.close();
  });

  it('a new journal has its tables in the main file from the start; an empty file is still a new journal', () => {
    const path = join(dir, 'new.sqlite');
    writeFileSync(path, '');
    const j = Journal.open(path, S);
    const copy = join(dir, 'copy.sqlite');
    copyFileSync(path, copy);
    j.close();
    const db = new Database(copy, { readonly: true });
    expect(db.prepare(`SELECT COUNT(*) AS n FROM sqlite_master WHERE name = 'messages'`).get()).toEqual({ n: 1 });
    db.close();
  });
});

/**
 * What a run killed now leaves: the main file, its -wal with frames and its -step, copied
 * while the writer still has them open (a SIGKILL frees nothing and flushes nothing more).
 */
function killedCopy(path: string, copy: string, o: { step?: boolean; wal?: boolean } = {}): void {
  copyFileSync(path, copy);
  if (o.wal ?? true) copyFileSync(`${path}-wal`, `${copy}-wal`);
  if ((o.step ?? true) && existsSync(`${path}-step`)) copyFileSync(`${path}-step`, `${copy}-step`);
}

/**
 * An sqlite3 shell, a backup tool: opens the journal read-write (as they do), reads, closes.
 * Being the last connection, its close checkpoints the whole -wal into the main file and
 * deletes -wal.
 */
function lookWithAnotherProgram(path: string): number {
  const db = new Database(path, { fileMustExist: true });
  const n = (db.prepare('SELECT COUNT(*) AS n FROM messages').get() as { n: number }).n;
  db.close();
  expect(existsSync(`${path}-wal`)).toBe(false);
  return n;
}

/**
 * Does what the refusal's hint says (its sqlite3 command, on the journal it names), then opens
 * the journal: u1's copy, confirmed before the kill, is there.
 */
function followTheHint(copy: string, hint: string): void {
  const said = /sqlite3 (\S+) "(DELETE FROM meta WHERE key = 'wal_in_use')" and run again$/.exec(hint);
  expect(said?.[1]).toBe(copy);
  const db = new Database(copy, { fileMustExist: true });
  db.exec(said![2]!);
  db.close();
  const resumed = Journal.open(copy, S);
  expect(resumed.get(S.source, 'u1')).toMatchObject({ state: 'done', destUid: 1 });
  resumed.close();
}

describe('a killed run whose -wal another program emptied into the journal file', () => {
  it('is used: nothing it recorded is lost, and the read-only views see it too', () => {
    const path = join(dir, 'j.sqlite');
    const copy = join(dir, 'copy.sqlite');
    const j = Journal.open(path, S);
    j.beginAppend(S.source, [item('u1'), item('u2')]);
    j.confirm(S.source, 'u1', { destUidValidity: 7n, destUid: 1 });
    killedCopy(path, copy);
    j.close();
    expect(lookWithAnotherProgram(copy)).toBe(2);
    // Read-only looks first (status, plan, the lookup before a run): they accept it and write
    // nothing, not even the -step file.
    const side = readStepFile(copy);
    expect(Journal.peek(copy, S, S.source)?.get('u1')?.state).toBe('done');
    expect(Journal.inspect(copy)?.accounts[0]?.messages.counts).toMatchObject({ done: 1, appending: 1 });
    expect(Journal.boundSource(copy)).toBe(S.source);
    expect(readStepFile(copy)).toEqual(side);
    expect(side).not.toBeNull();
    const resumed = Journal.open(copy, S);
    expect(resumed.get(S.source, 'u1')).toMatchObject({ state: 'done', destUid: 1 });
    expect(resumed.get(S.source, 'u2')?.state).toBe('appending');
    // The next run's own mark replaces the killed run's; a clean close removes -step.
    expect(readStepFile(copy)).toMatchObject({ step: '0' });
    expect(readStepFile(copy)?.mark).not.toBe(side?.mark);
    resumed.close();
    expect(existsSync(`${copy}-step`)).toBe(false);
    Journal.open(copy, S).close();
  });

  it(
    'is used when the run was killed between two commits, or in one before its frames were written (the same ' +
      'files)',
    () => {
      // -step holds the count of the last commit that returned: the transaction under way
      // when the kill came is simply not in the journal, as after any kill before a commit.
      const path = join(dir, 'j.sqlite');
      const copy = join(dir, 'copy.sqlite');
      const j = Journal.open(path, S);
      j.beginAppend(S.source, [item('u1')]);
      killedCopy(path, copy);
      j.close();
      lookWithAnotherProgram(copy);
      expect(readStepFile(copy)?.step).toBe('1');
      Journal.open(copy, S).close();
    },
  );

  it("is used after a popsync open that failed was that program (another account's run, exit 5)", () => {
    // A run for another source account refuses the journal inside its opening transaction; its
    // connection, the last, then checkpoints the killed run's -wal and deletes it.
    const path = join(dir, 'j.sqlite');
    const copy = join(dir, 'copy.sqlite');
    const j = Journal.open(path, S);
    j.beginAppend(S.source, [item('u1')]);
    killedCopy(path, copy);
    j.close();
    expect(refusal(() => Journal.open(copy, { source: 'bob@pop.example.net' })).kind).toBe('journal-bound');
    expect(existsSync(`${copy}-wal`)).toBe(false);
    const resumed = Journal.open(copy, S);
    expect(resumed.get(S.source, 'u1')?.state).toBe('appending');
    resumed.close();
  });

  it('counts every write transaction of a run, bookkeeping too, in the journal and in -step alike', () => {
    const path = join(dir, 'j.sqlite');
    const lockFile = LockFile.tryAcquire(lockFilePath(path))!;
    const j = Journal.open(path, S);
    const counts = (): { journal: string; side: string | undefined } => {
      const db = new Database(path, { readonly: true, fileMustExist: true });
      const row = db.prepare(`SELECT value FROM meta WHERE key = 'wal_step'`).get() as { value: string };
      db.close();
      return { journal: row.value, side: readStepFile(path)?.step };
    };
    expect(counts()).toEqual({ journal: '0', side: '0' });
    const lock = j.tryLock(S.source, lockFile, { command: 'sync' });
    if (!lock.ok) throw new Error('lock');
    const writes: Array<() => unknown> = [
      () => j.heartbeat(S.source, lock.token),
      () => j.beginRun(S.source, 'sync'),
      () => j.beginAppend(S.source, [item('u1'), item('u2')]),
      () => j.settleAppends(S.source, [{ uidl: 'u1', ok: true, destUidValidity: 7n, destUid: 1 }]),
      () => j.recordFolder(S.source, 'INBOX', 7n),
      () => j.markDeleting(S.source, ['u1']),
      () => j.settleDeleting(S.source, { deleted: ['u1'], kept: [] }),
      () =>
        j.finishRun(1, {
          listed: 2,
          newCount: 2,
          copied: 1,
          failed: 0,
          deleted: 1,
          result: 'ok',
          error: null,
          copiedBytes: 10,
          durationMs: 5,
          adopted: 0,
        }),
      () => j.releaseLock(S.source, lock.token),
    ];
    let n = 1;
    for (const write of writes) {
      write();
      n += 1;
      expect(counts()).toEqual({ journal: String(n), side: String(n) });
    }
    j.close();
    lockFile.release();
  });
});

describe('a killed run whose -wal is gone is still refused', () => {
  it('when its journal file was checkpointed before the run wrote more (an auto-checkpoint)', () => {
    const path = join(dir, 'j.sqlite');
    const copy = join(dir, 'copy.sqlite');
    const j = Journal.open(path, S);
    j.beginAppend(S.source, [item('u1')]);
    // What SQLite's automatic checkpoint does inside a commit every thousand pages.
    const other = new Database(path, { fileMustExist: true });
    other.pragma('wal_checkpoint(PASSIVE)');
    other.close();
    j.confirm(S.source, 'u1', { destUidValidity: 7n, destUid: 1 });
    killedCopy(path, copy, { wal: false });
    j.close();
    const r = refusal(() => Journal.open(copy, S));
    expect(r.kind).toBe('journal');
    expect(r.message).toContain(`the journal file holds 1 of its write transactions, ${copy}-step says it committed 2`);
    expect(r.message).toMatch(/is gone$/);
    expect(r.hint).not.toContain('DELETE');
    expect(r.hint).toMatch(/put the .*-wal file back/);
    expect(refusal(() => Journal.inspect(copy)).kind).toBe('journal');
  });

  it('when the -step file is missing', () => {
    const path = join(dir, 'j.sqlite');
    const copy = join(dir, 'copy.sqlite');
    const j = Journal.open(path, S);
    j.beginAppend(S.source, [item('u1')]);
    killedCopy(path, copy, { step: false });
    j.close();
    lookWithAnotherProgram(copy);
    const r = refusal(() => Journal.open(copy, S));
    expect(r.message).toContain(`with no ${copy}-step to show that its records all reached the journal file`);
    expect(r.hint).toContain(`with ${copy}-step if that is missing too`);
    expect(r.hint).not.toContain('DELETE');
    expect(refusal(() => Journal.peek(copy, S, S.source)).kind).toBe('journal');
  });

  it("when the -step file is another run's", () => {
    const path = join(dir, 'j.sqlite');
    const copy = join(dir, 'copy.sqlite');
    const j = Journal.open(path, S, { now: () => new Date('2026-01-01T00:00:00Z') });
    j.beginAppend(S.source, [item('u1')]);
    const earlier = readFileSync(`${path}-step`, 'utf8');
    j.close();
    const again = Journal.open(path, S, { now: () => new Date('2026-01-02T00:00:00Z') });
    again.beginAppend(S.source, [item('u2')]);
    killedCopy(path, copy);
    again.close();
    // The same count, of the run before: a -step file left from an older copy of the journal.
    writeFileSync(`${copy}-step`, earlier);
    lookWithAnotherProgram(copy);
    const r = refusal(() => Journal.open(copy, S));
    expect(r.message).toMatch(/-step is that of another run \(2026-01-01T00:00:00.000Z by pid/);
  });

  it(
    'when the journal file holds one transaction more than -step (killed after a commit, maybe inside its ' +
      'checkpoint)',
    () => {
      const path = join(dir, 'j.sqlite');
      const copy = join(dir, 'copy.sqlite');
      const j = Journal.open(path, S);
      j.beginAppend(S.source, [item('u1')]);
      const before = readFileSync(`${path}-step`, 'utf8');
      j.confirm(S.source, 'u1', { destUidValidity: 7n, destUid: 1 });
      killedCopy(path, copy);
      j.close();
      writeFileSync(`${copy}-step`, before);
      lookWithAnotherProgram(copy);
      const r = refusal(() => Journal.open(copy, S));
      expect(r.message).toContain(
        `the journal file holds 2 of its write transactions, ${copy}-step says it committed 1`,
      );
      expect(r.message).toMatch(/may be gone$/);
      // Whoever knows that a program, not a hand, emptied the -wal can say so, as the hint tells.
      expect(r.hint).toContain('If instead no one deleted the -wal by hand');
      followTheHint(copy, r.hint);
    },
  );

  it('when a checkpoint cut short left the header page of a later commit over meta of the one -step names', () => {
    // Checkpoints copy pages in page order: the header (page 1) first, meta (page 2) next. A kill
    // between the two, then the -wal deleted by hand, leaves meta's count at -step's.
    const path = join(dir, 'j.sqlite');
    const early = join(dir, 'early.sqlite');
    const late = join(dir, 'late.sqlite');
    const j = Journal.open(path, S);
    j.beginAppend(S.source, [item('u1')]);
    killedCopy(path, early);
    j.confirm(S.source, 'u1', { destUidValidity: 7n, destUid: 1 });
    killedCopy(path, late);
    j.close();
    lookWithAnotherProgram(early);
    lookWithAnotherProgram(late);
    const page1 = readFileSync(late).subarray(0, 4096);
    const fd = openSync(early, 'r+');
    writeSync(fd, page1, 0, page1.length, 0);
    closeSync(fd);
    const r = refusal(() => Journal.open(early, S));
    expect(r.message).toContain('left half-written by a checkpoint cut short (its header counts 2 write transactions');
    expect(r.message).toMatch(/ is gone$/);
  });

  it(
    'as one that may have lost records, with the hint that takes the mark out, when no count is in its header ' +
      '(a popsync that kept it in meta and -step only)',
    () => {
      // A killed run of popsync before the header held the count, its -wal emptied into the file
      // by another program: meta's count is -step's, the header's 0. So is a file whose checkpoint
      // inside the next run's marking commit was cut short after page 1, its -wal then deleted by
      // hand: told apart by whoever knows how the -wal went, as for a journal that kept no count.
      const path = join(dir, 'j.sqlite');
      const copy = join(dir, 'copy.sqlite');
      const j = Journal.open(path, S);
      j.beginAppend(S.source, [item('u1')]);
      j.confirm(S.source, 'u1', { destUidValidity: 7n, destUid: 1 });
      killedCopy(path, copy);
      j.close();
      lookWithAnotherProgram(copy);
      const older = new Database(copy, { fileMustExist: true });
      older.pragma('user_version = 0');
      older.close();
      expect(readStepFile(copy)?.step).toBe('2');
      const r = refusal(() => Journal.open(copy, S));
      expect(r.message).toMatch(/may be gone$/);
      expect(r.message).toContain('its header holds no count');
      followTheHint(copy, r.hint);
    },
  );

  it('when -step is ahead of a journal file that has every frame (a -step of a later copy)', () => {
    const path = join(dir, 'j.sqlite');
    const copy = join(dir, 'copy.sqlite');
    const j = Journal.open(path, S);
    j.beginAppend(S.source, [item('u1')]);
    killedCopy(path, copy);
    j.confirm(S.source, 'u1', { destUidValidity: 7n, destUid: 1 });
    copyFileSync(`${path}-step`, `${copy}-step`);
    j.close();
    lookWithAnotherProgram(copy);
    expect(refusal(() => Journal.open(copy, S)).message).toContain('holds 1 of its write transactions');
  });

  it('when it was written by a popsync that kept no count (unchanged: marked and no -wal)', () => {
    const path = join(dir, 'j.sqlite');
    const copy = join(dir, 'copy.sqlite');
    const j = Journal.open(path, S);
    j.beginAppend(S.source, [item('u1')]);
    killedCopy(path, copy);
    j.close();
    const old = new Database(copy, { fileMustExist: true });
    old.prepare(`DELETE FROM meta WHERE key = 'wal_step'`).run();
    old.close();
    rmSync(`${copy}-step`);
    expect(existsSync(`${copy}-wal`)).toBe(false);
    const r = refusal(() => Journal.open(copy, S));
    expect(r.message).toMatch(/did not close it, and its -wal file is missing or empty; what it recorded/);
    expect(r.hint).toContain(`sqlite3 ${copy} "DELETE FROM meta WHERE key = 'wal_in_use'" and run again`);
  });
});

describe('the hint that takes the mark out', () => {
  it('names the journal as one shell word, whatever its path holds (a space, a quote)', () => {
    const path = join(dir, "Mail backups/it's j.sqlite");
    mkdirSync(join(dir, 'Mail backups'));
    const j = Journal.open(path, S);
    j.beginAppend(S.source, [item('u1')]);
    killedCopy(path, path + '.copy');
    j.close();
    const copy = path + '.copy';
    const old = new Database(copy, { fileMustExist: true });
    old.prepare(`DELETE FROM meta WHERE key = 'wal_step'`).run();
    old.close();
    rmSync(`${copy}-step`, { force: true });
    const r = refusal(() => Journal.open(copy, S));
    const said = /.*sqlite3 (.+) "DELETE FROM meta WHERE key = 'wal_in_use'" and run again$/.exec(r.hint);
    expect(said).not.toBeNull();
    // What a shell makes of the words the hint gives as the file: one argument, the journal.
    const args = execFileSync('sh', ['-c', `printf '%s\\n' ${said![1]}`], { encoding: 'utf8' });
    expect(args).toBe(`${copy}\n`);
  });

  it('gives sqlite3 the journal as its file, not an option or a URI, where the path begins with - or file:', () => {
    // A relative --journal is used as given; sqlite3 takes "-j.sqlite" for an unknown option and
    // "file:j.sqlite" for a URI naming j.sqlite, another file.
    const cwd = process.cwd();
    process.chdir(dir);
    try {
      for (const name of ['-j.sqlite', 'file:j.sqlite']) {
        const copy = `${name}.copy`;
        killedWithoutCount(name, copy);
        const [file, sql] = pastedSqlite3Args(refusal(() => Journal.open(copy, S)).hint, dir);
        expect(file, name).not.toMatch(/^-|^file:/);
        expect(resolve(dir, file!), name).toBe(resolve(dir, copy));
        expect(sql, name).toBe("DELETE FROM meta WHERE key = 'wal_in_use'");
      }
    } finally {
      process.chdir(cwd);
    }
  });

  it('gives back, as the CLI prints it, a path holding what it prints escaped (a line break, a bidi override)', () => {
    // printable() shows a line break as \x0a: inside quotes, the pasted line named that file instead.
    for (const name of ['Mail\nbox.sqlite', "it's 100% \\ \u202e\u2028\x85\x1b.sqlite"]) {
      const path = join(dir, `src ${name.length}.sqlite`);
      const copy = join(dir, name);
      killedWithoutCount(path, copy);
      const [file, sql] = pastedSqlite3Args(refusal(() => Journal.open(copy, S)).hint, dir);
      expect(file, JSON.stringify(name)).toBe(copy);
      expect(sql).toBe("DELETE FROM meta WHERE key = 'wal_in_use'");
    }
  });
});

/**
 * A killed run's journal of a popsync that kept no count, its -wal emptied by another program:
 * refused with the hint that takes the mark out.
 */
function killedWithoutCount(path: string, copy: string): void {
  const j = Journal.open(path, S);
  j.beginAppend(S.source, [item('u1')]);
  killedCopy(path, copy);
  j.close();
  const old = new Database(copy, { fileMustExist: true });
  old.prepare(`DELETE FROM meta WHERE key = 'wal_step'`).run();
  old.close();
  rmSync(`${copy}-step`, { force: true });
}

/**
 * What sqlite3 is given by the command of the hint, printed as the CLI prints it (printable())
 * and pasted into a POSIX shell in `cwd`.
 */
function pastedSqlite3Args(hint: string, cwd: string): string[] {
  const line = /nothing was lost: (.*) and run again$/.exec(printable(hint))?.[1];
  expect(line).toBeDefined();
  const out = execFileSync('sh', ['-c', `sqlite3() { printf '%s\\0' "$@"; }; ${line}`], { cwd, encoding: 'utf8' });
  return out.split('\0').slice(0, -1);
}

describe('a run whose "in use" mark another writer took', () => {
  it('stops at its next journal write instead of carrying on with no mark in the journal file', () => {
    // A second writer that the lock file did not keep out (the journal named through a symlink
    // and through its own path, before lock files were taken beside the file itself) opens the
    // journal, writing its own mark and count 0, finds the lock row held and closes cleanly,
    // taking the mark out. The first run used to carry on, counting into a row that was gone:
    // killed, and its -wal lost, its main file read as a journal closed cleanly.
    const path = join(dir, 'j.sqlite');
    const copy = join(dir, 'copy.sqlite');
    const first = Journal.open(path, S);
    first.beginAppend(S.source, [item('u1')]);
    Journal.open(path, S).close();
    const r = refusal(() => first.beginAppend(S.source, [item('u2')]));
    expect(r.kind).toBe('locked');
    expect(r.message).toContain(`journal ${path} was opened for writing by another process while this run used it`);
    expect(r.message).toMatch(/stopped before writing to the journal$/);
    expect(first.get(S.source, 'u2')).toBeUndefined();
    // Nothing slipped past: no write of this run reaches a journal file that is not marked as its.
    killedCopy(path, copy, { wal: false });
    first.close();
    const again = Journal.open(copy, S);
    expect(again.get(S.source, 'u1')?.state).toBe('appending');
    again.close();
  });

  it('leaves, as it closes, the mark and -step of the writer that replaced its own', () => {
    // Another host's run that took over a stale lock row, say. Taking that run's mark out of the
    // journal file (and its -step away) left it unguarded, and, as its writes now check the mark,
    // stopped it too.
    const path = join(dir, 'j.sqlite');
    const first = Journal.open(path, S);
    const second = Journal.open(path, S);
    const side = readStepFile(path);
    first.close();
    const db = new Database(path, { readonly: true, fileMustExist: true });
    const mark = db.prepare(`SELECT value FROM meta WHERE key = 'wal_in_use'`).get() as { value: string } | undefined;
    db.close();
    expect(mark?.value).toBe(side?.mark);
    expect(readStepFile(path)).toEqual(side);
    second.beginAppend(S.source, [item('u1')]);
    expect(readStepFile(path)).toMatchObject({ mark: side?.mark, step: '1' });
    second.close();
    expect(existsSync(`${path}-step`)).toBe(false);
  });

  it('stops too when a second writer replaced the mark and is still open', () => {
    const path = join(dir, 'j.sqlite');
    const first = Journal.open(path, S);
    const second = Journal.open(path, S);
    try {
      expect(refusal(() => first.beginRun(S.source, 'sync')).kind).toBe('locked');
      // The second's count goes on; its -step still describes the journal file.
      second.beginAppend(S.source, [item('u1')]);
      expect(readStepFile(path)?.step).toBe('1');
    } finally {
      second.close();
      first.close();
    }
  });
});
