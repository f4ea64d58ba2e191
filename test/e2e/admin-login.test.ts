/**
 * Admin (master) logins against Dovecot's master passdb (lab/dovecot.ts `masterUsers`): popsync
 * authenticates as the admin with the admin's password and acts for the URL's user through
 * SASL PLAIN's authorization identity, on POP3 and on both IMAP connections.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Lab } from '../../lab/dovecot.js';
import { realisticMix } from '../../lab/corpus.js';
import { runCli } from '../support/cli.js';
import { useLab } from '../support/lab-fixture.js';
import { destinationMessages, digests, sourceMessages } from '../support/mailboxes.js';

const ADMIN = 'migrator';
const ADMIN_PW = 'admin-pw-7c1e';
let lab: Lab;
let dir: string;
useLab('admin', { masterUsers: { [ADMIN]: ADMIN_PW } }, (l, d) => {
  lab = l;
  dir = d;
});

function args(pop: string, imap: string, admin: string, extra: string[] = []): string[] {
  return [
    'migrate',
    '--pop',
    `pop3://${pop}@127.0.0.1:${lab.pop3.port}`,
    '--pop-tls',
    'none',
    '--pop-admin-user',
    admin,
    '--pop-password-env',
    'ADMIN_PW',
    '--imap',
    `imap://${imap}@127.0.0.1:${lab.imap.port}`,
    '--imap-tls',
    'none',
    '--imap-admin-user',
    admin,
    '--imap-password-env',
    'ADMIN_PW',
    '--journal',
    join(dir, `${pop}.sqlite`),
    '--no-progress',
    '--json',
    ...extra,
  ];
}

describe('admin logins (SASL PLAIN authzid, Dovecot master user)', () => {
  it("copies a user's mailbox logged in as the admin, with the admin's password, each message once", async () => {
    const pop = lab.newUser('src');
    const imap = lab.newUser('dst');
    await lab.seedPop3(pop, realisticMix(20, 4));
    const source = await sourceMessages(lab, pop);
    const r = await runCli(args(pop, imap, ADMIN), { env: { ADMIN_PW } });
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ copied: source.length, failed: [] });
    expect(digests((await destinationMessages(lab, imap)).map((m) => m.body))).toEqual(digests(source));
    // Dovecot logs a master login under the user acted for, with the master named: POP3 once,
    // IMAP twice (the APPEND connection and imapflow's).
    expect(await lab.countLogLines(new RegExp(`Login: user=<${pop}>, auth=<${ADMIN}>, method=PLAIN`))).toBe(1);
    expect(await lab.countLogLines(new RegExp(`Login: user=<${imap}>, auth=<${ADMIN}>, method=PLAIN`))).toBe(2);
    expect(r.stdout + r.stderr).not.toContain(ADMIN_PW);
  });

  it('an admin the server does not authorise is exit 3, and so is a wrong admin password', async () => {
    const pop = lab.newUser('src');
    await lab.seedPop3(pop, realisticMix(1, 2));
    // An ordinary user (the lab's password is every user's) may not act for another.
    const notAdmin = await runCli(args(pop, lab.newUser('dst'), lab.newUser('bob')), {
      env: { ADMIN_PW: lab.password },
    });
    expect(notAdmin.code, notAdmin.stderr).toBe(3);
    expect(notAdmin.stderr).not.toMatch(/\n\s+at /);
    const wrong = await runCli(args(pop, lab.newUser('dst'), ADMIN), { env: { ADMIN_PW: 'not-it' } });
    expect(wrong.code, wrong.stderr).toBe(3);
    expect(wrong.stdout + wrong.stderr).not.toContain('not-it');
  });

  it('an admin login needs SASL PLAIN: --imap-auth login with an admin is exit 2 before connecting', async () => {
    const pop = lab.newUser('src');
    const r = await runCli(args(pop, lab.newUser('dst'), ADMIN, ['--imap-auth', 'login']), { env: { ADMIN_PW } });
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toContain('--imap-admin-user needs --imap-auth plain');
  });
});
