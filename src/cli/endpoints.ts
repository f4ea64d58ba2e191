/**
 * Turns what the user typed (a URL, separate flags, or both) into connection settings for the
 * POP3 source and the IMAP destination. Pure: no I/O, no environment, so every rule is a test.
 *
 * URL schemes (secure unless the user says otherwise, in words they can see on the command line):
 *
 *   pop3s://user@host[:port]   implicit TLS, default port 995
 *   pop3://user@host[:port]    plain connection upgraded with STLS, which is REQUIRED, port 110
 *   imaps://user@host[:port]   implicit TLS, default port 993
 *   imap://user@host[:port]    STARTTLS REQUIRED, port 143
 *
 * The only query parameters are `tls=implicit|starttls|none` and `auth=` (POP3:
 * auto|user|apop|plain|login|xoauth2|oauthbearer; IMAP: auto|plain|login|xoauth2|oauthbearer).
 * Plaintext is never a default: it takes `?tls=none` or `--pop-tls none` / `--imap-tls none`.
 * Precedence is flag > query > scheme, and
 * the default port follows the final TLS mode (so `pop3://h?tls=implicit` connects to 995).
 * Without a URL, flags alone need a host and a user, and TLS defaults to implicit.
 *
 * User names are percent-decoded (`alice%40example.com@pop.example.net` is user
 * `alice@example.com`); an unencoded '@' also works because the last '@' ends the user name.
 * A password in the URL is refused, not ignored: it would sit in `ps` output and shell history,
 * and silently dropping it would leave the user wondering why the prompt appears.
 *
 * Error messages never repeat the URL's user-info, so a refused URL cannot leak a secret
 * through an error either.
 */

import { PopsyncError, isPopsyncError } from '../errors.js';
import type { ImapAuthMethod, ImapOptions } from '../imap/types.js';
import type { EndpointInput } from '../config/side-flags.js';
import { keyAt, type KeyedFile } from '../config/key-path.js';
import type { Pop3AuthMethod, Pop3Options } from '../pop3/types.js';
import type { TlsMode } from '../tls.js';

export type Side = 'pop3' | 'imap';

/** What commander hands over for one side. Every field is optional; strings as typed. */
export type Pop3Endpoint = Omit<Pop3Options, 'password' | 'logger'> & {
  /** "user@host:port" for logs, reports and the journal; never a secret. */
  display: string;
  /**
   * The TLS mode was written out (--pop-tls, ?tls=, a config file's `tls:`), not read from the
   * scheme or defaulted: a port that is usually the other kind is then meant, not a typo.
   */
  tlsNamed: boolean;
};

export type ImapEndpoint = Omit<ImapOptions, 'password' | 'logger'> & {
  display: string;
  tlsNamed: boolean;
};

const TLS_MODES: readonly TlsMode[] = ['implicit', 'starttls', 'none'];
export const POP3_AUTH: readonly Pop3AuthMethod[] = [
  'auto',
  'user',
  'apop',
  'plain',
  'login',
  'xoauth2',
  'oauthbearer',
];
export const IMAP_AUTH: readonly ImapAuthMethod[] = ['auto', 'plain', 'login', 'xoauth2', 'oauthbearer'];

interface SideRules {
  /** Option prefix: --pop-host, --imap-tls, ... */
  prefix: string;
  label: string;
  schemes: Readonly<Record<string, TlsMode>>;
  ports: Readonly<Record<TlsMode, number>>;
  queryKeys: readonly string[];
}

const RULES: Readonly<Record<Side, SideRules>> = {
  pop3: {
    prefix: 'pop',
    label: 'POP3',
    schemes: { pop3s: 'implicit', pop3: 'starttls' },
    ports: { implicit: 995, starttls: 110, none: 110 },
    queryKeys: ['tls', 'auth'],
  },
  imap: {
    prefix: 'imap',
    label: 'IMAP',
    schemes: { imaps: 'implicit', imap: 'starttls' },
    ports: { implicit: 993, starttls: 143, none: 143 },
    queryKeys: ['tls', 'auth'],
  },
};

/** The command-line option for one side, e.g. optionName('imap', 'password-env') → "--imap-password-env". */
export function optionName(side: Side, suffix: string): string {
  return `--${RULES[side].prefix}-${suffix}`;
}

/** Settings for the POP3 source. Throws PopsyncError('usage') on anything it cannot use. */
export function resolvePop3Endpoint(input: EndpointInput): Pop3Endpoint {
  const r = resolveCommon('pop3', input);
  const ep: Pop3Endpoint = {
    host: r.host,
    port: r.port,
    tls: r.tls,
    user: r.user,
    display: r.display,
    tlsNamed: r.tlsNamed,
  };
  const auth = input.auth ?? r.query.get('auth');
  if (auth !== undefined) ep.auth = pick('pop3', 'auth', auth, POP3_AUTH);
  if (input.insecure === true) ep.rejectUnauthorized = false;
  return ep;
}

/** Settings for the IMAP destination. Throws PopsyncError('usage') on anything it cannot use. */
export function resolveImapEndpoint(input: EndpointInput): ImapEndpoint {
  const r = resolveCommon('imap', input);
  const ep: ImapEndpoint = {
    host: r.host,
    port: r.port,
    tls: r.tls,
    user: r.user,
    display: r.display,
    tlsNamed: r.tlsNamed,
  };
  const auth = input.auth ?? r.query.get('auth');
  if (auth !== undefined) ep.auth = pick('imap', 'auth', auth, IMAP_AUTH);
  if (input.insecure === true) ep.rejectUnauthorized = false;
  return ep;
}

/**
 * The URLs of a config file's account, checked where they were written: a mistake is named as
 * the config's other errors are (`FILE:LINE: accounts[0].source.url: not a POP3 URL ...`), not
 * as if it had been typed, and before any account runs. `urls`: the sides' url keys the command
 * line does not replace.
 */
export function checkConfigUrls(file: KeyedFile, index: number, urls: { pop?: string; imap?: string }): void {
  const sides = [
    ['pop3', 'source', urls.pop],
    ['imap', 'destination', urls.imap],
  ] as const;
  for (const [side, key, url] of sides) {
    if (url === undefined) continue;
    try {
      parseUrl(side, url);
    } catch (e) {
      if (!isPopsyncError(e)) throw e;
      throw new PopsyncError('config', `${keyAt(file, ['accounts', index, key, 'url'])}: ${e.message}`, e.context);
    }
  }
}

/**
 * The warning a connection without TLS deserves, or null. `none` had to be asked for by name,
 * but a URL copied from a wiki asks for it quietly; one line says what that costs. Not for
 * loopback: nothing crosses a network there (a local bridge such as Proton Mail Bridge, stunnel).
 */
export function cleartextWarning(side: Side, ep: { tls: TlsMode; host: string; display: string }): string | null {
  if (ep.tls !== 'none' || isLoopback(ep.host)) return null;
  const label = side === 'pop3' ? 'POP3' : 'IMAP';
  return (
    `${label} ${ep.display}: tls=none: the password and the mail travel in clear (anyone on the path ` +
    `can read them)`
  );
}

function isLoopback(host: string): boolean {
  const h = host.toLowerCase().replace(/^\[|\]$/g, '');
  return h === 'localhost' || h === '::1' || /^127\.\d+\.\d+\.\d+$/.test(h);
}

/** "user@host:port", with IPv6 literals bracketed so the port stays readable. */
export function formatEndpoint(user: string, host: string, port: number): string {
  return `${user}@${host.includes(':') ? `[${host}]` : host}:${port}`;
}

interface ParsedUrl {
  tls: TlsMode;
  user?: string;
  host: string;
  port?: number;
  query: Map<string, string>;
}

function resolveCommon(side: Side, input: EndpointInput) {
  const rules = RULES[side];
  const parsed = input.url === undefined ? undefined : parseUrl(side, input.url);

  const tlsText = input.tls ?? parsed?.query.get('tls');
  const tls: TlsMode = tlsText !== undefined ? pick(side, 'tls', tlsText, TLS_MODES) : (parsed?.tls ?? 'implicit');

  const host = input.host !== undefined ? parseHost(input.host, optionName(side, 'host')) : parsed?.host;
  if (host === undefined) {
    throw usage(`no ${rules.label} server given: use ${exampleUrl(side)} or ${optionName(side, 'host')}`);
  }

  const port =
    input.port !== undefined
      ? parsePort(String(input.port), optionName(side, 'port'))
      : (parsed?.port ?? rules.ports[tls]);

  const user = input.user ?? parsed?.user;
  if (user === undefined || user === '') {
    throw usage(
      `no ${rules.label} user given: put it in the URL (${exampleUrl(side)}) or use ${optionName(side, 'user')}`,
    );
  }

  return {
    host,
    port,
    tls,
    user,
    display: formatEndpoint(user, host, port),
    tlsNamed: tlsText !== undefined,
    query: parsed?.query ?? new Map<string, string>(),
  };
}

function parseUrl(side: Side, raw: string): ParsedUrl {
  const rules = RULES[side];
  const m = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/([^/?#]*)([^?#]*)(?:\?([^#]*))?(#.*)?$/.exec(raw.trim());
  if (m === null) {
    throw usage(`not ${aUrl(side)}: expected ${exampleUrl(side)}`, schemeHint(side, raw.trim()));
  }
  const [, schemeRaw = '', authority = '', path = '', queryText, fragment] = m;
  const scheme = schemeRaw.toLowerCase();
  const tls = rules.schemes[scheme];
  if (tls === undefined) {
    const known = Object.keys(rules.schemes)
      .map((s) => `${s}://`)
      .join(' or ');
    throw usage(`unknown ${rules.label} URL scheme "${scheme}://": use ${known}`);
  }

  const at = authority.lastIndexOf('@');
  const userinfo = at === -1 ? undefined : authority.slice(0, at);
  const hostport = at === -1 ? authority : authority.slice(at + 1);

  let user: string | undefined;
  if (userinfo !== undefined) {
    if (userinfo.includes(':')) {
      throw usage(
        `the ${rules.label} URL contains a password, which popsync refuses: a command line is visible to ` +
          `other users (ps) and kept in shell history`,
        `remove ":password" from the URL and give the password with ${optionName(side, 'password-env')} ` +
          `NAME, ${optionName(side, 'password-file')} PATH, or at the prompt; a ':' inside a user name is written %3A`,
      );
    }
    try {
      user = decodeURIComponent(userinfo);
    } catch {
      throw usage(`the user name in the ${rules.label} URL has a broken %-escape`);
    }
  }

  if (path !== '' && path !== '/') {
    throw usage(`${aUrl(side)} takes no path (got "${path}")`);
  }
  if (fragment !== undefined) {
    throw usage(`${aUrl(side)} takes no #fragment`);
  }

  const portSep = hostport.startsWith('[') ? hostport.indexOf(']:') + 1 : hostport.lastIndexOf(':');
  const hostText = portSep > 0 ? hostport.slice(0, portSep) : hostport;
  const portText = portSep > 0 ? hostport.slice(portSep + 1) : undefined;
  if (hostText === '') {
    throw usage(`the ${rules.label} URL has no host: expected ${exampleUrl(side)}`);
  }
  const host = parseHost(hostText, `the ${rules.label} URL`);
  const port = portText === undefined ? undefined : parsePort(portText, `the ${rules.label} URL`);

  const query = new Map<string, string>();
  if (queryText !== undefined && queryText !== '') {
    for (const pair of queryText.split('&')) {
      const eq = pair.indexOf('=');
      const key = (eq === -1 ? pair : pair.slice(0, eq)).toLowerCase();
      const value = eq === -1 ? '' : pair.slice(eq + 1);
      if (!rules.queryKeys.includes(key)) {
        throw usage(
          `unknown ${rules.label} URL parameter "${key}": known are ${rules.queryKeys.map((k) => `${k}=`).join(', ')}`,
        );
      }
      if (query.has(key)) throw usage(`${rules.label} URL parameter "${key}" is given twice`);
      query.set(key, safeDecode(value));
    }
  }

  const out: ParsedUrl = { tls, host, query };
  if (user !== undefined) out.user = user;
  if (port !== undefined) out.port = port;
  return out;
}

function parseHost(text: string, where: string): string {
  if (text.startsWith('[') && text.endsWith(']')) {
    const v6 = text.slice(1, -1);
    if (/^[0-9A-Fa-f:.]+$/.test(v6) && v6.includes(':')) return v6.toLowerCase();
  } else if (
    /^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$/.test(text) ||
    (/^[0-9A-Fa-f:.]+$/.test(text) && text.includes(':'))
  ) {
    // A bare IPv6 literal is accepted from --*-host, where brackets are optional.
    return text.toLowerCase();
  }
  throw usage(`${where}: "${text}" is not a host name or IP address`);
}

function parsePort(text: string, where: string): number {
  const port = /^[0-9]{1,5}$/.test(text) ? Number(text) : NaN;
  if (!(port >= 1 && port <= 65535)) {
    throw usage(`${where}: port "${text}" is not a number from 1 to 65535`);
  }
  return port;
}

function pick<T extends string>(side: Side, what: string, value: string, allowed: readonly T[]): T {
  const v = value.toLowerCase();
  const found = allowed.find((a) => a === v);
  if (found === undefined) {
    throw usage(
      `${RULES[side].label} ${what} "${value}" is not one of ${allowed.join(', ')} ` +
        `(${optionName(side, what)} or ?${what}=)`,
    );
  }
  return found;
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

function exampleUrl(side: Side): string {
  return side === 'pop3' ? 'pop3s://user@host[:port]' : 'imaps://user@host[:port]';
}

/** 'a POP3 URL', 'an IMAP URL' ('a IMAP URL' read as a typo). */
function aUrl(side: Side): string {
  return side === 'pop3' ? 'a POP3 URL' : 'an IMAP URL';
}

/**
 * `--pop alice@pop.example.net` (an address, as fetchmail's poll lines and mail clients take it)
 * is the likeliest URL without a scheme: say what to write instead of only the pattern. The
 * port picks the scheme: 110 and 143 are STARTTLS ports, where the TLS scheme would fail.
 */
/** A dotted host name, localhost, or an IPv4 address. */
const LOOKS_LIKE_HOST = /^(?:localhost|(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+[a-z0-9-]*[a-z0-9])$/i;

function schemeHint(side: Side, raw: string): string | undefined {
  const m = /^([^\s/:]+?)(?::(\d+))?$/.exec(raw);
  if (m === null) return undefined;
  const { ports } = RULES[side];
  const [tls, plain] = side === 'pop3' ? ['pop3s', 'pop3'] : ['imaps', 'imap'];
  const scheme = m[2] !== undefined && Number(m[2]) === ports.starttls ? plain : tls;
  // The value is echoed only when it reads as [user@]host: a mistyped value could be a password
  // pasted into the wrong option, and hints reach stderr and --json output.
  const at = m[1]!.lastIndexOf('@');
  const host = m[1]!.slice(at + 1);
  const url = LOOKS_LIKE_HOST.test(host)
    ? `${scheme}://${at === -1 ? `user@${raw}` : raw}`
    : `${scheme}://user@host${m[2] === undefined ? '' : `:${m[2]}`}`;
  return (
    `write ${url} (${tls}:// is TLS from the first byte, port ${ports.implicit}; ` +
    `${plain}:// is STARTTLS, port ${ports.starttls})`
  );
}

function usage(message: string, hint?: string): PopsyncError {
  return new PopsyncError('usage', message, hint === undefined ? {} : { hint });
}
