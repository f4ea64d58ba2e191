/**
 * What a failed connection most likely means, in the user's terms: the host and port, what
 * went wrong, and the option that fixes it. Most first-connection failures are a typo or a
 * scheme that does not match the port (pop3s:// towards 110, imap:// towards 993), and the
 * raw text Node and OpenSSL give ("ssl3_get_record:wrong version number", a 60 s silence)
 * does not say so.
 *
 * Pure: an error and the endpoint in, an error out. No sockets here, so whichever module
 * opens them (the protocol clients today, one connect module later) can call it, and the
 * engine can ask whether a failure is a mistake no reconnect will cure.
 */
import { PopsyncError, isPopsyncError } from './errors.js';
import type { TlsMode } from './tls.js';

export interface ConnectTarget {
  protocol: 'POP3' | 'IMAP';
  host: string;
  port: number;
  tls: TlsMode;
  /** --timeout: how long a silent server was given to greet. */
  timeoutMs?: number;
  /** What the TLS hello to a silent plain port found (net/tls-probe.ts); absent when none was sent. */
  tlsProbe?: TlsProbeVerdict;
  /** Another connection of this process to this port was greeted (net/greeted.ts): the port is right. */
  greeted?: boolean;
}

/**
 * net/tls-probe.ts's answer: 'tls' (a handshake or a TLS alert), 'not-tls' (bytes that are not
 * TLS: a plain-text server), 'no-answer' (a silence, a close or a reset: it could not tell).
 */
export type TlsProbeVerdict = 'tls' | 'not-tls' | 'no-answer';

/**
 * Node-style `code` of the error net/tls-probe.ts ends a silent plain connection with, when a TLS
 * hello to the same port was answered in TLS. Here, below net/, so that both can name it.
 */
export const TLS_ONLY_PORT_CODE = 'ERR_POPSYNC_TLS_ONLY_PORT';

/**
 * - refused: nothing listens there (or the address cannot be used);
 * - unknown-host: the name does not resolve;
 * - tls-to-plain: we spoke TLS and the server answered in plain text;
 * - plain-to-tls: we connected in plain text to a port that speaks TLS from the first byte: it
 *   said nothing, and answered a TLS hello on a second connection (net/tls-probe.ts);
 * - no-greeting: connected, but the server never greeted (a TLS-only port the probe could not
 *   tell, or a server that is down or not POP3/IMAP);
 * - untrusted / name-mismatch / expired: certificate verification.
 */
export type ConnectFault =
  | 'refused'
  | 'unknown-host'
  | 'tls-to-plain'
  | 'plain-to-tls'
  | 'no-greeting'
  | 'untrusted'
  | 'name-mismatch'
  | 'expired';

const STANDARD = {
  POP3: { tls: 995, plain: 110, secure: 'pop3s', starttls: 'pop3', option: 'pop' },
  IMAP: { tls: 993, plain: 143, secure: 'imaps', starttls: 'imap', option: 'imap' },
} as const;

const CODES: ReadonlyArray<[RegExp, ConnectFault]> = [
  [/^(ECONNREFUSED|EADDRNOTAVAIL)$/, 'refused'],
  [/^ENOTFOUND$/, 'unknown-host'],
  [new RegExp(`^${TLS_ONLY_PORT_CODE}$`), 'plain-to-tls'],
  [/^ERR_SSL_(WRONG_VERSION_NUMBER|PACKET_LENGTH_TOO_LONG|HTTP_REQUEST|UNKNOWN_PROTOCOL)$/, 'tls-to-plain'],
  [/^ERR_TLS_CERT_ALTNAME_INVALID$/, 'name-mismatch'],
  [/^CERT_HAS_EXPIRED$/, 'expired'],
  [/^UNABLE_TO_(VERIFY_LEAF_SIGNATURE|GET_ISSUER_CERT|GET_ISSUER_CERT_LOCALLY)$/, 'untrusted'],
  [/^(DEPTH_ZERO_)?SELF_SIGNED_CERT(_IN_CHAIN)?$/, 'untrusted'],
  [/^(GREETING_TIMEOUT|ClosedAfterConnectText)$/, 'no-greeting'],
];

/**
 * Node and OpenSSL do not always set `code`; their text is then all there is. The last words of
 * each line are those of describe() below, so an explained error is still recognised.
 */
const TEXTS: ReadonlyArray<[RegExp, ConnectFault]> = [
  [/\bECONNREFUSED\b|\bEADDRNOTAVAIL\b/, 'refused'],
  [/\bENOTFOUND\b/, 'unknown-host'],
  [/wrong version number|packet length too long|http request|unknown protocol/i, 'tls-to-plain'],
  [/answered in plain text/, 'tls-to-plain'],
  [/TLS hello to the same port was answered in TLS/, 'plain-to-tls'],
  [/speaks TLS from the first byte \(\w+\), and popsync connected in plain text/, 'plain-to-tls'],
  [/self[- ]signed certificate|unable to (verify the first certificate|get (local )?issuer certificate)/i, 'untrusted'],
  [/does not match certificate's altnames/i, 'name-mismatch'],
  [/certificate has expired/i, 'expired'],
  // POP3 client, our IMAP APPEND connection, imapflow. "No response" is only ever asked about a
  // connection being opened (the opener and the engine's first connect), where the first thing
  // awaited is the greeting.
  [
    /waited for \(greeting\)|did not greet|greeting timeout|closed the connection before (the )?greeting/i,
    'no-greeting',
  ],
  [/no response within|sent no greeting/, 'no-greeting'],
];

/**
 * A greeting waited for until a deadline, as against one the server refused or cut short (a
 * BYE instead of "* OK", a close): only a wait is worth the words "within N s" and a longer
 * --timeout, and only a refusal has a cause worth showing (the server's own words).
 */
const WAITED =
  /waited for \(greeting\)|greeting timeout|failed to receive greeting|no response within|sent no greeting/i;

function waitedForGreeting(err: unknown): boolean {
  for (let c: unknown = err, depth = 0; c instanceof Error && depth < 6; c = c.cause, depth++)
    if ((c as NodeJS.ErrnoException).code === 'GREETING_TIMEOUT' || WAITED.test(c.message)) return true;
  return false;
}

/**
 * The server's refusal in place of a greeting, IMAP's `* BYE ...` (RFC 9051 7.1.5: it will not
 * serve this connection; "Too many connections", maintenance), as our APPEND connection words it
 * ("did not greet us: * BYE ...") or imapflow reports it (a close before the greeting, the BYE's
 * text as `reason`). Null for a silence or a close without a word.
 */
function byeGreeting(err: unknown): string | null {
  for (let c: unknown = err, depth = 0; c instanceof Error && depth < 6; c = c.cause, depth++) {
    const ours = /did not greet us: (\* BYE\b.*)$/is.exec(c.message);
    if (ours) return ours[1]!;
    const { code, reason } = c as { code?: unknown; reason?: unknown };
    if ((code === 'ClosedAfterConnectText' || code === 'ClosedAfterConnectTLS') && typeof reason === 'string')
      return `* BYE ${reason}`;
  }
  return null;
}

/**
 * The server closed the connection before greeting it, without a word: in our words (net/connect.ts
 * closedBeforeGreeting, for imapflow's connection and our APPEND connection alike), or imapflow's
 * (a close while it awaited the greeting: ClosedAfterConnect*, no BYE reason).
 */
export function closedUnheard(err: unknown): boolean {
  for (let c: unknown = err, depth = 0; c instanceof Error && depth < 6; c = c.cause, depth++) {
    if (/closed the connection before greeting$/.test(c.message)) return true;
    const { code, reason } = c as { code?: unknown; reason?: unknown };
    if ((code === 'ClosedAfterConnectText' || code === 'ClosedAfterConnectTLS') && reason === undefined) return true;
  }
  return false;
}

/**
 * Over implicit TLS, the server closed the connection before the TLS handshake was done, without
 * a word: what a limit on connections enforced at accept in front of a TLS server does
 * (couriertcpd -maxperip before couriertls, haproxy in TCP mode). Node says ECONNRESET, "Client
 * network socket disconnected before secure TLS connection was established" (a reset in transit
 * reads "read ECONNRESET"). Only writer.ts and pipeline.ts ask, where the APPEND connection or
 * imapflow's session is turned away while another connection to the port was let in; nothing
 * here words it, since on a first connection it may as well be a port that speaks no TLS.
 */
export function closedBeforeTls(err: unknown): boolean {
  for (let c: unknown = err, depth = 0; c instanceof Error && depth < 6; c = c.cause, depth++)
    if (/disconnected before secure TLS connection was established/.test(c.message)) return true;
  return false;
}

/**
 * The server would not let the TCP connection in: 'refused' when the connect itself failed
 * (ECONNREFUSED: a reset for the SYN, what nothing listening gives, and also a firewall's
 * per-address limit rejecting with a TCP reset, iptables `connlimit ... --reject-with tcp-reset`),
 * 'reset' when the connection was reset (ECONNRESET: a front that accepts and resets at once).
 * Null for anything else. Alone it says nothing of why: on a first connection it is the server
 * down or the wrong port, and a reset may come at any time. Only writer.ts and pipeline.ts ask,
 * about a connection not yet greeted while another connection to the same port was let in, where
 * it is the server turning this one away, as a close before the greeting is (closedUnheard).
 */
export function refusedAtConnect(err: unknown): 'refused' | 'reset' | null {
  for (let c: unknown = err, depth = 0; c instanceof Error && depth < 6; c = c.cause, depth++) {
    const code = (c as NodeJS.ErrnoException).code;
    if (code === 'ECONNREFUSED') return 'refused';
    if (code === 'ECONNRESET') return 'reset';
  }
  return null;
}

/**
 * The greeting of the other protocol where ours was awaited: IMAP's "* OK" read by the POP3
 * client, POP3's "+OK" by an IMAP connection. Null for anything else.
 */
function otherProtocolGreeting(err: unknown, protocol: 'POP3' | 'IMAP'): string | null {
  const re =
    protocol === 'POP3'
      ? /unexpected line: "(\* OK\b[^"]*)" \(pending: \(greeting\)\)/
      : /did not greet us: (\+OK\b.*)$/s;
  for (let c: unknown = err, depth = 0; c instanceof Error && depth < 6; c = c.cause, depth++) {
    const m = re.exec(c.message);
    if (m) return m[1]!;
  }
  return null;
}

/** The fault behind `err`, looking through its causes; null when it is none of the above. */
export function connectFault(err: unknown): ConnectFault | null {
  const seen: unknown[] = [];
  for (let c: unknown = err; c instanceof Error && seen.length < 6 && !seen.includes(c); c = c.cause) {
    seen.push(c);
    const code = (c as NodeJS.ErrnoException).code;
    if (typeof code === 'string') for (const [re, fault] of CODES) if (re.test(code)) return fault;
  }
  for (const c of seen) for (const [re, fault] of TEXTS) if (re.test((c as Error).message)) return fault;
  return null;
}

/**
 * A first connection failing like this is a mistake in the host, port or scheme: reconnecting
 * cannot cure it, so the run ends at once instead of backing off.
 */
export function isConnectMistake(err: unknown): boolean {
  // A server that said BYE was reached, on the right port, in the right protocol; so was one
  // that greeted another connection to the port (explainConnectFailure: 'temporary', as a BYE).
  if (byeGreeting(err) !== null || (isPopsyncError(err) && err.kind === 'temporary')) return false;
  // The other protocol's port: no reconnect will make it ours.
  for (let c: unknown = err, depth = 0; c instanceof Error && depth < 6; c = c.cause, depth++)
    if (/answered as an? (IMAP|POP3) server$/.test(c.message)) return true;
  if (otherProtocolGreeting(err, 'POP3') !== null || otherProtocolGreeting(err, 'IMAP') !== null) return true;
  const f = connectFault(err);
  return f === 'refused' || f === 'unknown-host' || f === 'tls-to-plain' || f === 'plain-to-tls' || f === 'no-greeting';
}

/**
 * OpenSSL's error string ("80DC...:error:0A00010B:SSL routines:ssl3_get_record:wrong version
 * number:../deps/openssl/...:350:") cut to its reason, "wrong version number"; other text as is.
 */
export function opensslReason(text: string): string {
  return text.replace(/[0-9A-F]{6,}:error:[0-9A-F]+:[^:]*:[^:]*:([^:]+):\S*\n?/g, '$1').trim();
}

function where(t: ConnectTarget): string {
  return `${t.host.includes(':') ? `[${t.host}]` : t.host}:${t.port}`;
}

/** The first error in the chain that is not ours: Node's, with the code and the words that matter. */
function rootOf(err: unknown): unknown {
  for (let c: unknown = err, depth = 0; c instanceof Error && depth < 6; c = c.cause, depth++)
    if (!isPopsyncError(c)) return c;
  return err;
}

function reasonOf(err: unknown): string {
  const root = rootOf(err);
  return root instanceof Error ? opensslReason(root.message) : String(root);
}

/**
 * The scheme, and the option: an option beats the URL (README "Server URLs"), so a user who
 * wrote --pop-tls none would not be helped by a scheme alone.
 */
function useImplicit(t: ConnectTarget): string {
  const s = STANDARD[t.protocol];
  return `use ${s.secure}:// or --${s.option}-tls implicit`;
}

function useStarttls(t: ConnectTarget): string {
  const s = STANDARD[t.protocol];
  return `use ${s.starttls}:// or --${s.option}-tls starttls`;
}

/** "port 995 is POP3 over TLS (pop3s): use pop3s://" and the like; the likely fix for each fault. */
function connectHint(fault: ConnectFault, t: ConnectTarget, waited: boolean): string {
  const s = STANDARD[t.protocol];
  const ports = `${t.protocol} is usually on port ${s.tls} (${s.secure}://) or ${s.plain} (${s.starttls}://)`;
  const overTls = `port ${t.port} is ${t.protocol} over TLS (${s.secure}): ${useImplicit(t)}`;
  switch (fault) {
    case 'refused':
      // A port that greeted a connection of this process is right (net/greeted.ts keeps that for
      // the process, so in sync --every it may be an earlier cycle's): the server went down, or
      // turns connections away at connect (writer.ts tried its one-connection fallback first).
      if (t.greeted === true)
        return (
          'it greeted another connection of this popsync process to this port, so the host and port are right: the ' +
          'server is down or restarting, or refuses connections past a limit (a per-address limit in a ' +
          'firewall); run again later'
        );
      return `check the host and the port: ${ports}`;
    case 'unknown-host':
      return `check the spelling of the host name "${t.host}"`;
    case 'tls-to-plain':
      return `port ${t.port} is plain: ${useStarttls(t)}`;
    case 'plain-to-tls':
      return t.port === s.tls ? overTls : useImplicit(t);
    case 'no-greeting':
      // A refusal (a BYE, a close) speaks for itself in the cause; no wait would have changed it.
      if (!waited) return `check the port (${ports})`;
      // Had the port answered a TLS hello in TLS, the fault would be plain-to-tls: say what the
      // hello did find rather than that the standard port must be TLS.
      if (t.port === s.tls && t.tls !== 'implicit') {
        const usual = `port ${t.port} is the usual port of ${t.protocol} over TLS (${s.secure}://)`;
        return t.tlsProbe === 'not-tls'
          ? `${usual}, but a TLS hello to it was answered in plain text: check the port (${ports}); ` +
              'a server that is only slow to greet needs a longer --timeout'
          : `${usual}; whether it speaks TLS could not be told: if it does, ${useImplicit(t)}; else ` +
              'check the port, and a server that is only slow to greet needs a longer --timeout';
      }
      return `check the port (${ports}); a server that is only slow to greet needs a longer --timeout`;
    case 'untrusted':
      return `--${s.option}-ca-file FILE to trust a private CA (or the server's self-signed certificate)`;
    case 'name-mismatch':
      // The names are in the message, from Node's reason; no cause line repeats it.
      return 'connect by a name the certificate lists (named above), or ask for a certificate for this name';
    case 'expired':
      return "the server's certificate has expired: its admin must renew it";
  }
}

function seconds(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000} s` : `${ms} ms`;
}

function describe(fault: ConnectFault, t: ConnectTarget, reason: string, waited: boolean): string {
  const server = `${t.protocol} server ${where(t)}`;
  switch (fault) {
    case 'refused':
      if (t.greeted === true) return `cannot connect to ${server}: it refused the connection (${reason})`;
      return `cannot connect to ${server}: nothing accepts connections there (${reason})`;
    case 'unknown-host':
      return `cannot connect to ${server}: unknown host "${t.host}"`;
    case 'tls-to-plain':
      return `${server} answered in plain text, but popsync spoke TLS (${STANDARD[t.protocol].secure}://) (${reason})`;
    case 'plain-to-tls':
      return (
        `${server} speaks TLS from the first byte (${STANDARD[t.protocol].secure}), and popsync connected in ` +
        `plain text (tls=${t.tls})`
      );
    case 'no-greeting':
      if (!waited) return `${server} accepted the connection but did not greet`;
      return (
        `${server} accepted the connection but sent no greeting` +
        (t.timeoutMs === undefined ? '' : ` within ${seconds(t.timeoutMs)}`)
      );
    case 'untrusted':
      return `the certificate of ${server} is not signed by a CA popsync trusts (${reason})`;
    case 'name-mismatch':
      return `the certificate of ${server} is for another name (${reason})`;
    case 'expired':
      return `the certificate of ${server} has expired (${reason})`;
  }
}

/**
 * `err` re-worded for the user when it is a known connect failure, with the hint for that
 * fault in place of any generic one; any other error unchanged.
 */
export function explainConnectFailure(err: unknown, t: ConnectTarget): unknown {
  const other = otherProtocolGreeting(err, t.protocol);
  if (other !== null) {
    // The port of the other protocol on the same server (Dovecot, Courier and Cyrus serve both):
    // POP3's client said "unexpected line ... (pending: (greeting))" with no hint, and IMAP's
    // "accepted the connection but did not greet" of a server that had greeted, as POP3.
    const s = STANDARD[t.protocol];
    const them = t.protocol === 'POP3' ? 'IMAP' : 'POP3';
    return new PopsyncError(
      'protocol',
      `${t.protocol} server ${where(t)} answered as ${them === 'IMAP' ? 'an' : 'a'} ${them} server`,
      {
        ...(isPopsyncError(err) ? err.context : {}),
        serverResponse: other,
        hint:
          `check the port: ${t.protocol} is usually on port ${s.tls} (${s.secure}://) or ${s.plain} ` +
          `(${s.starttls}://)`,
      },
    );
  }
  const bye = byeGreeting(err);
  if (bye !== null) {
    // Turned away, not a wrong port: "try later" (exit 75, for migrate as for sync), retried as a
    // POP3 server's -ERR greeting is. Not 'connection', which sync alone treats as temporary.
    return new PopsyncError('temporary', `${t.protocol} server ${where(t)} turned the connection away`, {
      ...(isPopsyncError(err) ? err.context : {}),
      serverResponse: bye,
      hint:
        'the server refuses connections for now (often a limit on connections per user or address); ' +
        'run again later',
    });
  }
  if (t.greeted === true && closedUnheard(err)) {
    // The port is right: another connection of this process to it was greeted (popsync's other
    // connection, this run's before a reconnect, or an earlier cycle's of sync --every). A close
    // without a word is then this connection turned away for now, as a BYE would have said:
    // retried (--reconnect-attempts), then "try later" (75).
    return new PopsyncError('temporary', `${t.protocol} server ${where(t)} closed a connection before greeting it`, {
      ...(isPopsyncError(err) ? err.context : {}),
      hint:
        'it greeted another connection of this popsync process to this port, so the port is right: the server turns ' +
        'connections away for now (a limit on connections per user or address enforced at accept, a proxy ' +
        'whose backend is missing for a moment); run again later',
    });
  }
  const fault = connectFault(err);
  if (fault === null) return err;
  // The kind decides the exit code: a server that did not greet may yet be a network fault
  // ('connection'); a TLS mode that does not match the port, or a certificate, will not change
  // by waiting.
  const kind = fault === 'refused' || fault === 'unknown-host' || fault === 'no-greeting' ? 'connection' : 'tls';
  const context = isPopsyncError(err) ? err.context : {};
  const waited = fault === 'no-greeting' && waitedForGreeting(err);
  // The cause is Node's own error (its code stays testable); our first wording of it would
  // only repeat, less clearly, what the new message says. A silence has no cause worth showing
  // ("timeout", or our own "sent nothing for 60000 ms ... (pending: (greeting))"); a refusal to
  // greet has the server's words ("did not greet us: * BYE Too many connections").
  return new PopsyncError(
    kind,
    describe(fault, t, reasonOf(err), waited),
    { ...context, hint: connectHint(fault, t, waited) },
    waited ? undefined : { cause: rootOf(err) },
  );
}

/**
 * A scheme that contradicts a well-known port ("pop3://...:995", "imaps://...:143"), said
 * before connecting, so a typo is named even when the connection then fails some other way.
 * Said from the port number alone, before any byte was exchanged, so it says what the port
 * usually is, not what this server speaks there: a plain server on 995 (behind a proxy, a test
 * set-up) is legitimate, and the connection, which decides (net/tls-probe.ts), may well work.
 */
export function portMismatchWarning(t: ConnectTarget): string | null {
  const s = STANDARD[t.protocol];
  const port = `${t.protocol} ${where(t)}: port ${t.port} is the usual port of`;
  if (t.tls !== 'implicit' && t.port === s.tls)
    return (
      `${port} ${t.protocol} over TLS (${s.secure}://), and popsync will connect in plain text ` +
      `(tls=${t.tls}): if the server speaks TLS there, ${useImplicit(t)}`
    );
  if (t.tls === 'implicit' && t.port === s.plain)
    return (
      `${port} plain ${t.protocol} (${s.starttls}://), and popsync will start with TLS (tls=implicit): ` +
      `if the server speaks plain text there, ${useStarttls(t)}`
    );
  return null;
}
