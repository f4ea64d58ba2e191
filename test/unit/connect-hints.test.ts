import { describe, expect, it } from 'vitest';
import {
  connectFault,
  explainConnectFailure,
  isConnectMistake,
  opensslReason,
  portMismatchWarning,
  refusedAtConnect,
  TLS_ONLY_PORT_CODE,
  type ConnectTarget,
} from '../../src/connect-hints.js';
import { PopsyncError } from '../../src/errors.js';

const OPENSSL =
  '80DC2F1C0A7F0000:error:0A00010B:SSL routines:ssl3_get_record:wrong version number:' +
  '../deps/openssl/openssl/ssl/record/ssl3_record.c:350:\n';

function nodeError(message: string, code?: string): NodeJS.ErrnoException {
  const e: NodeJS.ErrnoException = new Error(message);
  if (code !== undefined) e.code = code;
  return e;
}

/** As the POP3 client wraps Node's errors today. */
function wrapped(kind: 'connection' | 'tls', message: string, cause?: Error): PopsyncError {
  return new PopsyncError(kind, message, {}, cause ? { cause } : undefined);
}

const pop995: ConnectTarget = { protocol: 'POP3', host: 'pop.example.net', port: 995, tls: 'implicit' };
const imap143: ConnectTarget = { protocol: 'IMAP', host: 'imap.example.net', port: 143, tls: 'starttls' };

describe('connectFault', () => {
  it('recognises each fault by code, through our wrapping, or by text alone', () => {
    expect(connectFault(wrapped('connection', 'x', nodeError('connect ECONNREFUSED 1.2.3.4:1', 'ECONNREFUSED')))).toBe(
      'refused',
    );
    expect(connectFault(nodeError('getaddrinfo ENOTFOUND nosuch.example'))).toBe('unknown-host');
    expect(connectFault(wrapped('tls', 'TLS failed', nodeError(OPENSSL, 'ERR_SSL_WRONG_VERSION_NUMBER')))).toBe(
      'tls-to-plain',
    );
    expect(connectFault(nodeError(OPENSSL))).toBe('tls-to-plain');
    expect(connectFault(nodeError('self-signed certificate', 'DEPTH_ZERO_SELF_SIGNED_CERT'))).toBe('untrusted');
    expect(connectFault(nodeError('unable to get local issuer certificate'))).toBe('untrusted');
    expect(
      connectFault(nodeError("Hostname/IP does not match certificate's altnames", 'ERR_TLS_CERT_ALTNAME_INVALID')),
    ).toBe('name-mismatch');
    expect(connectFault(nodeError('certificate has expired', 'CERT_HAS_EXPIRED'))).toBe('expired');
    expect(
      connectFault(wrapped('connection', 'POP3 server sent nothing for 2000 ms while popsync waited for (greeting)')),
    ).toBe('no-greeting');
    expect(connectFault(nodeError('Greeting never received', 'GREETING_TIMEOUT'))).toBe('no-greeting');
  });

  it('is null for what is not a connect fault: a refused login, a dropped link, a DNS server away', () => {
    expect(connectFault(new PopsyncError('auth', 'POP3 server rejected the login'))).toBeNull();
    expect(connectFault(nodeError('read ECONNRESET', 'ECONNRESET'))).toBeNull();
    expect(connectFault(nodeError('getaddrinfo EAI_AGAIN pop.example.net', 'EAI_AGAIN'))).toBeNull();
    expect(connectFault('a string')).toBeNull();
  });

  it('only refused, unknown host and a TLS-mode mismatch are mistakes no reconnect cures', () => {
    expect(isConnectMistake(nodeError('x', 'ECONNREFUSED'))).toBe(true);
    expect(isConnectMistake(nodeError(OPENSSL))).toBe(true);
    expect(isConnectMistake(nodeError('certificate has expired', 'CERT_HAS_EXPIRED'))).toBe(false);
    expect(isConnectMistake(nodeError('read ECONNRESET', 'ECONNRESET'))).toBe(false);
  });
});

describe('explainConnectFailure', () => {
  it('TLS towards a plain port names host and port and the scheme to use, not OpenSSL', () => {
    const plain110: ConnectTarget = { ...pop995, port: 110 };
    const e = explainConnectFailure(
      wrapped(
        'tls',
        `TLS with POP3 server pop.example.net:110 failed: ${OPENSSL}`,
        nodeError(OPENSSL, 'ERR_SSL_WRONG_VERSION_NUMBER'),
      ),
      plain110,
    ) as PopsyncError;
    expect(e.kind).toBe('tls');
    expect(e.message).toBe(
      'POP3 server pop.example.net:110 answered in plain text, but popsync spoke TLS (pop3s://) (wrong version number)',
    );
    // The option too: it beats the URL, so a user who wrote --pop-tls implicit needs it.
    expect(e.context.hint).toBe('port 110 is plain: use pop3:// or --pop-tls starttls');
    // Still recognised after the rewording, and Node's code is still on the cause.
    expect(connectFault(e)).toBe('tls-to-plain');
    expect((e.cause as NodeJS.ErrnoException).code).toBe('ERR_SSL_WRONG_VERSION_NUMBER');
  });

  it('plain towards a port that answered the TLS check in TLS: a TLS mistake (exit 4), the scheme and option', () => {
    const probed = Object.assign(
      new Error('no plain-text greeting within 2 s; a TLS hello to the same port was answered in TLS'),
      { code: TLS_ONLY_PORT_CODE },
    );
    const raw = wrapped('connection', `POP3 connection error: ${probed.message}`, probed);
    expect(connectFault(raw)).toBe('plain-to-tls');
    const at995 = explainConnectFailure(raw, { ...pop995, tls: 'none' }) as PopsyncError;
    expect(at995.kind).toBe('tls');
    expect(at995.message).toBe(
      'POP3 server pop.example.net:995 speaks TLS from the first byte (pop3s), and popsync connected in plain ' +
        'text (tls=none)',
    );
    expect(at995.context.hint).toBe('port 995 is POP3 over TLS (pop3s): use pop3s:// or --pop-tls implicit');
    expect(isConnectMistake(at995)).toBe(true);
    // Recognised again by its words once explained (the engine asks), as each fault is.
    expect(connectFault(new PopsyncError('tls', at995.message))).toBe('plain-to-tls');
    const at1993 = explainConnectFailure(raw, { ...imap143, port: 1993 }) as PopsyncError;
    expect(at1993.context.hint).toBe('use imaps:// or --imap-tls implicit');
  });

  it('a greeting that never came: how long was waited, and no hint of TLS once the port was checked', () => {
    const silent = wrapped('connection', 'POP3 server sent nothing for 60000 ms while popsync waited for (greeting)');
    const at995 = explainConnectFailure(silent, { ...pop995, tls: 'starttls', timeoutMs: 60_000 }) as PopsyncError;
    expect(at995.kind).toBe('connection');
    expect(at995.message).toBe(
      'POP3 server pop.example.net:995 accepted the connection but sent no greeting within 60 s',
    );
    // The TLS hello (net/tls-probe.ts) found no TLS, or could not tell: the hint says only that.
    expect(at995.context.hint).toBe(
      'port 995 is the usual port of POP3 over TLS (pop3s://); whether it speaks TLS could not be told: if it ' +
        'does, use pop3s:// or --pop-tls implicit; else check the port, and a server that is only slow to greet ' +
        'needs a longer --timeout',
    );
    for (const tlsProbe of ['no-answer', 'not-tls'] as const) {
      const hint = (explainConnectFailure(silent, { ...pop995, tls: 'starttls', tlsProbe }) as PopsyncError).context
        .hint;
      expect(hint).not.toMatch(/995 is POP3 over TLS/);
      expect(hint).toMatch(/^port 995 is the usual port of POP3 over TLS \(pop3s:\/\/\)[;,]/);
    }
    const plain = explainConnectFailure(silent, { ...pop995, tls: 'none', tlsProbe: 'not-tls' }) as PopsyncError;
    expect(plain.context.hint).toBe(
      'port 995 is the usual port of POP3 over TLS (pop3s://), but a TLS hello to it was answered in plain ' +
        'text: check the port (POP3 is usually on port 995 (pop3s://) or 110 (pop3://)); a server that is only ' +
        'slow to greet needs a longer --timeout',
    );
    // Our own "sent nothing for 60000 ms ... (pending: (greeting))" is not shown again as a cause.
    expect(at995.cause).toBeUndefined();
    expect(isConnectMistake(at995)).toBe(true);
    const at2995 = explainConnectFailure(silent, { ...pop995, port: 2995, tls: 'none' }) as PopsyncError;
    expect(at2995.message).toBe('POP3 server pop.example.net:2995 accepted the connection but sent no greeting');
    expect(at2995.context.hint).toBe(
      'check the port (POP3 is usually on port 995 (pop3s://) or 110 (pop3://)); a server that is only slow to ' +
        'greet needs a longer --timeout',
    );
  });

  it('a BYE in place of the greeting is the server turning us away for now, not a wrong port', () => {
    // Our APPEND connection's words for a greeting that was not "* OK", and imapflow's close
    // before the greeting with the BYE's text as `reason`: each is "try later" (exit 75),
    // retried, with the server's own line.
    const ours = wrapped('connection', 'IMAP server imap.example.net:143 did not greet us: * BYE Too many connections');
    const imapflow = wrapped(
      'connection',
      'IMAP connection to imap.example.net:143 lost',
      Object.assign(new Error('Unexpected close'), { code: 'ClosedAfterConnectText', reason: 'Too many connections' }),
    );
    for (const bye of [ours, imapflow]) {
      expect(isConnectMistake(bye)).toBe(false);
      const e = explainConnectFailure(bye, { ...imap143, timeoutMs: 60_000 }) as PopsyncError;
      expect(e.kind).toBe('temporary');
      expect(e.message).toBe('IMAP server imap.example.net:143 turned the connection away');
      expect(e.context.serverResponse).toBe('* BYE Too many connections');
      expect(e.context.hint).toMatch(/^the server refuses connections for now .*; run again later$/);
      expect(e.context.hint).not.toContain('port');
      expect(isConnectMistake(e)).toBe(false);
      // Explained twice (the engine asks again): unchanged.
      expect(explainConnectFailure(e, imap143)).toBe(e);
    }
  });

  it('a server that closed before greeting keeps its words; only a silence is a matter of --timeout', () => {
    // imapflow's close before any greeting: no wait was involved either.
    const closed = Object.assign(new Error('Unexpected close'), { code: 'ClosedAfterConnectText' });
    const c = explainConnectFailure(closed, { ...imap143, timeoutMs: 60_000 }) as PopsyncError;
    expect(c.message).not.toContain('within');
    expect(c.context.hint).not.toContain('--timeout');
    // imapflow's own timeout is a silence: how long, and no "Maybe should use TLS?" cause.
    const slow = Object.assign(new Error('Failed to receive greeting from server in required time'), {
      code: 'GREETING_TIMEOUT',
    });
    const t = explainConnectFailure(slow, { ...imap143, timeoutMs: 60_000 }) as PopsyncError;
    expect(t.message).toBe('IMAP server imap.example.net:143 accepted the connection but sent no greeting within 60 s');
    expect(t.cause).toBeUndefined();
    // Explained twice (the engine asks again), each keeps its words.
    expect((explainConnectFailure(t, imap143) as PopsyncError).message).toContain('sent no greeting');
    expect((explainConnectFailure(c, imap143) as PopsyncError).message).toContain('did not greet');
  });

  it('a close before the greeting on a port that greeted another connection is a connection turned away', () => {
    // Our words (net/connect.ts, for imapflow's early socket and our APPEND connection) and
    // imapflow's own close before the greeting (no BYE reason).
    const ours = wrapped('connection', 'IMAP server imap.example.net:143 closed the connection before greeting');
    const imapflow = wrapped(
      'connection',
      'IMAP connect to imap.example.net:143: connection lost or unusable',
      Object.assign(new Error('Unexpected close'), { code: 'ClosedAfterConnectText' }),
    );
    for (const closed of [ours, imapflow]) {
      // Never greeted: perhaps the wrong port (README's table: 4 / 75, "check the port").
      const never = explainConnectFailure(closed, imap143) as PopsyncError;
      expect(never.kind).toBe('connection');
      expect(never.message).toBe('IMAP server imap.example.net:143 accepted the connection but did not greet');
      expect(never.context.hint).toMatch(/^check the port/);
      expect(isConnectMistake(never)).toBe(true);
      // Another connection to the port was greeted: the port is right; retried, then exit 75.
      const e = explainConnectFailure(closed, { ...imap143, greeted: true }) as PopsyncError;
      expect(e.kind).toBe('temporary');
      expect(e.message).toBe('IMAP server imap.example.net:143 closed a connection before greeting it');
      expect(e.context.hint).toMatch(
        /^it greeted another connection of this popsync process to this port, so the port is right/,
      );
      expect(e.context.hint).not.toMatch(/check the port/);
      expect(isConnectMistake(e)).toBe(false);
      expect(explainConnectFailure(e, { ...imap143, greeted: true })).toBe(e);
    }
    // What the greeting does not change: a silence, a BYE.
    const slow = Object.assign(new Error('Failed to receive greeting'), { code: 'GREETING_TIMEOUT' });
    expect((explainConnectFailure(slow, { ...imap143, greeted: true }) as PopsyncError).kind).toBe('connection');
    const bye = Object.assign(new Error('Unexpected close'), { code: 'ClosedAfterConnectText', reason: 'Too many' });
    expect((explainConnectFailure(bye, { ...imap143, greeted: true }) as PopsyncError).message).toContain(
      'turned the connection away',
    );
  });

  it('refused, unknown host and an untrusted certificate each get their fix; the context is kept', () => {
    const refused = explainConnectFailure(
      new PopsyncError(
        'connection',
        'x',
        { account: 'a' },
        { cause: nodeError('connect ECONNREFUSED', 'ECONNREFUSED') },
      ),
      imap143,
    ) as PopsyncError;
    expect(refused.message).toContain(
      'cannot connect to IMAP server imap.example.net:143: nothing accepts connections',
    );
    expect(refused.context).toMatchObject({
      account: 'a',
      hint: expect.stringContaining('993 (imaps://) or 143 (imap://)'),
    });
    const unknown = explainConnectFailure(nodeError('getaddrinfo ENOTFOUND imap.example.nte', 'ENOTFOUND'), {
      ...imap143,
      host: 'imap.example.nte',
    }) as PopsyncError;
    expect(unknown.message).toBe('cannot connect to IMAP server imap.example.nte:143: unknown host "imap.example.nte"');
    const untrusted = explainConnectFailure(
      wrapped('tls', 'TLS failed', nodeError('self-signed certificate', 'DEPTH_ZERO_SELF_SIGNED_CERT')),
      imap143,
    ) as PopsyncError;
    expect(untrusted.kind).toBe('tls');
    expect(untrusted.context.hint).toMatch(/^--imap-ca-file FILE to trust a private CA/);
  });

  it('refused on a port that greeted a connection of the process: it refused it, not "nothing there"; 4/75', () => {
    const raw = wrapped(
      'connection',
      'cannot connect to IMAP server imap.example.net:143: connect ECONNREFUSED 1.2.3.4:143',
      nodeError('connect ECONNREFUSED 1.2.3.4:143', 'ECONNREFUSED'),
    );
    const e = explainConnectFailure(raw, { ...imap143, greeted: true }) as PopsyncError;
    expect(e.kind).toBe('connection');
    expect(e.message).toBe(
      'cannot connect to IMAP server imap.example.net:143: it refused the connection ' +
        '(connect ECONNREFUSED 1.2.3.4:143)',
    );
    expect(e.context.hint).toMatch(
      /^it greeted another connection of this popsync process to this port, so the host and port/,
    );
    expect(e.context.hint).not.toMatch(/check the host/);
    expect(connectFault(e)).toBe('refused');
    // Never greeted: as ever.
    const never = explainConnectFailure(raw, imap143) as PopsyncError;
    expect(never.message).toContain('nothing accepts connections there');
    expect(never.context.hint).toMatch(/^check the host and the port/);
  });

  it('leaves any other error as it is', () => {
    const auth = new PopsyncError('auth', 'rejected');
    expect(explainConnectFailure(auth, pop995)).toBe(auth);
  });
});

describe('refusedAtConnect', () => {
  it('names a refused connect and a reset, through our wrapping; nothing else', () => {
    const refused = nodeError('connect ECONNREFUSED 127.0.0.1:1', 'ECONNREFUSED');
    expect(refusedAtConnect(wrapped('connection', 'cannot connect', refused))).toBe('refused');
    expect(refusedAtConnect(nodeError('read ECONNRESET', 'ECONNRESET'))).toBe('reset');
    expect(refusedAtConnect(nodeError('connect ETIMEDOUT', 'ETIMEDOUT'))).toBeNull();
    expect(
      refusedAtConnect(wrapped('connection', 'IMAP server x:143 closed the connection before greeting')),
    ).toBeNull();
    expect(refusedAtConnect('ECONNREFUSED')).toBeNull();
  });
});

describe('the other protocol on the port', () => {
  it("POP3 at an IMAP port, IMAP at a POP3 port: named, with the server's greeting and the usual ports", () => {
    const greeting = '* OK [CAPABILITY IMAP4rev1 STARTTLS] Dovecot ready.';
    const pop = new PopsyncError(
      'protocol',
      `POP3 server sent an unexpected line: "${greeting}" (pending: (greeting))`,
    );
    const e = explainConnectFailure(pop, { ...pop995, port: 143, tls: 'none' }) as PopsyncError;
    expect(e.kind).toBe('protocol');
    expect(e.message).toBe('POP3 server pop.example.net:143 answered as an IMAP server');
    expect(e.context.serverResponse).toBe(greeting);
    expect(e.context.hint).toBe('check the port: POP3 is usually on port 995 (pop3s://) or 110 (pop3://)');
    expect(isConnectMistake(e)).toBe(true);

    const imap = new Error('IMAP server imap.example.net:110 did not greet us: +OK Dovecot ready.');
    const i = explainConnectFailure(imap, { ...imap143, port: 110 }) as PopsyncError;
    expect(i.message).toBe('IMAP server imap.example.net:110 answered as a POP3 server');
    expect(i.context.serverResponse).toBe('+OK Dovecot ready.');
    expect(i.context.hint).toMatch(/^check the port: IMAP is usually on port 993/);
    expect(isConnectMistake(imap)).toBe(true);
  });
});

describe('opensslReason and portMismatchWarning', () => {
  it('cuts OpenSSL text to its reason wherever it appears', () => {
    expect(opensslReason(OPENSSL)).toBe('wrong version number');
    expect(opensslReason(`TLS failed: ${OPENSSL}(ERR_X)`)).toBe('TLS failed: wrong version number(ERR_X)');
    expect(opensslReason('self-signed certificate')).toBe('self-signed certificate');
  });

  it('warns when the scheme contradicts a well-known port, and only then', () => {
    // From the port number alone, before any probe: what the port usually is, not what this
    // server speaks there (a plain server on 995 behind a proxy is legitimate).
    expect(portMismatchWarning({ ...pop995, tls: 'starttls' })).toBe(
      'POP3 pop.example.net:995: port 995 is the usual port of POP3 over TLS (pop3s://), and popsync will ' +
        'connect in plain text (tls=starttls): if the server speaks TLS there, use pop3s:// or --pop-tls implicit',
    );
    expect(portMismatchWarning({ ...imap143, tls: 'implicit' })).toBe(
      'IMAP imap.example.net:143: port 143 is the usual port of plain IMAP (imap://), and popsync will start ' +
        'with TLS (tls=implicit): if the server speaks plain text there, use imap:// or --imap-tls starttls',
    );
    expect(portMismatchWarning(pop995)).toBeNull();
    expect(portMismatchWarning(imap143)).toBeNull();
  });
});
