/**
 * The account lock between processes, against the real Dovecot: runs on one account queue or
 * refuse (exit 7), and never both copy.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { realisticMix } from '../../src/lab/corpus.js';
import type { Lab } from '../../src/lab/dovecot.js';
import { labArgs, useLab } from '../support/lab-fixture.js';
import { runCli } from '../support/cli.js';
import { destinationMessages } from '../support/mailboxes.js';

let lab: Lab;
let dir: string;

useLab('lock', {}, (l, d) => {
  lab = l;
  dir = d;
});

const env = () => ({ PW: lab.password });

describe('the account lock', () => {
  it('migrate --wait queues a second run behind the first instead of exiting 7', async () => {
    const pop = lab.newUser('src');
    const imap = lab.newUser('dst');
    const journal = join(dir, `${pop}.sqlite`);
    await lab.seedPop3(pop, realisticMix(30, 31));
    const [a, b] = await Promise.all([0, 1].map(() => runCli(labArgs('migrate', lab, pop, imap, journal, ['--wait', '60']), { env: env() })));
    expect([a!.code, b!.code], a!.stderr + b!.stderr).toEqual([0, 0]);
    expect(await destinationMessages(lab, imap)).toHaveLength(30);
  });
});
