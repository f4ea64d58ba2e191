/**
 * The token command (--pop/--imap-oauth2-token-command) and the login options that cannot go
 * together, without a server. A failing, silent or slow command is exit 3 naming only its
 * exit status; nothing it printed is ever shown.
 */
import { describe, expect, it } from 'vitest';
import { checkLoginInput } from '../../src/cli/account.js';
import { firstLine, tokenFromCommand } from '../../src/cli/token-command.js';
import { PopsyncError } from '../../src/errors.js';

async function failure(p: Promise<unknown>): Promise<PopsyncError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(PopsyncError);
    return e as PopsyncError;
  }
  throw new Error('expected a rejection');
}

function thrown(f: () => void): PopsyncError {
  try {
    f();
  } catch (e) {
    return e as PopsyncError;
  }
  throw new Error('expected a throw');
}

describe('tokenFromCommand', () => {
  it('returns the first line of stdout, trimmed, and ignores the rest', async () => {
    expect(await tokenFromCommand('imap', "printf '  tok-1 \\r\\nsecond line\\n'")).toBe('tok-1');
  });

  it('runs the command anew each time (a fresh token per login)', async () => {
    const cmd = 'date +%s%N';
    const a = await tokenFromCommand('pop3', cmd);
    const b = await tokenFromCommand('pop3', cmd);
    expect(a).not.toBe(b);
  });

  it('a failing command is auth (exit 3) naming its status, never its output', async () => {
    const err = await failure(tokenFromCommand('imap', 'echo secret-token-abc; echo on-stderr >&2; exit 42'));
    expect(err.kind).toBe('auth');
    expect(err.message).toBe('the IMAP token command (--imap-oauth2-token-command) exited with status 42');
    expect(JSON.stringify({ m: err.message, c: err.context })).not.toMatch(/secret-token-abc|on-stderr/);
  });

  it('a command that prints nothing is auth', async () => {
    const err = await failure(tokenFromCommand('pop3', 'echo; echo later-line'));
    expect(err.kind).toBe('auth');
    expect(err.message).toContain('printed no token');
  });

  it('a command that does not finish in time is auth, and killed', async () => {
    const started = Date.now();
    const err = await failure(tokenFromCommand('imap', 'sleep 30', 200));
    expect(err.kind).toBe('auth');
    expect(err.message).toContain('did not finish within');
    expect(Date.now() - started).toBeLessThan(20_000);
  });

  it('does not wait for input: stdin is closed', async () => {
    const err = await failure(tokenFromCommand('imap', 'read line; test -n "$line"'));
    expect(err.message).toContain('exited with status 1');
  });

  it('firstLine handles CRLF, a lone line and leading blanks', () => {
    expect(firstLine('abc\r\ndef')).toBe('abc');
    expect(firstLine('abc')).toBe('abc');
    expect(firstLine('\nabc')).toBe('');
  });
});

describe('login options that cannot go together (exit 2 before connecting)', () => {
  it('a token command with a password option', () => {
    const e = thrown(() => checkLoginInput('imap', { oauth2TokenCommand: 't', passwordEnv: 'PW' }, undefined));
    expect(e.kind).toBe('usage');
    expect(e.message).toContain('--imap-oauth2-token-command replaces the password');
  });
  it('a token method without a token command, and a password method with one', () => {
    expect(thrown(() => checkLoginInput('pop3', {}, 'xoauth2')).message).toContain('needs an access token');
    expect(thrown(() => checkLoginInput('pop3', { oauth2TokenCommand: 't' }, 'user')).message).toContain(
      'takes a password',
    );
  });
  it('an admin login with a token or with anything but PLAIN', () => {
    expect(thrown(() => checkLoginInput('imap', { oauth2TokenCommand: 't', adminUser: 'a' }, undefined)).kind).toBe(
      'usage',
    );
    expect(thrown(() => checkLoginInput('imap', { adminUser: 'a' }, 'login')).message).toContain('plain');
  });
  it('accepts what fits', () => {
    checkLoginInput('imap', { oauth2TokenCommand: 't' }, 'oauthbearer');
    checkLoginInput('pop3', { oauth2TokenCommand: 't' }, 'auto');
    checkLoginInput('pop3', { adminUser: 'a', passwordEnv: 'PW' }, 'plain');
  });
});
