/**
 * The POP3 session popsync uses: connect, secure, log in, then the TRANSACTION commands.
 *
 * We wrote our own client because every npm POP3 client returns wrong bytes: none undoes
 * dot-stuffing, most decode bodies as text, and node-pop3 hangs when the terminator is split
 * across packets (see framing.ts). The pieces: framing.ts decodes bytes, connection.ts owns the
 * socket and the command queue, sasl.ts logs in, and this file gives commands their meaning.
 *
 * Security stance: TLS certificates are verified unless the user explicitly turned that off,
 * and tls='starttls' never silently continues in plaintext.
 */

import { DEFAULT_CONNECT_TIMEOUT_MS, DEFAULT_TIMEOUT_MS } from '../defaults.js';
import { PopsyncError } from '../errors.js';
import { silentLogger, type Logger } from '../log.js';
import { Pop3Connection, type CommandSpec, type Reply, type ReplySink } from './connection.js';
import { listingCeiling, MAX_LISTED_MESSAGES, messageCeiling, SMALL_REPLY_MAX } from './limits.js';
import { warmUp } from '../net/connect.js';
import { redact } from '../net/redact.js';
import { secretForms } from '../net/sasl.js';
import { replyError } from './reply-errors.js';
import { ReadAhead, RETR_STREAM_CHUNKS, RetrBody } from './retr-body.js';
import { authenticate, authMethods, type Credentials, fallsBack, METHOD_NAMES } from './sasl.js';
import type { Pop3Learnt, Pop3Options, Pop3Session, Pop3SizeEntry, Pop3Stat, Pop3UidlEntry } from './types.js';

/**
 * How many commands may be written ahead of their responses when PIPELINING is on. Above a
 * batch's default 100 messages (DEFAULT_BATCH_MESSAGES), so the first batch's RETRs, written at
 * once after the listing, all leave in one round trip: at 64 its last 36 waited for the first
 * replies, a round trip before the first APPEND could go. At 128 the checks and deletions at the
 * end of a `sync --delete` went a window per round trip: 1,000 TOPs and then 1,000 DELEs took
 * some 16 round trips where 4 do. More in flight holds no more memory: replies come in order
 * down one socket, which stops when the reader does, and how many RETRs go ahead is the
 * receiver's to bound (a batch's worth, engine/receiver.ts). The commands are some 12 bytes
 * each, so even a full window is a few KB, within the TCP window RFC 2920 asks a blocking client
 * to stay inside (popsync's writes never block: it reads replies while it writes).
 */
const PIPELINE_WINDOW = 512;

/** The longest LOGIN-DELAY popsync waits out before logging in again (once); longer ones exit 75. */
export const MAX_LOGIN_DELAY_WAIT_S = 60;

/**
 * Connects, reads the greeting, runs CAPA, STLS if asked, logs in; returns a TRANSACTION session.
 * A server that refuses the login with [LOGIN-DELAY] and states a short delay in CAPA is waited
 * for once (loginDelayWait); otherwise its refusal ends the attempt as 'temporary' at once.
 */
export async function connectPop3(opts: Pop3Options): Promise<Pop3Session> {
  checkOptions(opts);
  const logger = (opts.logger ?? silentLogger).child({ pop3: `${opts.host}:${opts.port}` });
  const learnt = opts.learnt ?? {};
  for (let waited = false; ; waited = true) {
    try {
      return await connectWithCapa(opts, logger, learnt);
    } catch (e) {
      if (!(e instanceof LoginDelayed)) throw e;
      const ms = loginDelayWait(e.statedSeconds, waited);
      if (ms === null) throw e.error.with({ hint: loginDelayHint(e.statedSeconds, waited) });
      logger.warn(
        { seconds: e.statedSeconds },
        `the POP3 server asks for ${e.statedSeconds} s between logins (LOGIN-DELAY); waiting, then logging in again`,
      );
      await sleep(ms, opts.signal);
    }
  }
}

/**
 * Opens the socket the next connectPop3 with these options takes (net/connect.ts warmUp), the
 * same target as Pop3Connection's; returns what closes it if it was not taken.
 */
export function warmPop3(
  opts: Pick<Pop3Options, 'host' | 'port' | 'tls' | 'ca' | 'rejectUnauthorized' | 'connectTimeoutMs'>,
): () => void {
  return warmUp(
    {
      protocol: 'POP3',
      host: opts.host,
      port: opts.port,
      ca: opts.ca,
      rejectUnauthorized: opts.rejectUnauthorized !== false,
      connectTimeoutMs: opts.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
      arena: true,
    },
    opts.tls === 'implicit',
  );
}

/**
 * How long to wait before the one further login attempt after a [LOGIN-DELAY] refusal, or null
 * to give up at once: the server must have stated its delay (CAPA LOGIN-DELAY), it must be short,
 * and we wait only once (a second refusal means our idea of the delay is wrong).
 */
export function loginDelayWait(statedSeconds: number | undefined, alreadyWaited: boolean): number | null {
  if (alreadyWaited || statedSeconds === undefined || statedSeconds > MAX_LOGIN_DELAY_WAIT_S) return null;
  // A second beyond the stated minimum, so clock granularity on the server cannot refuse us again.
  return (statedSeconds + 1) * 1000;
}

function loginDelayHint(statedSeconds: number | undefined, waited: boolean): string {
  if (waited) return `popsync waited the ${statedSeconds} s the server asked for and it refused again; run again later`;
  if (statedSeconds === undefined)
    return 'the server did not say how long to wait (no LOGIN-DELAY in its CAPA); run again later';
  return (
    `the server allows one login every ${statedSeconds} s; popsync waits at most ` +
    `${MAX_LOGIN_DELAY_WAIT_S} s, so run again later and schedule runs at least that far apart`
  );
}

/**
 * connectOnce, and once more without CAPA ahead of the greeting when the server refused it
 * there. Writing CAPA before the greeting saves a round trip, but some servers and proxies
 * punish a client that talks first (SMTP's "pregreet" check): they hang up, answer -ERR where
 * the greeting should be, or say nothing at all (a protocol multiplexer such as sslh hands a
 * client that speaks first to another service); others greet and never answer it, having thrown
 * away what they read before greeting. Such a server must not lock the user out: the
 * connection is made again in the order RFC 1939 shows (greeting, then CAPA), and `learnt`
 * keeps that order for every later connection of the run. A TLS-only port that drops the plain
 * CAPA is told as such before this (connection.ts lost()); a server that refuses both ways ends
 * with the second refusal. Both connections together wait at most --timeout for a greeting:
 * the second gets what the first left.
 */
async function connectWithCapa(opts: Pop3Options, logger: Logger, learnt: Pop3Learnt): Promise<Pop3Session> {
  const greeting: GreetingBudget = { leftMs: opts.timeoutMs ?? DEFAULT_TIMEOUT_MS };
  try {
    return await connectOnce(opts, logger, learnt, greeting);
  } catch (e) {
    if (!(e instanceof CapaAheadRefused)) throw e;
    learnt.capaAfterGreeting = true;
    // A first connection that used up the wait (dropped just before --timeout) leaves none to retry in.
    if (greeting.leftMs <= 0) throw e.error;
    logger.info(
      { error: e.error.message },
      'the POP3 server hung up on, refused or left unanswered the CAPA popsync writes ahead of its greeting; ' +
        'connecting again with CAPA after the greeting, as it will for the rest of this run',
    );
    return connectOnce(opts, logger, learnt, greeting);
  }
}

/**
 * An internal signal from connectOnce: the server hung up on, refused, or left unanswered the
 * CAPA written ahead of its greeting.
 */
class CapaAheadRefused {
  constructor(readonly error: Error) {}
}

/** How long the connections of one connectWithCapa may still wait for a greeting, together. */
interface GreetingBudget {
  leftMs: number;
}

/**
 * How long a connection that wrote CAPA ahead of its greeting waits in silence (not one byte
 * back) before it is taken for a server punishing talk before its greeting, and made again
 * without. Servers greet within milliseconds (Dovecot, Cyrus, Courier) or a round trip (Gmail,
 * Outlook); the TLS-only-port check (tls-probe.ts) asks a silent plain port after 2 s and has
 * its answer a round trip or two later, so it still ends such a connection first, with its
 * advice. A server slow to greet by design (an ident or reverse DNS lookup: 5 to 30 s) costs
 * this much more once per run, and its greeting is waited for on the second connection. At most
 * half of --timeout, so the second connection has the other half.
 */
const SILENT_AHEAD_MS = 5000;

function silentAheadMs(timeoutMs: number): number {
  return Math.min(SILENT_AHEAD_MS, Math.floor(timeoutMs / 2));
}

/** An internal signal from connectOnce to connectPop3: a [LOGIN-DELAY] refusal and what CAPA said. */
class LoginDelayed {
  constructor(
    readonly error: PopsyncError,
    readonly statedSeconds: number | undefined,
  ) {}
}

/** RFC 2449 §6.5: `LOGIN-DELAY <seconds>` (absent, or USER without a number, means unknown). */
function statedLoginDelay(caps: ReadonlyMap<string, string[]>): number | undefined {
  const arg = caps.get('LOGIN-DELAY')?.[0];
  return arg !== undefined && /^\d{1,9}$/.test(arg) ? Number(arg) : undefined;
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(new PopsyncError('interrupted', 'interrupted while waiting out the POP3 LOGIN-DELAY'));
      return;
    }
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(new PopsyncError('interrupted', 'interrupted while waiting out the POP3 LOGIN-DELAY'));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

async function connectOnce(
  opts: Pop3Options,
  logger: Logger,
  learnt: Pop3Learnt,
  greetingBudget: GreetingBudget,
): Promise<Pop3Session> {
  // Before connecting: a slow token command must not hold a connection the server may time out.
  const creds: Credentials = {
    user: opts.user,
    secret: opts.accessToken ? await opts.accessToken() : opts.password,
    token: opts.accessToken !== undefined,
    admin: opts.adminUser,
  };
  checkSecret(creds.secret, creds.token);
  const secrets = secretForms(
    {
      authcid: creds.admin ?? creds.user,
      authzid: creds.admin && creds.user,
      secret: creds.secret,
      host: opts.host,
      port: opts.port,
    },
    ['PLAIN', 'XOAUTH2', 'OAUTHBEARER'],
  );
  const conn = await Pop3Connection.open({
    host: opts.host,
    port: opts.port,
    implicitTls: opts.tls === 'implicit',
    ...(opts.ca ? { ca: opts.ca } : {}),
    rejectUnauthorized: opts.rejectUnauthorized !== false,
    timeoutMs: opts.timeoutMs ?? DEFAULT_TIMEOUT_MS,
    connectTimeoutMs: opts.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
    logger,
    secrets,
  });
  // CAPA leaves with the connection, before the greeting is read: on a real link the greeting
  // comes a round trip after the connect, and its answer arrives with it instead of a round trip
  // later (and while the main thread loads the IMAP code, which used to hold CAPA back 20-30 ms
  // at 30 ms RTT). CAPA carries nothing secret; under implicit TLS open() returned only once the
  // certificate was verified, and under STLS it is asked again once secure. Not when pipelining
  // is off: that is the way to talk to a server strictly one command after the other; nor once
  // the server refused it (connectWithCapa).
  const early = opts.pipelining !== false && learnt.capaAfterGreeting !== true ? capaReply(conn, true) : null;
  // A server that turns us away at its greeting may close before answering: the greeting says why.
  early?.catch(() => undefined);
  // Turned away at the greeting for a reason of its own: not for the CAPA, whatever follows.
  let refusedWithCode = false;
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const waitFrom = performance.now();
  // The connection's own timer ends a wait of --timeout; these end it sooner (GreetingBudget).
  const cut =
    early !== null
      ? setTimeout(
          () =>
            conn.silentAhead(
              `POP3 server ${opts.host}:${opts.port} sent nothing for ${silentAheadMs(timeoutMs)} ms after the ` +
                'CAPA popsync writes ahead of its greeting',
            ),
          silentAheadMs(timeoutMs),
        )
      : greetingBudget.leftMs < timeoutMs
        ? setTimeout(
            () =>
              conn.destroy(
                `POP3 server ${opts.host}:${opts.port} sent no greeting within the ${timeoutMs} ms of --timeout, ` +
                  'counting the connection before this one (which it hung up on, refused or left silent after ' +
                  'the CAPA written ahead of its greeting)',
              ),
            Math.max(0, greetingBudget.leftMs),
          )
        : undefined;
  try {
    let hello: Reply;
    try {
      hello = await conn.greeting;
    } finally {
      clearTimeout(cut);
      greetingBudget.leftMs -= performance.now() - waitFrom;
    }
    if (hello.status.kind !== 'ok') {
      const refused = replyError(hello.status, 'the connection', 'greeting');
      // -ERR with a response code (IN-USE, SYS/TEMP, ...) states its own reason; one without may
      // be the server's answer to the CAPA it got before its greeting.
      refusedWithCode = hello.status.code !== undefined;
      if (early !== null && !refusedWithCode) throw new CapaAheadRefused(refused);
      throw refused;
    }
    const greeting = hello.status.line;

    let caps: Map<string, string[]>;
    if (early === null) {
      caps = await capa(conn);
    } else {
      // Greeted, then nothing for it as long as a silence before the greeting is given: thrown
      // away with what the server read before greeting, it is never answered. Connected again
      // without it (connectWithCapa) rather than waiting out --timeout, on every run.
      const unanswered = setTimeout(
        () =>
          conn.unansweredAhead(
            `POP3 server ${opts.host}:${opts.port} greeted, then sent nothing for ${silentAheadMs(timeoutMs)} ms ` +
              'in answer to the CAPA popsync writes ahead of its greeting',
          ),
        silentAheadMs(timeoutMs),
      );
      let r: Reply;
      try {
        r = await early;
      } finally {
        clearTimeout(unanswered);
      }
      // Greeted, then -ERR for the CAPA that came first: asked again now, as later connections will.
      if (r.status.kind !== 'ok') {
        logger.debug({ response: r.status.line }, 'pop3 CAPA written ahead of the greeting refused; asking again');
        learnt.capaAfterGreeting = true;
        caps = await capa(conn);
      } else {
        caps = capabilities(r);
      }
    }
    if (opts.tls === 'starttls') {
      if (!caps.has('STLS')) {
        throw new PopsyncError(
          'tls',
          `POP3 server ${opts.host}:${opts.port} does not offer STLS; refusing to log in without TLS`,
          {
            hint: "Use implicit TLS (usually port 995) if the server has it; plaintext needs an explicit tls: 'none'.",
          },
        );
      }
      const r = await conn.send({ line: 'STLS', label: 'STLS', multiline: false, upgrade: true });
      if (r.status.kind !== 'ok') {
        throw new PopsyncError('tls', `POP3 server refused STLS: ${r.status.line}`, { serverResponse: r.status.line });
      }
      await conn.upgradeTls();
      // RFC 2595 §4: forget what was learnt before TLS; a man in the middle could have edited it.
      caps = await capa(conn);
    }

    // PIPELINING announced before the login covers it too (RFC 2449): USER and PASS may go together.
    const pipeliningNow = opts.pipelining !== false && caps.has('PIPELINING');
    if (pipeliningNow) conn.setWindow(PIPELINE_WINDOW);
    try {
      await logIn(conn, opts, creds, caps, greeting, logger, pipeliningNow && opts.tls !== 'none');
    } catch (e) {
      if (e instanceof PopsyncError && e.context.responseCode === 'LOGIN-DELAY')
        throw new LoginDelayed(e, statedLoginDelay(caps));
      throw e;
    }

    // RFC 2449 registers PIPELINING (and RFC 6856 UTF8) as announced alike in both states, so a
    // CAPA answered before login already says what matters after it, and asking again would cost
    // a round trip before the first TRANSACTION command. Only a server that did not offer
    // PIPELINING is asked again: one that adds it after login (against the RFC) still gets it.
    const before = caps;
    if (caps.size > 0 && !caps.has('PIPELINING') && opts.pipelining !== false) {
      const after = await capa(conn);
      if (after.size > 0) caps = after;
    }
    const pipelining = opts.pipelining !== false && caps.has('PIPELINING');
    conn.setWindow(pipelining ? PIPELINE_WINDOW : 1);
    // Not awaited: it is written ahead of every later command, which is all RETR and TOP need.
    if (caps.has('UTF8') || before.has('UTF8')) enableUtf8(conn, logger);
    return new Session(conn, greeting, caps, pipelining, secrets);
  } catch (e) {
    conn.destroy();
    if (early !== null && conn.droppedAhead && !refusedWithCode) throw new CapaAheadRefused(e as Error);
    throw e;
  }
}

/**
 * Tries the login methods in order (sasl.ts decides which and when to move on); only a refusal
 * of kind 'auth' can move on. A server that hangs up after a refusal ends the attempt with it.
 */
async function logIn(
  conn: Pop3Connection,
  opts: Pop3Options,
  creds: Credentials,
  caps: ReadonlyMap<string, string[]>,
  greeting: string,
  logger: Logger,
  together: boolean,
): Promise<void> {
  const refused: string[] = [];
  let last: PopsyncError | undefined;
  const methods = authMethods(opts.auth ?? 'auto', caps, greeting, {
    token: creds.token,
    admin: creds.admin !== undefined,
  });
  for (const method of methods) {
    logger.debug({ method }, 'pop3 login');
    try {
      await authenticate(conn, creds, method, greeting, opts, together);
      if (refused.length > 0)
        logger.info(
          { method: METHOD_NAMES[method], refused },
          `POP3 login with ${METHOD_NAMES[method]} after the server refused ${refused.join(', ')}`,
        );
      return;
    } catch (e) {
      if (last !== undefined && e instanceof PopsyncError && e.kind === 'connection') {
        throw last.with({
          hint:
            `the server closed the connection after refusing ${refused.join(', ')}; choose another login ` +
            `method with --pop-auth`,
        });
      }
      if (!(e instanceof PopsyncError) || e.kind !== 'auth') throw e;
      refused.push(METHOD_NAMES[method]);
      last = e;
      if (!fallsBack(method, e.context.responseCode)) break;
    }
  }
  if (last === undefined) throw new PopsyncError('internal', 'POP3 login: no method to try');
  // One refusal gets the advice IMAP's gives too (imap/errors.ts); a hint of its own is kept.
  throw last.with({
    hint:
      refused.length > 1
        ? `tried ${refused.join(', then ')}; the server refused each. Check the POP3 user name and password`
        : (last.context.hint ?? 'Check the POP3 user name and password'),
  });
}

/**
 * RFC 6856: without UTF8, a server may replace messages with 8-bit headers (Courier serves a
 * "Cannot display Unicode content" notice, different on every download). popsync copies bytes
 * and never needs them downgraded. A refusal changes nothing, so it is not an error.
 */
function enableUtf8(conn: Pop3Connection, logger: Logger): void {
  conn.send({ line: 'UTF8', label: 'UTF8', multiline: false }).then(
    (r) => {
      if (r.status.kind !== 'ok')
        logger.debug({ response: r.status.line }, 'POP3 server refused UTF8; messages are served as it sees fit');
    },
    // A lost connection fails the commands behind it too; they report it.
    () => undefined,
  );
}

function checkOptions(opts: Pop3Options): void {
  // A CR or LF would let a config value inject POP3 commands.
  for (const [name, value] of [
    ['user', opts.user],
    ['password', opts.password],
    ['admin user', opts.adminUser ?? ''],
  ] as const) {
    if (/[\r\n\0]/.test(value)) {
      throw new PopsyncError('config', `POP3 ${name} contains a line break or NUL, which POP3 cannot carry`);
    }
  }
  if (!Number.isInteger(opts.port) || opts.port < 1 || opts.port > 65535) {
    throw new PopsyncError('config', `POP3 port must be 1-65535, got ${String(opts.port)}`);
  }
}

/** A token command's output is checked where it arrives: a line break would inject POP3 commands. */
function checkSecret(secret: string, token: boolean): void {
  if (token && /[\r\n\0]/.test(secret))
    throw new PopsyncError('auth', 'the POP3 access token contains a line break or NUL, so it cannot be sent');
}

/** CAPA (RFC 2449). A server without it gets an empty map, not an error. */
async function capa(conn: Pop3Connection): Promise<Map<string, string[]>> {
  return capabilities(await capaReply(conn));
}

/** CAPA's reply; `early`: written before the greeting was read (Pop3Connection.sendBehindGreeting). */
function capaReply(conn: Pop3Connection, early = false): Promise<Reply> {
  const spec: CommandSpec = { line: 'CAPA', label: 'CAPA', multiline: true };
  return early ? conn.sendBehindGreeting(spec) : conn.send(spec);
}

/** CAPA's capabilities: none for -ERR (a server without CAPA). */
function capabilities(r: Reply): Map<string, string[]> {
  const caps = new Map<string, string[]>();
  if (r.status.kind !== 'ok') return caps;
  for (const line of bodyLines(r.body)) {
    const [name, ...args] = line.trim().split(/\s+/);
    if (name) caps.set(name.toUpperCase(), args);
  }
  return caps;
}

function bodyLines(body: Buffer | undefined): string[] {
  if (!body || body.length === 0) return [];
  const lines = body.toString('utf8').split(/\r?\n/);
  if (lines[lines.length - 1] === '') lines.pop();
  return lines;
}

function parseStat(text: string): Pop3Stat | null {
  const m = /^(\d+)\s+(\d+)/.exec(text);
  return m ? { count: Number(m[1]), size: Number(m[2]) } : null;
}

function checkMessageNumber(n: number): void {
  if (!Number.isSafeInteger(n) || n < 1) {
    throw new PopsyncError('internal', `POP3 message numbers start at 1; got ${String(n)}`);
  }
}

function protocolError(what: string, line: string, secrets: readonly string[] = []): PopsyncError {
  const shown = redact(line.slice(0, 200), secrets);
  return new PopsyncError('protocol', `POP3 server sent a malformed ${what}: ${JSON.stringify(shown)}`, {
    serverResponse: shown,
  });
}

/** "n value" lines of LIST; the value ends at the first whitespace. */
function parseListing(
  body: Buffer | undefined,
  what: string,
  secrets: readonly string[],
): Array<{ n: number; value: string }> {
  const out: Array<{ n: number; value: string }> = [];
  for (const line of bodyLines(body)) {
    if (line.trim() === '') continue;
    const m = /^\s*(\d+)\s+(\S+)/.exec(line);
    if (!m) throw protocolError(`${what} line`, line, secrets);
    out.push({ n: Number(m[1]), value: m[2] as string });
  }
  return out;
}

const UIDL_CHARS = /^[\x21-\x7e]+$/;
/**
 * A UIDL line's number and the blanks after it; the UIDL is the rest, less trailing blanks and
 * CRs (uidlEnd). One expression `(.*?)[ \t\r]*$` for both tried every split of a run of blanks
 * inside the UIDL, which the lazy part and the trailing part can both take: a hostile line of
 * 40,000 spaces took a second, and a listing may be STAT's count x 256 bytes long (limits.ts).
 */
const UIDL_LINE_START = /^\s*(\d+)[ \t]+/;

/**
 * UIDL lines: the UIDL is the rest of the line, checked against RFC 1939's 0x21-0x7E rather than
 * cut at a space (two UIDLs differing after a space would become one). Read as latin1 so every
 * byte outside the range is seen as what it is.
 */
function parseUidlListing(body: Buffer | undefined, secrets: readonly string[] = []): Pop3UidlEntry[] {
  const out: Pop3UidlEntry[] = [];
  if (!body || body.length === 0) return out;
  for (const line of body.toString('latin1').split(/\r?\n/)) {
    if (line.trim() === '') continue;
    const m = UIDL_LINE_START.exec(line);
    const end = m === null ? -1 : uidlEnd(line, m[0].length);
    if (m === null || end < 0) throw protocolError('UIDL line', line, secrets);
    const n = Number(m[1]);
    const uidl = line.slice(m[0].length, end);
    if (UIDL_CHARS.test(uidl)) {
      out.push({ n, uidl });
    } else {
      // Every byte outside the range shown as \xNN, so a space or a control byte is visible.
      const shown = redact(uidl.slice(0, 100), secrets).replace(
        /[^\x21-\x7e]/g,
        (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`,
      );
      out.push({
        n,
        uidl: '',
        fault:
          `the POP3 server gave it the UIDL "${shown}", which holds bytes RFC 1939 does not allow in a ` +
          `UIDL (only 0x21-0x7E)`,
      });
    }
  }
  return out;
}

/**
 * Where the UIDL that starts at `from` ends: before the blanks and CRs ending the line; -1 when a
 * CR is inside it (no line of a listing holds one, as the one expression this replaced had it).
 */
function uidlEnd(line: string, from: number): number {
  let end = line.length;
  for (let c = line.charCodeAt(end - 1); end > from && (c === 0x20 || c === 0x09 || c === 0x0d); ) {
    c = line.charCodeAt(--end - 1);
  }
  return line.lastIndexOf('\r', end - 1) >= from ? -1 : end;
}

/*
 * The listings as nearly every server sends them, every line "n value" with one space, read by one
 * sticky regular expression over the listing's text: a string, a match and an object per line
 * through the general parsers, or a loop over every byte of every line in JavaScript, cost ~1 µs a
 * message before the first RETR of every run (run by the interpreter: code run once a pass is never
 * optimised). The regular expression engine does the same checks in native code: 10,000 messages'
 * LIST and UIDL 9.5 -> 5 ms. Any other line sends the whole listing to the general parsers above
 * (which give every error), so the result is theirs either way.
 */

/** "n size", both 1-15 ASCII digits (exact as a double), then CRLF, LF or the listing's end. */
const PLAIN_SIZE_LINE = /(\d{1,15}) (\d{1,15})(?:\r\n|\n|$)/y;
/** "n uidl", the UIDL all 0x21-0x7E (RFC 1939), then CRLF, LF or the listing's end. */
const PLAIN_UIDL_LINE = /(\d{1,15}) ([\x21-\x7e]+)(?:\r\n|\n|$)/y;

/**
 * LIST lines "n size" only, and whether they number the messages 1, 2, 3... in order (the
 * Session's `numbered`, told in the same pass); null for anything else.
 */
function plainSizes(body: Buffer): { entries: Pop3SizeEntry[]; numbered: boolean } | null {
  const out: Pop3SizeEntry[] = [];
  const text = body.toString('latin1');
  let numbered = true;
  PLAIN_SIZE_LINE.lastIndex = 0;
  while (PLAIN_SIZE_LINE.lastIndex < text.length) {
    const m = PLAIN_SIZE_LINE.exec(text);
    if (m === null) return null;
    const n = +m[1]!;
    if (n !== out.length + 1) numbered = false;
    out.push({ n, size: +m[2]! });
  }
  return { entries: out, numbered };
}

/** UIDL lines "n uidl", the UIDL all 0x21-0x7E (RFC 1939) only; null for anything else. */
function plainUidls(body: Buffer): Pop3UidlEntry[] | null {
  const out: Pop3UidlEntry[] = [];
  // One string for the listing; each UIDL the regular expression's capture, a slice of it.
  const text = body.toString('latin1');
  PLAIN_UIDL_LINE.lastIndex = 0;
  while (PLAIN_UIDL_LINE.lastIndex < text.length) {
    const m = PLAIN_UIDL_LINE.exec(text);
    if (m === null) return null;
    out.push({ n: +m[1]!, uidl: m[2]! });
  }
  return out;
}

/** Entry i numbers message i + 1: none missing, none twice. */
function numberedInOrder(entries: readonly Pop3SizeEntry[]): boolean {
  for (let i = 0; i < entries.length; i++) if (entries[i]!.n !== i + 1) return false;
  return true;
}

/**
 * RETR n streamed into its body: the command and where its reply goes, one object. It was a
 * spec, two closures, a promise and two callbacks on it per message (not run(): its async
 * wrapper was a further promise). The outcome comes as the reply is read, not a microtask later.
 */
class RetrCommand implements CommandSpec, ReplySink {
  readonly line: string;
  readonly multiline = true;

  constructor(
    readonly messageNumber: number,
    readonly ceiling: number,
    private readonly body: RetrBody,
  ) {
    this.line = `RETR ${messageNumber}`;
  }

  get label(): string {
    return this.line;
  }

  onData(chunk: Buffer): boolean {
    return this.body.push(chunk);
  }

  resolve(reply: Reply): void {
    if (reply.status.kind === 'ok') this.body.end();
    else this.body.fail(replyError(reply.status, this.line, 'command', { messageNumber: this.messageNumber }));
  }

  reject(e: PopsyncError): void {
    this.body.fail(e);
  }
}

class Session implements Pop3Session {
  /** STAT's count, asked once: it bounds what LIST and UIDL may send (limits.ts). */
  private count: Promise<number> | null = null;
  /** That count as soon as STAT's reply is read, before any reply written behind it. */
  private statCount: number | null = null;
  /** LIST sizes by message number: they bound what RETR and TOP may send. */
  private readonly sizes = new Map<number, number>();
  /**
   * The last LIST when it numbered its messages 1, 2, 3... in order, as servers list them: the
   * size of n is then its entry n - 1, and `sizes` is not filled with every message (10,000
   * entries before every run's first RETR). A message's size cannot change within a session, so
   * either holds the size the server gave.
   */
  private numbered: readonly Pop3SizeEntry[] | null = null;
  /** What all RETR bodies of the session hold unread (RETR_READ_AHEAD_BYTES). */
  private readonly ahead: ReadAhead;
  /** Resumes reading the socket: what a body or `ahead` calls once its reader made room. */
  private readonly resume: () => void;

  constructor(
    private readonly conn: Pop3Connection,
    readonly greeting: string,
    readonly capabilities: ReadonlyMap<string, string[]>,
    readonly pipelining: boolean,
    private readonly secrets: readonly string[] = [],
  ) {
    this.resume = () => conn.resumeReading();
    this.ahead = new ReadAhead(this.resume);
  }

  get roundTripMs(): number {
    return this.conn.roundTripMs;
  }

  /** Sends a command and turns -ERR into PopsyncError('server'/'temporary'). */
  private async run(spec: CommandSpec): Promise<Reply> {
    const reply = await this.conn.send(spec);
    if (reply.status.kind !== 'ok') {
      throw replyError(
        reply.status,
        spec.label,
        'command',
        spec.messageNumber === undefined ? {} : { messageNumber: spec.messageNumber },
      );
    }
    return reply;
  }

  private simple(line: string, messageNumber?: number): Promise<Reply> {
    return this.run({ line, label: line, multiline: false, ...(messageNumber === undefined ? {} : { messageNumber }) });
  }

  private async multi(line: string, ceiling: number | (() => number), messageNumber?: number): Promise<Buffer> {
    const r = await this.run({
      line,
      label: line,
      multiline: true,
      ceiling,
      ...(messageNumber === undefined ? {} : { messageNumber }),
    });
    return r.body ?? Buffer.alloc(0);
  }

  async stat(): Promise<Pop3Stat> {
    const r = await this.run({
      line: 'STAT',
      label: 'STAT',
      multiline: false,
      onStatus: (s) => {
        const parsed = s.kind === 'ok' ? parseStat(s.text) : null;
        if (parsed) this.statCount = parsed.count;
      },
    });
    const parsed = parseStat(r.status.text);
    if (!parsed) throw protocolError('STAT reply', r.status.line, this.secrets);
    return parsed;
  }

  private listedCount(): Promise<number> {
    this.count ??= this.stat().then(({ count }) => {
      if (count > MAX_LISTED_MESSAGES) {
        throw new PopsyncError(
          'protocol',
          `POP3 server claims ${count} messages; popsync handles at most ${MAX_LISTED_MESSAGES} in one mailbox`,
        );
      }
      return count;
    });
    return this.count;
  }

  /**
   * LIST or UIDL written right behind STAT, without waiting for its reply: with PIPELINING all
   * three go in one round trip. The listing's ceiling is taken from STAT's count as its reply is
   * read (it comes first); a STAT that failed leaves the small ceiling, and its error is the one
   * reported.
   */
  private async listing(line: 'LIST' | 'UIDL'): Promise<Buffer> {
    const counted = this.listedCount();
    const body = this.multi(line, () =>
      this.statCount !== null && this.statCount <= MAX_LISTED_MESSAGES
        ? listingCeiling(this.statCount)
        : SMALL_REPLY_MAX,
    );
    const [, b] = await Promise.all([counted, body]);
    return b;
  }

  async list(): Promise<Pop3SizeEntry[]> {
    const body = await this.listing('LIST');
    const plain = plainSizes(body);
    const out = plain?.entries ?? this.sizesOf(body);
    if (plain?.numbered ?? numberedInOrder(out)) this.numbered = out;
    else for (const { n, size } of out) this.sizes.set(n, size);
    return out;
  }

  private sizesOf(body: Buffer): Pop3SizeEntry[] {
    return parseListing(body, 'LIST', this.secrets).map(({ n, value }) => {
      const size = Number(value);
      if (!Number.isSafeInteger(size)) throw protocolError('LIST size', value, this.secrets);
      return { n, size };
    });
  }

  async uidl(): Promise<Pop3UidlEntry[]> {
    const body = await this.listing('UIDL');
    return plainUidls(body) ?? parseUidlListing(body, this.secrets);
  }

  /**
   * The reply ceiling for RETR n / TOP n k. Synchronous when LIST was read, so a pipelined burst
   * keeps its order; otherwise `LIST n` asks for the size first.
   */
  private messageCeiling(n: number): number | Promise<number> {
    const size = this.numbered?.[n - 1]?.size ?? this.sizes.get(n);
    if (size !== undefined) return messageCeiling(size);
    return this.simple(`LIST ${n}`, n).then((r) => {
      const m = /^\d+\s+(\d+)/.exec(r.status.text);
      if (!m || !Number.isSafeInteger(Number(m[1]))) throw protocolError('LIST reply', r.status.line, this.secrets);
      this.sizes.set(n, Number(m[1]));
      return messageCeiling(Number(m[1]));
    });
  }

  async top(n: number, lines: number): Promise<Buffer> {
    checkMessageNumber(n);
    if (!Number.isSafeInteger(lines) || lines < 0)
      throw new PopsyncError('internal', `TOP line count must be >= 0; got ${String(lines)}`);
    const ceiling = this.messageCeiling(n);
    return this.multi(`TOP ${n} ${lines}`, typeof ceiling === 'number' ? ceiling : await ceiling, n);
  }

  async retr(n: number): Promise<Buffer> {
    checkMessageNumber(n);
    const ceiling = this.messageCeiling(n);
    return this.multi(`RETR ${n}`, typeof ceiling === 'number' ? ceiling : await ceiling, n);
  }

  retrStream(n: number): RetrBody {
    const conn = this.conn;
    // The session's one function for resuming the socket, not a closure per message.
    const body = new RetrBody(this.resume, RETR_STREAM_CHUNKS, this.ahead);
    try {
      checkMessageNumber(n);
    } catch (e) {
      body.fail(e as Error);
      return body;
    }
    const ceiling = this.messageCeiling(n);
    if (typeof ceiling === 'number') {
      const command = new RetrCommand(n, ceiling, body);
      conn.post(command, command);
      return body;
    }
    ceiling.then(
      (c) => {
        const command = new RetrCommand(n, c, body);
        conn.post(command, command);
      },
      (e: unknown) => body.fail(e as Error),
    );
    return body;
  }

  async dele(n: number): Promise<void> {
    checkMessageNumber(n);
    await this.simple(`DELE ${n}`, n);
  }

  async rset(): Promise<void> {
    await this.simple('RSET');
  }

  async noop(): Promise<void> {
    await this.simple('NOOP');
  }

  async quit(): Promise<void> {
    try {
      await this.simple('QUIT');
    } catch (e) {
      this.conn.destroy();
      throw e;
    }
    this.conn.end();
  }

  leave(): void {
    // Written at once: nothing is in flight when a session ends, so the window is open.
    this.conn.send({ line: 'QUIT', label: 'QUIT', multiline: false }).catch(() => undefined);
    this.conn.end(true);
  }

  destroy(): void {
    this.conn.destroy('POP3 session destroyed by popsync');
  }
}
