/**
 * POP3 login: USER/PASS (RFC 1939), APOP (RFC 1939 §7) and AUTH PLAIN / AUTH LOGIN (RFC 5034).
 *
 * 'auto' tries the advertised methods in the order SASL PLAIN, SASL LOGIN, APOP (when the
 * greeting carries a timestamp), USER/PASS, and moves to the next only when a refusal may be the
 * method's fault rather than the password's (fallsBack): a server may offer a method it cannot
 * serve for this user (GNU Mailutils puts an APOP timestamp in every greeting, but APOP needs a
 * separate secret most users lack). Each refusal can count towards a lockout (fail2ban), so the
 * list holds only what the server offers, a refusal that names the credentials stops at once,
 * and a method the user chose explicitly is the only one ever tried. All methods run on the same
 * connection, so a fallback never changes its TLS.
 *
 * Credentials only ever appear in `line`, never in `label`, so they cannot reach logs or errors.
 */

import { createHash } from 'node:crypto';
import { PopsyncError } from '../errors.js';
import type { Pop3AuthMethod } from './types.js';
import type { CommandChannel, Reply } from './connection.js';
import type { StatusLine } from './framing.js';
import { replyError } from './reply-errors.js';

export interface Credentials {
  user: string;
  password: string;
}

/** RFC 5034 §4: an AUTH command with its initial response must fit in 255 octets. */
const MAX_AUTH_LINE = 255;
const MAX_SASL_STEPS = 4;

/** The APOP timestamp from the greeting, e.g. `<1896.697170952@dbc.mtview.ca.us>`. */
export function apopTimestamp(greeting: string): string | undefined {
  return /<[^<>\s]+>/.exec(greeting)?.[0];
}

export type LoginMethod = Exclude<Pop3AuthMethod, 'auto'>;

/** The methods to try, in order: the explicit one alone, or every method the server offers. */
export function authMethods(
  requested: Pop3AuthMethod,
  caps: ReadonlyMap<string, string[]>,
  greeting: string,
): LoginMethod[] {
  if (requested !== 'auto') return [requested];
  const sasl = (caps.get('SASL') ?? []).map((m) => m.toUpperCase());
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
};

export async function authenticate(
  conn: CommandChannel,
  creds: Credentials,
  method: LoginMethod,
  greeting: string,
): Promise<void> {
  switch (method) {
    case 'user':
      return userPass(conn, creds);
    case 'apop':
      return apop(conn, creds, greeting);
    case 'plain':
      return saslPlain(conn, creds);
    case 'login':
      return saslLogin(conn, creds);
  }
}

function expectOk(reply: Reply, label: string): void {
  if (reply.status.kind !== 'ok') throw replyError(reply.status, label, 'auth');
}

async function userPass(conn: CommandChannel, creds: Credentials): Promise<void> {
  expectOk(await conn.send({ line: `USER ${creds.user}`, label: `USER ${creds.user}`, multiline: false }), 'USER');
  expectOk(await conn.send({ line: `PASS ${creds.password}`, label: 'PASS ***', multiline: false }), 'PASS');
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
    .update(ts + creds.password, 'utf8')
    .digest('hex');
  expectOk(
    await conn.send({ line: `APOP ${creds.user} ${digest}`, label: `APOP ${creds.user} ***`, multiline: false }),
    'APOP',
  );
}

/**
 * Runs one SASL exchange. `responses` are the client's answers in order (raw bytes, encoded
 * here); the first may go out as the initial response. Each `+ challenge` takes the next
 * answer; a challenge we have no answer for gets `*` (cancel), which makes the server refuse.
 */
async function sasl(
  conn: CommandChannel,
  mechanism: string,
  initial: Buffer | undefined,
  answer: (challenge: string, index: number) => Buffer | undefined,
): Promise<void> {
  let line = `AUTH ${mechanism}`;
  let label = line;
  if (initial !== undefined) {
    const ir = initial.length === 0 ? '=' : initial.toString('base64');
    if (line.length + 1 + ir.length <= MAX_AUTH_LINE) {
      line += ` ${ir}`;
      label += ' ***';
    } else {
      // Too long for the command line: the server's empty challenge will ask for it instead.
      const deferred = initial;
      const next = answer;
      answer = (challenge, index) => (index === 0 ? deferred : next(challenge, index - 1));
    }
  }
  let step = 0;
  const onContinue = (s: StatusLine): string => {
    // A server that keeps challenging would otherwise get the password again and again.
    if (step >= MAX_SASL_STEPS) return '*';
    const challenge = Buffer.from(s.text, 'base64').toString('utf8');
    const reply = answer(challenge, step++);
    if (reply === undefined) return '*';
    return reply.length === 0 ? '' : reply.toString('base64');
  };
  expectOk(await conn.send({ line, label, multiline: false, onContinue }), label);
}

function saslPlain(conn: CommandChannel, creds: Credentials): Promise<void> {
  // authzid empty: log in as the authentication identity.
  const message = Buffer.from(`\0${creds.user}\0${creds.password}`, 'utf8');
  return sasl(conn, 'PLAIN', message, () => undefined);
}

function saslLogin(conn: CommandChannel, creds: Credentials): Promise<void> {
  // LOGIN has no spec; servers prompt "Username:" then "Password:". Trust the prompt text when
  // it says which one it wants, the order otherwise.
  return sasl(conn, 'LOGIN', undefined, (challenge, index) => {
    const c = challenge.toLowerCase();
    if (c.includes('pass')) return Buffer.from(creds.password, 'utf8');
    if (c.includes('user')) return Buffer.from(creds.user, 'utf8');
    if (index === 0) return Buffer.from(creds.user, 'utf8');
    if (index === 1) return Buffer.from(creds.password, 'utf8');
    return undefined;
  });
}
