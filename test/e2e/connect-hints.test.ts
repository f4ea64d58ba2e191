/**
 * The first connection fails fast and says how to fix it (issue 10 part 4), against the real
 * Dovecot: TLS spoken to its plain ports, plain spoken to its TLS ports (which say nothing, so
 * the run waits one --timeout for a greeting and then stops instead of reconnecting), and a
 * certificate no CA vouches for. Never OpenSSL's raw text, never a stack trace.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Lab } from '../../lab/dovecot.js';
import { runCli } from '../support/cli.js';
import { useLab } from '../support/lab-fixture.js';

let lab: Lab;
let dir: string;
useLab('hints', {}, (l, d) => {
  lab = l;
  dir = d;
});

let n = 0;
function run(command: string, pop: string, imap: string, extra: string[] = []) {
  n++;
  return runCli(
    [
      command,
      '--pop',
      pop,
      '--imap',
      imap,
      '--pop-password-env',
      'PW',
      '--imap-password-env',
      'PW',
      '--journal',
      join(dir, `j${n}.sqlite`),
      '--no-progress',
      // One greeting wait, short: a TLS port waits for our TLS hello and says nothing.
      '--timeout',
      '2',
      ...extra,
    ],
    { env: { PW: lab.password } },
  );
}

function expectClean(stderr: string): void {
  expect(stderr).not.toMatch(/SSL routines|ssl3_|deps\/openssl|\n\s+at |reconnect/i);
}

describe('a first connection that cannot work ends the run with the fix', () => {
  it('pop3s:// towards the plain POP3 port: exit 4, "port N is plain"', async () => {
    const user = lab.newUser('h');
    const r = await run(
      'migrate',
      `pop3s://${user}@127.0.0.1:${lab.pop3.port}`,
      `imap://${user}@127.0.0.1:${lab.imap.port}?tls=none`,
    );
    expect(r.code, r.stderr).toBe(4);
    expect(r.stderr).toContain(`POP3 server 127.0.0.1:${lab.pop3.port} answered in plain text`);
    expect(r.stderr).toContain(`hint: port ${lab.pop3.port} is plain: use pop3:// or ?tls=starttls`);
    expectClean(r.stderr);
  });

  it('imaps:// towards the plain IMAP port: exit 4, "port N is plain"', async () => {
    const user = lab.newUser('h');
    const r = await run(
      'migrate',
      `pop3://${user}@127.0.0.1:${lab.pop3.port}?tls=none`,
      `imaps://${user}@127.0.0.1:${lab.imap.port}`,
    );
    expect(r.code, r.stderr).toBe(4);
    expect(r.stderr).toContain(`hint: port ${lab.imap.port} is plain: use imap:// or ?tls=starttls`);
    expectClean(r.stderr);
  });

  it('plain POP3 towards the TLS port: one greeting wait, no reconnects; migrate 4, sync 75', async () => {
    const user = lab.newUser('h');
    const pop = `pop3://${user}@127.0.0.1:${lab.pop3s.port}?tls=none`;
    const imap = `imap://${user}@127.0.0.1:${lab.imap.port}?tls=none`;
    for (const [command, code] of [
      ['migrate', 4],
      ['sync', 75],
    ] as const) {
      const r = await run(command, pop, imap);
      expect(r.code, r.stderr).toBe(code);
      expect(r.stderr).toContain(
        `POP3 server 127.0.0.1:${lab.pop3s.port} accepted the connection but sent no greeting`,
      );
      expect(r.stderr).toContain(`hint: if port ${lab.pop3s.port} speaks TLS from the first byte, use pop3s://`);
      expectClean(r.stderr);
    }
  });

  it('plain IMAP towards the TLS port: exit 4 after one greeting wait, "use imaps://"', async () => {
    const user = lab.newUser('h');
    await lab.seedPop3(user, [Buffer.from('Subject: x\r\n\r\nbody\r\n')]);
    const r = await run(
      'migrate',
      `pop3://${user}@127.0.0.1:${lab.pop3.port}?tls=none`,
      `imap://${user}@127.0.0.1:${lab.imaps.port}?tls=none`,
    );
    expect(r.code, r.stderr).toBe(4);
    expect(r.stderr).toContain(`IMAP server 127.0.0.1:${lab.imaps.port} accepted the connection but sent no greeting`);
    expect(r.stderr).toContain(`hint: if port ${lab.imaps.port} speaks TLS from the first byte, use imaps://`);
    expectClean(r.stderr);
  });

  it('a certificate from a private CA: exit 4, "--pop-ca-file", and --pop-ca-file then works', async () => {
    const user = lab.newUser('h');
    const pop = `pop3s://${user}@localhost:${lab.pop3s.port}`;
    const imap = `imap://${user}@127.0.0.1:${lab.imap.port}?tls=none`;
    const r = await run('migrate', pop, imap);
    expect(r.code, r.stderr).toBe(4);
    expect(r.stderr).toContain(
      `the certificate of POP3 server localhost:${lab.pop3s.port} is not signed by a CA popsync trusts`,
    );
    expect(r.stderr).toContain('hint: --pop-ca-file FILE to trust a private CA');
    expectClean(r.stderr);
    const ok = await run('migrate', pop, imap, ['--pop-ca-file', lab.caFile]);
    expect(ok.code, ok.stderr).toBe(0);
  });
});
