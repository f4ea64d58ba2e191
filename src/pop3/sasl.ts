/**
 * POP3 login: USER/PASS (RFC 1939), APOP (RFC 1939 §7) and AUTH (RFC 5034) with the mechanisms
 * of net/sasl.ts: PLAIN (with an authzid for admin logins), LOGIN, XOAUTH2 and OAUTHBEARER.
 *
 * 'auto' with a password tries the advertised methods in the order SASL PLAIN, SASL LOGIN, APOP
 * (when the greeting carries a timestamp), USER/PASS, and moves to the next only when a refusal
 * may be the method's fault rather than the password's (fallsBack): a server may offer a method
 * it cannot serve for this user (GNU Mailutils puts an APOP timestamp in every greeting, but
 * APOP needs a separate secret most users lack). Each refusal can count towards a lockout
 * (fail2ban), so the list holds only what the server offers, a refusal that names the
 * credentials stops at once, and a method the user chose explicitly is the only one ever tried.
 * With an access token 'auto' means OAUTHBEARER, else XOAUTH2; an admin login can only be PLAIN
 * (the one mechanism with an authzid). All methods run on the same connection, so a fallback
 * never changes its TLS.
 *
 * Credentials only ever appear in `line`, never in `label`, so they cannot reach logs or errors.
 */

import { createHash } from 'node:crypto';
import { PopsyncError } from '../errors.js';
import {
  MAX_SASL_STEPS,
  type SaslCredentials,
  type SaslMechanism,
  type SaslMechanismName,
  SaslValueError,
  saslMechanism,
} from '../net/sasl.js';
import type { CommandChannel, Reply } from './connection.js';
import type { StatusLine } from './framing.js';
import { replyError } from './reply-errors.js';
import type { Pop3AuthMethod } from './types.js';

/** Who logs in with what: the mailbox user, and either a password or an access token. */
export interface Credentials {
  user: string;
  /** The password, or the access token when `token` is true. */
  secret: string;
  token: boolean;
  /** Admin login: authenticate as this user, with its password, on behalf of `user`. */
  admin?: string | undefined;
}

/** RFC 5034 §4: an AUTH command with its initial response must fit in 255 octets. */
const MAX_AUTH_LINE = 255;

/** The APOP timestamp from the greeting, e.g. `<1896.697170952@dbc.mtview.ca.us>`. */
function apopTimestamp(greeting: string): string | undefined {
  return /<[^<>\s]+>/.exec(greeting)?.[0];
}

export type LoginMethod = Exclude<Pop3AuthMethod, 'auto'>;

const SASL_NAME: Readonly<Partial<Record<LoginMethod, SaslMechanismName>>> = {
  plain: 'PLAIN',
  login: 'LOGIN',
  xoauth2: 'XOAUTH2',
  oauthbearer: 'OAUTHBEARER',
};

const TOKEN_METHODS: readonly LoginMethod[] = ['oauthbearer', 'xoauth2'];

/** What the server offers to log in with, for an error that says why none fits. */
function offeredMethods(caps: ReadonlyMap<string, string[]>, greeting: string): string[] {
  const out = (caps.get('SASL') ?? []).map((m) => `AUTH ${m.toUpperCase()}`);
  if (apopTimestamp(greeting) !== undefined) out.push('APOP');
  if (caps.size === 0 || caps.has('USER')) out.push('USER/PASS');
  return out;
}

/**
 * The methods to try, in order: the explicit one alone, or every fitting method the server
 * offers. Throws 'auth' (exit 3) when what the credentials need is not offered, naming what is.
 */
export function authMethods(
  requested: Pop3AuthMethod,
  caps: ReadonlyMap<string, string[]>,
  greeting: string,
  creds: { token: boolean; admin: boolean } = { token: false, admin: false },
): LoginMethod[] {
  const sasl = (caps.get('SASL') ?? []).map((m) => m.toUpperCase());
  const offers = (m: LoginMethod): boolean => caps.size === 0 || sasl.includes(SASL_NAME[m] ?? '');
  const notOffered = (what: string): PopsyncError => {
    const offered = offeredMethods(caps, greeting);
    return new PopsyncError('auth', `the POP3 server does not offer ${what}`, {
      hint: `it offers ${offered.length > 0 ? offered.join(', ') : 'no login method popsync knows'}`,
    });
  };
  if (creds.token) {
    if (requested === 'auto') {
      const fit = TOKEN_METHODS.filter((m) => sasl.includes(SASL_NAME[m]!));
      if (fit.length === 0) throw notOffered('SASL OAUTHBEARER or XOAUTH2, which an access token needs');
      return [fit[0]!];
    }
    if (!TOKEN_METHODS.includes(requested))
      throw new PopsyncError('config', `POP3 ${METHOD_NAMES[requested]} takes a password, not an access token`, {
        hint: 'use --pop-auth xoauth2 or oauthbearer (or auto) with a token command',
      });
    if (!offers(requested)) throw notOffered(`SASL ${SASL_NAME[requested]}`);
    return [requested];
  }
  if (TOKEN_METHODS.includes(requested as LoginMethod))
    throw new PopsyncError('config', `POP3 ${METHOD_NAMES[requested as LoginMethod]} needs an access token`, {
      hint: 'give --pop-oauth2-token-command (oauth2_token_command in a config file)',
    });
  if (creds.admin) {
    if (requested !== 'auto' && requested !== 'plain')
      throw new PopsyncError('config', `a POP3 admin login needs AUTH PLAIN, not ${METHOD_NAMES[requested]}`, {
        hint: 'only SASL PLAIN carries the user to act for (authzid); use --pop-auth plain or auto',
      });
    if (!offers('plain')) throw notOffered('SASL PLAIN, which an admin login needs (it names the user to act for)');
    return ['plain'];
  }
  if (requested !== 'auto') return [requested];
  const out: LoginMethod[] = [];
  if (sasl.includes('PLAIN')) out.push('plain');
  if (sasl.includes('LOGIN')) out.push('login');
  if (apopTimestamp(greeting) !== undefined) out.push('apop');
  // Without CAPA we cannot know, and USER/PASS is the RFC 1939 baseline.
  if (caps.size === 0 || caps.has('USER') || out.length === 0) out.push('user');
  return out;
}

/**
 * Whether to try the next method after `method` was refused with `responseCode`. RFC 3206 [AUTH]
 * says the credentials are wrong; PLAIN, LOGIN and USER/PASS all send the same password, so
 * another of them would only add a failed login. APOP checks a separate secret, so its refusal
 * says nothing about the password.
 */
export function fallsBack(method: LoginMethod, responseCode: string | undefined): boolean {
  return method === 'apop' || responseCode !== 'AUTH';
}

export const METHOD_NAMES: Record<LoginMethod, string> = {
  user: 'USER/PASS',
  apop: 'APOP',
  plain: 'AUTH PLAIN',
  login: 'AUTH LOGIN',
  xoauth2: 'AUTH XOAUTH2',
  oauthbearer: 'AUTH OAUTHBEARER',
};

export async function authenticate(
  conn: CommandChannel,
  creds: Credentials,
  method: LoginMethod,
  greeting: string,
  server: { host: string; port: number },
  /** USER and PASS may be written together (PIPELINING offered, and the connection is TLS). */
  together = false,
): Promise<void> {
  switch (method) {
    case 'user':
      return together ? userPassTogether(conn, creds) : userPass(conn, creds);
    case 'apop':
      return apop(conn, creds, greeting);
    default: {
      const sasl: SaslCredentials = {
        authcid: creds.admin ?? creds.user,
        authzid: creds.admin === undefined ? undefined : creds.user,
        secret: creds.secret,
        host: server.host,
        port: server.port,
      };
      let mechanism: SaslMechanism;
      try {
        mechanism = saslMechanism(SASL_NAME[method]!, sasl);
      } catch (e) {
        if (e instanceof SaslValueError) throw new PopsyncError('config', `POP3 ${METHOD_NAMES[method]}: ${e.message}`);
        throw e;
      }
      return saslExchange(conn, mechanism.name, mechanism.initial, (c, i) => mechanism.respond(c, i));
    }
  }
}

function expectOk(reply: Reply, label: string): void {
  if (reply.status.kind !== 'ok') throw replyError(reply.status, label, 'auth');
}

async function userPass(conn: CommandChannel, creds: Credentials): Promise<void> {
  expectOk(await conn.send({ line: `USER ${creds.user}`, label: `USER ${creds.user}`, multiline: false }), 'USER');
  expectOk(await conn.send({ line: `PASS ${creds.secret}`, label: 'PASS ***', multiline: false }), 'PASS');
}

/**
 * USER and PASS in one write, a round trip less. A refused USER then meets a PASS without a
 * user, which a server refuses without checking any password; the USER refusal is the one
 * reported. Only over TLS: in plaintext, a server refusing USER (say, one that takes no
 * plaintext login) is never sent the password in the clear.
 */
async function userPassTogether(conn: CommandChannel, creds: Credentials): Promise<void> {
  const user = conn.send({ line: `USER ${creds.user}`, label: `USER ${creds.user}`, multiline: false });
  const pass = conn.send({ line: `PASS ${creds.secret}`, label: 'PASS ***', multiline: false });
  pass.catch(() => undefined);
  expectOk(await user, 'USER');
  expectOk(await pass, 'PASS');
}

async function apop(conn: CommandChannel, creds: Credentials, greeting: string): Promise<void> {
  const ts = apopTimestamp(greeting);
  if (ts === undefined) {
    throw new PopsyncError('auth', 'APOP requested, but the POP3 greeting has no APOP timestamp', {
      serverResponse: greeting,
      hint: "Use another auth method (e.g. 'auto' or 'user').",
    });
  }
  const digest = createHash('md5')
    .update(ts + creds.secret, 'utf8')
    .digest('hex');
  expectOk(
    await conn.send({ line: `APOP ${creds.user} ${digest}`, label: `APOP ${creds.user} ***`, multiline: false }),
    'APOP',
  );
}

/**
 * Runs one SASL exchange on the POP3 wire (RFC 5034): the initial response rides on the AUTH
 * line when it fits, else it answers the server's first, empty challenge. Each `+ challenge`
 * takes the mechanism's next answer; one it has no answer for gets `*` (cancel), which makes
 * the server refuse.
 */
async function saslExchange(
  conn: CommandChannel,
  mechanism: string,
  initial: Buffer | undefined,
  answer: (challenge: Buffer, index: number) => Buffer | undefined,
): Promise<void> {
  let line = `AUTH ${mechanism}`;
  let label = line;
  if (initial !== undefined) {
    const ir = initial.length === 0 ? '=' : initial.toString('base64');
    if (line.length + 1 + ir.length <= MAX_AUTH_LINE) {
      line += ` ${ir}`;
      label += ' ***';
    } else {
      // Too long for the command line (an OAuth2 token usually is): the server's empty
      // challenge will ask for it instead.
      const deferred = initial;
      const next = answer;
      answer = (challenge, index) => (index === 0 ? deferred : next(challenge, index - 1));
    }
  }
  let step = 0;
  const onContinue = (s: StatusLine): string => {
    if (step >= MAX_SASL_STEPS) return '*';
    const reply = answer(Buffer.from(s.text, 'base64'), step++);
    if (reply === undefined) return '*';
    return reply.length === 0 ? '' : reply.toString('base64');
  };
  expectOk(await conn.send({ line, label, multiline: false, onContinue }), label);
}
