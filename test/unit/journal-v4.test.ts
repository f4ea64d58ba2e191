/**
 * Journal schema v4: runs record bytes and duration; v1 and v3 journals upgrade; the measured
 * rate is read without writing.
 */
import { statSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { rateFor } from '../../src/app/plan-account.js';
import { Journal } from '../../src/journal/journal.js';
import { SCHEMA_VERSION, readSchemaVersion } from '../../src/journal/schema.js';
import { journalAtVersion, scratchDirEachTest } from '../support/old-journal.js';

const scratch = scratchDirEachTest('popsync-v4-');

const run = (j: Journal, copiedBytes: number, durationMs: number) =>
  j.finishRun(j.beginRun('a', 'migrate'), {
    listed: 1,
    newCount: 1,
    copied: 1,
    adopted: 0,
    failed: 0,
    deleted: 0,
    result: 'ok',
    error: null,
    copiedBytes,
    durationMs,
  });

function older(path: string, version: number): void {
  const db = journalAtVersion(path, version);
  if (version >= 3)
    db.prepare(
      `INSERT INTO runs (account, command, started_at, finished_at, copied, result) VALUES ('a', 'sync', ` +
        `'t', 't', 3, 'ok')`,
    ).run();
  db.close();
}

describe('journal v4', () => {
  it('is at least version 4', () => {
    expect(SCHEMA_VERSION).toBeGreaterThanOrEqual(4);
  });

  for (const from of [1, 3]) {
    it(`upgrades a v${from} journal: old runs have no rate, new runs do`, () => {
      const path = join(scratch(), `v${from}.sqlite`);
      older(path, from);
      // Not upgraded by reading: peek and the rate see the old file as it is.
      expect(Journal.measuredRate(path, { source: 's' }, 'a')).toBeNull();
      const before = statSync(path).mtimeMs;
      const ro = new Database(path, { readonly: true });
      expect(readSchemaVersion(ro, path)).toBe(from);
      ro.close();
      expect(statSync(path).mtimeMs).toBe(before);
      const j = Journal.open(path, { source: 's' });
      if (from >= 3) expect(j.recentRuns('a')[0]).toMatchObject({ copied: 3, copiedBytes: null, durationMs: null });
      run(j, 4_000_000, 2000);
      j.close();
      expect(Journal.measuredRate(path, { source: 's' }, 'a')).toEqual({ runs: 1, bytes: 4_000_000, ms: 2000 });
    });
  }

  it('the rate sums the last runs that copied something, ignoring no-op and unfinished runs', () => {
    const path = join(scratch(), 'j.sqlite');
    const j = Journal.open(path, { source: 's' });
    for (let i = 0; i < 7; i++) run(j, 1000, 1000);
    run(j, 0, 50);
    j.beginRun('a', 'sync');
    j.close();
    expect(Journal.measuredRate(path, { source: 's' }, 'a')).toEqual({ runs: 5, bytes: 5000, ms: 5000 });
    expect(Journal.measuredRate(path, { source: 's' }, 'other')).toBeNull();
    expect(Journal.measuredRate(path, { source: 'someone else' }, 'a')).toBeNull();
    expect(Journal.measuredRate(join(scratch(), 'none.sqlite'), { source: 's' }, 'a')).toBeNull();
  });

  it('plan: --rate beats the measurement, which beats the stated assumption', () => {
    const m = { runs: 3, bytes: 30 * 1024 * 1024, ms: 3000 };
    expect(rateFor(2, () => m)).toEqual({ bytesPerSecond: 2 * 1024 * 1024, basis: '--rate 2 MB/s' });
    expect(rateFor(undefined, () => m)).toEqual({
      bytesPerSecond: 10 * 1024 * 1024,
      basis: 'measured: 3 earlier runs, 10.0 MiB/s',
    });
    expect(rateFor(undefined, () => null).basis).toMatch(/^assumed 1 MB\/s/);
  });
});
