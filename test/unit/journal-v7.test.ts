/**
 * Journal schema v7: a run records how many copies it adopted; a v6 journal upgrades, its old
 * runs reading as "not known" (null), not as zero.
 */
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { Journal } from '../../src/journal/journal.js';
import { readSchemaVersion, SCHEMA_VERSION } from '../../src/journal/schema.js';
import { journalAtVersion, scratchDirEachTest } from '../support/old-journal.js';

const S = { source: 's' };
const scratch = scratchDirEachTest('popsync-v7-');

const end = { listed: 2, newCount: 2, copied: 0, failed: 0, deleted: 0, copiedBytes: 0, durationMs: 9 };

function v6(path: string): void {
  const db = journalAtVersion(path, 6);
  db.prepare(
    `INSERT INTO runs (account, command, started_at, finished_at, listed, new_count, copied, result)
     VALUES ('a', 'sync', 't', 't', 2, 2, 0, 'ok')`,
  ).run();
  db.close();
}

describe('journal v7', () => {
  it('records the copies a run adopted', () => {
    expect(SCHEMA_VERSION).toBeGreaterThanOrEqual(7);
    const j = Journal.open(join(scratch(), 'new.sqlite'), S);
    try {
      j.finishRun(j.beginRun('a', 'migrate'), { ...end, adopted: 2, result: 'ok', error: null });
      expect(j.recentRuns('a')[0]).toMatchObject({ newCount: 2, copied: 0, adopted: 2 });
    } finally {
      j.close();
    }
  });

  it('upgrades a v6 journal: its runs keep their counts and do not know what they adopted', () => {
    const path = join(scratch(), 'v6.sqlite');
    v6(path);
    const j = Journal.open(path, S);
    try {
      expect(j.recentRuns('a')).toEqual([expect.objectContaining({ newCount: 2, copied: 0, adopted: null })]);
      j.finishRun(j.beginRun('a', 'sync'), { ...end, adopted: 1, result: 'ok', error: null });
      expect(j.recentRuns('a').map((r) => r.adopted)).toEqual([1, null]);
    } finally {
      j.close();
    }
    const db = new Database(path, { readonly: true });
    expect(readSchemaVersion(db, path)).toBe(SCHEMA_VERSION);
    db.close();
  });
});
