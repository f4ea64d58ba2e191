/**
 * How popsync logs in to IMAP, decided once for both connections it opens (imapflow's, through
 * imapflow-adapter.ts, and our APPEND connection, pipeline.ts), with the mechanisms of
 * net/sasl.ts. Pure apart from running the token source.
 *
 * --imap-auth:
 *   auto        password: AUTHENTICATE PLAIN, else AUTHENTICATE LOGIN, else the LOGIN command;
 *               access token: OAUTHBEARER, else XOAUTH2; admin login: PLAIN (only it has an authzid)
 *   plain       AUTHENTICATE PLAIN
 *   login       the LOGIN command (RFC 3501 §6.2.3), which every server without LOGINDISABLED has
 *   xoauth2     AUTHENTICATE XOAUTH2 with an access token
 *   oauthbearer AUTHENTICATE OAUTHBEARER (RFC 7628) with an access token
 * What the server does not offer is refused before anything is sent, as 'auth' (exit 3), with
 * the list of what it does offer.
 */

import { PopsyncError } from '../errors.js';
import {
  MAX_SASL_STEPS,
  type SaslMechanism,
  type SaslMechanismName,
  SaslValueError,
  saslMechanism,
  secretForms,
} from '../net/sasl.js';
import type { ImapAuthMethod, ImapOptions } from './types.js';

export type LoginStep = { kind: 'sasl'; mechanism: SaslMechanismName } | { kind: 'login-command' };

/** One login's credentials: the secret is fetched anew for each (a token may have expired). */
export interface ImapCredentials {
  /** The mailbox user. */
  user: string;
  /** Admin login: authenticate as this user, acting for `user`. */
  admin?: string | undefined;
  /** The password, or the access token when `token`. */
  secret: string;
  token: boolean;
}

/** Runs the token source when there is one: every call is a new login. */
export async function credentialsFor(opts: ImapOptions): Promise<ImapCredentials> {
  const token = opts.accessToken !== undefined;
  const secret = opts.accessToken ? await opts.accessToken() : opts.password;
  if (token && /[\r\n\0]/.test(secret))
    throw new PopsyncError('auth', 'the IMAP access token contains a line break or NUL, so it cannot be sent');
  return { user: opts.user, admin: opts.adminUser, secret, token };
}

/** Mechanisms and commands the server offers for logging in, as a user would name them. */
function offeredLogins(caps: ReadonlySet<string>): string[] {
  const out = [...caps].filter((c) => /^AUTH=/i.test(c)).map((c) => c.slice(5).toUpperCase());
  if (!caps.has('LOGINDISABLED')) out.push('LOGIN command');
  return out;
}

const TOKEN: readonly SaslMechanismName[] = ['OAUTHBEARER', 'XOAUTH2'];

export function chooseLogin(
  requested: ImapAuthMethod,
  caps: ReadonlySet<string>,
  creds: { token: boolean; admin: boolean },
): LoginStep {
  const has = (m: string): boolean => caps.has(`AUTH=${m}`);
  const notOffered = (what: string): PopsyncError => {
    const offered = offeredLogins(caps);
    return new PopsyncError('auth', `the IMAP server does not offer ${what}`, {
      hint: `it offers ${offered.length > 0 ? offered.join(', ') : 'no way to log in'}`,
    });
  };
  if (creds.token) {
    if (requested === 'auto') {
      const m = TOKEN.find(has);
      if (m === undefined) throw notOffered('AUTHENTICATE OAUTHBEARER or XOAUTH2, which an access token needs');
      return { kind: 'sasl', mechanism: m };
    }
    if (requested !== 'xoauth2' && requested !== 'oauthbearer')
      throw new PopsyncError('config', `IMAP ${requested} login takes a password, not an access token`, {
        hint: 'use --imap-auth xoauth2 or oauthbearer (or auto) with a token command',
      });
    const m = requested.toUpperCase() as SaslMechanismName;
    if (!has(m)) throw notOffered(`AUTHENTICATE ${m}`);
    return { kind: 'sasl', mechanism: m };
  }
  if (requested === 'xoauth2' || requested === 'oauthbearer')
    throw new PopsyncError('config', `IMAP ${requested.toUpperCase()} needs an access token`, {
      hint: 'give --imap-oauth2-token-command (oauth2_token_command in a config file)',
    });
  if (creds.admin) {
    if (requested === 'login')
      throw new PopsyncError('config', 'an IMAP admin login needs AUTHENTICATE PLAIN, not the LOGIN command', {
        hint: 'only SASL PLAIN carries the user to act for (authzid); use --imap-auth plain or auto',
      });
    if (!has('PLAIN'))
      throw notOffered('AUTHENTICATE PLAIN, which an admin login needs (it names the user to act for)');
    return { kind: 'sasl', mechanism: 'PLAIN' };
  }
  if (requested === 'plain') {
    if (!has('PLAIN')) throw notOffered('AUTHENTICATE PLAIN');
    return { kind: 'sasl', mechanism: 'PLAIN' };
  }
  if (requested === 'auto') {
    if (has('PLAIN')) return { kind: 'sasl', mechanism: 'PLAIN' };
    if (has('LOGIN')) return { kind: 'sasl', mechanism: 'LOGIN' };
  }
  if (caps.has('LOGINDISABLED')) throw notOffered('the LOGIN command (LOGINDISABLED)');
  return { kind: 'login-command' };
}

/** The SASL mechanism for a step, with the credentials of one login. */
export function mechanismFor(
  name: SaslMechanismName,
  creds: ImapCredentials,
  server: { host: string; port: number },
): SaslMechanism {
  try {
    return saslMechanism(name, {
      authcid: creds.admin ?? creds.user,
      authzid: creds.admin === undefined ? undefined : creds.user,
      secret: creds.secret,
      host: server.host,
      port: server.port,
    });
  } catch (e) {
    if (e instanceof SaslValueError) throw new PopsyncError('config', `IMAP AUTHENTICATE ${name}: ${e.message}`);
    throw e;
  }
}

/** Every form in which this login's secret goes out, for blanking it out of server replies. */
export function loginSecretForms(creds: ImapCredentials, server: { host: string; port: number }): string[] {
  return secretForms(
    {
      authcid: creds.admin ?? creds.user,
      authzid: creds.admin === undefined ? undefined : creds.user,
      secret: creds.secret,
      host: server.host,
      port: server.port,
    },
    ['PLAIN', 'XOAUTH2', 'OAUTHBEARER'],
  );
}

/**
 * One AUTHENTICATE exchange's client side, the same on both IMAP connections: the initial
 * response rides on the command with SASL-IR (RFC 4959), else it answers the first, empty
 * challenge; each later challenge gets the mechanism's answer, and one it has none for (or a
 * server that keeps challenging) gets `*`, which cancels (RFC 3501 §6.2.2).
 */
export class SaslConversation {
  private pending: Buffer | undefined;
  private step = 0;

  constructor(
    private readonly mechanism: SaslMechanism,
    saslIr: boolean,
  ) {
    this.pending = mechanism.initial;
    if (saslIr && mechanism.initial !== undefined) {
      this.argument = mechanism.initial.length === 0 ? '=' : mechanism.initial.toString('base64');
      this.pending = undefined;
    }
  }

  /** The initial response to put on the AUTHENTICATE line, if it goes there. */
  readonly argument: string | undefined;

  get mechanismName(): string {
    return this.mechanism.name;
  }

  /** The line to send for a `+ <base64>` challenge: base64, or `*` to cancel. */
  answer(challengeBase64: string): string {
    let reply: Buffer | undefined;
    if (this.pending !== undefined) {
      reply = this.pending;
      this.pending = undefined;
    } else if (this.step < MAX_SASL_STEPS) {
      reply = this.mechanism.respond(Buffer.from(challengeBase64.trim(), 'base64'), this.step++);
    }
    if (reply === undefined) return '*';
    return reply.toString('base64');
  }
}
