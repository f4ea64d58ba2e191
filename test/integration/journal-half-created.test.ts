/**
 * A journal whose creation was killed half-way (a hot rollback journal beside a file without
 * tables) is a new journal, not one that lost its WAL. The kill is real: a child process spills
 * an uncommitted first transaction into the main file and SIGKILLs itself, so this lives in the
 * integration tier, not unit.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Journal } from '../../src/journal/journal.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'popsync-half-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

const S = { source: 'alice@pop.example.net' };

describe('a journal whose creation was killed', () => {
  it('a creation killed half-way (hot rollback journal) is a new journal, not a lost WAL', () => {
    const path = join(dir, 'half.sqlite');
    // Spill pages of an uncommitted first transaction into the main file, then die.
    const script = `const Database = (await import('better-sqlite3')).default;
const db = new Database(${JSON.stringify(path)});
db.pragma('cache_size = 1');
db.exec('BEGIN IMMEDIATE; CREATE TABLE junk (v TEXT)');
const ins = db.prepare('INSERT INTO junk VALUES (?)');
for (let i = 0; i < 2000; i++) ins.run('x'.repeat(200));
process.kill(process.pid, 'SIGKILL');`;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
      cwd: process.cwd(),
      encoding: 'utf8',
    });
    expect(r.signal).toBe('SIGKILL');
    expect(statSync(path).size).toBeGreaterThan(4096);
    expect(existsSync(`${path}-journal`)).toBe(true);
    const j = Journal.open(path, S);
    expect(j.counts(S.source)).toEqual({ done: 0, appending: 0, failed: 0 });
    j.close();
  });
});
