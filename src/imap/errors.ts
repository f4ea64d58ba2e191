/**
 * Turns imapflow's errors into PopsyncError kinds.
 *
 * imapflow throws plain Errors with ad-hoc properties: `responseStatus` NO/BAD for a tagged
 * refusal, `serverResponseCode` for the [CODE], `response` (the tagged line, once its command
 * handler has "enhanced" it) or a parsed object (when it has not), `authenticationFailed`,
 * `tlsFailed`, and a `code` that is either one of its own (NoConnection, ETIMEOUT, ...) or
 * Node's (ECONNREFUSED, CERT_HAS_EXPIRED, ...). Everything that is not a tagged refusal means
 * the conversation is over; the engine must treat it as a lost connection and reconnect.
 */

import { missingModule, PopsyncError, type ErrorContext, type ErrorKind } from '../errors.js';
import { redact } from '../net/redact.js';
import { throttleHintMs } from './throttle.js';

/** The properties imapflow puts on its errors; all optional because none is guaranteed. */
export interface ImapFlowErrorLike {
  message?: string;
  code?: string;
  responseStatus?: string;
  responseText?: string;
  response?: unknown;
  serverResponseCode?: string;
  authenticationFailed?: boolean;
  tlsFailed?: boolean;
  /** imapflow: the pause a throttling reply asked for (it has already waited part of it). */
  throttleReset?: number;
}

function asLike(err: unknown): ImapFlowErrorLike {
  return err !== null && typeof err === 'object' ? (err as ImapFlowErrorLike) : { message: String(err) };
}

/** Response codes that say "the server, not this message, is the problem; try later". */
const TEMPORARY_CODES = new Set(['UNAVAILABLE', 'INUSE']);

/** Node's certificate verification failures carry OpenSSL's X509 names as `code`. */
const CERT_CODE = /CERT|SELF_SIGNED|UNABLE_TO_(GET|VERIFY|DECRYPT)|^ERR_TLS_|^ERR_SSL_|^EPROTO$/;

const CONNECTION_CODES = new Set([
  'NoConnection',
  'EConnectionClosed',
  'StateLogout',
  'ClosedAfterConnectText',
  'ClosedAfterConnectTLS',
  'CONNECT_TIMEOUT',
  'GREETING_TIMEOUT',
  'UPGRADE_TIMEOUT',
  'ETIMEOUT',
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
]);

/**
 * RFC 5530 codes with which a server refuses a login for its credentials or the account (wrong
 * password, expired, needs TLS, ask the administrator): a human must act, and no try lifts it.
 */
const CREDENTIAL_CODES = new Set([
  'AUTHENTICATIONFAILED',
  'AUTHORIZATIONFAILED',
  'EXPIRED',
  'PRIVACYREQUIRED',
  'CONTACTADMIN',
]);

/**
 * A `* BYE [CODE] text` that ended a login, as an error mapConnectError reads as a refused login
 * ('auth', exit 3) when CODE names the credentials; null for any other BYE (a limit on
 * connections, maintenance), which is the server turning the connection away for now.
 */
export function byeRefusingLogin(code: string | undefined, text: string): Error | null {
  const c = code?.toUpperCase();
  if (c === undefined || !CREDENTIAL_CODES.has(c)) return null;
  const said = `BYE [${c}] ${text.replace(/^\[[^\]]*\]\s*/, '')}`.trim();
  return Object.assign(new Error(said), { authenticationFailed: true, serverResponseCode: c, response: said });
}

/**
 * byeRefusingLogin for a whole `* BYE` line off popsync's own connection. The code is read up to
 * its first blank or `]` and must then meet a blank or the `]`: an expression free to split the
 * code anywhere tried every split of a `[` never closed (a 40,000-character line: 1.3 s of CPU,
 * which no timeout interrupts).
 */
export function loginByeRefusal(line: string): Error | null {
  const m = /^\* BYE\s+\[([^\]\s]+)(?:\s[^\]]*)?\]\s*(.*)$/i.exec(line);
  return m ? byeRefusingLogin(m[1], m[2]!) : null;
}

/** A tagged NO/BAD: the server is still talking to us and refused only this command. */
export function isRefusal(err: unknown): boolean {
  const e = asLike(err);
  return (e.responseStatus === 'NO' || e.responseStatus === 'BAD') && e.code !== 'ETHROTTLE';
}

/**
 * A tagged NO to imapflow's login: the server heard the credentials and turned the session away
 * (a per-user connection limit says NO [UNAVAILABLE]). BAD is a login it did not understand.
 */
export function refusedLogin(err: unknown): boolean {
  const e = asLike(err);
  return e.authenticationFailed === true && e.responseStatus === 'NO';
}

export function responseCodeOf(err: unknown): string | undefined {
  const e = asLike(err);
  if (typeof e.serverResponseCode === 'string' && e.serverResponseCode) return e.serverResponseCode.toUpperCase();
  // Unenhanced errors still hold the parsed response: attributes[0].section[0] is the [CODE].
  const r = e.response as { attributes?: Array<{ section?: Array<{ value?: unknown }> }> } | undefined;
  const v = r && typeof r === 'object' ? r.attributes?.[0]?.section?.[0]?.value : undefined;
  return typeof v === 'string' && v ? v.toUpperCase() : undefined;
}

/**
 * The server's own words, minus the tag ("NO [OVERQUOTA] Quota exceeded"). `secret` (one, or
 * every form login.ts lists) is blanked out should a server echo it back (some echo the failed
 * command line in their BAD text).
 */
function serverTextOf(err: unknown, secret?: string | readonly string[]): string | undefined {
  const e = asLike(err);
  let text: string | undefined;
  if (typeof e.response === 'string' && e.response) {
    text = e.response.replace(/^\S+\s+(?=(OK|NO|BAD|BYE)\b)/i, '');
  } else if (e.responseStatus) {
    const code = responseCodeOf(err);
    const body = e.responseText ?? '';
    text = `${e.responseStatus}${code && !body.includes(`[${code}`) ? ` [${code}]` : ''}${body ? ` ${body}` : ''}`;
  }
  const forms = typeof secret === 'string' ? (secret.length >= 3 ? [secret] : []) : (secret ?? []);
  if (text) text = redact(text, forms);
  return text?.trim() || undefined;
}

export function isTlsFailure(err: unknown): boolean {
  const e = asLike(err);
  return e.tlsFailed === true || (typeof e.code === 'string' && CERT_CODE.test(e.code));
}

function isTemporary(err: unknown): boolean {
  const e = asLike(err);
  if (e.code === 'ETHROTTLE' || throttleHintMs(serverTextOf(err)) !== null) return true;
  const code = responseCodeOf(err);
  return code !== undefined && TEMPORARY_CODES.has(code);
}

/**
 * The pause a throttling reply asked for, as ErrorContext.retryAfterMs; nothing for other
 * errors. The whole pause, even when imapflow already sat out part of it (throttleWaited):
 * waiting a little too long costs nothing, while counting only the rest would let a server
 * that throttles every command keep the run reconnecting without its pauses adding up.
 */
function throttleContext(err: unknown): ErrorContext {
  const e = asLike(err);
  const asked = typeof e.throttleReset === 'number' ? e.throttleReset : throttleHintMs(serverTextOf(err));
  return asked === null ? {} : { retryAfterMs: asked };
}

/** Anything the socket layer or imapflow's connection state says; also the catch-all. */
function connectionError(what: string, err: unknown, ctx: ErrorContext): PopsyncError {
  const e = asLike(err);
  const detail = e.code && CONNECTION_CODES.has(e.code) ? `${e.code}: ${e.message ?? ''}` : (e.message ?? String(err));
  return new PopsyncError('connection', `IMAP ${what}: connection lost or unusable (${detail.trim()})`, ctx, {
    cause: err,
  });
}

export interface ConnectContext {
  host: string;
  port: number;
  user: string;
  password: string;
  /** Every form of the secret the login sent (login.ts), when more than the password. */
  secrets?: readonly string[];
}

/** Errors from ImapFlow.connect(): greeting, STARTTLS, login, NAMESPACE. */
export function mapConnectError(err: unknown, c: ConnectContext): PopsyncError {
  if (err instanceof PopsyncError) return err;
  const e = asLike(err);
  const where = `${c.host}:${c.port}`;
  const serverResponse = serverTextOf(err, [...(c.secrets ?? []), ...(c.password.length >= 3 ? [c.password] : [])]);
  const responseCode = responseCodeOf(err);
  const ctx: ErrorContext = {};
  if (serverResponse) ctx.serverResponse = serverResponse;
  if (responseCode) ctx.responseCode = responseCode;

  if (e.authenticationFailed) {
    // And RFC 5530's LIMIT ("ran up against an implementation limit"): answering a login, a limit
    // on sessions or connections, never the credentials; a retry, not a new password, lifts it.
    // Only here: for other commands it is the message's (too many flags), and no later try helps.
    if (isTemporary(err) || responseCode === 'LIMIT') {
      return new PopsyncError(
        'temporary',
        `IMAP server ${where} cannot log in ${c.user} right now`,
        { ...ctx, ...throttleContext(err), hint: 'Try again later' },
        { cause: err },
      );
    }
    return new PopsyncError(
      'auth',
      `IMAP server ${where} rejected the login for ${c.user}${serverResponse ? `: ${serverResponse}` : ''}`,
      {
        ...ctx,
        hint: 'Check the IMAP user name and password',
      },
      { cause: err },
    );
  }
  if (isTlsFailure(err)) {
    return new PopsyncError(
      'tls',
      `TLS with IMAP server ${where} failed: ${e.message ?? String(err)}`,
      {
        ...ctx,
        hint: "Check the server's certificate and the CA option; with tls: starttls the server must offer STARTTLS",
      },
      { cause: err },
    );
  }
  if (isRefusal(err) || e.code === 'ETHROTTLE') {
    const kind: ErrorKind = isTemporary(err) ? 'temporary' : 'server';
    return new PopsyncError(
      kind,
      `IMAP server ${where} refused the session setup${serverResponse ? `: ${serverResponse}` : ''}`,
      { ...ctx, ...throttleContext(err) },
      { cause: err },
    );
  }
  return connectionError(`connect to ${where}`, err, ctx);
}

/**
 * Errors from a command on an established session (STATUS, CREATE, SELECT, FETCH). A refusal
 * is 'server' (or 'temporary'); everything else is a lost connection.
 */
/** imapflow's codes for a value its compiler cannot put in a command (CR, LF or NUL): nothing was sent. */
const UNSENDABLE_CODES = new Set(['InvalidStringValue', 'InvalidTokenValue']);

/** imapflow's codes for a response past the session's limits (writer.ts SESSION_LIMITS). */
const OVER_LIMIT_CODES = new Set(['LineTooLarge', 'LiteralTooLarge', 'ResponseTooLarge', 'TooManyTokens']);

/** Whether imapflow ended its connection because a response was past its limits. */
export function isOverLimit(err: unknown): boolean {
  return OVER_LIMIT_CODES.has(asLike(err).code ?? '');
}

/**
 * A folder whose name on the server holds CR, LF or NUL, which no IMAP command can carry (a
 * quoted string cannot; neither imapflow nor our APPEND connection sends a name as a literal).
 * Only the server can make such a name (the config refuses these characters in folder names):
 * a NAMESPACE prefix or hierarchy delimiter it announced. Nothing was sent and the connection is
 * fine, so it is no lost link: like a folder name the server refuses ('server', with the folder),
 * that folder's messages fail (exit 1) and the others go on (engine/copier.ts).
 */
export function unsendableFolder(folder: string, cause?: unknown): PopsyncError {
  return new PopsyncError(
    'server',
    `IMAP folder "${folder}" cannot be named in any IMAP command: the server's name for it holds a line ` +
      'break or NUL (from the namespace prefix or hierarchy delimiter the server announced)',
    {
      folder,
      hint:
        'a fault of the destination server (its NAMESPACE); copy into INBOX (--folder INBOX), which needs ' +
        'no prefix, or have the server fixed',
    },
    cause === undefined ? undefined : { cause },
  );
}

export function mapCommandError(
  err: unknown,
  what: string,
  folder: string | undefined,
  secret?: string | readonly string[],
): PopsyncError {
  if (err instanceof PopsyncError) return err;
  if (folder !== undefined && UNSENDABLE_CODES.has(asLike(err).code ?? '')) return unsendableFolder(folder, err);
  // A command whose module failed to load (lab/bundle.ts loads LIST's at its first use).
  const missing = missingModule(err);
  if (missing !== null) return missing;
  const ctx: ErrorContext = {};
  if (folder !== undefined) ctx.folder = folder;
  const serverResponse = serverTextOf(err, secret);
  const responseCode = responseCodeOf(err);
  if (serverResponse) ctx.serverResponse = serverResponse;
  if (responseCode) ctx.responseCode = responseCode;
  if (isRefusal(err) || asLike(err).code === 'ETHROTTLE') {
    const kind: ErrorKind = isTemporary(err) ? 'temporary' : 'server';
    return new PopsyncError(
      kind,
      `IMAP ${what} refused${serverResponse ? `: ${serverResponse}` : ''}`,
      { ...ctx, ...throttleContext(err) },
      { cause: err },
    );
  }
  return connectionError(what, err, ctx);
}

export type AppendFailure =
  | { scope: 'message'; error: PopsyncError } // this message only; go on with the next
  | { scope: 'session'; error: PopsyncError }; // stop the batch (connection lost, server unwell)

/**
 * Classifies a failed APPEND. Only a refusal that is about this message is a message-scope
 * outcome: too big, over quota, bad bytes. A missing folder ([TRYCREATE]) or a server that is
 * temporarily unwell would fail every following message too, so those stop the batch.
 */
export function classifyAppendError(err: unknown, folder: string): AppendFailure {
  const e = asLike(err);
  const code = responseCodeOf(err);
  const serverResponse = serverTextOf(err);
  const ctx: ErrorContext = { folder };
  if (serverResponse) ctx.serverResponse = serverResponse;
  if (code) ctx.responseCode = code;

  if (UNSENDABLE_CODES.has(e.code ?? '')) return { scope: 'message', error: unsendableFolder(folder, err) };
  // Refused by imapflow before anything was sent: APPENDLIMIT pre-check, unsendable content.
  if (!e.responseStatus && (code === 'APPENDLIMIT' || e.code === 'InvalidMessageContent')) {
    return {
      scope: 'message',
      error: new PopsyncError(
        'message',
        `IMAP APPEND to "${folder}" not attempted: ${e.message ?? ''}`.trim(),
        { ...ctx, serverResponse: serverResponse ?? e.message ?? '' },
        { cause: err },
      ),
    };
  }
  if (isRefusal(err)) {
    if (code === 'TRYCREATE') {
      return {
        scope: 'session',
        error: new PopsyncError(
          'server',
          `IMAP folder "${folder}" does not exist (it was there when the run started)`,
          { ...ctx, hint: 'Was the folder deleted or renamed during the run?' },
          { cause: err },
        ),
      };
    }
    if (isTemporary(err)) {
      return {
        scope: 'session',
        error: new PopsyncError(
          'temporary',
          `IMAP server refused APPEND to "${folder}" for now${serverResponse ? `: ${serverResponse}` : ''}`,
          { ...ctx, ...throttleContext(err) },
          { cause: err },
        ),
      };
    }
    return {
      scope: 'message',
      error: new PopsyncError(
        'message',
        `IMAP server refused the message for "${folder}"${serverResponse ? `: ${serverResponse}` : ''}`,
        ctx,
        { cause: err },
      ),
    };
  }
  if (e.code === 'ETHROTTLE') {
    return {
      scope: 'session',
      error: new PopsyncError(
        'temporary',
        `IMAP server is throttling APPEND to "${folder}"${serverResponse ? `: ${serverResponse}` : ''}`,
        { ...ctx, ...throttleContext(err) },
        { cause: err },
      ),
    };
  }
  return { scope: 'session', error: connectionError(`APPEND to "${folder}"`, err, ctx) };
}
