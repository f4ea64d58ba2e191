/**
 * The one SASL module, the one trust rule and the IMAP login choice, without sockets.
 */
import tls from 'node:tls';
import { describe, expect, it, vi } from 'vitest';
import { chooseLogin, SaslConversation } from '../../src/imap/login.js';
import { sharedContext } from '../../src/net/connect.js';
import { redact } from '../../src/net/redact.js';
import { oauthErrorStatus, saslMechanism, SaslValueError, secretForms } from '../../src/net/sasl.js';
import { tlsOptions, trustedCas } from '../../src/net/trust.js';
import { authMethods } from '../../src/pop3/sasl.js';

const server = { host: 'server.example.com', port: 143 };

describe('SASL mechanisms (src/net/sasl.ts)', () => {
  it('OAUTHBEARER sends exactly the RFC 7628 §4.1 example and answers an error challenge with ^A', () => {
    const m = saslMechanism('OAUTHBEARER', {
      authcid: 'user@example.com',
      secret: 'vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==',
      ...server,
    });
    expect(m.initial?.toString('utf8')).toBe(
      'n,a=user@example.com,\x01host=server.example.com\x01port=143\x01' +
        'auth=Bearer vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==\x01\x01',
    );
    expect(m.respond(Buffer.from('{"status":"invalid_token"}'), 0)).toEqual(Buffer.from([1]));
  });

  it('OAUTHBEARER escapes , and = in the user name (RFC 5801 §4)', () => {
    const m = saslMechanism('OAUTHBEARER', { authcid: 'a,b=c', secret: 't', ...server });
    expect(m.initial?.toString('utf8').startsWith('n,a=a=2Cb=3Dc,\x01')).toBe(true);
  });

  it("XOAUTH2 sends Google's format and answers an error challenge with an empty response", () => {
    const m = saslMechanism('XOAUTH2', {
      authcid: 'someuser@example.com',
      secret: 'ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg',
      ...server,
    });
    expect(m.initial?.toString('base64')).toBe(
      // Google's published example (developers.google.com/gmail/imap/xoauth2-protocol).
      'dXNlcj1zb21ldXNlckBleGFtcGxlLmNvbQFhdXRoPUJlYXJlciB5YTI5LnZGOWRmdDRxbVRjMk52YjNSbGNrQmhkSFJo' +
        'ZG1semRHRXVZMjl0Q2cBAQ==',
    );
    expect(m.respond(Buffer.from('{}'), 0)).toEqual(Buffer.alloc(0));
  });

  it('PLAIN carries an authzid only when acting for someone else (RFC 4616)', () => {
    expect(saslMechanism('PLAIN', { authcid: 'alice', secret: 'pw', ...server }).initial?.toString()).toBe(
      '\0alice\0pw',
    );
    expect(
      saslMechanism('PLAIN', { authcid: 'admin', authzid: 'alice', secret: 'pw', ...server }).initial?.toString(),
    ).toBe('alice\0admin\0pw');
    expect(
      saslMechanism('PLAIN', { authcid: 'alice', authzid: 'alice', secret: 'pw', ...server }).initial?.toString(),
    ).toBe('\0alice\0pw');
  });

  it('LOGIN answers by prompt, then by order, then cancels', () => {
    const m = saslMechanism('LOGIN', { authcid: 'alice', secret: 'pw', ...server });
    expect(m.initial).toBeUndefined();
    expect(m.respond(Buffer.from('Password:'), 0)?.toString()).toBe('pw');
    expect(m.respond(Buffer.from('Username:'), 1)?.toString()).toBe('alice');
    expect(m.respond(Buffer.from(''), 0)?.toString()).toBe('alice');
    expect(m.respond(Buffer.from(''), 1)?.toString()).toBe('pw');
    expect(m.respond(Buffer.from(''), 2)).toBeUndefined();
  });

  it('refuses values the format cannot carry instead of sending a broken field', () => {
    expect(() => saslMechanism('XOAUTH2', { authcid: 'a', secret: 'x\x01auth=Bearer y', ...server })).toThrow(
      SaslValueError,
    );
    expect(() => saslMechanism('PLAIN', { authcid: 'a\0b', secret: 'p', ...server })).toThrow(SaslValueError);
  });

  it('lists every form a secret goes out in, so replies echoing any of them are blanked', () => {
    const c = { authcid: 'alice', secret: 'tok-123', ...server };
    const forms = secretForms(c, ['PLAIN', 'XOAUTH2', 'OAUTHBEARER']);
    const xo = saslMechanism('XOAUTH2', c).initial!.toString('base64');
    expect(redact(`BAD ${xo} / tok-123 / ${Buffer.from('tok-123').toString('base64')}`, forms)).toBe(
      'BAD **** / **** / ****',
    );
  });

  it("reads only the status of an OAuth2 error challenge, never anything that could be the token's", () => {
    expect(oauthErrorStatus(Buffer.from('{"status":"invalid_token","scope":"x"}'))).toBe('invalid_token');
    expect(oauthErrorStatus(Buffer.from('{"status":"Bearer abc def"}'))).toBeUndefined();
    expect(oauthErrorStatus(Buffer.from('not json'))).toBeUndefined();
  });
});

describe('AUTHENTICATE client side (SaslConversation)', () => {
  const plain = saslMechanism('PLAIN', { authcid: 'alice', secret: 'pw', ...server });
  it('puts the initial response on the command line with SASL-IR', () => {
    const c = new SaslConversation(plain, true);
    expect(c.argument).toBe(Buffer.from('\0alice\0pw').toString('base64'));
    expect(c.answer('')).toBe('*');
  });
  it('without SASL-IR answers the first empty challenge with it', () => {
    const c = new SaslConversation(plain, false);
    expect(c.argument).toBeUndefined();
    expect(c.answer(' ')).toBe(Buffer.from('\0alice\0pw').toString('base64'));
    expect(c.answer('')).toBe('*');
  });
  it('cancels a server that keeps challenging', () => {
    const c = new SaslConversation(saslMechanism('LOGIN', { authcid: 'a', secret: 'b', ...server }), true);
    const answers = Array.from({ length: 6 }, () => c.answer(''));
    expect(answers.slice(4)).toEqual(['*', '*']);
  });
});

describe('choosing the login', () => {
  const caps = (...c: string[]) => new Set(c);
  const pw = { token: false, admin: false };
  const token = { token: true, admin: false };
  it('IMAP auto: PLAIN, else SASL LOGIN, else the LOGIN command; tokens: OAUTHBEARER, else XOAUTH2', () => {
    expect(chooseLogin('auto', caps('AUTH=PLAIN', 'AUTH=LOGIN'), pw)).toEqual({ kind: 'sasl', mechanism: 'PLAIN' });
    expect(chooseLogin('auto', caps('AUTH=LOGIN'), pw)).toEqual({ kind: 'sasl', mechanism: 'LOGIN' });
    expect(chooseLogin('auto', caps(), pw)).toEqual({ kind: 'login-command' });
    expect(chooseLogin('auto', caps('AUTH=XOAUTH2', 'AUTH=OAUTHBEARER'), token)).toEqual({
      kind: 'sasl',
      mechanism: 'OAUTHBEARER',
    });
    expect(chooseLogin('xoauth2', caps('AUTH=XOAUTH2', 'AUTH=OAUTHBEARER'), token)).toEqual({
      kind: 'sasl',
      mechanism: 'XOAUTH2',
    });
  });
  it('IMAP: what is not offered is auth (exit 3) naming what is; a token for a password method is config', () => {
    const e = (() => {
      try {
        chooseLogin('xoauth2', caps('AUTH=PLAIN', 'LOGINDISABLED'), token);
      } catch (err) {
        return err as { kind: string; context: { hint?: string } };
      }
    })();
    expect(e?.kind).toBe('auth');
    expect(e?.context.hint).toBe('it offers PLAIN');
    expect(() => chooseLogin('plain', caps('AUTH=PLAIN'), token)).toThrow(/takes a password/);
    expect(() => chooseLogin('xoauth2', caps('AUTH=XOAUTH2'), pw)).toThrow(/needs an access token/);
    expect(() => chooseLogin('login', caps('AUTH=PLAIN'), { token: false, admin: true })).toThrow(/PLAIN/);
  });
  it('POP3: tokens pick OAUTHBEARER, else XOAUTH2; admins only PLAIN', () => {
    const pop = (sasl: string) =>
      new Map([
        ['USER', []],
        ['SASL', sasl.split(' ')],
      ]);
    expect(authMethods('auto', pop('PLAIN XOAUTH2 OAUTHBEARER'), '+OK', { token: true, admin: false })).toEqual([
      'oauthbearer',
    ]);
    expect(authMethods('auto', pop('PLAIN XOAUTH2'), '+OK', { token: true, admin: false })).toEqual(['xoauth2']);
    expect(authMethods('auto', pop('PLAIN LOGIN'), '+OK', { token: false, admin: true })).toEqual(['plain']);
    expect(() => authMethods('auto', pop('LOGIN'), '+OK', { token: false, admin: true })).toThrow(/PLAIN/);
    expect(() => authMethods('auto', pop('PLAIN'), '+OK', { token: true, admin: false })).toThrow(
      /OAUTHBEARER or XOAUTH2/,
    );
  });
});

describe('trust (src/net/trust.ts): a CA file adds to the roots and NODE_EXTRA_CA_CERTS', () => {
  const roots = ['ROOT-1', 'ROOT-2'];
  const readFile = (p: string): Buffer => Buffer.from(`EXTRA FROM ${p}`);
  it('with a CA file: roots, then NODE_EXTRA_CA_CERTS, then the file', () => {
    const cas = trustedCas(['MINE'], { roots, env: { NODE_EXTRA_CA_CERTS: '/etc/extra.pem' }, readFile });
    expect(cas.map(String)).toEqual(['ROOT-1', 'ROOT-2', 'EXTRA FROM /etc/extra.pem', 'MINE']);
  });
  it("without a CA file the `ca` option stays unset, so Node's own store applies unchanged", () => {
    const o = tlsOptions({ host: 'imap.example.com', port: 993 });
    expect('ca' in o).toBe(false);
    expect(o.servername).toBe('imap.example.com');
    expect(o.rejectUnauthorized).toBe(true);
  });
  it('no SNI for an IP address; verification is off only when asked', () => {
    const o = tlsOptions({ host: '127.0.0.1', port: 993, rejectUnauthorized: false, ca: ['X'] }, { roots, env: {} });
    expect('servername' in o).toBe(false);
    expect(o.rejectUnauthorized).toBe(false);
    expect((o.ca as string[]).slice(-1)).toEqual(['X']);
  });
});

describe('sharedContext (src/net/connect.ts): one secure context per trust', () => {
  const [a, b] = tls.rootCertificates;
  it('the same list, even as another array, gets the same context, and `ca` is not passed on', () => {
    const first = sharedContext({ host: 'x', port: 993, ca: [a!, b!] });
    const again = sharedContext({ host: 'x', port: 993, ca: [a!, b!] });
    expect('ca' in first).toBe(false);
    expect(first.secureContext).toBeDefined();
    expect(again.secureContext).toBe(first.secureContext);
    expect(sharedContext({ host: 'x', port: 993, ca: [a!] }).secureContext).not.toBe(first.secureContext);
  });
  it("starts from Node's store of parsed roots: no `ca` list, so the ~140 roots are not parsed again", () => {
    const made = vi.spyOn(tls, 'createSecureContext');
    try {
      const o = sharedContext({ host: 'x', port: 993, ca: [b!] }, { env: {} });
      expect(made).toHaveBeenCalledTimes(1);
      expect(made.mock.calls[0]![0]?.ca).toBeUndefined();
      expect(o.secureContext).toBe(made.mock.results[0]!.value);
    } finally {
      made.mockRestore();
    }
  });
  it("a Node whose context has no addCACert gets the whole list parsed, as before (not Node's public API)", () => {
    const real = tls.createSecureContext;
    const made = vi.spyOn(tls, 'createSecureContext');
    made.mockImplementationOnce(() => ({ context: {} }) as tls.SecureContext);
    try {
      const o = sharedContext({ host: 'x', port: 993, ca: [b!, b!] }, { env: {} });
      expect(made).toHaveBeenCalledTimes(2);
      const ca = made.mock.calls[1]![0]?.ca as string[];
      expect(ca.length).toBe(tls.rootCertificates.length + 2);
      expect(ca.slice(-2)).toEqual([b!, b!]);
      expect(o.secureContext).toBe(made.mock.results[1]!.value);
      expect(o.secureContext).toBeInstanceOf(real({}).constructor);
    } finally {
      made.mockRestore();
    }
  });
  it("without a CA list the options are tlsOptions' (Node's default context)", () => {
    const t = { host: 'x', port: 993, rejectUnauthorized: true };
    expect(sharedContext(t)).toEqual(tlsOptions(t));
  });
  it('a connection neither rebuilds the list nor rereads NODE_EXTRA_CA_CERTS; another path is another trust', () => {
    const reads: string[] = [];
    const readFile = (path: string): Buffer => {
      reads.push(path);
      return Buffer.from(b!);
    };
    const t = { host: 'x', port: 993, ca: [a!] };
    const one = { env: { NODE_EXTRA_CA_CERTS: '/extra-1.pem' }, readFile };
    const first = sharedContext(t, one);
    for (let i = 0; i < 3; i++) expect(sharedContext(t, one).secureContext).toBe(first.secureContext);
    expect(reads).toEqual(['/extra-1.pem']);
    const other = sharedContext(t, { env: { NODE_EXTRA_CA_CERTS: '/extra-2.pem' }, readFile });
    expect(other.secureContext).not.toBe(first.secureContext);
    expect(reads).toEqual(['/extra-1.pem', '/extra-2.pem']);
  });
});
