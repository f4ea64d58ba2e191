import { describe, expect, it } from 'vitest';
import { formatEndpoint, optionName, resolveImapEndpoint, resolvePop3Endpoint } from '../../src/cli/endpoints.js';
import { PopsyncError } from '../../src/errors.js';

function thrown(fn: () => unknown): PopsyncError {
  try {
    fn();
  } catch (e) {
    if (e instanceof PopsyncError) return e;
    throw e;
  }
  throw new Error('expected a PopsyncError, nothing was thrown');
}

describe('URL schemes and their defaults', () => {
  it('pop3s:// is implicit TLS on 995', () => {
    expect(resolvePop3Endpoint({ url: 'pop3s://alice@pop.example.net' })).toEqual({
      host: 'pop.example.net',
      port: 995,
      tls: 'implicit',
      user: 'alice',
      display: 'alice@pop.example.net:995',
      tlsNamed: false,
    });
  });

  it('pop3:// requires STLS on 110', () => {
    expect(resolvePop3Endpoint({ url: 'pop3://alice@pop.example.net' })).toEqual({
      host: 'pop.example.net',
      port: 110,
      tls: 'starttls',
      user: 'alice',
      display: 'alice@pop.example.net:110',
      tlsNamed: false,
    });
  });

  it('imaps:// is implicit TLS on 993 and imap:// requires STARTTLS on 143', () => {
    expect(resolveImapEndpoint({ url: 'imaps://bob@imap.example.net' })).toEqual({
      host: 'imap.example.net',
      port: 993,
      tls: 'implicit',
      user: 'bob',
      display: 'bob@imap.example.net:993',
      tlsNamed: false,
    });
    const plain = resolveImapEndpoint({ url: 'imap://bob@imap.example.net/' });
    expect([plain.tls, plain.port]).toEqual(['starttls', 143]);
  });

  it('keeps an explicit port and lower-cases scheme and host', () => {
    const ep = resolvePop3Endpoint({ url: 'POP3S://alice@POP.Example.NET:1995' });
    expect([ep.host, ep.port, ep.tls, ep.display]).toEqual([
      'pop.example.net',
      1995,
      'implicit',
      'alice@pop.example.net:1995',
    ]);
  });

  it('brackets IPv6 literals in the display string only', () => {
    const ep = resolveImapEndpoint({ url: 'imaps://bob@[2001:DB8::1]:1993' });
    expect([ep.host, ep.port, ep.display]).toEqual(['2001:db8::1', 1993, 'bob@[2001:db8::1]:1993']);
    expect(resolveImapEndpoint({ host: '::1', user: 'bob' }).display).toBe('bob@[::1]:993');
    expect(formatEndpoint('u', 'h', 1)).toBe('u@h:1');
  });

  it('rejects a scheme of the other side or an unknown one', () => {
    expect(thrown(() => resolveImapEndpoint({ url: 'pop3s://a@h' })).message).toBe(
      'unknown IMAP URL scheme "pop3s://": use imaps:// or imap://',
    );
    const e = thrown(() => resolvePop3Endpoint({ url: 'https://a@h' }));
    expect(e.kind).toBe('usage');
    expect(e.message).toBe('unknown POP3 URL scheme "https://": use pop3s:// or pop3://');
    expect(thrown(() => resolvePop3Endpoint({ url: 'pop.example.net' })).message).toBe(
      'not a POP3 URL: expected pop3s://user@host[:port]',
    );
  });

  it('an address or host without a scheme: the hint writes the URL, STARTTLS scheme for port 110/143', () => {
    const hint = (f: () => unknown) => (thrown(f).context as { hint?: string }).hint;
    expect(hint(() => resolvePop3Endpoint({ url: 'alice@pop.example.net' }))).toBe(
      'write pop3s://alice@pop.example.net (pop3s:// is TLS from the first byte, port 995; ' +
        'pop3:// is STARTTLS, port 110)',
    );
    expect(hint(() => resolvePop3Endpoint({ url: 'pop.example.net:110' }))).toMatch(
      /^write pop3:\/\/user@pop\.example\.net:110 \(/,
    );
    const imap = thrown(() => resolveImapEndpoint({ url: 'bob@imap.example.net' }));
    expect(imap.message).toBe('not an IMAP URL: expected imaps://user@host[:port]');
    expect((imap.context as { hint?: string }).hint).toMatch(/^write imaps:\/\/bob@imap\.example\.net \(/);
    expect(hint(() => resolvePop3Endpoint({ url: 'pop3s:/a@h' }))).toBeUndefined();
  });

  it('echoes the value only when it reads as [user@]host: it may be a password given to the wrong option', () => {
    const hint = (f: () => unknown) => (thrown(f).context as { hint?: string }).hint ?? '';
    for (const url of ['hunter2', 'alice@s3cret!', 'Tr0ub4dor&3']) {
      const h = hint(() => resolvePop3Endpoint({ url }));
      expect(h).toMatch(/^write pop3s:\/\/user@host \(/);
      expect(h).not.toContain(url);
    }
    expect(hint(() => resolveImapEndpoint({ url: 'bob@127.0.0.1:143' }))).toMatch(
      /^write imap:\/\/bob@127\.0\.0\.1:143 \(/,
    );
    expect(hint(() => resolveImapEndpoint({ url: 'localhost' }))).toMatch(/^write imaps:\/\/user@localhost \(/);
  });
});

describe('user names', () => {
  it('percent-decodes an address used as a user name', () => {
    const ep = resolvePop3Endpoint({ url: 'pop3s://alice%40example.com@pop.example.net' });
    expect(ep.user).toBe('alice@example.com');
    expect(ep.host).toBe('pop.example.net');
    expect(ep.display).toBe('alice@example.com@pop.example.net:995');
  });

  it('takes the last @ as the separator when the @ is not encoded', () => {
    const ep = resolveImapEndpoint({ url: 'imaps://alice@example.com@imap.example.net:993' });
    expect([ep.user, ep.host]).toEqual(['alice@example.com', 'imap.example.net']);
  });

  it('refuses a broken %-escape', () => {
    expect(thrown(() => resolvePop3Endpoint({ url: 'pop3s://al%ZZ@h' })).message).toBe(
      'the user name in the POP3 URL has a broken %-escape',
    );
  });

  it('needs a user from the URL or the flag', () => {
    const e = thrown(() => resolvePop3Endpoint({ url: 'pop3s://pop.example.net' }));
    expect(e.message).toBe('no POP3 user given: put it in the URL (pop3s://user@host[:port]) or use --pop-user');
    expect(resolvePop3Endpoint({ url: 'pop3s://pop.example.net', user: 'carol' }).user).toBe('carol');
  });
});

describe('a password in the URL', () => {
  it('is refused with the reason and the options to use, without repeating the password', () => {
    const e = thrown(() => resolvePop3Endpoint({ url: 'pop3s://alice:Sup3rSecret@pop.example.net' }));
    expect(e.kind).toBe('usage');
    expect(e.message).toContain('contains a password');
    expect(e.message).toContain('shell history');
    expect(e.context.hint).toContain('--pop-password-env NAME');
    expect(e.context.hint).toContain('--pop-password-file PATH');
    expect(JSON.stringify({ m: e.message, c: e.context })).not.toContain('Sup3rSecret');
  });

  it('is refused even when empty, and names the imap options on the imap side', () => {
    const e = thrown(() => resolveImapEndpoint({ url: 'imaps://bob:@imap.example.net' }));
    expect(e.context.hint).toContain('--imap-password-env NAME');
  });
});

describe('TLS mode precedence: flag > ?tls= > scheme, default port follows the mode', () => {
  it('plaintext only when asked for by name', () => {
    expect(resolvePop3Endpoint({ url: 'pop3://a@h?tls=none' })).toMatchObject({ tls: 'none', port: 110 });
    expect(resolvePop3Endpoint({ url: 'pop3://a@h', tls: 'none' })).toMatchObject({ tls: 'none', port: 110 });
    expect(resolveImapEndpoint({ url: 'imap://a@h?tls=none' })).toMatchObject({ tls: 'none', port: 143 });
  });

  it('moves the default port with the mode', () => {
    expect(resolvePop3Endpoint({ url: 'pop3://a@h?tls=implicit' })).toMatchObject({ tls: 'implicit', port: 995 });
    expect(resolvePop3Endpoint({ url: 'pop3s://a@h', tls: 'starttls' })).toMatchObject({ tls: 'starttls', port: 110 });
  });

  it('lets the flag win over the query', () => {
    expect(resolveImapEndpoint({ url: 'imap://a@h?tls=none', tls: 'starttls' })).toMatchObject({
      tls: 'starttls',
      port: 143,
    });
  });

  it('rejects an unknown mode', () => {
    expect(thrown(() => resolvePop3Endpoint({ url: 'pop3s://a@h', tls: 'ssl' })).message).toBe(
      'POP3 tls "ssl" is not one of implicit, starttls, none (--pop-tls or ?tls=)',
    );
  });
});

describe('separate flags', () => {
  it('work without a URL; TLS defaults to implicit', () => {
    expect(resolvePop3Endpoint({ host: 'pop.example.net', user: 'alice', port: '1995' })).toEqual({
      host: 'pop.example.net',
      port: 1995,
      tls: 'implicit',
      user: 'alice',
      display: 'alice@pop.example.net:1995',
      tlsNamed: false,
    });
  });

  it('say whether the TLS mode was written out (flag, ?tls=) or came from the scheme or the default', () => {
    expect(resolvePop3Endpoint({ url: 'pop3://alice@pop.example.net:995' }).tlsNamed).toBe(false);
    expect(resolvePop3Endpoint({ url: 'pop3://alice@pop.example.net:995', tls: 'none' }).tlsNamed).toBe(true);
    expect(resolveImapEndpoint({ url: 'imap://bob@imap.example.net:993?tls=none' }).tlsNamed).toBe(true);
    expect(resolveImapEndpoint({ host: 'imap.example.net', user: 'bob' }).tlsNamed).toBe(false);
  });

  it('override the URL parts', () => {
    const ep = resolveImapEndpoint({
      url: 'imaps://bob@old.example.net:1993',
      host: 'new.example.net',
      port: 2993,
      user: 'robert',
    });
    expect(ep.display).toBe('robert@new.example.net:2993');
  });

  it('need a host', () => {
    expect(thrown(() => resolveImapEndpoint({ user: 'bob' })).message).toBe(
      'no IMAP server given: use imaps://user@host[:port] or --imap-host',
    );
  });

  it('reject a bad host', () => {
    expect(thrown(() => resolvePop3Endpoint({ host: 'pop example', user: 'a' })).message).toBe(
      '--pop-host: "pop example" is not a host name or IP address',
    );
  });

  it('map --*-insecure to rejectUnauthorized: false and nothing otherwise', () => {
    expect(resolvePop3Endpoint({ url: 'pop3s://a@h', insecure: true }).rejectUnauthorized).toBe(false);
    expect('rejectUnauthorized' in resolveImapEndpoint({ url: 'imaps://a@h' })).toBe(false);
  });

  it('take the auth method from ?auth= or the flag, each side its own list', () => {
    expect(resolvePop3Endpoint({ url: 'pop3s://a@h?auth=APOP' }).auth).toBe('apop');
    expect(resolvePop3Endpoint({ url: 'pop3s://a@h?auth=apop', auth: 'plain' }).auth).toBe('plain');
    expect(resolvePop3Endpoint({ url: 'pop3s://a@h', auth: 'xoauth2' }).auth).toBe('xoauth2');
    expect(thrown(() => resolvePop3Endpoint({ url: 'pop3s://a@h', auth: 'cram' })).message).toContain(
      '"cram" is not one of auto, user, apop, plain, login, xoauth2, oauthbearer',
    );
    expect(resolveImapEndpoint({ url: 'imaps://a@h', auth: 'oauthbearer' }).auth).toBe('oauthbearer');
    expect(resolveImapEndpoint({ url: 'imaps://a@h?auth=PLAIN' }).auth).toBe('plain');
    expect('auth' in resolveImapEndpoint({ url: 'imaps://a@h' })).toBe(false);
    expect(thrown(() => resolveImapEndpoint({ url: 'imaps://a@h', auth: 'apop' })).message).toContain(
      '"apop" is not one of auto, plain, login, xoauth2, oauthbearer',
    );
  });
});

describe('bad ports and other URL parts', () => {
  it.each([
    ['pop3s://a@h:0', 'the POP3 URL: port "0" is not a number from 1 to 65535'],
    ['pop3s://a@h:65536', 'the POP3 URL: port "65536" is not a number from 1 to 65535'],
    ['pop3s://a@h:99x', 'the POP3 URL: port "99x" is not a number from 1 to 65535'],
    ['pop3s://a@h:', 'the POP3 URL: port "" is not a number from 1 to 65535'],
    ['pop3s://a@', 'the POP3 URL has no host: expected pop3s://user@host[:port]'],
    ['pop3s://a@h/INBOX', 'a POP3 URL takes no path (got "/INBOX")'],
    ['pop3s://a@h#x', 'a POP3 URL takes no #fragment'],
    ['pop3s://a@h?tls=none&tls=implicit', 'POP3 URL parameter "tls" is given twice'],
    ['pop3s://a@h?timeout=3', 'unknown POP3 URL parameter "timeout": known are tls=, auth='],
  ])('%s', (url, message) => {
    const e = thrown(() => resolvePop3Endpoint({ url }));
    expect(e.kind).toBe('usage');
    expect(e.message).toBe(message);
  });

  it('checks the --*-port flag too', () => {
    expect(thrown(() => resolveImapEndpoint({ url: 'imaps://a@h', port: '-1' })).message).toBe(
      '--imap-port: port "-1" is not a number from 1 to 65535',
    );
  });

  it('names options per side', () => {
    expect(optionName('pop3', 'password-file')).toBe('--pop-password-file');
    expect(optionName('imap', 'tls')).toBe('--imap-tls');
  });
});
