/**
 * A journal that knows nothing of a destination that already holds the copies must copy
 * nothing again. Here: the default journal reached through another spelling of the host.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Lab } from '../../src/lab/dovecot.js';
import { runCli } from '../support/cli.js';
import { useLab } from '../support/lab-fixture.js';
import { destinationMessages, digests, sourceMessages } from '../support/mailboxes.js';
import { mixWithDuplicates } from './crash-matrix.js';

let lab: Lab;
let dir: string;

useLab('journal2', {}, (l, d) => {
  lab = l;
  dir = d;
});

/** migrate with the host spelled as given; no --journal unless one is passed. */
function args(pop: string, imap: string, host: string, journal: string | null, extra: string[] = []): string[] {
  return [
    'migrate',
    '--pop', `pop3://${pop}@${host}:${lab.pop3.port}`, '--pop-tls', 'none',
    '--imap', `imap://${imap}@${host}:${lab.imap.port}`, '--imap-tls', 'none',
    '--pop-password-env', 'PW', '--imap-password-env', 'PW',
    ...(journal === null ? [] : ['--journal', journal]),
    '--no-progress', '--json',
    ...extra,
  ];
}

/** A source (with identical messages among them) copied once; returns what the copy must stay. */
async function copiedOnce(home: string, journal: string | null): Promise<{ pop: string; imap: string; expected: string[] }> {
  const pop = lab.newUser('src');
  const imap = lab.newUser('dst');
  await lab.seedPop3(pop, mixWithDuplicates(30, 61));
  const expected = digests(await sourceMessages(lab, pop));
  const first = await runCli(args(pop, imap, 'localhost', journal), { env: { PW: lab.password, HOME: home } });
  expect(first.code, first.stderr).toBe(0);
  expect(JSON.parse(first.stdout)).toMatchObject({ copied: 30 });
  expect(digests((await destinationMessages(lab, imap)).map((m) => m.body))).toEqual(expected);
  return { pop, imap, expected };
}

async function expectNothingCopiedAgain(imap: string, expected: string[], r: { code: number | null; stdout: string; stderr: string }, what: string): Promise<void> {
  const dest = await destinationMessages(lab, imap);
  expect(dest.length, `${what}: copies in the destination (exit ${r.code}: ${r.stderr.slice(0, 300)})`).toBe(expected.length);
  expect(digests(dest.map((m) => m.body))).toEqual(expected);
  expect(r.code, r.stderr).toBe(0);
  expect(JSON.parse(r.stdout)).toMatchObject({ copied: 0 });
}

describe('a new, lost or second journal over a destination that holds the copies', () => {
  it('the default journal, with the host spelled 127.0.0.1 instead of localhost: 0 copied again', async () => {
    const home = join(dir, 'home-spelling');
    const { pop, imap, expected } = await copiedOnce(home, null);
    const r = await runCli(args(pop, imap, '127.0.0.1', null), { env: { PW: lab.password, HOME: home } });
    await expectNothingCopiedAgain(imap, expected, r, 'second spelling of the host');
  });
});
