/**
 * isync's crash test for `sync --delete`: a clean run is counted in journal steps (copies and
 * the deletion's 'deleting'/'deleted' steps), then for every step k the run is SIGKILLed just
 * before and just after step k commits, and resumed. After each resume no source message is
 * missing from both sides, none is duplicated in the destination, and everything copied has
 * left the source.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { realisticMix } from '../../lab/corpus.js';
import type { Lab } from '../../lab/dovecot.js';
import { useLab } from '../support/lab-fixture.js';
import { runCli } from '../support/cli.js';
import { destinationMessages, digests, sourceMessages } from '../support/mailboxes.js';
import { syncArgs } from './sync-helpers.js';

let lab: Lab;
let dir: string;

useLab('sync-crash', {}, (l, d) => {
  lab = l;
  dir = d;
});

/** Small, with an identical pair: both copies must arrive and both must be deleted. */
function corpus(): Buffer[] {
  const mix = realisticMix(3, 31);
  return [mix[0]!, mix[1]!, mix[1]!, mix[2]!];
}

describe('kill sync --delete at every journal step, then resume', () => {
  it('never loses a message from both sides, never duplicates one, and deletes everything copied', async () => {
    const messages = corpus();
    const expected = digests(messages);
    const extra = ['--delete', '--batch-messages', '2', '--verify-before-delete'];
    const env = (more: Record<string, string> = {}) => ({ PW: lab.password, ...more });

    const pop0 = lab.newUser('src');
    await lab.seedPop3(pop0, messages);
    const stepsFile = join(dir, 'steps');
    const clean = await runCli(syncArgs(lab, pop0, lab.newUser('dst'), join(dir, 'clean.sqlite'), extra), {
      env: env(),
      hooks: { stepsFile },
    });
    expect(clean.code, clean.stderr).toBe(0);
    expect(await sourceMessages(lab, pop0)).toHaveLength(0);
    const steps = Number(readFileSync(stepsFile, 'utf8').trim());
    // folder + 2 batch begins + 2 batch outcomes (one step each) + deleting + deleted.
    expect(steps).toBeGreaterThanOrEqual(7);

    for (let k = 1; k <= steps; k++) {
      for (const when of ['before', 'after'] as const) {
        const pop = lab.newUser('src');
        const imap = lab.newUser('dst');
        await lab.seedPop3(pop, messages);
        const journal = join(dir, `${pop}.sqlite`);
        const killed = await runCli(syncArgs(lab, pop, imap, journal, extra), {
          env: env(),
          hooks: { killAt: `${k}:${when}` },
        });
        expect(killed.signal, `step ${k} ${when}: ${killed.stderr}`).toBe('SIGKILL');

        // Between the kill and the resume: every message is on at least one side.
        const src = await sourceMessages(lab, pop);
        const dst = (await destinationMessages(lab, imap)).map((m) => m.body);
        const union = new Map<string, number>();
        for (const d of [...digests(src), ...digests(dst)]) union.set(d, Math.max(union.get(d) ?? 0, 1));
        for (const d of new Set(expected)) expect(union.has(d), `after kill at ${k}:${when}`).toBe(true);

        const resumed = await runCli(syncArgs(lab, pop, imap, journal, extra), { env: env() });
        expect(resumed.code, `resume after ${k}:${when}: ${resumed.stderr}`).toBe(0);
        const after = await destinationMessages(lab, imap);
        expect(digests(after.map((m) => m.body)), `destination after kill at ${k}:${when}`).toEqual(expected);
        expect(await sourceMessages(lab, pop), `source after kill at ${k}:${when}`).toHaveLength(0);
      }
    }
    console.log(`sync --delete crash test: ${steps} journal steps, ${2 * steps} kill points`);
  }, 300_000);
});
