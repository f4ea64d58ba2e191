/**
 * `popsync verify` against the real Dovecot: a clean audit exits 0; after the stored mail is
 * changed behind popsync's back (Maildir files edited, removed and duplicated, as a server-side
 * rewrite, an administrator or another client would), every change is listed by UIDL with
 * exit 1. Needs no POP3 password and writes nothing.
 */
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Lab } from '../../lab/dovecot.js';
import { realisticMix } from '../../lab/corpus.js';
import { useLab } from '../support/lab-fixture.js';
import { runCli } from '../support/cli.js';
import { alterStored, duplicateStored, storedFile } from '../support/stored-copies.js';
import { mail, syncArgs } from './sync-helpers.js';

let lab: Lab;
let dir: string;

useLab('verify', {}, (l, d) => {
  lab = l;
  dir = d;
});

/** verify as cron runs it: the POP3 side only names the journal, so no POP3 password. */
const verifyArgs = (pop: string, imap: string, extra: string[] = []) => [
  'verify',
  '--pop',
  `pop3://${pop}@127.0.0.1:${lab.pop3.port}`,
  '--imap',
  `imap://${imap}@127.0.0.1:${lab.imap.port}`,
  '--imap-tls',
  'none',
  '--imap-password-env',
  'PW',
  '--journal',
  join(dir, `${pop}.sqlite`),
  ...extra,
];

async function synced(messages: Buffer[], extra: string[] = []): Promise<{ pop: string; imap: string }> {
  const pop = lab.newUser('src');
  const imap = lab.newUser('dst');
  await lab.seedPop3(pop, messages);
  const r = await runCli(syncArgs(lab, pop, imap, join(dir, `${pop}.sqlite`), ['--no-progress', ...extra]), {
    env: { PW: lab.password },
  });
  expect(r.code, r.stderr).toBe(0);
  return { pop, imap };
}

describe('popsync verify against Dovecot', () => {
  it('a destination holding every copy as copied: exit 0, one line, and the journal is untouched', async () => {
    const { pop, imap } = await synced(realisticMix(12, 77));
    const journal = join(dir, `${pop}.sqlite`);
    const before = readFileSync(journal);
    const r = await runCli(verifyArgs(pop, imap), { env: { PW: lab.password } });
    expect(r.code, r.stderr).toBe(0);
    // The mailbox is named as given, as the destination is and as a run names it; the journal's
    // key (loopback always spelled localhost) is the JSON's `account`.
    expect(r.stdout).toBe(
      `popsync verify: 12 copies of ${pop}@127.0.0.1:${lab.pop3.port} checked in ${imap}@127.0.0.1:${lab.imap.port}: ` +
        'all as copied\n',
    );
    const json = await runCli(verifyArgs(pop, imap, ['--json']), { env: { PW: lab.password } });
    expect(json.code, json.stderr).toBe(0);
    expect(JSON.parse(json.stdout)).toMatchObject({
      version: 1,
      ok: true,
      accounts: [
        {
          account: `${pop}@localhost`,
          source: `${pop}@127.0.0.1:${lab.pop3.port}`,
          checked: 12,
          same: 12,
          findings: [],
        },
      ],
      errors: [],
    });
    expect((await runCli(verifyArgs(pop, imap, ['--quiet']), { env: { PW: lab.password } })).stdout).toBe('');
    expect(readFileSync(journal).equals(before)).toBe(true);
  });

  it(
    'lists a rewritten, a missing and a duplicated copy by UIDL, with the likely server setting, and ' + 'exits 1',
    async () => {
      const eight = Buffer.from(
        'From: a@example.org\r\nSubject: na\xefve caf\xe9\r\nMessage-ID: <verify-munged@lab>\r\n\r\nbody\r\n',
        'latin1',
      );
      const gone = mail('verify-gone');
      const twice = mail('verify-twice');
      const fine = mail('verify-fine');
      const { pop, imap } = await synced([eight, gone, twice, fine]);
      const md = lab.maildirOf(imap);
      alterStored(md, 'verify-munged@lab', 'na\xefve caf\xe9', 'naXve cafX');
      rmSync(storedFile(md, 'verify-gone@lab'));
      duplicateStored(md, 'verify-twice@lab');

      const r = await runCli(verifyArgs(pop, imap, ['--json']), { env: { PW: lab.password } });
      expect(r.code, r.stderr).toBe(1);
      const out = JSON.parse(r.stdout);
      expect(out).toMatchObject({ ok: false, accounts: [{ checked: 4, same: 2 }] });
      const findings = out.accounts[0].findings as Array<{
        uidl: string;
        status: string;
        uid: number;
        detail: string;
        likely: string[];
        originalOnSource: boolean;
      }>;
      expect(findings.map((f) => [f.status, f.uid])).toEqual(
        expect.arrayContaining([
          // The journal records each copy's normalised fingerprint: the munged copy is known as ours.
          ['rewritten', 1],
          ['missing', 2],
          ['duplicated', 5],
        ]),
      );
      expect(findings).toHaveLength(3);
      const munged = findings.find((f) => f.uid === 1)!;
      expect(munged.likely).toEqual([expect.stringMatching(/Cyrus munge8bit/)]);
      expect(findings.find((f) => f.status === 'missing')).toMatchObject({
        originalOnSource: true,
        detail: expect.stringMatching(/UID 2 in INBOX.*no longer in the destination.*still on the source/),
      });
      expect(findings.find((f) => f.status === 'duplicated')!.detail).toMatch(
        /UID 5 in INBOX is a second copy of it \(the copy popsync made is UID 3\)/,
      );
      // Each finding names the message by the UIDL the journal keys it under (Dovecot's %08Xu%08Xv).
      for (const f of findings) expect(f.uidl).toMatch(/^[0-9a-f]{16}$/i);

      const text = await runCli(verifyArgs(pop, imap), { env: { PW: lab.password } });
      expect(text.code).toBe(1);
      const lines = text.stdout.trim().split('\n');
      expect(lines[0]).toMatch(/: 2 as copied, 3 findings$/);
      const kinds = lines.slice(1).map((l) => l.replace(/^ {2}UIDL [0-9a-fA-F]{16}: /, '').split(':')[0]!);
      expect(kinds.sort()).toEqual(['duplicated', 'missing', 'rewritten']);
    },
  );
});
