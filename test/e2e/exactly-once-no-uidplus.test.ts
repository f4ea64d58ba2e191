/**
 * A destination without UIDPLUS (and LITERAL+): APPEND answers no UID, so popsync learns each
 * copy's UID by content right after its batch, and a copy recorded without one claims its
 * destination message before any interrupted copy may. The case that lost mail: identical
 * messages a (copied) and b (its intent journaled, never sent); the run is killed between
 * them; the resume took a's copy for b's and never copied b. (Since a batch's outcomes are
 * journaled together, a kill can no longer fall between a's outcome and b's APPEND within one
 * batch; the test keeps the nearest state, a recorded without a UID and b not yet sent.)
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { realisticMix } from '../../lab/corpus.js';
import type { Lab } from '../../lab/dovecot.js';
import { labArgs, useLab } from '../support/lab-fixture.js';
import { runCli } from '../support/cli.js';
import { destinationMessages, digests, sourceMessages } from '../support/mailboxes.js';

let lab: Lab;
let dir: string;

// Without MULTIAPPEND too: a and b of one batch then go in two APPENDs (in one MULTIAPPEND
// they would be stored together or not at all, and there would be no moment between them).
useLab('no-uidplus', { imapWithout: ['UIDPLUS', 'LITERAL+', 'MULTIAPPEND'] }, (l, d) => {
  lab = l;
  dir = d;
});

const args = (pop: string, imap: string, journal: string, extra: string[] = []) =>
  labArgs('migrate', lab, pop, imap, journal, ['--no-progress', '--json', '--batch-messages', '3', ...extra]);

describe('no UIDPLUS', () => {
  it('of identical messages a (copied, no UID yet) and b (not yet sent), killed between, both arrive', async () => {
    const [a] = realisticMix(1, 41);
    const pop = lab.newUser('src');
    await lab.seedPop3(pop, [a!, a!]);
    const imap = lab.newUser('dst');
    const journal = join(dir, `${imap}.sqlite`);
    const appendsBefore = lab.imapWire()!.appends;
    // A batch's outcomes are one journal step once all its APPENDs are answered, so a and b in
    // one batch are never split by a step: each in a batch of its own. Steps: 1 folder, 2 intent
    // {a}, 3 a's copy recorded without a UID: killed right after, before its UID is looked for
    // and before b's intent or APPEND.
    const killed = await runCli(args(pop, imap, journal, ['--batch-messages', '1']), {
      env: { PW: lab.password },
      hooks: { killAt: '3:after' },
    });
    expect(killed.signal, killed.stderr).toBe('SIGKILL');
    expect(await destinationMessages(lab, imap)).toHaveLength(1);
    const resumed = await runCli(args(pop, imap, journal, ['--batch-messages', '1']), { env: { PW: lab.password } });
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(JSON.parse(resumed.stdout)).toMatchObject({ copied: 1, reconciled: 0 });
    expect(digests((await destinationMessages(lab, imap)).map((m) => m.body))).toEqual(
      digests(await sourceMessages(lab, pop)),
    );
    // Two APPENDs in all, the imapflow path (no pipelining without LITERAL+).
    expect(lab.imapWire()!.appends - appendsBefore).toBe(2);
  });

  it('a kill before and after every journal step, many identical messages: each arrives exactly once', async () => {
    const mix = realisticMix(3, 43);
    const messages = [mix[0]!, mix[1]!, mix[1]!, mix[2]!, mix[1]!, mix[0]!];
    const pop = lab.newUser('src');
    await lab.seedPop3(pop, messages);
    const expected = digests(await sourceMessages(lab, pop));
    const stepsFile = join(dir, 'steps');
    const clean = lab.newUser('dst');
    const c = await runCli(args(pop, clean, join(dir, `${clean}.sqlite`), ['--batch-messages', '2']), {
      env: { PW: lab.password },
      hooks: { stepsFile },
    });
    expect(c.code, c.stderr).toBe(0);
    const steps = Number(readFileSync(stepsFile, 'utf8').trim());
    // 1 folder + 3 intents + 3 batch outcomes (one step each) + 3 UID lookups.
    expect(steps).toBeGreaterThanOrEqual(10);
    for (let k = 1; k <= steps; k++) {
      for (const when of ['before', 'after'] as const) {
        const imap = lab.newUser('dst');
        const journal = join(dir, `${imap}.sqlite`);
        const killed = await runCli(args(pop, imap, journal, ['--batch-messages', '2']), {
          env: { PW: lab.password },
          hooks: { killAt: `${k}:${when}` },
        });
        expect(killed.signal, `step ${k} ${when}: ${killed.stderr}`).toBe('SIGKILL');
        const resumed = await runCli(args(pop, imap, journal, ['--batch-messages', '2']), {
          env: { PW: lab.password },
        });
        expect(resumed.code, `resume after ${k}:${when}: ${resumed.stderr}`).toBe(0);
        expect(
          digests((await destinationMessages(lab, imap)).map((m) => m.body)),
          `after kill at ${k}:${when}`,
        ).toEqual(expected);
        const again = await runCli(args(pop, imap, journal, ['--batch-messages', '2']), { env: { PW: lab.password } });
        expect(JSON.parse(again.stdout), `third run after ${k}:${when}`).toMatchObject({ copied: 0, reconciled: 0 });
      }
    }
  }, 900_000);
});
