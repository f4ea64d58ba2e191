/**
 * isync's crash test, against real Dovecot: a clean run is counted in journal steps; then for
 * every step k the run is SIGKILLed just before and just after step k commits (the journal's
 * test-only hook), resumed, and the destination must hold every source message exactly once,
 * byte for byte; one more run must change nothing. Then random SIGKILLs at arbitrary instants.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { realisticMix } from '../../src/lab/corpus.js';
import type { Lab } from '../../src/lab/dovecot.js';
import { labArgs, useLab } from '../support/lab-fixture.js';
import { runCli } from '../support/cli.js';
import { destinationMessages, digests, sourceMessages } from '../support/mailboxes.js';

let lab: Lab;
let dir: string;

useLab('crash', {}, (l, d) => {
  lab = l;
  dir = d;
});

function migrateArgs(pop: string, imap: string, journal: string, extra: string[] = []): string[] {
  return labArgs('migrate', lab, pop, imap, journal, ['--no-progress', '--json', ...extra]);
}

/** A small source with an identical pair: both copies must arrive, through any crash. */
function corpus(): Buffer[] {
  const mix = realisticMix(5, 11);
  return [mix[0]!, mix[1]!, mix[1]!, mix[2]!, mix[3]!, mix[4]!];
}

describe('kill at every journal step, then resume', () => {
  it('ends with every source message exactly once, for every kill point', async () => {
    const messages = corpus();
    const extra = ['--batch-messages', '2'];

    const pop0 = lab.newUser('src');
    await lab.seedPop3(pop0, messages);
    const expected = digests(await sourceMessages(lab, pop0));
    const stepsFile = join(dir, 'steps');
    const clean = await runCli(migrateArgs(pop0, lab.newUser('dst'), join(dir, 'clean.sqlite'), extra), { env: { PW: lab.password, POPSYNC_TEST_STEPS_FILE: stepsFile } });
    expect(clean.code, clean.stderr).toBe(0);
    const steps = Number(readFileSync(stepsFile, 'utf8').trim());
    // 1 folder record + 3 batch begins + 6 confirms, at least.
    expect(steps).toBeGreaterThanOrEqual(10);

    let killPoints = 0;
    for (let k = 1; k <= steps; k++) {
      for (const when of ['before', 'after'] as const) {
        const pop = lab.newUser('src');
        const imap = lab.newUser('dst');
        await lab.seedPop3(pop, messages);
        const journal = join(dir, `${pop}.sqlite`);
        const killed = await runCli(migrateArgs(pop, imap, journal, extra), { env: { PW: lab.password, POPSYNC_TEST_KILL_AT: `${k}:${when}` } });
        expect(killed.signal, `step ${k} ${when}: ${killed.stderr}`).toBe('SIGKILL');
        killPoints++;

        const resumed = await runCli(migrateArgs(pop, imap, journal, extra), { env: { PW: lab.password } });
        expect(resumed.code, `resume after ${k}:${when}: ${resumed.stderr}`).toBe(0);
        const after = await destinationMessages(lab, imap);
        expect(digests(after.map((m) => m.body)), `after kill at ${k}:${when}`).toEqual(expected);

        const again = await runCli(migrateArgs(pop, imap, journal, extra), { env: { PW: lab.password } });
        expect(JSON.parse(again.stdout)).toMatchObject({ copied: 0, reconciled: 0 });
        expect(await destinationMessages(lab, imap)).toHaveLength(expected.length);
      }
    }
    console.log(`crash test: ${steps} journal steps, ${killPoints} kill points covered`);
  }, 600_000);

  it('survives SIGKILL at random instants', async () => {
    const pop = lab.newUser('src');
    const imap = lab.newUser('dst');
    await lab.seedPop3(pop, realisticMix(400, 23));
    const expected = digests(await sourceMessages(lab, pop));
    const journal = join(dir, `${pop}.sqlite`);
    // Deterministic "random" delays, so a failure can be replayed.
    let seed = 12345;
    const next = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    let kills = 0;
    for (let i = 0; i < 25; i++) {
      const r = await runCli(migrateArgs(pop, imap, journal, ['--batch-messages', '5']), { env: { PW: lab.password }, killAfterMs: 300 + Math.floor(next() * 700) });
      if (r.signal === 'SIGKILL') kills++;
      else {
        expect(r.code, r.stderr).toBe(0);
        break;
      }
    }
    console.log(`random kills: ${kills} SIGKILLs before a run completed`);
    expect(kills).toBeGreaterThan(2);
    const final = await runCli(migrateArgs(pop, imap, journal), { env: { PW: lab.password } });
    expect(final.code, final.stderr).toBe(0);
    const dest = await destinationMessages(lab, imap);
    expect(digests(dest.map((m) => m.body))).toEqual(expected);
  }, 300_000);
});
