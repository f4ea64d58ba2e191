/**
 * A routing rule with a pattern that backtracks exponentially (or polynomially) in
 * JavaScript's RegExp, and messages crafted against it: the run must route every message and
 * finish. Run through the binary with a generous bound on the child process, because a
 * regression would hang synchronously, where no in-process timeout can interrupt it.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runCli } from '../support/cli.js';
import { startFakeImap, FAKE_PASSWORD, FAKE_USER } from '../support/fake-imap.js';
import { startFakePop3 } from '../support/fake-pop3.js';

const dir = mkdtempSync(join(tmpdir(), 'popsync-rules-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const mail = (subject: string, from = 'x@example.org') =>
  `From: ${from}\r\nTo: b@example.org\r\nSubject: ${subject}\r\nMessage-ID: ` +
  `<${subject.length}.${from}>\r\n\r\nbody\r\n`;

describe('user patterns cannot hang the run', () => {
  it('(a+)+$ and *a*a*a*...b against crafted headers: every message is routed, the run ends (exit 0)', async () => {
    // Against V8's backtracking engine each crafted header costs longer than the child is given.
    const crafted = 'a'.repeat(20_000) + '!';
    const pop = await startFakePop3({
      user: 'src',
      password: 'pw',
      messages: [
        mail(crafted),
        mail('aaaa'),
        mail('other', `${'a'.repeat(20_000)}@example.org`),
        mail('hello', `${'a'.repeat(12)}b@example.org`),
      ],
    });
    const imap = await startFakeImap({ mailboxes: ['Hostile', 'Globbed'] });
    try {
      const config = join(dir, 'popsync.yml');
      writeFileSync(
        config,
        `accounts:
  - name: hostile
    source: { url: 'pop3://src@127.0.0.1:${pop.port}', tls: none, password_env: POP_PW }
    destination: { url: 'imap://${FAKE_USER}@127.0.0.1:${imap.port}', tls: none, password_env: IMAP_PW }
    journal: hostile.sqlite
    rules:
      - match: { subject: { regex: '(a+)+$' } }
        folder: Hostile
      - match: { from: '*a*a*a*a*a*a*a*a*a*a*a*a*b@example.org' }
        folder: Globbed
`,
      );
      const r = await runCli(['migrate', '--config', config, '--no-progress', '--json'], {
        env: { POP_PW: 'pw', IMAP_PW: FAKE_PASSWORD },
        timeoutMs: 60_000,
      });
      expect(r.signal, r.stderr).toBeNull();
      expect(r.code, r.stderr).toBe(0);
      expect(JSON.parse(r.stdout)).toMatchObject({ copied: 4, failed: [] });
      // The crafted subject ends in '!', so (a+)+$ fails on it (the expensive case) and it
      // falls through; 'aaaa' matches; the crafted From matches no glob, twelve a's and a b do.
      const where = Object.fromEntries(
        imap.appends.map((a) => [/^Subject: (.{0,10})/m.exec(a.body.toString())![1], a.mailbox]),
      );
      expect(where).toEqual({ aaaaaaaaaa: 'INBOX', aaaa: 'Hostile', other: 'INBOX', hello: 'Globbed' });
    } finally {
      await Promise.all([pop.close(), imap.close()]);
    }
  });

  it('a pattern RE2 cannot run (lookaround, backreference) is exit 2 at load, naming the key', async () => {
    const config = join(dir, 'lookahead.yml');
    writeFileSync(
      config,
      `accounts:
  - source: { url: 'pop3://src@127.0.0.1:9', tls: none, password_env: POP_PW }
    destination: { url: 'imap://dst@127.0.0.1:9', tls: none, password_env: POP_PW }
    rules:
      - match: { subject: { regex: '^(?!Re:)' } }
        folder: New
      - match: { from: { regex: '(\\w+)@\\1' } }
        folder: Same
`,
    );
    const r = await runCli(['migrate', '--config', config, '--no-progress'], { env: { POP_PW: 'secret-pw-in-rules' } });
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).not.toMatch(/^\s+at /m);
    expect(r.stderr).not.toContain('secret-pw-in-rules');
    expect(r.stderr).toContain(
      'lookahead.yml:5: accounts[0].rules[0].match.subject.regex: invalid regular expression: ',
    );
    expect(r.stderr).toMatch(
      /subject\.regex: invalid regular expression: .*lookahead, lookbehind and backreferences are not/,
    );
    expect(r.stderr).toContain(
      'lookahead.yml:7: accounts[0].rules[1].match.from.regex: invalid regular expression: invalid escape sequence',
    );
  });
});
