/**
 * Over TLS with PIPELINING, PASS goes in the same write as USER (pop3/sasl.ts, 3368118). Against
 * the lab's Dovecot, through the whole program: the right password copies the mail; a wrong one
 * is reported with the server's answer to PASS (exit code for credentials, never the password), after one
 * login attempt - no second connection or method tried into a lockout.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Lab } from '../../lab/dovecot.js';
import { ExitCode } from '../../src/errors.js';
import { runCli } from '../support/cli.js';
import { labArgs, useLab } from '../support/lab-fixture.js';

let lab: Lab;
let dir: string;
useLab('pass-pipelined', {}, (l, d) => {
  lab = l;
  dir = d;
});

const body = Buffer.from('Subject: pipelined login\r\nMessage-ID: <pipelined-login@lab>\r\n\r\nhello\r\n');

/** migrate with USER/PASS over implicit TLS (pop3s), trusting the lab's CA. */
function args(pop: string, imap: string): string[] {
  const a = labArgs('migrate', lab, pop, imap, join(dir, `${pop}.sqlite`), [
    '--no-progress',
    '--json',
    '--pop-auth',
    'user',
    '--pop-ca-file',
    lab.caFile,
    '--imap-password-env',
    'IPW',
  ]);
  a[a.indexOf(`pop3://${pop}@127.0.0.1:${lab.pop3.port}`)] = `pop3s://${pop}@127.0.0.1:${lab.pop3s.port}`;
  a[a.indexOf('--pop-tls') + 1] = 'implicit';
  return a;
}

describe('USER and PASS in one write over TLS (Dovecot)', () => {
  it('logs in and copies with the right password', async () => {
    const pop = lab.newUser('src');
    const imap = lab.newUser('dst');
    await lab.seedPop3(pop, [body]);
    const r = await runCli(args(pop, imap), { env: { PW: lab.password, IPW: lab.password } });
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ copied: 1 });
  });

  // Last: a failed login makes Dovecot delay later logins from 127.0.0.1 (anvil's auth penalty).
  it("reports a wrong password with the server's answer to PASS, after one attempt, without the password", async () => {
    const pop = lab.newUser('src');
    const imap = lab.newUser('dst');
    await lab.seedPop3(pop, [body]);
    const before = await lab.countLogLines(/auth failed/);
    const wrong = 'not-the-pass-word-4711';
    const r = await runCli(args(pop, imap), { env: { PW: wrong, IPW: lab.password } });
    expect(r.code, r.stderr).toBe(ExitCode.auth);
    // The server's answer to PASS, as when PASS waits for USER's +OK: USER was not refused.
    expect(r.stderr).toMatch(/POP3 login failed: -ERR \[AUTH\] Authentication failed/);
    expect(r.stderr).not.toMatch(/USER/);
    expect(r.stdout + r.stderr).not.toContain(wrong);
    // Dovecot logs each failed login's end ("auth failed, N attempts"): one session, one attempt.
    expect(await lab.countLogLines(/auth failed, 1 attempts/)).toBe(before + 1);
    expect(await lab.countLogLines(/auth failed/)).toBe(before + 1);
  });
});
