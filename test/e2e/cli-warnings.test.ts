/**
 * Warnings said before connecting, through the real binary: the one about a port of the other
 * kind (plain text to 995, TLS to 143) is for a scheme that is likely a typo, and is not said
 * again and again to a user who wrote the TLS mode out on purpose (a plain server on 995 behind
 * a proxy). Nothing listens on the loopback ports used, so each run ends at the connection
 * (exit 4); the warning is printed before that.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runCli } from '../support/cli.js';

const dir = mkdtempSync(join(tmpdir(), 'popsync-warnings-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const env = { PW: 'unused-password' };
const POP_PORT = /warning: POP3 127\.0\.0\.1:995: port 995 is the usual port of POP3 over TLS/;
const IMAP_PORT = /warning: IMAP 127\.0\.0\.1:143: port 143 is the usual port of plain IMAP/;

function migrate(pop: string[], imap: string[]): Promise<{ stderr: string }> {
  return runCli(
    [
      'migrate',
      ...pop,
      '--pop-password-env',
      'PW',
      ...imap,
      '--imap-password-env',
      'PW',
      '--journal',
      join(dir, 'j.sqlite'),
      '--no-progress',
    ],
    { env },
  );
}

describe('a port of the other kind', () => {
  it('is warned about when the scheme alone chose the TLS mode (a likely typo)', async () => {
    const r = await migrate(['--pop', 'pop3://alice@127.0.0.1:995'], ['--imap', 'imaps://bob@127.0.0.1:143']);
    expect(r.stderr).toMatch(POP_PORT);
    expect(r.stderr).toMatch(IMAP_PORT);
  });

  it('is not warned about when the mode was written out: flag, ?tls= or a config file key', async () => {
    const flags = await migrate(
      ['--pop', 'pop3://alice@127.0.0.1:995', '--pop-tls', 'none'],
      ['--imap', 'imap://bob@127.0.0.1:143', '--imap-tls', 'implicit'],
    );
    expect(flags.stderr).not.toMatch(/usual port/);
    const query = await migrate(
      ['--pop', 'pop3://alice@127.0.0.1:995?tls=none'],
      ['--imap', 'imaps://bob@127.0.0.1:143?tls=implicit'],
    );
    expect(query.stderr).not.toMatch(/usual port/);
    const file = join(dir, 'on-purpose.yml');
    writeFileSync(
      file,
      `accounts:
  - name: a
    source: { url: 'pop3://alice@127.0.0.1:995', tls: none, password_env: PW }
    destination: { url: 'imap://bob@127.0.0.1:143', tls: none, password_env: PW }
    journal: ${join(dir, 'config.sqlite')}
`,
    );
    const config = await runCli(['migrate', '--config', file, '--no-progress'], { env });
    expect(config.stderr).toContain('cannot connect to POP3 server 127.0.0.1:995');
    expect(config.stderr).not.toMatch(/usual port/);
  });
});
