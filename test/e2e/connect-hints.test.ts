/**
 * The first connection fails fast and says how to fix it (issue 10 part 4), against the real
 * Dovecot: TLS spoken to its plain ports, plain spoken to its TLS ports (which say nothing; the
 * TLS check of net/tls-probe.ts finds them out long before --timeout), a server that says
 * nothing and is not TLS (one --timeout, then a stop instead of reconnecting), and a
 * certificate no CA vouches for. Never OpenSSL's raw text, never a stack trace.
 */
import net, { type AddressInfo } from 'node:net';
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
/**
 * The TLS ports are told apart by the TLS check, not by --timeout: a --timeout far longer than
 * the check makes a run that reached it fail on its words ("no greeting within 20 s"), not on
 * the clock. `timeout` is shorter only where the silence itself is under test.
 */
function run(command: string, pop: string, imap: string, extra: string[] = [], timeout = '20') {
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
      '--timeout',
      timeout,
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
    expect(r.stderr).toContain(`hint: port ${lab.pop3.port} is plain: use pop3:// or --pop-tls starttls`);
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
    expect(r.stderr).toContain(`hint: port ${lab.imap.port} is plain: use imap:// or --imap-tls starttls`);
    expectClean(r.stderr);
  });

  // A TLS mode that does not fit the port is no outage: sync too says 4, not "try later" (75).
  for (const [command, tls] of [
    ['migrate', 'none'],
    ['sync', 'none'],
    ['migrate', 'starttls'],
  ] as const) {
    it(`${command}, plain POP3 (tls=${tls}) towards the TLS port: found out by the TLS check, exit 4`, async () => {
      const user = lab.newUser('h');
      const r = await run(
        command,
        `pop3://${user}@127.0.0.1:${lab.pop3s.port}`,
        `imap://${user}@127.0.0.1:${lab.imap.port}?tls=none`,
        ['--pop-tls', tls],
      );
      expect(r.code, r.stderr).toBe(4);
      expect(r.stderr).toContain(
        `popsync: POP3 server 127.0.0.1:${lab.pop3s.port} speaks TLS from the first byte (pop3s), and popsync ` +
          `connected in plain text (tls=${tls})\n  account: ${user}@127.0.0.1:${lab.pop3s.port}\n`,
      );
      expect(r.stderr).toContain('a TLS hello to the same port was answered in TLS');
      expect(r.stderr).toContain('hint: use pop3s:// or --pop-tls implicit');
      expectClean(r.stderr);
    });
  }

  for (const tls of ['none', 'starttls']) {
    it(`plain IMAP (tls=${tls}) towards the TLS port: exit 4, "use imaps:// or --imap-tls implicit"`, async () => {
      const user = lab.newUser('h');
      await lab.seedPop3(user, [Buffer.from('Subject: x\r\n\r\nbody\r\n')]);
      const r = await run(
        'migrate',
        `pop3://${user}@127.0.0.1:${lab.pop3.port}?tls=none`,
        `imap://${user}@127.0.0.1:${lab.imaps.port}?tls=${tls}`,
      );
      expect(r.code, r.stderr).toBe(4);
      expect(r.stderr).toContain(
        `IMAP server 127.0.0.1:${lab.imaps.port} speaks TLS from the first byte (imaps), and popsync connected ` +
          `in plain text (tls=${tls})`,
      );
      expect(r.stderr).toContain('hint: use imaps:// or --imap-tls implicit');
      expectClean(r.stderr);
    });
  }

  it('a server that says nothing and is not TLS: one --timeout, no reconnects; migrate 4, sync 75', async () => {
    // Reads what it is sent (the TLS check's hello too) and answers nothing, as a hung server does.
    const mute = net.createServer((c) => {
      c.on('error', () => {});
      c.resume();
    });
    await new Promise<void>((r) => mute.listen(0, '127.0.0.1', r));
    const port = (mute.address() as AddressInfo).port;
    try {
      const user = lab.newUser('h');
      for (const [command, code] of [
        ['migrate', 4],
        ['sync', 75],
      ] as const) {
        const r = await run(
          command,
          `pop3://${user}@127.0.0.1:${port}?tls=none`,
          `imap://${user}@127.0.0.1:${lab.imap.port}?tls=none`,
          [],
          '3',
        );
        expect(r.code, r.stderr).toBe(code);
        expect(r.stderr).toContain(
          `popsync: POP3 server 127.0.0.1:${port} accepted the connection but sent no greeting within 3 s\n`,
        );
        expect(r.stderr).toContain(`hint: check the port (POP3 is usually on port 995 (pop3s://) or 110 (pop3://))`);
        expect(r.stderr).not.toContain('cause:');
        expectClean(r.stderr);
      }
    } finally {
      mute.close();
    }
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
