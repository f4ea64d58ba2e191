/**
 * The journal's identity against the real Dovecot: the default journal (no --journal) is one
 * per mailbox whatever the spelling of its host, so a second spelling copies nothing again;
 * a journal whose -wal was lost after a kill is refused (exit 5), not taken for a new one; one
 * whose -wal another program emptied into it after a kill is used, and nothing is copied twice.
 */
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { realisticMix } from '../../lab/corpus.js';
import type { Lab } from '../../lab/dovecot.js';
import { labArgs, useLab } from '../support/lab-fixture.js';
import { runCli } from '../support/cli.js';
import { destinationMessages, digests, sourceMessages } from '../support/mailboxes.js';

let lab: Lab;
let dir: string;

useLab('identity', {}, (l, d) => {
  lab = l;
  dir = d;
});

describe('journal identity', () => {
  it(
    'src@127.0.0.1 and src@localhost share the default journal: the second spelling copies only ' + 'what is new',
    async () => {
      const pop = lab.newUser('src');
      const imap = lab.newUser('dst');
      const state = join(dir, `state-${pop}`);
      const env = { PW: lab.password, XDG_STATE_HOME: state };
      const args = (host: string) => [
        'sync',
        '--json',
        '--pop',
        `pop3://${pop}@${host}:${lab.pop3.port}`,
        '--pop-tls',
        'none',
        '--imap',
        `imap://${imap}@127.0.0.1:${lab.imap.port}`,
        '--imap-tls',
        'none',
        '--pop-password-env',
        'PW',
        '--imap-password-env',
        'PW',
      ];
      await lab.seedPop3(pop, realisticMix(6, 61));
      let r = await runCli(args('127.0.0.1'), { env });
      expect(r.code, r.stderr).toBe(0);
      expect(JSON.parse(r.stdout)).toMatchObject({ copied: 6 });
      await lab.seedPop3(pop, realisticMix(2, 62));
      r = await runCli(args('localhost'), { env });
      expect(r.code, r.stderr).toBe(0);
      expect(JSON.parse(r.stdout)).toMatchObject({ copied: 2, alreadyCopied: 6 });
      r = await runCli(args('LOCALHOST'), { env });
      expect(JSON.parse(r.stdout)).toMatchObject({ copied: 0, alreadyCopied: 8 });
      expect(readdirSync(join(state, 'popsync')).filter((n) => n.endsWith('.sqlite'))).toEqual([
        `${pop}@localhost.sqlite`,
      ]);
      const dest = await destinationMessages(lab, imap);
      expect(digests(dest.map((m) => m.body))).toEqual(digests(await sourceMessages(lab, pop)));
    },
  );

  it('a journal whose -wal was lost after a kill is refused with exit 5, and nothing is copied again', async () => {
    const pop = lab.newUser('src');
    const imap = lab.newUser('dst');
    const journal = join(dir, `${pop}.sqlite`);
    await lab.seedPop3(pop, realisticMix(40, 63));
    const args = labArgs('migrate', lab, pop, imap, journal, ['--batch-messages', '5']);
    const killed = await runCli(args, { env: { PW: lab.password }, hooks: { killAt: '12:after' } });
    expect(killed.signal).toBe('SIGKILL');
    const copied = (await destinationMessages(lab, imap)).length;
    expect(copied).toBeGreaterThan(0);
    expect(existsSync(`${journal}-wal`)).toBe(true);
    rmSync(`${journal}-wal`);
    rmSync(`${journal}-shm`, { force: true });
    const r = await runCli(args, { env: { PW: lab.password } });
    expect(r.code, r.stderr).toBe(5);
    expect(r.stderr).toContain(`journal ${journal} has lost its write-ahead log (${journal}-wal)`);
    expect(r.stderr).toMatch(/hint: put the .*-wal file back/);
    expect(r.stderr).not.toMatch(/\n\s+at /);
    expect(await destinationMessages(lab, imap)).toHaveLength(copied);
  });

  // The admin looks at a killed run's journal: `sqlite3 journal 'select count(*) from messages'`.
  // Closing last, that program checkpoints the whole -wal into the journal file and deletes it;
  // the journal file keeps the run's "in use" mark. Killed after a commit, and inside one.
  it.each([
    '12:after',
    '12:before',
  ])('a journal whose -wal a program emptied into it after a kill (%s) is used: each message once', async (killAt) => {
    const pop = lab.newUser('src');
    const imap = lab.newUser('dst');
    const journal = join(dir, `${pop}.sqlite`);
    await lab.seedPop3(pop, realisticMix(40, 64));
    const args = labArgs('migrate', lab, pop, imap, journal, ['--batch-messages', '5']);
    const killed = await runCli(args, { env: { PW: lab.password }, hooks: { killAt } });
    expect(killed.signal).toBe('SIGKILL');
    expect(existsSync(`${journal}-wal`)).toBe(true);
    const other = new Database(journal, { fileMustExist: true });
    expect((other.prepare('SELECT COUNT(*) AS n FROM messages').get() as { n: number }).n).toBeGreaterThan(0);
    other.close();
    expect(existsSync(`${journal}-wal`)).toBe(false);
    const r = await runCli(args, { env: { PW: lab.password } });
    expect(r.code, r.stderr).toBe(0);
    const dest = await destinationMessages(lab, imap);
    expect(digests(dest.map((m) => m.body))).toEqual(digests(await sourceMessages(lab, pop)));
  });
});
