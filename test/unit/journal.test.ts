import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { PopsyncError } from '../../src/errors.js';
import { configureCrashHook, parseKillAt } from '../../src/journal/crash-hook.js';
import { openJournalDb } from '../../src/journal/db.js';
import { Journal } from '../../src/journal/journal.js';
import { migrate, SCHEMA_VERSION, type Migration } from '../../src/journal/schema.js';
import type { BeginAppend } from '../../src/journal/types.js';

const ALICE = { source: 'alice@pop.example.net:995' };
const BOB = { source: 'bob@pop.example.net:995' };
const A = 'alice';

let dir: string;
let path: string;
const open: Journal[] = [];

function openJournal(binding = ALICE, opts?: Parameters<typeof Journal.open>[2]): Journal {
  const j = Journal.open(path, binding, opts);
  open.push(j);
  return j;
}

function item(uidl: string, over: Partial<BeginAppend> = {}): BeginAppend {
  return {
    uidl,
    size: 100,
    sha256: 'a'.repeat(64),
    messageId: `<${uidl}@example.net>`,
    folder: 'INBOX',
    destUidValidity: 7n,
    destUidNext: 1,
    ...over,
  };
}

function caught(fn: () => unknown): PopsyncError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(PopsyncError);
    return e as PopsyncError;
  }
  throw new Error('expected a PopsyncError, nothing was thrown');
}

function mode(p: string): number {
  return statSync(p).mode & 0o777;
}

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'popsync-journal-'));
  path = join(dir, 'journal.db');
});

afterEach(() => {
  for (const j of open.splice(0)) j.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('Journal.open', () => {
  it('creates the journal and its -wal/-shm/-step files with mode 0600', () => {
    const j = openJournal();
    j.beginAppend(A, [item('u1')]);
    expect(mode(path)).toBe(0o600);
    expect(mode(`${path}-wal`)).toBe(0o600);
    expect(mode(`${path}-shm`)).toBe(0o600);
    expect(mode(`${path}-step`)).toBe(0o600);
  });

  it('makes a -step file left by a killed run 0600 too', () => {
    openJournal().close();
    writeFileSync(`${path}-step`, 'another run\n3\n', { mode: 0o644 });
    chmodSync(`${path}-step`, 0o644);
    openJournal();
    expect(mode(`${path}-step`)).toBe(0o600);
  });

  it('uses WAL, synchronous=NORMAL for outcomes, a busy timeout and foreign keys', () => {
    const jdb = openJournalDb(path, { source: A }, {}, (opened) => opened);
    const db = jdb.conn;
    expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
    expect(db.pragma('synchronous', { simple: true })).toBe(1);
    expect(db.pragma('busy_timeout', { simple: true })).toBeGreaterThanOrEqual(1000);
    expect(db.pragma('foreign_keys', { simple: true })).toBe(1);
    jdb.close();
  });

  it('records the schema version and the binding, and nothing that could hold a secret', () => {
    openJournal().close();
    const db = new Database(path, { readonly: true });
    const meta = Object.fromEntries(
      (db.prepare('SELECT key, value FROM meta').all() as { key: string; value: string }[]).map((r) => [
        r.key,
        r.value,
      ]),
    );
    expect(meta.schema_version).toBe(String(SCHEMA_VERSION));
    expect(meta.source).toBe(ALICE.source);
    const names = [
      ...Object.keys(meta),
      ...(
        db.prepare(`SELECT p.name FROM sqlite_master m, pragma_table_info(m.name) p WHERE m.type = 'table'`).all() as {
          name: string;
        }[]
      ).map((r) => r.name),
    ];
    db.close();
    for (const n of names) expect(n).not.toMatch(/pass|secret|token|credential/i);
  });

  it('keeps data across close and reopen', () => {
    const j = openJournal();
    j.beginAppend(A, [item('u1'), item('u2')]);
    j.confirm(A, 'u1', { destUidValidity: 7n, destUid: 3 });
    j.recordFolder(A, 'INBOX', 7n);
    j.close();
    const again = openJournal();
    expect(again.get(A, 'u1')).toMatchObject({ state: 'done', destUid: 3, destUidValidity: 7n });
    expect(again.get(A, 'u2')).toMatchObject({ state: 'appending', attempts: 1 });
    expect(again.folderUidValidity(A, 'INBOX')).toBe(7n);
  });

  it('refuses a journal bound to another source account, naming both', () => {
    openJournal(ALICE).close();
    const e = caught(() => openJournal(BOB));
    expect(e.kind).toBe('journal-bound');
    expect(e.message).toContain(ALICE.source);
    expect(e.message).toContain(BOB.source);
    expect(e.context.hint).toBeTruthy();
    // The refusal changed nothing: alice can still open it.
    expect(() => openJournal(ALICE)).not.toThrow();
  });

  it('says a journal that records no message may simply be removed (a first run against a mistyped host)', () => {
    openJournal(ALICE).close();
    const empty = caught(() => openJournal(BOB));
    expect(empty.kind).toBe('journal-bound');
    expect(empty.context.hint).toMatch(/^it records no message of .*: if that account was a mistake .*remove /);
    const j = openJournal(ALICE);
    j.beginAppend(A, [item('u1')]);
    j.close();
    expect(caught(() => openJournal(BOB)).context.hint).toMatch(/^each POP3 account needs its own journal/);
  });

  it('refuses a journal whose schema is newer than this popsync', () => {
    openJournal().close();
    const db = new Database(path);
    db.prepare(`UPDATE meta SET value = ? WHERE key = 'schema_version'`).run(String(SCHEMA_VERSION + 1));
    db.close();
    const e = caught(() => openJournal());
    expect(e.kind).toBe('journal');
    expect(e.message).toContain(path);
    expect(e.context.hint).toMatch(/upgrade popsync/);
  });

  it('reports a file that is not SQLite as a journal error with the path', () => {
    writeFileSync(path, 'From alice Mon Jan  1 00:00:00 2024\n'.repeat(200), { mode: 0o600 });
    const e = caught(() => openJournal());
    expect(e.kind).toBe('journal');
    expect(e.message).toContain(path);
  });

  it('reports a corrupt SQLite file as a journal error', () => {
    const j = openJournal();
    j.beginAppend(
      A,
      Array.from({ length: 200 }, (_, i) => item(`u${i}`)),
    );
    j.close();
    const bytes = readFileSync(path);
    // Keep the header so SQLite recognises the file, wreck every page after it.
    for (let i = 100; i < bytes.length; i++) bytes[i] = 0xa5;
    writeFileSync(path, bytes);
    const e = caught(() => {
      const k = openJournal();
      k.rowsByUidl(A);
    });
    expect(e.kind).toBe('journal');
    expect(e.message).toContain(path);
  });

  it('refuses an SQLite database that belongs to another program', () => {
    const db = new Database(path);
    db.exec('CREATE TABLE notes (x TEXT)');
    db.close();
    const e = caught(() => openJournal());
    expect(e.kind).toBe('journal');
    expect(e.message).toMatch(/not a popsync journal/);
  });

  it('with create: false, refuses a missing journal', () => {
    const e = caught(() => openJournal(ALICE, { create: false }));
    expect(e.kind).toBe('journal');
    expect(e.message).toContain(path);
  });

  it('reports a journal path in a missing directory as a journal error', () => {
    path = join(dir, 'no', 'such', 'journal.db');
    expect(caught(() => openJournal()).kind).toBe('journal');
  });
});

describe('schema migrations', () => {
  it('applies migrations in order inside the caller transaction, and a failing one leaves the old version', () => {
    openJournal().close();
    const v2: Migration = { version: SCHEMA_VERSION + 1, description: 'test', sql: 'CREATE TABLE extra (x INTEGER);' };
    const broken: Migration = { version: SCHEMA_VERSION + 2, description: 'broken', sql: 'CREATE TABLE nope (;' };
    const db = new Database(path);
    const version = () =>
      (db.prepare(`SELECT value FROM meta WHERE key = 'schema_version'`).get() as { value: string }).value;
    expect(() =>
      db.transaction(() => migrate(db, path, [{ version: 1, description: '', sql: '' }, v2, broken])).immediate(),
    ).toThrow();
    expect(version()).toBe(String(SCHEMA_VERSION));
    expect(db.prepare(`SELECT 1 FROM sqlite_master WHERE name = 'extra'`).get()).toBeUndefined();
    const r = db.transaction(() => migrate(db, path, [{ version: 1, description: '', sql: '' }, v2])).immediate();
    expect(r).toEqual({ from: SCHEMA_VERSION, to: SCHEMA_VERSION + 1 });
    expect(version()).toBe(String(SCHEMA_VERSION + 1));
    db.close();
  });
});

describe('transitions', () => {
  it('walks none -> appending -> done, recording what the engine knew', () => {
    let clock = new Date('2024-01-01T00:00:00Z');
    const j = openJournal(ALICE, { now: () => clock });
    j.beginAppend(A, [item('u1', { destUidNext: 5 })]);
    clock = new Date('2024-01-01T00:00:01Z');
    expect(j.get(A, 'u1')).toMatchObject({
      state: 'appending',
      attempts: 1,
      destUidNext: 5,
      destUid: null,
      copiedAt: null,
      folder: 'INBOX',
      size: 100,
    });
    j.confirm(A, 'u1', { destUidValidity: 7n, destUid: 5 });
    const row = j.get(A, 'u1');
    expect(row).toMatchObject({ state: 'done', destUid: 5, destUidValidity: 7n, attempts: 1 });
    expect(row?.firstSeenAt).toBe('2024-01-01T00:00:00.000Z');
    expect(row?.copiedAt).toBe('2024-01-01T00:00:01.000Z');
    expect(row?.updatedAt).toBe('2024-01-01T00:00:01.000Z');
  });

  it('counts attempts across fail, retry and re-begin', () => {
    const j = openJournal();
    j.beginAppend(A, [item('u1')]);
    j.fail(A, 'u1', 'NO [OVERQUOTA] mailbox full');
    expect(j.get(A, 'u1')).toMatchObject({ state: 'failed', attempts: 1, lastError: 'NO [OVERQUOTA] mailbox full' });
    j.beginAppend(A, [item('u1', { destUidNext: 9 })]);
    expect(j.get(A, 'u1')).toMatchObject({ state: 'appending', attempts: 2, destUidNext: 9 });
    // Reconcile found no copy: begin again from appending.
    j.beginAppend(A, [item('u1', { destUidNext: 12 })]);
    expect(j.get(A, 'u1')).toMatchObject({ state: 'appending', attempts: 3, destUidNext: 12 });
    j.confirm(A, 'u1', { destUidValidity: 7n, destUid: null });
    expect(j.get(A, 'u1')).toMatchObject({ state: 'done', attempts: 3, destUid: null });
  });

  it('refuses illegal transitions with an internal error and changes nothing', () => {
    const j = openJournal();
    expect(caught(() => j.confirm(A, 'nope', { destUidValidity: 7n, destUid: 1 })).kind).toBe('internal');
    expect(caught(() => j.fail(A, 'nope', 'x')).kind).toBe('internal');
    expect(j.get(A, 'nope')).toBeUndefined();

    j.beginAppend(A, [item('u1')]);
    j.confirm(A, 'u1', { destUidValidity: 7n, destUid: 1 });
    const before = j.get(A, 'u1');
    expect(caught(() => j.beginAppend(A, [item('u1')])).kind).toBe('internal');
    expect(caught(() => j.fail(A, 'u1', 'x')).kind).toBe('internal');
    expect(caught(() => j.confirm(A, 'u1', { destUidValidity: 7n, destUid: 2 })).kind).toBe('internal');
    expect(j.get(A, 'u1')).toEqual(before);

    j.beginAppend(A, [item('u2')]);
    j.fail(A, 'u2', 'refused');
    expect(caught(() => j.fail(A, 'u2', 'again')).kind).toBe('internal');
    expect(caught(() => j.confirm(A, 'u2', { destUidValidity: 7n, destUid: 2 })).kind).toBe('internal');
  });

  it('withdraws an intent never sent: a row it created goes, a retried one goes back to failed', () => {
    const j = openJournal();
    // u1 new; u2 failed before; u3 left 'appending' by a crash and not found by reconciliation.
    j.beginAppend(A, [item('u2'), item('u3')]);
    j.fail(A, 'u2', 'NO [OVERQUOTA] mailbox full');
    j.beginAppend(A, [item('u1'), item('u2'), item('u3'), item('u4')]);
    j.withdrawAppend(A, ['u1', 'u2', 'u3']);
    expect(j.get(A, 'u1')).toBeUndefined();
    expect(j.get(A, 'u2')).toMatchObject({ state: 'failed', attempts: 1, lastError: 'NO [OVERQUOTA] mailbox full' });
    expect(j.get(A, 'u3')).toMatchObject({
      state: 'failed',
      attempts: 1,
      lastError: expect.stringContaining('an earlier copy was interrupted'),
    });
    expect(j.get(A, 'u4')).toMatchObject({ state: 'appending', attempts: 1 });
    expect(j.counts(A)).toEqual({ done: 0, appending: 1, failed: 2 });
    // Withdrawn is as never begun: the message is copied again from scratch.
    j.beginAppend(A, [item('u1')]);
    expect(j.get(A, 'u1')).toMatchObject({ state: 'appending', attempts: 1 });
  });

  it('withdraws nothing but intents: any other row is a bug, and the whole step changes nothing', () => {
    const j = openJournal();
    j.beginAppend(A, [item('u1'), item('u2'), item('u3'), item('u4')]);
    j.confirm(A, 'u2', { destUidValidity: 7n, destUid: 1 });
    j.fail(A, 'u3', 'refused');
    // A copy made on a retry: done -> failed is an edge, but only with markCopyMissing's proof.
    j.fail(A, 'u4', 'refused');
    j.beginAppend(A, [item('u4')]);
    j.confirm(A, 'u4', { destUidValidity: 7n, destUid: 2 });
    const before = ['u1', 'u2', 'u3', 'u4'].map((u) => j.get(A, u));
    for (const other of ['u2', 'u3', 'u4', 'nope']) {
      const e = caught(() => j.withdrawAppend(A, ['u1', other]));
      expect(e.kind).toBe('internal');
      expect(e.context.uidl).toBe(other);
    }
    expect(['u1', 'u2', 'u3', 'u4'].map((u) => j.get(A, u))).toEqual(before);
    expect(j.get(A, 'nope')).toBeUndefined();
  });

  it('sends a copy proven missing back to be copied (done -> failed), only with the proof of its own copy', () => {
    const j = openJournal();
    j.beginAppend(A, [item('u1', { destUidNext: 4 })]);
    j.confirm(A, 'u1', { destUidValidity: 7n, destUid: 4 });
    const before = j.get(A, 'u1');
    // A look at another folder, another UIDVALIDITY or another UID proves nothing about this copy.
    for (const seen of [
      { folder: 'Other', uidValidity: 7n, uid: 4 },
      { folder: 'INBOX', uidValidity: 8n, uid: 4 },
      { folder: 'INBOX', uidValidity: 7n, uid: 5 },
    ]) {
      expect(caught(() => j.markCopyMissing(A, 'u1', seen, 'gone')).kind).toBe('internal');
    }
    expect(j.get(A, 'u1')).toEqual(before);
    // A refusal never turns a confirmed copy into a failure.
    expect(caught(() => j.fail(A, 'u1', 'x')).kind).toBe('internal');

    j.markCopyMissing(A, 'u1', { folder: 'INBOX', uidValidity: 7n, uid: 4 }, 'copy missing from the destination');
    expect(j.get(A, 'u1')).toMatchObject({
      state: 'failed',
      destUid: null,
      copiedAt: null,
      lastError: 'copy missing from the destination',
    });
    // An ordinary failed message now: the next run copies it again.
    j.beginAppend(A, [item('u1', { destUidNext: 9 })]);
    j.confirm(A, 'u1', { destUidValidity: 7n, destUid: 9 });
    expect(j.get(A, 'u1')).toMatchObject({ state: 'done', destUid: 9, attempts: 2 });
    // Only from 'done': a row being deleted or deleted has nothing to go back to.
    j.markDeleting(A, ['u1']);
    expect(caught(() => j.markCopyMissing(A, 'u1', { folder: 'INBOX', uidValidity: 7n, uid: 9 }, 'gone')).kind).toBe(
      'internal',
    );
  });

  it('writes a batch all or nothing', () => {
    const j = openJournal();
    j.beginAppend(A, [item('done1')]);
    j.confirm(A, 'done1', { destUidValidity: 7n, destUid: 1 });
    const e = caught(() => j.beginAppend(A, [item('new1'), item('done1'), item('new2')]));
    expect(e.kind).toBe('internal');
    expect(e.context.uidl).toBe('done1');
    expect(j.get(A, 'new1')).toBeUndefined();
    expect(j.get(A, 'new2')).toBeUndefined();
    expect(caught(() => j.beginAppend(A, [item('x'), item('x')])).kind).toBe('internal');
    expect(j.get(A, 'x')).toBeUndefined();
  });

  it('checks each row of a batch against the state it had, whatever its uidl holds', () => {
    const j = openJournal();
    // Characters a POP3 UIDL may hold that quoting or escaping could mangle in a batched lookup.
    const odd = `q"'\\%_,)(?x`;
    j.beginAppend(A, [item('failed1'), item('again1'), item(odd)]);
    j.settleAppends(A, [
      { uidl: 'failed1', ok: false, error: 'refused' },
      { uidl: odd, ok: true, destUidValidity: 7n, destUid: 3 },
    ]);
    // A batch of new, failed and still-appending rows is legal; each counts its own attempts.
    j.beginAppend(A, [item('new1'), item('failed1'), item('again1')]);
    expect(j.get(A, 'new1')?.attempts).toBe(1);
    expect(j.get(A, 'failed1')).toMatchObject({ state: 'appending', attempts: 2 });
    expect(j.get(A, 'again1')).toMatchObject({ state: 'appending', attempts: 2 });
    // The done row is found by its own uidl: copying it again is refused, the batch unwritten.
    const before = j.get(A, odd);
    const e = caught(() => j.beginAppend(A, [item('new2'), item(odd)]));
    expect(e.kind).toBe('internal');
    expect(e.context.uidl).toBe(odd);
    expect(j.get(A, odd)).toEqual(before);
    expect(j.get(A, 'new2')).toBeUndefined();
  });

  it('checks the states of batches larger than one lookup reads', () => {
    const j = openJournal();
    const many = Array.from({ length: 150 }, (_, i) => `m${i}`);
    j.beginAppend(A, [item(many[140]!)]);
    j.confirm(A, many[140]!, { destUidValidity: 7n, destUid: 1 });
    const e = caught(() =>
      j.beginAppend(
        A,
        many.map((u) => item(u)),
      ),
    );
    expect(e.context.uidl).toBe(many[140]);
    expect(j.counts(A)).toMatchObject({ appending: 0, done: 1 });
    const rest = many.filter((u) => u !== many[140]);
    j.beginAppend(
      A,
      rest.map((u) => item(u)),
    );
    j.settleAppends(
      A,
      rest.map((uidl, i) => ({ uidl, ok: true as const, destUidValidity: 7n, destUid: 2 + i })),
    );
    expect(j.counts(A)).toMatchObject({ appending: 0, done: 150 });
    expect(caught(() => j.settleAppends(A, [{ uidl: many[149]!, ok: false, error: 'x' }])).kind).toBe('internal');
  });

  it('keeps accounts apart', () => {
    const j = openJournal();
    j.beginAppend(A, [item('u1')]);
    j.beginAppend('other', [item('u1')]);
    j.confirm(A, 'u1', { destUidValidity: 7n, destUid: 1 });
    expect(j.get('other', 'u1')?.state).toBe('appending');
    expect(j.counts('other')).toEqual({ done: 0, appending: 1, failed: 0 });
  });

  it('answers counts, rowsInState and rowsByUidl', () => {
    const j = openJournal();
    j.beginAppend(A, [item('a'), item('b'), item('c'), item('d')]);
    j.confirm(A, 'a', { destUidValidity: 7n, destUid: 1 });
    j.confirm(A, 'b', { destUidValidity: 7n, destUid: 2 });
    j.fail(A, 'c', 'no');
    expect(j.counts(A)).toEqual({ done: 2, appending: 1, failed: 1 });
    expect(j.rowsInState(A, 'done').map((r) => r.uidl)).toEqual(['a', 'b']);
    expect(j.rowsInState(A, 'appending').map((r) => r.uidl)).toEqual(['d']);
    const m = j.rowsByUidl(A);
    expect([...m.keys()].sort()).toEqual(['a', 'b', 'c', 'd']);
    expect(m.get('c')?.lastError).toBe('no');
    expect(j.counts('nobody')).toEqual({ done: 0, appending: 0, failed: 0 });
  });
});

describe('destination UIDs', () => {
  it('doneUidsIn returns the UIDs claimed by done rows of one folder and UIDVALIDITY', () => {
    const j = openJournal();
    j.beginAppend(A, [
      item('a'),
      item('b'),
      item('c'),
      item('d', { folder: 'Archive' }),
      item('e', { destUidValidity: 8n, folder: 'Old' }),
      item('f'),
    ]);
    j.confirm(A, 'a', { destUidValidity: 7n, destUid: 10 });
    j.confirm(A, 'b', { destUidValidity: 7n, destUid: 11 });
    j.confirm(A, 'c', { destUidValidity: 7n, destUid: null });
    j.confirm(A, 'd', { destUidValidity: 7n, destUid: 12 });
    j.confirm(A, 'e', { destUidValidity: 8n, destUid: 13 });
    expect(j.doneUidsIn(A, 'INBOX', 7n)).toEqual(new Set([10, 11]));
    expect(j.doneUidsIn(A, 'Archive', 7n)).toEqual(new Set([12]));
    expect(j.doneUidsIn(A, 'Old', 8n)).toEqual(new Set([13]));
    expect(j.doneUidsIn(A, 'INBOX', 99n)).toEqual(new Set());
  });

  it('refuses to give one UID to two rows', () => {
    const j = openJournal();
    j.beginAppend(A, [item('a'), item('b')]);
    j.confirm(A, 'a', { destUidValidity: 7n, destUid: 10 });
    const e = caught(() => j.confirm(A, 'b', { destUidValidity: 7n, destUid: 10 }));
    expect(e.kind).toBe('internal');
    expect(e.message).toContain('a');
    expect(j.get(A, 'b')?.state).toBe('appending');
  });

  it('settles a batch of outcomes in one step, in order, copies and refusals mixed', () => {
    const stepsFile = join(dir, 'steps');
    const steps = (): number => Number(readFileSync(stepsFile, 'utf8'));
    const j = openJournal();
    configureCrashHook({ killAt: null, stepsFile });
    try {
      j.beginAppend(A, [item('a'), item('b'), item('c')]);
      const begun = steps();
      j.settleAppends(A, [
        { uidl: 'a', ok: true, destUidValidity: 7n, destUid: 10 },
        { uidl: 'b', ok: false, error: 'too big' },
        { uidl: 'c', ok: true, destUidValidity: 7n, destUid: null },
      ]);
      expect(steps()).toBe(begun + 1);
      j.settleAppends(A, []);
      expect(steps()).toBe(begun + 1);
    } finally {
      configureCrashHook({ killAt: null, stepsFile: null });
    }
    expect(j.get(A, 'a')).toMatchObject({ state: 'done', destUid: 10 });
    expect(j.get(A, 'b')).toMatchObject({ state: 'failed', lastError: 'too big' });
    expect(j.get(A, 'c')).toMatchObject({ state: 'done', destUid: null });
  });

  it('refuses one UID given twice within one batch of outcomes, and writes none of it', () => {
    const j = openJournal();
    j.beginAppend(A, [item('a'), item('b'), item('c')]);
    const e = caught(() =>
      j.settleAppends(A, [
        { uidl: 'a', ok: true, destUidValidity: 7n, destUid: 10 },
        { uidl: 'b', ok: true, destUidValidity: 7n, destUid: 11 },
        { uidl: 'c', ok: true, destUidValidity: 7n, destUid: 10 },
      ]),
    );
    expect(e.kind).toBe('internal');
    expect(e.message).toContain('already belongs to message a');
    for (const u of ['a', 'b', 'c']) expect(j.get(A, u)?.state).toBe('appending');
  });

  it('refuses a second outcome for one message within one batch, and writes none of it', () => {
    const j = openJournal();
    j.beginAppend(A, [item('a'), item('b')]);
    for (const twice of [
      [
        { uidl: 'a', ok: true, destUidValidity: 7n, destUid: 1 },
        { uidl: 'a', ok: true, destUidValidity: 7n, destUid: 2 },
      ],
      [
        { uidl: 'a', ok: true, destUidValidity: 7n, destUid: 1 },
        { uidl: 'a', ok: false, error: 'no' },
      ],
      [
        { uidl: 'a', ok: false, error: 'no' },
        { uidl: 'a', ok: true, destUidValidity: 7n, destUid: 1 },
      ],
      [
        { uidl: 'a', ok: false, error: 'no' },
        { uidl: 'a', ok: false, error: 'again' },
      ],
    ] as const) {
      const e = caught(() => j.settleAppends(A, [{ uidl: 'b', ok: true, destUidValidity: 7n, destUid: 5 }, ...twice]));
      expect(e.kind).toBe('internal');
      expect(e.context.uidl).toBe('a');
      for (const u of ['a', 'b']) expect(j.get(A, u)).toMatchObject({ state: 'appending', destUid: null });
    }
  });

  it('checks every outcome of a batch like confirm and fail do (state, UIDVALIDITY)', () => {
    const j = openJournal();
    j.beginAppend(A, [item('a'), item('b')]);
    j.confirm(A, 'a', { destUidValidity: 7n, destUid: 1 });
    // 'a' is done already: a second outcome for it is a bug, and 'b' stays as it was.
    expect(
      caught(() =>
        j.settleAppends(A, [
          { uidl: 'b', ok: true, destUidValidity: 7n, destUid: 2 },
          { uidl: 'a', ok: false, error: 'no' },
        ]),
      ).kind,
    ).toBe('internal');
    expect(j.get(A, 'b')?.state).toBe('appending');
    j.recordFolder(A, 'INBOX', 7n);
    expect(caught(() => j.settleAppends(A, [{ uidl: 'b', ok: true, destUidValidity: 8n, destUid: 2 }])).kind).toBe(
      'uidvalidity',
    );
    expect(j.get(A, 'b')?.state).toBe('appending');
  });

  it('keeps a 32-bit UIDVALIDITY exact', () => {
    const j = openJournal();
    const big = 4_294_967_295n;
    j.recordFolder(A, 'INBOX', big);
    j.beginAppend(A, [item('a', { destUidValidity: big })]);
    j.confirm(A, 'a', { destUidValidity: big, destUid: 1 });
    expect(j.get(A, 'a')?.destUidValidity).toBe(big);
    expect(j.folderUidValidity(A, 'INBOX')).toBe(big);
    expect(j.doneUidsIn(A, 'INBOX', big)).toEqual(new Set([1]));
  });
});

describe('batches written many rows per statement', () => {
  /** Statements run while `fn` runs, on any connection (these tests have one open). */
  function statementsRun(fn: () => void): number {
    const conn = new Database(':memory:');
    const proto = Object.getPrototypeOf(conn.prepare('SELECT 1')) as Record<string, (...a: unknown[]) => unknown>;
    conn.close();
    const original = { run: proto.run!, all: proto.all!, get: proto.get! };
    let n = 0;
    for (const m of ['run', 'all', 'get'] as const) {
      proto[m] = function (this: unknown, ...args: unknown[]) {
        n++;
        return original[m].apply(this, args);
      };
    }
    try {
      fn();
    } finally {
      Object.assign(proto, original);
    }
    return n;
  }

  const hundred = Array.from({ length: 100 }, (_, i) => `m${99 - i}`);

  it('writes 100 intents and their outcomes with a few statements, rows in the order given', () => {
    const j = openJournal();
    const begin = statementsRun(() =>
      j.beginAppend(
        A,
        hundred.map((u) => item(u)),
      ),
    );
    const settle = statementsRun(() =>
      j.settleAppends(
        A,
        hundred.map((uidl, i) => ({ uidl, ok: true as const, destUidValidity: 7n, destUid: 1 + i })),
      ),
    );
    // One upsert and one update per row cost ~13 µs of SQLite each; one statement per chunk far less.
    expect(begin).toBeLessThan(20);
    expect(settle).toBeLessThan(20);
    expect(j.rowsInState(A, 'done').map((r) => [r.uidl, r.destUid, r.attempts])).toEqual(
      hundred.map((u, i) => [u, 1 + i, 1]),
    );
  });

  it('records 100 deletions and their settlement with a few statements, checked in the order given', () => {
    const j = openJournal();
    j.beginAppend(
      A,
      hundred.map((u) => item(u)),
    );
    j.settleAppends(
      A,
      hundred.map((uidl, i) => ({ uidl, ok: true as const, destUidValidity: 7n, destUid: 1 + i })),
    );
    expect(statementsRun(() => j.markDeleting(A, hundred))).toBeLessThan(20);
    // Listed twice, or both deleted and kept: refused like a lookup per row, nothing written.
    expect(caught(() => j.settleDeleting(A, { deleted: [hundred[3]!, hundred[3]!], kept: [] })).message).toBe(
      `illegal journal transition deleted -> deleted for message ${hundred[3]}`,
    );
    expect(caught(() => j.settleDeleting(A, { deleted: hundred, kept: [hundred[99]!] })).message).toBe(
      `illegal journal transition deleted -> done for message ${hundred[99]}`,
    );
    expect(j.counts(A)).toMatchObject({ deleting: 100 });
    const settle = statementsRun(() =>
      j.settleDeleting(A, { deleted: hundred.slice(0, 90), kept: [...hundred.slice(90), 'never-listed'] }),
    );
    expect(settle).toBeLessThan(20);
    expect(j.counts(A)).toMatchObject({ done: 10, deleted: 90 });
    expect(j.rowsInState(A, 'deleted').map((r) => r.uidl)).toEqual(hundred.slice(0, 90));
    expect(j.get(A, hundred[0]!)?.deletedAt).not.toBeNull();
    expect(j.get(A, hundred[95]!)?.deletedAt).toBeNull();
    expect(j.get(A, 'never-listed')).toBeUndefined();
  });

  it('refuses a UID already taken, in any chunk, naming its owner, and writes none of the batch', () => {
    const j = openJournal();
    j.beginAppend(A, [item('old')]);
    j.confirm(A, 'old', { destUidValidity: 7n, destUid: 500 });
    j.beginAppend(
      A,
      hundred.map((u) => item(u)),
    );
    const before = j.rowsInState(A, 'appending');
    const outcomes = (uid: (i: number) => number) =>
      hundred.map((uidl, i) => ({ uidl, ok: true as const, destUidValidity: 7n, destUid: uid(i) }));
    const older = caught(() =>
      j.settleAppends(
        A,
        outcomes((i) => (i === 70 ? 500 : 1 + i)),
      ),
    );
    expect(older.kind).toBe('internal');
    expect(older.message).toBe(
      `UID 500 in INBOX already belongs to message old; it cannot also be the copy of ${hundred[70]}`,
    );
    expect(older.context).toMatchObject({
      uidl: hundred[70],
      folder: 'INBOX',
      hint: 'this is a bug in popsync; the journal was left unchanged',
    });
    // Twice within the list, in two different chunks: the later one is refused.
    const twice = caught(() =>
      j.settleAppends(
        A,
        outcomes((i) => (i === 90 ? 11 : 1 + i)),
      ),
    );
    expect(twice.message).toBe(
      `UID 11 in INBOX already belongs to message ${hundred[10]}; it cannot also be the copy of ${hundred[90]}`,
    );
    expect(j.rowsInState(A, 'appending')).toEqual(before);
    expect(j.get(A, 'old')).toMatchObject({ state: 'done', destUid: 500 });
  });

  it('with several faults in one batch, refuses the first in order, as row-by-row checks would', () => {
    const j = openJournal();
    j.beginAppend(A, [item('done1')]);
    j.confirm(A, 'done1', { destUidValidity: 7n, destUid: 500 });
    j.recordFolder(A, 'Other', 9n);
    const batch = hundred.map((u) => item(u));
    // Row 2 is in a folder of another UIDVALIDITY, row 80 is copied already.
    const withFaults = [...batch.slice(0, 2), item('x', { folder: 'Other' }), ...batch.slice(2, 80), item('done1')];
    expect(caught(() => j.beginAppend(A, withFaults)).kind).toBe('uidvalidity');
    const swapped = [...batch.slice(0, 2), item('done1'), ...batch.slice(2, 80), item('x', { folder: 'Other' })];
    expect(caught(() => j.beginAppend(A, swapped)).context.uidl).toBe('done1');
    expect(j.counts(A)).toMatchObject({ appending: 0, done: 1 });
    j.beginAppend(A, batch);
    // Outcomes: row 5 settled twice (a bug), row 80's UID taken: the first is reported.
    const outcomes = hundred.map((uidl, i) => ({ uidl, ok: true as const, destUidValidity: 7n, destUid: 1 + i }));
    outcomes[80] = { ...outcomes[80]!, destUid: 500 };
    const e = caught(() =>
      j.settleAppends(A, [
        ...outcomes.slice(0, 6),
        { uidl: hundred[5]!, ok: false, error: 'no' },
        ...outcomes.slice(6),
      ]),
    );
    expect(e.context.uidl).toBe(hundred[5]);
    expect(e.message).toContain('illegal journal transition done -> failed');
    expect(j.counts(A)).toMatchObject({ appending: 100, done: 1 });
  });
});

describe('the index a run reads', () => {
  it('gives every row its own fields, in first-seen order', () => {
    const j = openJournal(ALICE, { now: () => new Date('2026-11-30T04:00:00.000Z') });
    j.beginAppend(A, [item('b', { size: 7, headerHash: 'hb', listSize: 8 }), item('a', { size: 5 })]);
    j.confirm(A, 'b', { destUidValidity: 7n, destUid: 3 });
    j.markVanished(A, ['b']);
    j.beginAppend(A, [item('c', { size: 9, headerHash: 'hc' })]);
    j.fail(A, 'c', 'no');
    const index = j.indexByUidl(A);
    expect([...index.keys()]).toEqual(['b', 'a', 'c']);
    for (const uidl of ['a', 'b', 'c']) {
      const r = j.get(A, uidl)!;
      expect(index.get(uidl)).toEqual({
        uidl,
        state: r.state,
        size: r.size,
        listSize: r.listSize,
        headerHash: r.headerHash,
        vanishedAt: r.vanishedAt,
        copiedAt: r.copiedAt,
      });
    }
    expect(index.get('b')).toMatchObject({ state: 'done', size: 7, listSize: 8, headerHash: 'hb' });
    expect(index.get('b')?.vanishedAt).toBe('2026-11-30T04:00:00.000Z');
    expect(index.get('b')?.copiedAt).toBe('2026-11-30T04:00:00.000Z');
    expect(index.get('c')).toMatchObject({ state: 'failed', size: 9, listSize: null, copiedAt: null });
  });
});

describe('UIDVALIDITY change detection', () => {
  it('records a folder on first sight and accepts the same value again', () => {
    const j = openJournal();
    expect(j.folderUidValidity(A, 'INBOX')).toBeNull();
    j.recordFolder(A, 'INBOX', 7n);
    j.recordFolder(A, 'INBOX', 7n);
    expect(j.folderUidValidity(A, 'INBOX')).toBe(7n);
    expect(j.folderUidValidity('other', 'INBOX')).toBeNull();
  });

  it('accepts a changed value: the old one is reported, done rows keep their history', () => {
    const j = openJournal();
    expect(j.recordFolder(A, 'Lists/rust', 1700000000n, { uidNext: 1, messages: 0 })).toEqual({
      first: true,
      replaced: null,
      adoptBelow: null,
    });
    j.beginAppend(A, [item('a', { folder: 'Lists/rust', destUidValidity: 1700000000n })]);
    j.confirm(A, 'a', { destUidValidity: 1700000000n, destUid: 1 });
    j.close();
    const k = openJournal();
    // Recreated and holding mail again: the new value, and its mail is searched for copies.
    expect(k.recordFolder(A, 'Lists/rust', 1700000555n, { uidNext: 4, messages: 3 })).toEqual({
      first: false,
      replaced: 1700000000n,
      adoptBelow: 4,
    });
    expect(k.folderUidValidity(A, 'Lists/rust')).toBe(1700000555n);
    expect(k.get(A, 'a')).toMatchObject({ state: 'done', destUidValidity: 1700000000n, destUid: 1 });
    // The old copy's UID claims nothing under the new value.
    expect(k.doneUidsIn(A, 'Lists/rust', 1700000555n)).toEqual(new Set());
    expect(k.recordFolder(A, 'Lists/rust', 1700000555n, { uidNext: 9, messages: 8 })).toEqual({
      first: false,
      replaced: null,
      adoptBelow: 4,
    });
  });

  it('asks for adoption only when a folder first seen holds mail, until endAdoption', () => {
    const j = openJournal();
    expect(j.recordFolder(A, 'Empty', 5n, { uidNext: 20, messages: 0 }).adoptBelow).toBeNull();
    expect(j.recordFolder(A, 'Full', 5n, { uidNext: 20, messages: 12 }).adoptBelow).toBe(20);
    expect(j.recordFolder(A, 'Unknown', 5n, { uidNext: 3, messages: null }).adoptBelow).toBe(3);
    j.endAdoption(A);
    expect(j.recordFolder(A, 'Full', 5n, { uidNext: 25, messages: 17 }).adoptBelow).toBeNull();
  });

  it('refuses to begin or confirm against a UIDVALIDITY other than the recorded one', () => {
    const j = openJournal();
    j.recordFolder(A, 'INBOX', 7n);
    expect(caught(() => j.beginAppend(A, [item('a', { destUidValidity: 8n })])).kind).toBe('uidvalidity');
    j.beginAppend(A, [item('b')]);
    expect(caught(() => j.confirm(A, 'b', { destUidValidity: 8n, destUid: 1 })).kind).toBe('uidvalidity');
    expect(j.get(A, 'b')?.state).toBe('appending');
  });

  it('checks every folder and UIDVALIDITY of a batch, not only its first', () => {
    const j = openJournal();
    j.recordFolder(A, 'INBOX', 7n);
    j.recordFolder(A, 'Other', 5n);
    for (const batch of [
      [item('a'), item('b', { destUidValidity: 8n })],
      [item('a'), item('b', { folder: 'Other' })],
    ]) {
      const e = caught(() => j.beginAppend(A, batch));
      expect(e.kind).toBe('uidvalidity');
      expect(e.context.uidl).toBe('b');
      expect(j.get(A, 'a')).toBeUndefined();
    }
    j.beginAppend(A, [item('a'), item('b', { folder: 'Other', destUidValidity: 5n })]);
    for (const outcomes of [
      [
        { uidl: 'a', ok: true, destUidValidity: 7n, destUid: 1 },
        { uidl: 'b', ok: true, destUidValidity: 7n, destUid: 1 },
      ],
      [
        { uidl: 'b', ok: true, destUidValidity: 5n, destUid: 1 },
        { uidl: 'a', ok: true, destUidValidity: 5n, destUid: 2 },
      ],
    ] as const) {
      expect(caught(() => j.settleAppends(A, outcomes)).kind).toBe('uidvalidity');
      for (const u of ['a', 'b']) expect(j.get(A, u)?.state).toBe('appending');
    }
  });
});

describe('crash hook', () => {
  it('parses a kill point and rejects nonsense', () => {
    expect(parseKillAt('3:before')).toEqual({ step: 3, when: 'before' });
    expect(parseKillAt('12:after')).toEqual({ step: 12, when: 'after' });
    for (const bad of ['0:after', '3', 'x:before', '3:during', '-1:after']) {
      expect(caught(() => parseKillAt(bad)).kind).toBe('internal');
    }
  });

  it('counts one step per committed transaction, a batch being one', () => {
    const j = openJournal();
    // The count the crash-matrix tests read: the hook writes it to its steps file after each step.
    const file = join(dir, 'steps');
    const steps = () => Number(readFileSync(file, 'utf8'));
    configureCrashHook({ killAt: null, stepsFile: file });
    try {
      j.recordFolder(A, 'Archive', 7n);
      const s0 = steps();
      j.beginAppend(A, [item('a'), item('b'), item('c')]);
      expect(steps()).toBe(s0 + 1);
      j.confirm(A, 'a', { destUidValidity: 7n, destUid: 1 });
      j.fail(A, 'b', 'no');
      j.recordFolder(A, 'INBOX', 7n);
      expect(steps()).toBe(s0 + 4);
      // No write, no step: an empty batch, a known folder, a refused transition.
      j.beginAppend(A, []);
      j.recordFolder(A, 'INBOX', 7n);
      caught(() => j.fail(A, 'a', 'no'));
      expect(steps()).toBe(s0 + 4);
    } finally {
      configureCrashHook({ killAt: null, stepsFile: null });
    }
  });
});

describe('adoption, UID learning, forgetting a folder', () => {
  it('adopts copies found in the destination as done, from no row or a failed row', () => {
    const j = openJournal();
    j.recordFolder(A, 'INBOX', 7n);
    j.beginAppend(A, [item('f')]);
    j.fail(A, 'f', 'refused');
    j.adopt(A, [
      { ...item('new', { fingerprint: 'v1:x' }), destUid: 4 },
      { ...item('f'), destUid: 5 },
    ]);
    expect(j.get(A, 'new')).toMatchObject({ state: 'done', destUid: 4, fingerprint: 'v1:x', attempts: 0 });
    expect(j.get(A, 'f')).toMatchObject({ state: 'done', destUid: 5 });
    expect(caught(() => j.adopt(A, [{ ...item('other'), destUid: 4 }])).kind).toBe('internal');
    expect(caught(() => j.adopt(A, [{ ...item('new'), destUid: 6 }])).kind).toBe('internal'); // done -> done
  });

  it('learns the UID of a copy recorded without one, once, and never a claimed one', () => {
    const j = openJournal();
    j.beginAppend(A, [item('a'), item('b')]);
    j.confirm(A, 'a', { destUidValidity: 7n, destUid: null });
    j.confirm(A, 'b', { destUidValidity: 7n, destUid: 3 });
    expect(j.copiesWithoutUid(A, 'INBOX', 7n).map((r) => r.uidl)).toEqual(['a']);
    expect(caught(() => j.learnUids(A, [{ uidl: 'a', destUid: 3 }])).kind).toBe('internal');
    j.learnUids(A, [{ uidl: 'a', destUid: 2 }]);
    expect(j.get(A, 'a')).toMatchObject({ state: 'done', destUid: 2 });
    expect(j.copiesWithoutUid(A, 'INBOX', 7n)).toEqual([]);
    expect(caught(() => j.learnUids(A, [{ uidl: 'a', destUid: 9 }])).kind).toBe('internal');
  });

  it('forgets one folder: its record and its rows, keeping rows deleted from the source', () => {
    const j = openJournal();
    j.recordFolder(A, 'INBOX', 7n);
    j.recordFolder(A, 'Old', 7n);
    j.beginAppend(A, [
      item('keep'),
      item('x', { folder: 'Old' }),
      item('y', { folder: 'Old' }),
      item('z', { folder: 'Old' }),
    ]);
    j.confirm(A, 'keep', { destUidValidity: 7n, destUid: 1 });
    j.confirm(A, 'x', { destUidValidity: 7n, destUid: 1 });
    j.confirm(A, 'z', { destUidValidity: 7n, destUid: 2 });
    j.markDeleting(A, ['z']);
    expect(caught(() => j.forgetFolder(A, 'Old')).kind).toBe('usage');
    j.settleDeleting(A, { deleted: ['z'], kept: [] });
    expect(j.forgetFolder(A, 'Old')).toEqual({ forgotten: 2, kept: 1 });
    expect(j.get(A, 'x')).toBeUndefined();
    expect(j.get(A, 'y')).toBeUndefined();
    expect(j.get(A, 'z')?.state).toBe('deleted');
    expect(j.get(A, 'keep')?.state).toBe('done');
    expect(j.folderUidValidity(A, 'Old')).toBeNull();
    expect(j.folderUidValidity(A, 'INBOX')).toBe(7n);
  });
});
