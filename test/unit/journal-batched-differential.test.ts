/**
 * The batched writes of a copy's intents and outcomes (messages.ts: beginBatched, settleBatched)
 * against the row-by-row checks they fall back to (beginChecked, settleChecked), on made-up
 * journals and batches: the same seed builds the same journal twice, the same call runs on both,
 * once as popsync runs it and once with the batched write refused so the checks alone decide.
 * Both must end alike: the same error (kind, message, context) or none, and the same rows and
 * folders, rowids included (rowid order is first-seen order). Faults drawn: a uidl twice, a row in
 * a state the transition forbids, a folder of another UIDVALIDITY, a UID taken by an older copy or
 * by another outcome of the same list, refusals among copies, copies without a UID. Batches also
 * mix folders, UIDVALIDITIES and UIDNEXTs, which the batched writes bind once per run of rows
 * sharing them; and the batched writes must do the writing themselves, not only fall back.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type Database from 'better-sqlite3';
import type { Statement } from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PopsyncError } from '../../src/errors.js';
import { type JournalDb, openJournalDb } from '../../src/journal/db.js';
import { Folders } from '../../src/journal/folders.js';
import { Messages } from '../../src/journal/messages.js';
import type { AppendSettlement, BeginAppend } from '../../src/journal/types.js';
import { seeded } from '../support/seeded.js';

const BINDING = { source: 'alice@pop.example.net:995' };
const NOW = () => new Date('2026-11-30T04:00:00.000Z');
/** UIDLs as POP3 servers send them, with characters a batched statement must bind, not quote. */
const POOL = ['u0', 'u1', "u'2", 'u"3', 'u 4', 'u,5', 'u?6', 'u7', 'u8', 'u9', 'u10', 'u11'];
const FOLDERS = ['INBOX', 'Other', 'New'];
const VALIDITIES = [7n, 9n, 8n];

interface Parts {
  db: JournalDb;
  folders: Folders;
  messages: Messages;
}

/** The journal as popsync writes it, and one where only the row-by-row checks write; one account per seed. */
let sides: [Parts, Parts];
let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'popsync-batched-'));
  const checked = openParts(join(dir, 'checked.db'));
  checksOnly(checked.messages);
  const batched = openParts(join(dir, 'batched.db'));
  countBatched(batched.messages);
  sides = [batched, checked];
});
afterAll(() => {
  for (const p of sides) p.db.close();
  rmSync(dir, { recursive: true, force: true });
});

function openParts(path: string): Parts {
  return openJournalDb(path, BINDING, { now: NOW }, (db) => {
    const folders = new Folders(db);
    return { db, folders, messages: new Messages(db, folders) };
  });
}

/** Batched writes that did the step themselves (no fall-back to the checks), on the batched side. */
const batchedWrites = { begin: 0, settle: 0 };

function countBatched(m: Messages): void {
  const own = m as unknown as Record<'beginBatched' | 'settleBatched', (...args: unknown[]) => void>;
  for (const name of ['beginBatched', 'settleBatched'] as const) {
    const write = own[name].bind(m);
    own[name] = (...args) => {
      write(...args);
      batchedWrites[name === 'beginBatched' ? 'begin' : 'settle']++;
    };
  }
}

/** Only the row-by-row checks: the batched write bails at once, as it does on any fault. */
function checksOnly(m: Messages): void {
  const refuse = (): never => {
    throw new PopsyncError('internal', 'batched write refused by the test');
  };
  Object.assign(m, { beginBatched: refuse, settleBatched: refuse });
}

function item(uidl: string, folder: string, v: bigint): BeginAppend {
  return {
    uidl,
    size: 10,
    sha256: 'a'.repeat(64),
    messageId: `<${uidl}@x>`,
    folder,
    destUidValidity: v,
    destUidNext: 1,
  };
}

/** Each pool row in some state (or none), INBOX recorded at 7 and Other at 9, UIDs 1-15 partly taken. */
function build(account: string, p: Parts, next: (k: number) => number): void {
  const { folders, messages: m } = p;
  folders.recordFolder(account, 'INBOX', 7n);
  folders.recordFolder(account, 'Other', 9n);
  const states = new Map(
    POOL.map((u) => [u, ['none', 'none', 'appending', 'failed', 'done', 'deleting', 'deleted'][next(7)]!]),
  );
  const rows = POOL.filter((u) => states.get(u) !== 'none');
  const folderOf = new Map(rows.map((u) => [u, next(4) === 0 ? 'Other' : 'INBOX']));
  const v = (u: string): bigint => (folderOf.get(u) === 'Other' ? 9n : 7n);
  // Two intents, one per folder, then each row's outcome: few steps, so few fsyncs.
  for (const f of ['INBOX', 'Other']) {
    const inFolder = rows.filter((u) => folderOf.get(u) === f);
    if (inFolder.length > 0)
      m.beginAppend(
        account,
        inFolder.map((u) => item(u, f, v(u))),
      );
  }
  let uid = 1;
  const settled = rows.filter((u) => states.get(u) !== 'appending');
  m.settleAppends(
    account,
    settled.map((uidl): AppendSettlement => {
      if (states.get(uidl) === 'failed') return { uidl, ok: false, error: `refused ${uidl}` };
      uid += 1 + next(2);
      return { uidl, ok: true, destUidValidity: v(uidl), destUid: next(5) === 0 ? null : uid };
    }),
  );
  const leaving = rows.filter((u) => states.get(u) === 'deleting' || states.get(u) === 'deleted');
  m.markDeleting(account, leaving);
  m.settleDeleting(account, { deleted: leaving.filter((u) => states.get(u) === 'deleted'), kept: [] });
}

/**
 * Consecutive pool uidls into one folder at its UIDVALIDITY, or a third of the time each into any
 * folder at its own and at one of two UIDNEXTs (the batched write binds these once per run of
 * rows sharing them); every other time, a fault or two.
 */
function drawBatch(next: (k: number) => number, from: readonly string[]): BeginAppend[] {
  const folder = FOLDERS[next(3)]!;
  const own = folder === 'Other' ? 9n : 7n;
  const n = 1 + next(from.length);
  const start = next(from.length);
  const mixed = next(3) === 0;
  const out = Array.from({ length: n }, (_, i) => {
    const uidl = from[(start + i) % from.length]!;
    if (!mixed) return item(uidl, folder, own);
    const f = FOLDERS[next(3)]!;
    return { ...item(uidl, f, f === 'Other' ? 9n : 7n), destUidNext: 1 + next(2) };
  });
  if (next(2) === 0) {
    for (let f = 1 + next(2); f > 0; f--) {
      const at = next(out.length);
      if (next(2) === 0) out.splice(at, 0, item(out[next(out.length)]!.uidl, folder, own));
      else out[at] = item(POOL[next(POOL.length)]!, folder, VALIDITIES[next(3)]!);
    }
  }
  return out;
}

/**
 * An outcome per intent, at its folder's UIDVALIDITY, some refused, some without a UID; every
 * other time, a fault or two.
 */
function drawOutcomes(next: (k: number) => number, intents: readonly BeginAppend[]): AppendSettlement[] {
  let uid = 20 + next(6);
  const out = intents.map(({ uidl, destUidValidity }): AppendSettlement => {
    if (next(8) === 0) return { uidl, ok: false, error: `no ${uidl}` };
    uid += 1;
    return { uidl, ok: true, destUidValidity, destUid: next(10) === 0 ? null : uid };
  });
  if (out.length > 0 && next(2) === 0) {
    for (let f = 1 + next(2); f > 0; f--) {
      const at = next(out.length);
      const o = out[at]!;
      const fault = next(4);
      // A uidl twice; another row (perhaps a copy already, or none); another UIDVALIDITY; a UID taken.
      if (fault === 0) out.splice(next(out.length), 0, { ...o });
      else if (fault === 1) out[at] = { ...o, uidl: POOL[next(POOL.length)]! };
      else if (o.ok && fault === 2) out[at] = { ...o, destUidValidity: VALIDITIES[next(3)]! };
      else if (o.ok) out[at] = { ...o, destUid: 1 + next(30) };
    }
  }
  return out;
}

/** What a call did: its error as a user or a test would see it, or 'ok'. */
function outcome(fn: () => void): unknown {
  try {
    fn();
    return 'ok';
  } catch (e) {
    if (!(e instanceof PopsyncError)) throw e;
    return { kind: e.kind, message: e.message, context: e.context };
  }
}

function contents(account: string, p: Parts): unknown {
  const c = p.db.conn;
  return {
    messages: c.prepare('SELECT rowid, * FROM messages WHERE account = ? ORDER BY rowid').all(account),
    folders: c.prepare('SELECT * FROM folders WHERE account = ? ORDER BY folder').all(account),
  };
}

/**
 * Builds the journal of `seed` on both sides, under an account of its own, and runs `call` on
 * each with the same draws; returns what each did and left, whether the call wrote, and whether
 * the batched side's `test` write did so itself (not the checks it falls back to).
 */
function both(
  test: 'begin' | 'settle',
  seed: number,
  call: (account: string, p: Parts, next: (k: number) => number) => void,
): [unknown, unknown, boolean, boolean] {
  const account = `${test}${seed}`;
  let byBatched = false;
  const results = sides.map((p) => {
    build(account, p, seeded(seed));
    const before = batchedWrites[test];
    const did = outcome(() => call(account, p, seeded(seed * 7919 + 1)));
    byBatched ||= batchedWrites[test] > before;
    return { did, ...(contents(account, p) as object) };
  });
  return [results[0], results[1], results[0]!.did === 'ok', byBatched];
}

/** The pool uidls an intent may be recorded for (no row, 'appending' or 'failed'). */
function open(account: string, p: Parts): string[] {
  const rows = new Map(
    (
      p.db.conn.prepare('SELECT uidl, state FROM messages WHERE account = ?').all(account) as Array<{
        uidl: string;
        state: string;
      }>
    ).map((r) => [r.uidl, r.state]),
  );
  return POOL.filter((u) => ['appending', 'failed', undefined].includes(rows.get(u)));
}

const SEEDS = 150;

describe('batched intents and outcomes write exactly what the row-by-row checks write', () => {
  it(`beginAppend: the same error or rows on ${SEEDS} made-up journals and batches`, () => {
    let written = 0;
    let byBatched = 0;
    for (let seed = 1; seed <= SEEDS; seed++) {
      const [batched, checked, wrote, batchedWrote] = both('begin', seed, (account, p, next) =>
        p.messages.beginAppend(account, drawBatch(next, next(3) === 0 ? POOL : open(account, p))),
      );
      expect(batched, `seed ${seed}`).toEqual(checked);
      if (wrote) written++;
      if (batchedWrote) byBatched++;
    }
    // Both ways are exercised: batches written, and batches refused.
    expect(written).toBeGreaterThan(SEEDS / 5);
    expect(written).toBeLessThan(SEEDS - SEEDS / 5);
    // Every batch written was written by the batched statements, not by the checks they fall back to.
    expect(byBatched).toBe(written);
  });

  it(`settleAppends: the same error or rows on ${SEEDS} made-up journals and outcome lists`, () => {
    let written = 0;
    let byBatched = 0;
    for (let seed = 1; seed <= SEEDS; seed++) {
      const [batched, checked, wrote, batchedWrote] = both('settle', seed, (account, p, next) => {
        const from = open(account, p);
        // Mostly INBOX, some Other: outcomes at two UIDVALIDITIES, each its row's folder's.
        const batch = [...new Set(from.slice(0, 1 + next(from.length)))].map((u) =>
          next(3) === 0 ? item(u, 'Other', 9n) : item(u, 'INBOX', 7n),
        );
        if (batch.length > 0) p.messages.beginAppend(account, batch);
        p.messages.settleAppends(account, drawOutcomes(next, batch));
      });
      expect(batched, `seed ${seed}`).toEqual(checked);
      if (wrote) written++;
      if (batchedWrote) byBatched++;
    }
    expect(written).toBeGreaterThan(SEEDS / 5);
    expect(written).toBeLessThan(SEEDS - SEEDS / 5);
    // The batched statements themselves wrote most lists: a refusal of a row not 'appending'
    // is the checks' to write (failRow lets a 'failed' row fail again), copies never are.
    expect(byBatched).toBeGreaterThan(written * 0.8);
  });

  it("no batched statement reads all of an account's rows: each row by its key", () => {
    // The statements the tests above had the batched side prepare: intents, copies, deletions.
    const kept = (sides[0].messages as unknown as { writes: Map<string, Statement> }).writes;
    for (const kind of ['begin', 'confirm', 'deleted'])
      expect([...kept.keys()].filter((k) => k.startsWith(kind)).length, kind).toBeGreaterThan(1);
    for (const [kind, stmt] of kept) {
      // An intent's upsert reads no row (its conflict is found by the key); the others look each up by it.
      const lookups = explain(sides[0].db.conn, stmt.source)
        .split(' | ')
        .filter((step) => / messages\b/.test(step));
      for (const step of lookups)
        expect(step, kind).toBe('SEARCH messages USING INDEX sqlite_autoindex_messages_1 (account=? AND uidl=?)');
      if (!kind.startsWith('begin')) expect(lookups.length, kind).toBe(1);
    }
  });
});

/** SQLite's plan for `sql`, its steps joined by ' | ', every parameter bound to null. */
function explain(c: Database.Database, sql: string): string {
  const anonymous = (sql.match(/\?/g) ?? []).length;
  const named = Object.fromEntries([...sql.matchAll(/@(\w+)/g)].map((x) => [x[1]!, null]));
  const rows = c.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(Array(anonymous).fill(null), named) as Array<{
    detail: string;
  }>;
  return rows.map((r) => r.detail).join(' | ');
}
