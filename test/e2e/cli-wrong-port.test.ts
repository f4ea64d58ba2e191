/**
 * IMAP pointed at the real Dovecot's POP3 ports (imap:// at the plain one, imaps:// at the TLS
 * one): the server greets with POP3's "+OK", and the run stops at once naming the other
 * protocol (exit 4, no reconnects). imapflow's own connection ignores a "+OK" and used to wait
 * out --timeout, then said the server "sent no greeting", which it had.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Lab } from '../../lab/dovecot.js';
import { runCli } from '../support/cli.js';
import { useLab } from '../support/lab-fixture.js';

let lab: Lab;
let dir: string;
useLab('wrong-port', {}, (l, d) => {
  lab = l;
  dir = d;
});

describe('IMAP at a POP3 port', () => {
  for (const scheme of ['imap', 'imaps'] as const) {
    const side = scheme === 'imap' ? 'plain' : 'TLS';
    it(`${scheme}:// at Dovecot's ${side} POP3 port: exit 4, "answered as a POP3 server"`, async () => {
      const port = scheme === 'imap' ? lab.pop3.port : lab.pop3s.port;
      const user = lab.newUser('w');
      const r = await runCli(
        [
          'migrate',
          '--pop',
          `pop3://${user}@127.0.0.1:${lab.pop3.port}?tls=none`,
          '--imap',
          `${scheme}://${user}@127.0.0.1:${port}${scheme === 'imap' ? '?tls=none' : ''}`,
          '--imap-ca-file',
          lab.caFile,
          '--pop-password-env',
          'PW',
          '--imap-password-env',
          'PW',
          '--journal',
          join(dir, `${user}.sqlite`),
          '--no-progress',
          // Far longer than the run: a run that waited for a greeting fails on its words, not the clock.
          '--timeout',
          '30',
        ],
        { env: { PW: lab.password } },
      );
      expect(r.code, r.stderr).toBe(4);
      expect(r.stderr).toContain(`IMAP server 127.0.0.1:${port} answered as a POP3 server`);
      expect(r.stderr).toContain('check the port: IMAP is usually on port 993 (imaps://) or 143 (imap://)');
      expect(r.stderr).not.toMatch(/no greeting|reconnect|\n\s+at /i);
    }, 60_000);
  }
});
