/**
 * Which commits are fsynced: intents (before APPEND, before DELE) at synchronous=FULL,
 * outcomes at NORMAL (a power cut may lose them; reconciliation recovers). Observed as the
 * synchronous level in force while each transaction commits.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type Database from 'better-sqlite3';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { openJournalDb } from '../../src/journal/db.js';
import { Folders } from '../../src/journal/folders.js';
import { Messages } from '../../src/journal/messages.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'popsync-dur-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

it('fsyncs intents and only intents', () => {
  // The message rows' own part, so the test can watch the statements it prepared.
  const jdb = openJournalDb(join(dir, 'j.sqlite'), { source: 's' }, {}, (opened) => opened);
  const j = new Messages(jdb, new Folders(jdb));
  const db = jdb.conn;
  const levels: Array<[string, number]> = [];
  // The level SQLite applies at COMMIT is the one in force when the transaction's statements run.
  const sql = (j as unknown as { sql: Record<string, Database.Statement> }).sql;
  for (const name of ['begin', 'confirm', 'setState'] as const) {
    const stmt = sql[name]!;
    const run = stmt.run.bind(stmt);
    (stmt as { run: unknown }).run = (...args: unknown[]) => {
      levels.push([name, db.pragma('synchronous', { simple: true }) as number]);
      return run(...(args as []));
    };
  }
  j.beginAppend('s', [
    { uidl: 'u1', size: 1, sha256: 'a', messageId: null, folder: 'INBOX', destUidValidity: 1n, destUidNext: 1 },
  ]);
  j.confirm('s', 'u1', { destUidValidity: 1n, destUid: 1 });
  j.markDeleting('s', ['u1']);
  expect(levels).toEqual([
    ['begin', 2],
    ['confirm', 1],
    ['setState', 2],
  ]);
  expect(db.pragma('synchronous', { simple: true })).toBe(1);
  jdb.close();
});
