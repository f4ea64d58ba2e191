/**
 * `popsync migrate` as a user runs it, against a real Dovecot on loopback: every source message
 * arrives byte for byte exactly once, a rerun copies nothing, refusals and user mistakes get
 * clear errors and the documented exit codes.
 */
import { writeFileSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Lab } from '../../lab/dovecot.js';
import { edgeCases, realisticMix } from '../../lab/corpus.js';
import { runCli } from '../support/cli.js';
import { useLab } from '../support/lab-fixture.js';
import { destinationMessages, digests, sourceMessages } from '../support/mailboxes.js';

let lab: Lab;
let dir: string;
const MAX = 3 * 1024 * 1024;

useLab('e2e', { maxMessageSize: MAX }, (l, d) => {
  lab = l;
  dir = d;
});

function args(popUser: string, imapUser: string, journal: string, extra: string[] = []): string[] {
  return [
    'migrate',
    '--pop',
    `pop3://${popUser}@127.0.0.1:${lab.pop3.port}`,
    '--imap',
    `imap://${imapUser}@127.0.0.1:${lab.imap.port}`,
    '--pop-ca-file',
    lab.caFile,
    '--imap-ca-file',
    lab.caFile,
    '--pop-password-env',
    'POP_PW',
    '--imap-password-env',
    'IMAP_PW',
    '--journal',
    journal,
    '--no-progress',
    ...extra,
  ];
}
const env = () => ({ POP_PW: lab.password, IMAP_PW: lab.password });

describe('migrate against Dovecot', () => {
  it('copies a mixed mailbox with edge cases byte for byte, once; a rerun copies nothing', async () => {
    const pop = lab.newUser('src');
    const imap = lab.newUser('dst');
    const edge = edgeCases({ huge: false }).map((e) => e.bytes);
    await lab.seedPop3(pop, [...edge, ...realisticMix(150, 7)]);
    const source = await sourceMessages(lab, pop);
    const journal = join(dir, `${pop}.sqlite`);

    const r1 = await runCli(args(pop, imap, journal, ['--json']), { env: env() });
    expect(r1.stderr).toBe('');
    expect(r1.code).toBe(0);
    const summary = JSON.parse(r1.stdout);
    expect(summary).toMatchObject({ copied: source.length, failed: [] });

    const dest = await destinationMessages(lab, imap);
    expect(digests(dest.map((m) => m.body))).toEqual(digests(source));

    const r2 = await runCli(args(pop, imap, journal, ['--json']), { env: env() });
    expect(r2.code).toBe(0);
    expect(JSON.parse(r2.stdout)).toMatchObject({ copied: 0, alreadyCopied: source.length });
    expect(await destinationMessages(lab, imap)).toHaveLength(source.length);
    // migrate never deletes from the source.
    expect(await sourceMessages(lab, pop)).toHaveLength(source.length);
  });

  it('puts messages into a new nested folder with the requested flags and their arrival dates', async () => {
    const pop = lab.newUser('src');
    const imap = lab.newUser('dst');
    const m = Buffer.from(
      'Received: from mx by pop.example (Dovecot); Tue, 2 Jan 2024 10:00:00 +0000\r\nDate: Mon, 1 Jan 2024 ' +
        '09:00:00 +0000\r\nMessage-ID: <a@b>\r\nSubject: dated\r\n\r\nhello\r\n',
    );
    await lab.seedPop3(pop, [m]);
    const r = await runCli(
      args(pop, imap, join(dir, `${pop}.sqlite`), [
        '--folder',
        'Archiv/Entwürfe',
        '--flag',
        '\\Seen',
        '--flag',
        '$Migrated',
      ]),
      { env: env() },
    );
    expect(r.code).toBe(0);
    const [stored] = await destinationMessages(lab, imap, ['Archiv', 'Entwürfe']);
    expect(stored?.body.equals(m)).toBe(true);
    expect(stored?.flags).toEqual(['$Migrated', '\\Seen']);
    expect(stored?.internalDate.toISOString()).toBe('2024-01-02T10:00:00.000Z');
  });

  it('reports a message Dovecot refuses by UIDL with the server text, copies the rest, exits 1', async () => {
    const pop = lab.newUser('src');
    const imap = lab.newUser('dst');
    const big = Buffer.concat([Buffer.from('Subject: too big\r\n\r\n'), Buffer.alloc(MAX + 1000, 'x\r\n')]);
    const small = realisticMix(3, 1);
    await lab.seedPop3(pop, [small[0]!, big, small[1]!, small[2]!]);
    const r = await runCli(args(pop, imap, join(dir, `${pop}.sqlite`)), { env: env() });
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/failed/i);
    const uidl = /UIDL (\S+)/.exec(r.stdout)?.[1];
    expect(uidl, r.stdout).toBeTruthy();
    expect(r.stdout).toMatch(/too large|size|limit/i);
    expect(await destinationMessages(lab, imap)).toHaveLength(3);
  });

  it('exits 4 when the server certificate is not trusted, and never falls back to plaintext', async () => {
    const pop = lab.newUser('src');
    await lab.seedPop3(pop, realisticMix(1, 3));
    const a = args(pop, lab.newUser('dst'), join(dir, `${pop}.sqlite`)).filter(
      (x, i, all) => x !== lab.caFile && all[i + 1] !== lab.caFile,
    );
    const r = await runCli(a, { env: env() });
    expect(r.code).toBe(4);
    expect(r.stderr).toMatch(/certificate/i);
  });

  it('refuses a journal that belongs to another account (exit 5)', async () => {
    const pop1 = lab.newUser('src');
    const pop2 = lab.newUser('src');
    await lab.seedPop3(pop1, realisticMix(1, 4));
    await lab.seedPop3(pop2, realisticMix(1, 5));
    const journal = join(dir, `shared-${pop1}.sqlite`);
    expect((await runCli(args(pop1, lab.newUser('dst'), journal), { env: env() })).code).toBe(0);
    const r = await runCli(args(pop2, lab.newUser('dst'), journal), { env: env() });
    expect(r.code).toBe(5);
    expect(r.stderr).toContain(pop1);
    expect(r.stderr).toContain(pop2);
  });

  it('reads a password file and refuses a password inside the URL (exit 2)', async () => {
    const pop = lab.newUser('src');
    await lab.seedPop3(pop, realisticMix(2, 6));
    const pwFile = join(dir, 'pw');
    writeFileSync(pwFile, lab.password + '\n');
    chmodSync(pwFile, 0o600);
    const imap = lab.newUser('dst');
    const a = args(pop, imap, join(dir, `${pop}.sqlite`)).map((x) =>
      x === '--pop-password-env' ? '--pop-password-file' : x === 'POP_PW' ? pwFile : x,
    );
    expect((await runCli(a, { env: { IMAP_PW: lab.password } })).code).toBe(0);
    expect(await destinationMessages(lab, imap)).toHaveLength(2);

    const bad = args(pop, imap, join(dir, `${pop}-2.sqlite`)).map((x) => x.replace(`//${pop}@`, `//${pop}:secret@`));
    const r = await runCli(bad, { env: env() });
    expect(r.code).toBe(2);
    expect(r.stderr).not.toContain('secret');
  });
  // Last: a failed login makes Dovecot delay later logins from 127.0.0.1 (anvil's auth penalty).
  it('exits 3 with a clear message and no stack trace on a wrong password', async () => {
    const pop = lab.newUser('src');
    await lab.seedPop3(pop, realisticMix(1, 2));
    const r = await runCli(args(pop, lab.newUser('dst'), join(dir, `${pop}.sqlite`)), {
      env: { POP_PW: 'wrong', IMAP_PW: lab.password },
    });
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/popsync: .*(auth|password|login)/i);
    expect(r.stderr).not.toMatch(/\n\s+at /);
    expect(r.stderr + r.stdout).not.toContain('wrong');
  });
});
