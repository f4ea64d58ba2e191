/**
 * A journal that knows nothing of a destination that already holds the copies: the default
 * journal reached through another spelling of the host, a journal file deleted, a second
 * journal named by hand. Each must look at the destination first and copy nothing again.
 * And a destination folder deleted and recreated between runs (a new UIDVALIDITY): the next
 * run goes on, and new mail arrives once.
 */
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { ImapFlow } from 'imapflow';
import { describe, expect, it } from 'vitest';
import { realisticMix } from '../../lab/corpus.js';
import type { Lab } from '../../lab/dovecot.js';
import { runCli } from '../support/cli.js';
import { labArgs, useLab } from '../support/lab-fixture.js';
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
    '--pop',
    `pop3://${pop}@${host}:${lab.pop3.port}`,
    '--pop-tls',
    'none',
    '--imap',
    `imap://${imap}@${host}:${lab.imap.port}`,
    '--imap-tls',
    'none',
    '--pop-password-env',
    'PW',
    '--imap-password-env',
    'PW',
    ...(journal === null ? [] : ['--journal', journal]),
    '--no-progress',
    '--json',
    ...extra,
  ];
}

/** A source (with identical messages among them) copied once; returns what the copy must stay. */
async function copiedOnce(
  home: string,
  journal: string | null,
): Promise<{ pop: string; imap: string; expected: string[] }> {
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

async function expectNothingCopiedAgain(
  imap: string,
  expected: string[],
  r: { code: number | null; stdout: string; stderr: string },
  what: string,
): Promise<void> {
  const dest = await destinationMessages(lab, imap);
  expect(dest.length, `${what}: copies in the destination (exit ${r.code}: ${r.stderr.slice(0, 300)})`).toBe(
    expected.length,
  );
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

  it('the journal file deleted between runs: 0 copied again', async () => {
    const journal = join(dir, 'deleted.sqlite');
    const { pop, imap, expected } = await copiedOnce(join(dir, 'home-deleted'), journal);
    for (const f of [journal, `${journal}-wal`, `${journal}-shm`]) rmSync(f, { force: true });
    const r = await runCli(args(pop, imap, 'localhost', journal), { env: { PW: lab.password } });
    await expectNothingCopiedAgain(imap, expected, r, 'deleted journal');
  });

  it('a second journal named by hand: 0 copied again', async () => {
    const { pop, imap, expected } = await copiedOnce(join(dir, 'home-second'), join(dir, 'first.sqlite'));
    const second = join(dir, 'second.sqlite');
    const r = await runCli(args(pop, imap, 'localhost', second), { env: { PW: lab.password } });
    await expectNothingCopiedAgain(imap, expected, r, 'second journal');
    // The run's record says where the 30 new messages went: adopted, not "new 30, copied 0".
    const status = await runCli(['status', '--journal', second]);
    expect(status.code, status.stderr).toBe(0);
    expect(status.stdout).toContain('(listed 30, new 30, copied 0, adopted 30, failed 0, deleted 0)');
    const json = await runCli(['status', '--journal', second, '--json']);
    expect(JSON.stringify(JSON.parse(json.stdout))).toContain('"copied":0,"adopted":30');
  });

  it('sync -v with a second journal says where the listed messages went: found and adopted', async () => {
    const { pop, imap, expected } = await copiedOnce(join(dir, 'home-sync'), join(dir, 'sync-first.sqlite'));
    const [, ...rest] = args(pop, imap, 'localhost', join(dir, 'sync-second.sqlite')).filter((a) => a !== '--json');
    const r = await runCli(['sync', ...rest, '-v'], { env: { PW: lab.password } });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe(
      `popsync: nothing new on ${pop}@localhost:${lab.pop3.port} ` +
        `(30 listed, 0 already copied, 30 found already in the destination and adopted)\n`,
    );
    expect(await destinationMessages(lab, imap)).toHaveLength(expected.length);
  });
});

describe('a destination folder deleted and recreated between runs', () => {
  it('the next run goes on (exit 0) and new mail arrives once', async () => {
    const pop = lab.newUser('src');
    const imap = lab.newUser('dst');
    const journal = join(dir, `${pop}.sqlite`);
    const sync = (): string[] => labArgs('sync', lab, pop, imap, journal, ['--folder', 'Archive', '--json']);
    await lab.seedPop3(pop, realisticMix(5, 71));
    const first = await runCli(sync(), { env: { PW: lab.password } });
    expect(first.code, first.stderr).toBe(0);
    expect(await destinationMessages(lab, imap, 'Archive')).toHaveLength(5);

    const before = await recreateFolder(imap, 'Archive');
    expect(before.after, 'Dovecot gives the recreated folder a new UIDVALIDITY').not.toBe(before.before);

    const fresh = realisticMix(8, 72).slice(5);
    await lab.seedPop3(pop, fresh);
    const second = await runCli(sync(), { env: { PW: lab.password } });
    expect(second.code, second.stderr).toBe(0);
    const dest = digests((await destinationMessages(lab, imap, 'Archive')).map((m) => m.body));
    // The user emptied the folder on purpose; what must hold is that the new mail arrives, once.
    const want = digests(fresh);
    for (const d of want)
      expect(
        dest.filter((x) => x === d),
        'each new message once',
      ).toHaveLength(1);
    expect(new Set(dest).size, 'nothing twice').toBe(dest.length);

    const third = await runCli(sync(), { env: { PW: lab.password } });
    expect(third.code, third.stderr).toBe(0);
    expect(JSON.parse(third.stdout)).toMatchObject({ copied: 0 });
  });
});

/** DELETE and CREATE the folder behind popsync's back; returns its UIDVALIDITY before and after. */
async function recreateFolder(
  user: string,
  folder: string,
): Promise<{ before: bigint | number; after: bigint | number }> {
  const client = new ImapFlow({
    host: lab.imap.host,
    port: lab.imap.port,
    secure: false,
    doSTARTTLS: true,
    tls: { ca: [readFileSync(lab.caFile)] },
    auth: { user, pass: lab.password },
    logger: false,
  });
  await client.connect();
  try {
    const s1 = await client.status(folder, { uidValidity: true });
    await client.mailboxDelete(folder);
    await client.mailboxCreate(folder);
    const s2 = await client.status(folder, { uidValidity: true });
    if (s1 === false || s2 === false) throw new Error(`STATUS ${folder} failed`);
    return { before: s1.uidValidity!, after: s2.uidValidity! };
  } finally {
    await client.logout();
  }
}
