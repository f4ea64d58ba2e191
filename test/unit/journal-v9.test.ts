/**
 * Journal schema v9: the messages table's CHECK on state and messages_done_uid's WHERE are
 * comparisons, so a statement writing rows builds no temporary table per row for them (SQLite
 * builds one for an IN list of three or more values each time it evaluates a constraint); an
 * upgraded v8 journal keeps its rows, rowids and constraints, and the queries that look a UID up
 * still read the index.
 */
import { join } from 'node:path';
import Database, { type Statement } from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { openJournalDb } from '../../src/journal/db.js';
import { Folders } from '../../src/journal/folders.js';
import { Journal } from '../../src/journal/journal.js';
import { Messages } from '../../src/journal/messages.js';
import { MessageQueries } from '../../src/journal/queries.js';
import { readSchemaVersion, SCHEMA_VERSION } from '../../src/journal/schema.js';
import { journalAtVersion, scratchDirEachTest } from '../support/old-journal.js';

const S = { source: 's' };
const scratch = scratchDirEachTest('popsync-v9-');

const COLUMNS = `account, uidl, state, size, folder, dest_uidvalidity, dest_uid, attempts, first_seen_at, updated_at,
                 copied_at, header_hash, list_size, fingerprint`;

/** A v8 journal with a row in each state, a gap in its rowids, and a UID shared by a copy and a failed row. */
function v8(path: string): void {
  const db = journalAtVersion(path, 8);
  const row = db.prepare(
    `INSERT INTO messages (${COLUMNS}) VALUES ('a', ?, ?, 5, 'INBOX', '7', ?, 1, 't', 't', 't', 'h', 5, 'f')`,
  );
  row.run('u1', 'done', 3);
  row.run('gone', 'failed', null);
  row.run('u2', 'appending', null);
  row.run('u3', 'deleting', 4);
  row.run('u4', 'deleted', 5);
  row.run('u5', 'failed', 3);
  row.run('u6', 'done', null);
  db.prepare(`DELETE FROM messages WHERE uidl = 'gone'`).run();
  db.close();
}

function allRows(path: string): unknown[] {
  const db = new Database(path, { readonly: true });
  try {
    return db.prepare('SELECT rowid, * FROM messages ORDER BY rowid').all();
  } finally {
    db.close();
  }
}

/** Where SQLite's program for `stmt` opens a temporary table, every parameter bound to null. */
function ephemeralTables(c: Database.Database, stmt: Statement<unknown[]>): number {
  const sql = stmt.source;
  const anonymous = (sql.match(/\?/g) ?? []).length;
  const named = Object.fromEntries([...sql.matchAll(/@(\w+)/g)].map((x) => [x[1]!, null]));
  const ops = c.prepare(`EXPLAIN ${sql}`).all(Array(anonymous).fill(null), named) as Array<{ opcode: string }>;
  return ops.filter((o) => o.opcode === 'OpenEphemeral').length;
}

/** SQLite's plan for `stmt`, its steps joined by ' | '. */
function plan(c: Database.Database, stmt: Statement<unknown[]>): string {
  const anonymous = (stmt.source.match(/\?/g) ?? []).length;
  const rows = c.prepare(`EXPLAIN QUERY PLAN ${stmt.source}`).all(Array(anonymous).fill(null)) as Array<{
    detail: string;
  }>;
  return rows.map((r) => r.detail).join(' | ');
}

type Statements = Record<string, Statement<unknown[]>>;

describe('journal v9', () => {
  it("writes a message row's state without a temporary table per row", () => {
    expect(SCHEMA_VERSION).toBeGreaterThanOrEqual(9);
    const path = join(scratch(), 'new.sqlite');
    openJournalDb(path, S, {}, (db) => {
      try {
        const m = new Messages(db, new Folders(db)) as unknown as {
          sql: Statements;
          beginMany(n: number): Statement<unknown[]>;
          confirmMany(n: number): Statement<unknown[]>;
        };
        // An intent's upsert (insert, or a retry's update) and the single-row outcomes: none at all.
        expect(ephemeralTables(db.conn, m.beginMany(4))).toBe(0);
        for (const name of ['begin', 'confirm', 'fail', 'failAppending', 'adopt', 'copyMissing'])
          expect(ephemeralTables(db.conn, m.sql[name]!), name).toBe(0);
        // The batched outcome's one is its FROM list, built once per statement.
        expect(ephemeralTables(db.conn, m.confirmMany(4))).toBe(1);
      } finally {
        db.close();
      }
    });
  });

  it('upgrades a v8 journal: rows and rowids kept, state and UID constraints as before', () => {
    const path = join(scratch(), 'v8.sqlite');
    v8(path);
    const before = allRows(path);
    Journal.open(path, S).close();
    expect(allRows(path)).toEqual(before);

    const db = new Database(path);
    try {
      expect(readSchemaVersion(db, path)).toBe(SCHEMA_VERSION);
      const schema = db.prepare(`SELECT sql FROM sqlite_master WHERE tbl_name = 'messages'`).all() as Array<{
        sql: string | null;
      }>;
      for (const { sql } of schema) expect(sql ?? '').not.toMatch(/state\s+IN/i);
      const put = db.prepare(`INSERT INTO messages (${COLUMNS}) VALUES ('a', ?, ?, 5, 'INBOX', '7', ?, 1, 't', 't',
                              't', 'h', 5, 'f')`);
      expect(() => put.run('x1', 'copied', null)).toThrow(/CHECK constraint failed/);
      // UID 3 is u1's copy: no other row owning a copy may have it, a row without a copy may.
      for (const state of ['done', 'deleting', 'deleted'])
        expect(() => put.run(`x-${state}`, state, 3), state).toThrow(/UNIQUE constraint failed/);
      put.run('x2', 'appending', 3);
      put.run('x3', 'failed', 3);
      expect(() => db.prepare(`UPDATE messages SET state = 'done' WHERE uidl = 'x2'`).run()).toThrow(
        /UNIQUE constraint failed/,
      );
    } finally {
      db.close();
    }
  });

  it("reads a copy's owner by UID through messages_done_uid", () => {
    const path = join(scratch(), 'v8.sqlite');
    v8(path);
    const j = Journal.open(path, S);
    try {
      expect(j.uidOwner('a', 'INBOX', 7n, 3)).toBe('u1');
      expect(j.uidOwners('a', 'INBOX', 7n, [3, 4, 5, 6])).toEqual(
        new Map([
          [3, 'u1'],
          [4, 'u3'],
          [5, 'u4'],
        ]),
      );
      expect(j.doneUidsIn('a', 'INBOX', 7n)).toEqual(new Set([3, 4, 5]));
      expect(j.copiesWithoutUid('a', 'INBOX', 7n).map((r) => r.uidl)).toEqual(['u6']);
    } finally {
      j.close();
    }
    openJournalDb(path, S, {}, (db) => {
      try {
        const queries = new MessageQueries(db) as unknown as { sql: Statements };
        const messages = new Messages(db, new Folders(db)) as unknown as { sql: Statements };
        for (const stmt of [
          queries.sql.uidOwner!,
          queries.sql.uidOwners!,
          queries.sql.doneUids!,
          messages.sql.uidOwner!,
        ])
          expect(plan(db.conn, stmt), stmt.source).toMatch(/^SEARCH messages USING INDEX messages_done_uid /);
      } finally {
        db.close();
      }
    });
  });
});
