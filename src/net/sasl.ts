/**
 * The SASL mechanisms popsync speaks, written once for POP3 AUTH (RFC 5034) and both IMAP
 * paths (AUTHENTICATE, RFC 3501 §6.2.2 with SASL-IR, RFC 4959): PLAIN with an optional authzid
 * (RFC 4616; admin logins), LOGIN (no RFC; servers prompt for user, then password), XOAUTH2
 * (Google's and Microsoft's bearer-token format) and OAUTHBEARER (RFC 7628). Pure: each protocol
 * drives the exchange over its own wire (base64 lines, `*` to cancel) and asks the mechanism
 * what to say.
 *
 * Secrets: what a mechanism returns is only ever written to the wire. `secretForms` lists every
 * form of a credential that goes out (raw, base64, and the whole base64 initial response), so
 * a server that echoes any of them back gets it blanked before its text reaches a log or error.
 */

export type SaslMechanismName = 'PLAIN' | 'LOGIN' | 'XOAUTH2' | 'OAUTHBEARER';

export interface SaslCredentials {
  /** The authentication identity: whose secret this is (the admin for an admin login). */
  authcid: string;
  /** Act as this user (SASL authorization identity); absent or equal to authcid: yourself. */
  authzid?: string | undefined;
  /** The password for PLAIN and LOGIN, or the OAuth2 access token for XOAUTH2 and OAUTHBEARER. */
  secret: string;
  /** OAUTHBEARER tells the server which host and port the client thinks it reached (RFC 7628 §3.1). */
  host: string;
  port: number;
}

export interface SaslMechanism {
  readonly name: SaslMechanismName;
  /** Sent with the command where the protocol allows (SASL-IR); undefined: LOGIN has none. */
  readonly initial: Buffer | undefined;
  /** The answer to a server challenge (already base64-decoded); undefined means cancel ('*'). */
  respond(challenge: Buffer, step: number): Buffer | undefined;
}

/** A server that keeps challenging would otherwise get the secret again and again. */
export const MAX_SASL_STEPS = 4;

/** RFC 7628 §3.1: a value is VCHAR, SP, HTAB, CR or LF; any other control character would end its field early. */
function breaksField(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if ((c < 0x20 && c !== 0x09 && c !== 0x0a && c !== 0x0d) || c === 0x7f) return true;
  }
  return false;
}

export function saslMechanism(name: SaslMechanismName, c: SaslCredentials): SaslMechanism {
  switch (name) {
    case 'PLAIN':
      return plain(c);
    case 'LOGIN':
      return login(c);
    case 'XOAUTH2':
      return xoauth2(c);
    case 'OAUTHBEARER':
      return oauthbearer(c);
  }
}

/** The authzid to send: none when it names the authenticating user (a plain login). */
function authzidOf(c: SaslCredentials): string {
  return c.authzid !== undefined && c.authzid !== c.authcid ? c.authzid : '';
}

function plain(c: SaslCredentials): SaslMechanism {
  if (c.authcid.includes('\0') || c.secret.includes('\0') || authzidOf(c).includes('\0'))
    throw new SaslValueError('a user name or password holds a NUL byte, which SASL PLAIN cannot carry');
  // RFC 4616 §2: [authzid] NUL authcid NUL passwd.
  const message = Buffer.from(`${authzidOf(c)}\0${c.authcid}\0${c.secret}`, 'utf8');
  return { name: 'PLAIN', initial: message, respond: () => undefined };
}

function login(c: SaslCredentials): SaslMechanism {
  // LOGIN has no spec; servers prompt "Username:" then "Password:". Trust the prompt text when
  // it says which one it wants, the order otherwise.
  return {
    name: 'LOGIN',
    initial: undefined,
    respond(challenge, step) {
      const text = challenge.toString('utf8').toLowerCase();
      if (text.includes('pass')) return Buffer.from(c.secret, 'utf8');
      if (text.includes('user')) return Buffer.from(c.authcid, 'utf8');
      if (step === 0) return Buffer.from(c.authcid, 'utf8');
      if (step === 1) return Buffer.from(c.secret, 'utf8');
      return undefined;
    },
  };
}

function checkBearerValues(c: SaslCredentials): void {
  if (breaksField(c.authcid) || breaksField(c.secret) || breaksField(c.authzid ?? ''))
    throw new SaslValueError('a user name or access token holds a control character, which OAuth2 SASL cannot carry');
}

function xoauth2(c: SaslCredentials): SaslMechanism {
  checkBearerValues(c);
  // https://developers.google.com/gmail/imap/xoauth2-protocol: the user the token was issued to.
  const message = Buffer.from(`user=${c.authzid ?? c.authcid}\x01auth=Bearer ${c.secret}\x01\x01`, 'utf8');
  // A refusal comes as a challenge carrying a JSON error; the client answers with an empty
  // response and the server then says NO.
  return { name: 'XOAUTH2', initial: message, respond: () => Buffer.alloc(0) };
}

/** RFC 5801 §4: ',' and '=' delimit the GS2 header, so a saslname writes them as =2C and =3D. */
function saslName(s: string): string {
  return s.replace(/=/g, '=3D').replace(/,/g, '=2C');
}

function oauthbearer(c: SaslCredentials): SaslMechanism {
  checkBearerValues(c);
  // RFC 7628 §3.1: gs2-header "n,a=user," then kvpairs separated by ^A, ended by ^A^A.
  const user = c.authzid ?? c.authcid;
  const message = Buffer.from(
    `n,a=${saslName(user)},\x01host=${c.host}\x01port=${c.port}\x01auth=Bearer ${c.secret}\x01\x01`,
    'utf8',
  );
  // §3.2.3: on failure the server sends a JSON error as a challenge; the client must answer ^A.
  return { name: 'OAUTHBEARER', initial: message, respond: () => Buffer.from([1]) };
}

/** A credential popsync cannot put into the mechanism's format (refused before anything is sent). */
export class SaslValueError extends Error {}

/**
 * Every form in which `c`'s secret goes out on the wire under `name`, longest first, for
 * redacting server replies: the secret itself, its base64 (LOGIN), and the base64 initial
 * response (PLAIN, XOAUTH2, OAUTHBEARER).
 */
export function secretForms(c: SaslCredentials, names: readonly SaslMechanismName[] = []): string[] {
  if (c.secret === '') return [];
  const forms = [c.secret, Buffer.from(c.secret, 'utf8').toString('base64')];
  for (const n of names) {
    try {
      const ir = saslMechanism(n, c).initial;
      if (ir !== undefined) forms.push(ir.toString('base64'));
    } catch {
      // A mechanism that cannot carry these credentials sends nothing.
    }
  }
  return [...new Set(forms)].sort((a, b) => b.length - a.length);
}

/**
 * The JSON a refusing OAuth2 server sends as its last challenge (RFC 7628 §3.2.2; XOAUTH2 the
 * same), reduced to its `status` (e.g. "invalid_token"), which is safe to show: it never holds
 * the token. undefined when the challenge is not such an error.
 */
export function oauthErrorStatus(challenge: Buffer): string | undefined {
  try {
    const j = JSON.parse(challenge.toString('utf8')) as unknown;
    const status = j !== null && typeof j === 'object' ? (j as { status?: unknown }).status : undefined;
    return typeof status === 'string' && /^[\w.-]{1,64}$/.test(status) ? status : undefined;
  } catch {
    return undefined;
  }
}
