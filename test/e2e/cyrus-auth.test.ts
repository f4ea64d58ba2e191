/**
 * Cyrus checking passwords, and over TLS (lab/cyrus.ts with `checkPasswords` and `tls`): the
 * other Cyrus tests run against a lab that takes any password in plaintext. A wrong password on
 * either side meets Cyrus's own refusal (it pauses 3 s after one, as configured by default) and
 * must end the run with exit 3, the hint for that side, and neither the password nor a stack
 * trace in what popsync prints; the right one copies each message once over implicit TLS and
 * over STLS/STARTTLS, the certificate checked against the lab's CA. Without that CA the
 * certificate is refused (exit 4) before the password goes out: Cyrus is never asked to check it.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { realisticMix } from '../../lab/corpus.js';
import { cyrusAvailable, startCyrus, type CyrusLab } from '../../lab/cyrus.js';
import { ExitCode } from '../../src/errors.js';
import { runCli } from '../support/cli.js';
import { cyrusMessages, digests } from '../support/mailboxes.js';

let cyrus: CyrusLab;
let dir: string;
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'popsync-cyrus-auth-'));
  cyrus = await startCyrus({ checkPasswords: true, tls: true });
});
afterAll(async () => {
  await cyrus?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

type Security = 'none' | 'implicit' | 'starttls';

/**
 * migrate from a Cyrus POP3 user to a Cyrus IMAP user; passwords from POP_PW and IMAP_PW. With
 * TLS the lab's CA is trusted on both sides, unless `untrusted` names one.
 */
function migrate(src: string, dst: string, journal: string, tls: Security, untrusted?: 'pop' | 'imap'): string[] {
  const port = (plain: number, secure: number | undefined): number => (tls === 'implicit' ? secure! : plain);
  const scheme = tls === 'implicit' ? 's' : '';
  return [
    'migrate',
    '--pop',
    `pop3${scheme}://${src}@127.0.0.1:${port(cyrus.pop3.port, cyrus.pop3s?.port)}`,
    '--pop-tls',
    tls,
    '--imap',
    `imap${scheme}://${dst}@127.0.0.1:${port(cyrus.imap.port, cyrus.imaps?.port)}`,
    '--imap-tls',
    tls,
    ...(tls === 'none' || untrusted === 'pop' ? [] : ['--pop-ca-file', cyrus.caFile!]),
    ...(tls === 'none' || untrusted === 'imap' ? [] : ['--imap-ca-file', cyrus.caFile!]),
    '--pop-password-env',
    'POP_PW',
    '--imap-password-env',
    'IMAP_PW',
    '--journal',
    journal,
    '--no-progress',
    '--json',
  ];
}

describe.runIf(cyrusAvailable().ok)('Cyrus with a password check and TLS', () => {
  for (const tls of ['implicit', 'starttls'] as const) {
    it(`copies each message once with the right password (${tls} TLS on both sides); a rerun copies none`, async () => {
      const src = await cyrus.newUser('src');
      const dst = await cyrus.newUser('dst');
      await cyrus.seedPop3(src, realisticMix(12, 91));
      const expected = digests(await cyrusMessages(cyrus, src));
      const journal = join(dir, `${src}.sqlite`);
      const env = { POP_PW: cyrus.password, IMAP_PW: cyrus.password };
      const r = await runCli(migrate(src, dst, journal, tls), { env });
      expect(r.code, r.stderr).toBe(0);
      expect(JSON.parse(r.stdout)).toMatchObject({ copied: 12, failed: [] });
      expect(digests(await cyrusMessages(cyrus, dst))).toEqual(expected);
      const again = await runCli(migrate(src, dst, journal, tls), { env });
      expect(again.code, again.stderr).toBe(0);
      expect(JSON.parse(again.stdout)).toMatchObject({ copied: 0, alreadyCopied: 12 });
      expect(await cyrusMessages(cyrus, dst)).toHaveLength(12);
    });
  }

  for (const [side, tls] of [
    ['POP3', 'none'],
    ['POP3', 'implicit'],
    ['IMAP', 'none'],
    ['IMAP', 'implicit'],
  ] as const) {
    it(`a wrong ${side} password (${tls === 'none' ? 'plaintext' : 'TLS'}): exit 3, the hint, no secret`, async () => {
      const src = await cyrus.newUser('src');
      const dst = await cyrus.newUser('dst');
      await cyrus.seedPop3(src, realisticMix(2, 92));
      const wrong = `not-the-${side.toLowerCase()}-password-4711`;
      const env =
        side === 'POP3' ? { POP_PW: wrong, IMAP_PW: cyrus.password } : { POP_PW: cyrus.password, IMAP_PW: wrong };
      const refusedBefore = cyrus.refusedLogins;
      const r = await runCli(migrate(src, dst, join(dir, `${src}.sqlite`), tls), { env });
      expect(r.code, r.stderr).toBe(ExitCode.auth);
      // One attempt: a refusal is not retried (nor another method tried), which could lock an account.
      expect(cyrus.refusedLogins).toBe(refusedBefore + 1);
      // Cyrus's own words, then the hint.
      expect(r.stderr).toMatch(
        side === 'POP3' ? /POP3 login failed: -ERR \[AUTH\]/ : /rejected the login for dst-.*: NO /,
      );
      expect(r.stderr).toContain(`Check the ${side} user name and password`);
      expect(r.stderr).not.toMatch(/\n\s+at /);
      expect(r.stdout + r.stderr).not.toContain(wrong);
      // Nothing was copied, and the source still holds its messages.
      expect(await cyrusMessages(cyrus, dst)).toHaveLength(0);
      expect(await cyrusMessages(cyrus, src)).toHaveLength(2);
    });
  }

  for (const [side, tls] of [
    ['pop', 'implicit'],
    ['pop', 'starttls'],
    ['imap', 'implicit'],
    ['imap', 'starttls'],
  ] as const) {
    it(`a certificate not trusted on the ${side.toUpperCase()} side (${tls}): exit 4, no password sent`, async () => {
      const src = await cyrus.newUser('src');
      const dst = await cyrus.newUser('dst');
      await cyrus.seedPop3(src, realisticMix(1, 93));
      const env = { POP_PW: cyrus.password, IMAP_PW: cyrus.password };
      const refusedUser = side === 'pop' ? src : dst;
      const before = cyrus.loginsChecked(refusedUser);
      const r = await runCli(migrate(src, dst, join(dir, `${src}.sqlite`), tls, side), { env });
      expect(r.code, r.stderr).toBe(ExitCode.connection);
      expect(r.stderr).toMatch(/certificate/i);
      expect(r.stderr).not.toMatch(/\n\s+at /);
      // The other side may have logged in (they connect side by side); the untrusted one did not.
      expect(cyrus.loginsChecked(refusedUser)).toBe(before);
      expect(await cyrusMessages(cyrus, dst)).toHaveLength(0);
    });
  }
});
