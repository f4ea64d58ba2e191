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
  const jdb = openJournalDb(join(dir, 'j.sqlite'), { source: 's' }, {}, (opened) => opened);
  const db = jdb.conn;
  const levels: Array<[string, number]> = [];
  // The level SQLite applies at COMMIT is the one in force when the transaction's statements run.
  // Watched on every statement of the connection, so a write is seen whichever statement (one
  // row or many) makes it.
  const kinds: Array<[string, RegExp]> = [
    ['begin', /INSERT (OR IGNORE )?INTO messages/],
    ['confirm', /SET state = 'done'/],
    ['setState', /SET state = (@state|\?)/],
    ['deleted', /SET state = 'deleted'/],
  ];
  const proto = Object.getPrototypeOf(db.prepare('SELECT 1')) as Record<'run' | 'all', (...a: unknown[]) => unknown>;
  const original = { run: proto.run, all: proto.all };
  let watching = true;
  for (const method of ['run', 'all'] as const) {
    proto[method] = function (this: Database.Statement, ...args: unknown[]) {
      const kind = watching ? kinds.find(([, re]) => re.test(this.source))?.[0] : undefined;
      if (kind !== undefined) {
        watching = false;
        levels.push([kind, db.pragma('synchronous', { simple: true }) as number]);
        watching = true;
      }
      return original[method].apply(this, args);
    };
  }
  const j = new Messages(jdb, new Folders(jdb));
  try {
    j.beginAppend('s', [
      { uidl: 'u1', size: 1, sha256: 'a', messageId: null, folder: 'INBOX', destUidValidity: 1n, destUidNext: 1 },
    ]);
    j.confirm('s', 'u1', { destUidValidity: 1n, destUid: 1 });
    j.markDeleting('s', ['u1']);
    j.settleDeleting('s', { deleted: ['u1'], kept: [] });
    expect(levels).toEqual([
      ['begin', 2],
      ['confirm', 1],
      ['setState', 2],
      ['deleted', 1],
    ]);
  } finally {
    Object.assign(proto, original);
  }
  expect(db.pragma('synchronous', { simple: true })).toBe(1);
  jdb.close();
});
