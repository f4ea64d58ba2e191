/**
 * `popsync sync` as cron runs it, against a real Dovecot: mail delivered between runs arrives
 * exactly once; a run with nothing new prints nothing, exits 0 and sends no TOP or RETR;
 * --delete-after-days removes messages only after the copy is confirmed and the age has passed
 * (the test moves the clock through the test launcher's `now` hook); --wait queues a second run;
 * exit 75 when the server cannot be reached; `status` reads the journal.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { realisticMix } from '../../lab/corpus.js';
import type { Lab } from '../../lab/dovecot.js';
import { useLab } from '../support/lab-fixture.js';
import { runCli } from '../support/cli.js';
import { destinationMessages, digests, sourceMessages } from '../support/mailboxes.js';
import { mail, syncArgs as base } from './sync-helpers.js';

let lab: Lab;
let dir: string;

useLab('sync', {}, (l, d) => {
  lab = l;
  dir = d;
});

const syncArgs = (pop: string, imap: string, journal: string, extra: string[] = []) =>
  base(lab, pop, imap, journal, extra);
const env = (extra: Record<string, string> = {}) => ({ PW: lab.password, ...extra });

describe('sync against Dovecot', () => {
  it(
    'copies mail delivered between runs exactly once; a no-op run is silent, exits 0 and fetches ' + 'nothing',
    async () => {
      const pop = lab.newUser('src');
      const imap = lab.newUser('dst');
      const journal = join(dir, `${pop}.sqlite`);
      const all: Buffer[] = [];
      for (const [round, count] of [
        [1, 5],
        [2, 3],
        [3, 0],
        [4, 4],
      ] as const) {
        const batch = realisticMix(count, 100 + round);
        if (count > 0) await lab.seedPop3(pop, batch);
        all.push(...batch);
        const r = await runCli(syncArgs(pop, imap, journal), { env: env() });
        expect(r.code, r.stderr).toBe(0);
        expect(r.stderr).toBe('');
        if (count === 0) expect(r.stdout).toBe('');
        else
          expect(r.stdout).toMatch(
            new RegExp(
              `^popsync: ${count} new messages? copied \\(.+\\) from ${pop}@127\\.0\\.0\\.1:${lab.pop3.port} ` +
                `to ${imap}@127\\.0\\.0\\.1:${lab.imap.port}\\n$`,
            ),
          );
      }
      const dest = await destinationMessages(lab, imap);
      expect(digests(dest.map((m) => m.body))).toEqual(digests(await sourceMessages(lab, pop)));
      expect(dest).toHaveLength(all.length);

      const retrBefore = await lab.countLogLines(/^(RETR|TOP) /i, pop);
      const quiet = await runCli(syncArgs(pop, imap, journal), { env: env() });
      expect(quiet).toMatchObject({ code: 0, stdout: '', stderr: '' });
      const json = await runCli(syncArgs(pop, imap, journal, ['--json']), { env: env() });
      expect(json.code).toBe(0);
      expect(json.stdout.trim().split('\n')).toHaveLength(1);
      expect(JSON.parse(json.stdout)).toMatchObject({
        command: 'sync',
        copied: 0,
        newMessages: 0,
        alreadyCopied: all.length,
        deleted: 0,
      });
      expect(await lab.countLogLines(/^(RETR|TOP) /i, pop)).toBe(retrBefore);
      expect(await destinationMessages(lab, imap)).toHaveLength(all.length);

      const status = await runCli(['status', '--journal', journal, '--json']);
      expect(status.code, status.stderr).toBe(0);
      const st = JSON.parse(status.stdout);
      expect(st.accounts).toHaveLength(1);
      expect(st.accounts[0]).toMatchObject({
        copied: all.length,
        failed: [],
        deleted: 0,
        pending: { appending: 0, deleting: 0 },
        lock: null,
        lastRun: { command: 'sync', result: 'ok' },
      });
      const text = await runCli(['status', '--journal', journal]);
      expect(text.stdout).toContain(`copied:   ${all.length}`);
      // This journal with another account's --pop: not 'no runs recorded yet' and exit 0.
      const other = await runCli(['status', '--journal', journal, '--pop', `pop3://someone-else@127.0.0.1`]);
      expect(other.code, other.stdout).toBe(5);
      expect(other.stderr).toContain(
        `popsync: journal ${journal} belongs to source account ${pop}@localhost, not someone-else@127.0.0.1:110\n`,
      );
    },
  );

  it(
    '--delete-after-days 3: a message leaves the source only after its copy is confirmed and 3 days ' + 'have passed',
    async () => {
      const pop = lab.newUser('src');
      const imap = lab.newUser('dst');
      const journal = join(dir, `${pop}.sqlite`);
      // Each later run starts an hour into its day, so "3 days after the copy" has surely passed.
      const day = (d: number) => ({ now: new Date(Date.UTC(2031, 0, 1 + d, d === 0 ? 12 : 13)).toISOString() });
      const del = ['--delete-after-days', '3', '--verify-before-delete'];

      await lab.seedPop3(pop, [mail('d0-a'), mail('d0-b')]);
      let r = await runCli(syncArgs(pop, imap, journal, del), { env: env(), hooks: day(0) });
      expect(r.code, r.stderr).toBe(0);
      expect(await sourceMessages(lab, pop)).toHaveLength(2);

      await lab.seedPop3(pop, [mail('d2-c')]);
      r = await runCli(syncArgs(pop, imap, journal, del), { env: env(), hooks: day(2) });
      expect(r.code, r.stderr).toBe(0);
      expect(await sourceMessages(lab, pop)).toHaveLength(3);

      // Day 3: the first two are 3 days old; the third is one day old and stays.
      r = await runCli(syncArgs(pop, imap, journal, [...del, '--json']), { env: env(), hooks: day(3) });
      expect(r.code, r.stderr).toBe(0);
      expect(JSON.parse(r.stdout)).toMatchObject({ copied: 0, deleted: 2, deletionWaiting: 1 });
      expect((await sourceMessages(lab, pop)).map((b) => b.toString())).toEqual([mail('d2-c').toString()]);

      // A ceiling lower than what is due refuses all deletion (exit 1); --force overrides it.
      await lab.seedPop3(pop, [mail('d9-d')]);
      r = await runCli(syncArgs(pop, imap, journal, [...del, '--max-delete', '0']), { env: env(), hooks: day(9) });
      expect(r.code).toBe(1);
      expect(r.stdout).toMatch(
        /^popsync: 1 new message copied .*\npopsync: refusing to delete 1 message .*nothing was deleted/,
      );
      expect(await sourceMessages(lab, pop)).toHaveLength(2);
      r = await runCli(syncArgs(pop, imap, journal, [...del, '--max-delete', '0', '--force']), {
        env: env(),
        hooks: day(13),
      });
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toMatch(/^popsync: 0 new messages copied .*, 2 deleted from the source\n$/);
      expect(await sourceMessages(lab, pop)).toHaveLength(0);
      expect((await destinationMessages(lab, imap)).map((m) => m.body.toString()).sort()).toEqual(
        ['d0-a', 'd0-b', 'd2-c', 'd9-d'].map((t) => mail(t).toString()).sort(),
      );

      const st = JSON.parse((await runCli(['status', '--journal', journal, '--json'])).stdout);
      expect(st.accounts[0]).toMatchObject({ copied: 4, deleted: 4 });
    },
  );

  it('the shipped binary ignores POPSYNC_TEST_NOW: only the test launcher can move the clock', async () => {
    const pop = lab.newUser('src');
    const imap = lab.newUser('dst');
    const journal = join(dir, `${pop}.sqlite`);
    const del = ['--delete-after-days', '3', '--json'];
    await lab.seedPop3(pop, [mail('n-a'), mail('n-b')]);
    let r = await runCli(syncArgs(pop, imap, journal, del), { env: env() });
    expect(JSON.parse(r.stdout)).toMatchObject({ copied: 2, deleted: 0 });
    // A stray variable ten years ahead: the copies are minutes old, so nothing may go.
    const later = new Date(Date.now() + 3650 * 86_400_000).toISOString();
    r = await runCli(syncArgs(pop, imap, journal, del), {
      env: env({ POPSYNC_TEST_NOW: later, POPSYNC_TEST_KILL_AT: '1:before' }),
    });
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ deleted: 0, deletionWaiting: 2 });
    expect(await sourceMessages(lab, pop)).toHaveLength(2);
    // The same instant through the test launcher does move the clock (the control).
    r = await runCli(syncArgs(pop, imap, journal, del), { env: env(), hooks: { now: later } });
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ deleted: 2 });
    expect(await sourceMessages(lab, pop)).toHaveLength(0);
  });

  it('--wait lets the second run wait for the first instead of exiting 7', async () => {
    const pop = lab.newUser('src');
    const imap = lab.newUser('dst');
    const journal = join(dir, `${pop}.sqlite`);
    await lab.seedPop3(pop, realisticMix(30, 9));
    const [a, b] = await Promise.all(
      [0, 1].map(() => runCli(syncArgs(pop, imap, journal, ['--wait', '30']), { env: env() })),
    );
    expect([a!.code, b!.code]).toEqual([0, 0]);
    expect(await destinationMessages(lab, imap)).toHaveLength(30);
  });

  it('exits 75 (try again later) when the server refuses connections', async () => {
    const pop = lab.newUser('src');
    const r = await runCli(
      syncArgs(pop, lab.newUser('dst'), join(dir, `${pop}.sqlite`)).map((x) => x.replace(`:${lab.pop3.port}`, ':1')),
      { env: env() },
    );
    expect(r.code, r.stderr).toBe(75);
    expect(r.stderr).toMatch(/popsync: /);
  });
});
