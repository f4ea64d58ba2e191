/**
 * The starting point of the reconcile tests: a source copied by a first `migrate` (checked),
 * then its journal rewritten by an SQL statement as a kill would have left it.
 */
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { expect } from 'vitest';
import type { Lab } from '../../lab/dovecot.js';
import { runCli } from './cli.js';
import { labArgs } from './lab-fixture.js';

export interface Interrupted {
  pop: string;
  imap: string;
  journal: string;
  /** With `peakRss`: the first migrate's peak RSS in MiB. */
  firstPeakRssMb?: number;
}

/**
 * `messages` seeded for a new source user and copied to a new destination user by a first
 * migrate, then `interrupt` run on the journal; it must change every row.
 */
export async function copiedThenInterrupted(
  lab: Lab,
  dir: string,
  messages: Buffer[],
  interrupt: string,
  o: { peakRss?: boolean } = {},
): Promise<Interrupted> {
  const pop = lab.newUser('src');
  const imap = lab.newUser('dst');
  await lab.seedPop3(pop, messages);
  const journal = join(dir, `${pop}.sqlite`);
  const first = await runCli(labArgs('migrate', lab, pop, imap, journal, ['--json', '--no-progress']), {
    env: { PW: lab.password },
    peakRss: o.peakRss,
  });
  expect(first.code, first.stderr).toBe(0);
  expect(JSON.parse(first.stdout)).toMatchObject({ copied: messages.length });
  const db = new Database(journal);
  try {
    expect(db.prepare(interrupt).run().changes).toBe(messages.length);
  } finally {
    db.close();
  }
  return { pop, imap, journal, firstPeakRssMb: first.peakRssMb };
}
