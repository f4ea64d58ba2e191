import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { AccountJob } from '../../src/cli/account.js';
import { batchedJobs, hostKeys, listedAccountJobs } from '../../src/cli/account-list.js';
import type { PopsyncError } from '../../src/errors.js';

const dir = mkdtempSync(join(tmpdir(), 'popsync-list-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const base: AccountJob = {
  input: { pop: {}, imap: {}, timeoutSeconds: 60 },
  routing: { rules: [], defaultFolder: 'INBOX', flags: [], seen: [], arrivalDate: true },
  batchMessages: 50,
  batchBytes: 16 << 20,
  reconnectAttempts: 5,
};

function file(name: string, text: string, mode = 0o600): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  chmodSync(p, mode);
  return p;
}

const rows = (n: number) =>
  Array.from(
    { length: n },
    (_, i) => `u${i},pop3s://u${i}@pop${i % 3}.example.net,imaps://u${i}@imap.example.net`,
  ).join('\n');

describe('account list to jobs', () => {
  it('turns every row into a job with the shared flags, its folder, and its passwords', () => {
    const p = file(
      'a.csv',
      'name,source,destination,folder,destination_password\n' +
        'a,pop3s://a@p.example,imaps://a@i.example,Old,pw-a\n' +
        'b,pop3s://b@p.example,imaps://b@i.example,,pw-b\n',
    );
    const jobs = listedAccountJobs(p, { tls: 'implicit', passwordEnv: 'POP_PW' }, {}, base, false);
    expect(
      jobs.map((j) => [
        j.input.name,
        j.input.pop.url,
        j.input.pop.passwordEnv,
        j.input.imap.password,
        j.routing.defaultFolder,
      ]),
    ).toEqual([
      ['a', 'pop3s://a@p.example', 'POP_PW', 'pw-a', 'Old'],
      ['b', 'pop3s://b@p.example', 'POP_PW', 'pw-b', 'INBOX'],
    ]);
    // A typed --folder beats the column.
    expect(listedAccountJobs(p, {}, {}, base, true)[0]!.routing.defaultFolder).toBe('INBOX');
  });

  it('refuses a row whose URL does not parse, naming line and column, before any account runs', () => {
    const p = file('bad.csv', `name,source,destination\n${rows(3)}\nz,pop3s://z@p.example,smtp://z@i.example\n`);
    expect(() => listedAccountJobs(p, {}, {}, base, false)).toThrow(
      /bad\.csv line 5, column destination: unknown IMAP URL scheme/,
    );
  });

  it("a password in a row's URL points to the password column; a row's mistake keeps its hint", () => {
    const p = file('url-pw.csv', 'name,source,destination\na,pop3s://a:secret@p.example,imaps://a@i.example\n');
    const e = (() => {
      try {
        listedAccountJobs(p, {}, {}, base, false);
      } catch (err) {
        return err as PopsyncError;
      }
      throw new Error('not refused');
    })();
    expect(e.message).toMatch(/url-pw\.csv line 2, column source: the URL contains a password/);
    expect(e.message).not.toMatch(/\(ps\)|shell history|secret/);
    expect(e.context.hint).toMatch(/source_password column/);
    const q = file('no-scheme.csv', 'name,source,destination\na,a@p.example,imaps://a@i.example\n');
    expect(() => listedAccountJobs(q, {}, {}, base, false)).toThrow(/column source: not a POP3 URL/);
    try {
      listedAccountJobs(q, {}, {}, base, false);
    } catch (err) {
      expect((err as PopsyncError).context.hint).toMatch(/^write pop3s:\/\/a@p\.example /);
    }
  });

  it('refuses options that name one mailbox, and a password given both ways', () => {
    const p = file('pw.csv', 'name,source,destination,source_password\na,pop3s://a@p.example,imaps://a@i.example,x\n');
    expect(() => listedAccountJobs(p, { user: 'bob' }, {}, base, false)).toThrow(
      /--pop-user cannot apply to all of them/,
    );
    expect(() => listedAccountJobs(p, { passwordFile: '/pw' }, {}, base, false)).toThrow(
      /source_password column: give the POP3 passwords one way only/,
    );
  });

  it('builds 5,000 jobs, their journals and a shard from one pass over the list', () => {
    const p = file('big.csv', `name,source,destination\n${rows(5000)}\n`);
    const jobs = listedAccountJobs(p, {}, {}, base, false);
    expect(jobs).toHaveLength(5000);
    const all = batchedJobs(jobs, { journalDir: join(dir, 'j') }, { createJournalDir: false });
    expect(all[4999]!.input.journal).toBe(join(dir, 'j', 'u4999.sqlite'));
    const shards = [0, 1, 2, 3].map((k) => batchedJobs(jobs, { shard: `${k}/4` }, { createJournalDir: false }));
    expect(
      shards
        .flat()
        .map((j) => j.input.name)
        .sort(),
    ).toEqual(jobs.map((j) => j.input.name).sort());
    expect(hostKeys(jobs[4]!)).toEqual(['pop3 pop1.example.net', 'imap imap.example.net']);
  });

  it('--journal-dir and --shard need named accounts and no --journal', () => {
    expect(() => batchedJobs([base], { journalDir: dir }, { createJournalDir: false })).toThrow(
      /--journal-dir needs every account to have a name; account 1 has none/,
    );
    expect(() => batchedJobs([base], { shard: '0/2' }, { createJournalDir: false })).toThrow(
      /--shard needs every account to have a name/,
    );
    expect(() => batchedJobs([base], { journalDir: dir, journal: '/x' }, { createJournalDir: false })).toThrow(
      /not both/,
    );
  });
});
