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
}

/**
 * - refused: nothing listens there (or the address cannot be used);
 * - unknown-host: the name does not resolve;
 * - tls-to-plain: we spoke TLS and the server answered in plain text;
 * - no-greeting: connected, but the server never greeted a plain client (a TLS-only port waits
 *   for a TLS hello, so it says nothing);
 * - untrusted / name-mismatch / expired: certificate verification.
 */
export type ConnectFault =
  | 'refused'
  | 'unknown-host'
  | 'tls-to-plain'
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
  const f = connectFault(err);
  return f === 'refused' || f === 'unknown-host' || f === 'tls-to-plain' || f === 'no-greeting';
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

/** "port 995 speaks TLS: use pop3s://" and the like; the likely fix for each fault. */
function connectHint(fault: ConnectFault, t: ConnectTarget): string {
  const s = STANDARD[t.protocol];
  const ports = `${t.protocol} is usually on port ${s.tls} (${s.secure}://) or ${s.plain} (${s.starttls}://)`;
  switch (fault) {
    case 'refused':
      return `check the host and the port: ${ports}`;
    case 'unknown-host':
      return `check the spelling of the host name "${t.host}"`;
    case 'tls-to-plain':
      return `port ${t.port} is plain: use ${s.starttls}:// or ?tls=starttls`;
    case 'no-greeting':
      return t.port === s.tls
        ? `port ${t.port} speaks TLS: use ${s.secure}://`
        : `if port ${t.port} speaks TLS from the first byte, use ${s.secure}://`;
    case 'untrusted':
      return `--${s.option}-ca-file FILE to trust a private CA (or the server's self-signed certificate)`;
    case 'name-mismatch':
      return 'connect by a name the certificate lists (see the cause), or ask for a certificate for this name';
    case 'expired':
      return "the server's certificate has expired: its admin must renew it";
  }
}

function describe(fault: ConnectFault, t: ConnectTarget, reason: string): string {
  const server = `${t.protocol} server ${where(t)}`;
  switch (fault) {
    case 'refused':
      return `cannot connect to ${server}: nothing accepts connections there (${reason})`;
    case 'unknown-host':
      return `cannot connect to ${server}: unknown host "${t.host}"`;
    case 'tls-to-plain':
      return `${server} answered in plain text, but popsync spoke TLS (${STANDARD[t.protocol].secure}://) (${reason})`;
    case 'no-greeting':
      return `${server} accepted the connection but sent no greeting`;
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
  const fault = connectFault(err);
  if (fault === null) return err;
  // The kind decides the exit code: a server that did not greet may yet be a network fault
  // ('connection'); a TLS answer in plain text or a certificate will not change by waiting.
  const kind = fault === 'refused' || fault === 'unknown-host' || fault === 'no-greeting' ? 'connection' : 'tls';
  const context = isPopsyncError(err) ? err.context : {};
  // The cause is Node's own error (its code stays testable); our first wording of it would
  // only repeat, less clearly, what the new message says.
  return new PopsyncError(
    kind,
    describe(fault, t, reasonOf(err)),
    { ...context, hint: connectHint(fault, t) },
    {
      cause: rootOf(err),
    },
  );
}

/**
 * A scheme that contradicts a well-known port ("pop3://...:995", "imaps://...:143"), said
 * before connecting: the connection would otherwise only fail after a greeting timeout.
 */
export function portMismatchWarning(t: ConnectTarget): string | null {
  const s = STANDARD[t.protocol];
  if (t.tls !== 'implicit' && t.port === s.tls)
    return `${t.protocol} ${where(t)}: port ${t.port} speaks TLS from the first byte: use ${s.secure}://`;
  if (t.tls === 'implicit' && t.port === s.plain)
    return `${t.protocol} ${where(t)}: port ${t.port} is plain: use ${s.starttls}:// or ?tls=starttls`;
  return null;
}
