/**
 * The IMAP destination (ImapSink) on top of imapflow 2.10.
 *
 * imapflow does everything but the bulk of APPEND: STARTTLS/SASL, folders (modified UTF-7,
 * delimiter, namespace), STATUS, LIST, FETCH for reconciliation. It has no MULTIAPPEND and no
 * pipelining (one command in flight; a non-synchronizing literal only up to 4 KiB, so a larger
 * message costs two round trips), which held popsync to about half of what Dovecot accepts.
 * So when the server offers LITERAL+, LITERAL- or MULTIAPPEND, appendBatch() writes the whole
 * batch down a second connection of our own (pipeline.ts); otherwise it appends one at a time
 * through imapflow. The engine sees the same batch interface either way.
 *
 * Session rules this module enforces, because imapflow does not:
 * - One operation at a time (`serial`): listSince() has to SELECT and then FETCH with nothing
 *   in between, and imapflow's own queue only orders single commands.
 * - No reconnects. After a drop the sink is dead and every call rejects with 'connection'; the
 *   engine opens a new sink and reconciles with listSince().
 * - Mailboxes are only ever opened read-only (EXAMINE). That keeps \Seen untouched, makes the
 *   CLOSE we send before appending to the open mailbox expunge-free (RFC 3501 6.4.2), and means
 *   imapflow never filters APPEND flags by a mailbox's PERMANENTFLAGS.
 * - APPEND goes down a second connection of our own (pipeline.ts) when the server offers
 *   LITERAL+, LITERAL- or MULTIAPPEND; that connection is opened first, before imapflow's, and
 *   lives and dies with the sink. The loop below stays as the fallback. With
 *   `appendConnections` above 1, further folders get further such connections, opened as they
 *   come (append-pool.ts); all of them die with the sink.
 * - A message kept in a file (too large for memory) never goes through imapflow, whose append
 *   takes a Buffer: without the pipelined connection, a 'streaming' one of our own is opened
 *   the first time such a message comes, and sends it with a synchronising literal read from
 *   the file. It logs in as imapflow's connection did (login.ts decides for both: the same SASL
 *   mechanism, XOAUTH2 and OAUTHBEARER included, with or without SASL-IR), so a server that let
 *   imapflow in lets it in too. Should it still report that it cannot (PipelineUnsupported), the
 *   message is refused with that reason, never read whole into memory for imapflow. A server that
 *   allows one connection per user gets it between two imapflow sessions (streamAlone).
 * - A server that allows one connection (per user or per address) gets the copy over imapflow's
 *   session alone (connectImap, openSink). Its limit shows only on a second connection while the
 *   first works: a NO or BYE to the second login, a BYE or a close in place of the second greeting,
 *   or below the protocol the second connect refused (a firewall's connlimit rejecting with a TCP
 *   reset: ECONNREFUSED) or reset before a byte. The same on a first connection is the server down,
 *   a wrong port or the credentials, and is reported as ever: a refused first connect is "nothing
 *   accepts connections there" (a refused one on a port that greeted says that it refused it).
 *   A close, a refusal or a reset also comes from a server restarting, so they decide only when
 *   met again a second later (pipeline.ts openAgainIfUnheard).
 * - Which NO to a login is the password. Anywhere no connection of ours is logged in, a NO that
 *   names the credentials ([AUTHENTICATIONFAILED] and RFC 5530's others, or no code) is: 'auth',
 *   exit 3, after one login, since every further try counts against the account (lockouts,
 *   fail2ban). RFC 5530's [UNAVAILABLE] and [LIMIT] never are (errors.ts: 'temporary'). The one
 *   place a NO to a login is read as the limit whatever its code is the APPEND connection's login
 *   while imapflow's session, logged in with the same credentials a moment before, is still open:
 *   that login is the second connection, the password was just accepted, and the run sends that
 *   one refused login once per process (ImapOptions.oneConnection). After a logout the same NO is
 *   ambiguous again (nothing of ours is logged in; the password may have changed meanwhile), and
 *   ImapWriter.loginAlone allows it one try more, then takes it at its word.
 * - Nothing reaches stdout: imapflow's default logger is pino at info on stdout, so it always
 *   gets our logger.
 */

import type { Socket } from 'node:net';
import type { ImapFlow, ImapFlowOptions } from 'imapflow';
import { DEFAULT_CONNECT_TIMEOUT_MS, DEFAULT_IMAP_SOCKET_TIMEOUT_MS } from '../defaults.js';
import { PopsyncError } from '../errors.js';
import { silentLogger, type Logger } from '../log.js';
import { closedBeforeTls, closedUnheard, refusedAtConnect } from '../connect-hints.js';
import { redact } from '../net/redact.js';
import type {
  AppendOutcome,
  AppendRequest,
  BodyReader,
  DestinationMessage,
  FolderStatus,
  ImapOptions,
  ImapSink,
  StoredHeader,
} from './types.js';
import {
  classifyAppendError,
  mapCommandError,
  mapConnectError,
  refusedLogin,
  responseCodeOf,
  isOverLimit,
  isRefusal,
} from './errors.js';
import { checkLevels, folderLevels, serverName } from './folders.js';
import { internalDateTime } from './append-head.js';
import { bodyBuffer, bodyHasNul, bodySize, isFileBody } from './body.js';
import {
  type AppendCounts,
  PipelinedAppender,
  PipelineUnsupported,
  type PipelineItem,
  TurnedAway,
  AT_CONNECT_WORDS,
  openAgainIfUnheard,
} from './pipeline.js';
import { type ImapflowAdapter, loadImapflow } from './imapflow-load.js';
import { EarlySocket } from './early-socket.js';
import { AppendPool } from './append-pool.js';
import { credentialsFor, loginSecretForms } from './login.js';
import { imapSocketTarget } from './socket-target.js';

/** readBodies: messages up to this size travel whole in one batched FETCH, larger ones in pieces of it. */
const BODY_PIECE_BYTES = 4 * 1024 * 1024;

/**
 * What imapflow's session holds of one response at most (invariant 3; imapflow's defaults are
 * 1 GiB a line or literal and 2 GiB a response). The largest thing popsync asks this session for
 * is a header block (scanHeaders, BODY.PEEK[HEADER], for adoption, the check before DELE,
 * reconciliation and verify; and listSince's ENVELOPE, a part of it), and a header block is as
 * large as the POP3 server made it: the bench copies one of 100 MB (lab/bench.ts hugeHeader).
 * Bodies come at most BODY_PIECE_BYTES a literal (readBodies; fetchBody, a whole message, has
 * no caller but tests). The other replies are short lines: LIST, STATUS, SELECT, an APPEND's
 * tagged OK, a SEARCH for one message after an APPEND without UIDPLUS. 256 MiB a line or literal
 * reads that 100 MB header block with room to spare and is an eighth of imapflow's bound; a
 * response may add 1 MiB of framing to its literal. Past them imapflow ends the connection with
 * LineTooLarge, LiteralTooLarge or ResponseTooLarge, reported as a protocol error (overLimit).
 */
const SESSION_LIMIT_BYTES = 256 * 1024 * 1024;
export const SESSION_LIMITS = {
  maxLineLength: SESSION_LIMIT_BYTES,
  maxLiteralSize: SESSION_LIMIT_BYTES,
  maxResponseSize: SESSION_LIMIT_BYTES + 1024 * 1024,
} as const satisfies Partial<ImapFlowOptions>;
/** UIDs per FETCH command: keeps the command line far below servers' limits (Dovecot: 64 KiB). */
const UIDS_PER_FETCH = 500;
/** Logins tried after a logout before one refused counts (ImapWriter.loginAlone): 0.2 + 0.4 + 0.8 s between. */
const ALONE_LOGIN_TRIES = 4;
/**
 * Tries of a login after a logout refused with the NO the server refused a second connection
 * with, where that NO reads as refused credentials (ImapWriter.loginAlone), and the pause before
 * the second: the three pauses of turnedAwayPause at once.
 */
const LIMIT_NO_TRIES = 2;
const LIMIT_NO_PAUSE_MS = 1400;
/** Tries of imapflow's session alone after it was turned away at accept (connectImap). */
const SESSION_FIRST_TRIES = 3;
/**
 * The pause before try `attempt + 1` of a connection or login the server turned away: 0.2, 0.4,
 * 0.8 s. One at once was turned away too in tests: the server had not yet stopped counting the
 * connection just closed.
 */
const turnedAwayPause = (attempt: number): Promise<void> => pause(100 * 2 ** attempt);
const pause = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
/** What a message without flags sends (formattedFlags): most mail arrives unread and unflagged. */
const NO_FLAGS: string[] = [];

/** The SPECIAL-USE roles of RFC 6154, in their canonical spelling. */
const SPECIAL_USE = ['\\All', '\\Archive', '\\Drafts', '\\Flagged', '\\Junk', '\\Sent', '\\Trash'];

/** The SPECIAL-USE role among a LIST response's attributes (any case), or null. */
function specialUseRoleOf(attributes: Iterable<string> | undefined): string | null {
  for (const a of attributes ?? []) {
    const role = SPECIAL_USE.find((r) => r.toLowerCase() === a.toLowerCase());
    if (role !== undefined) return role;
  }
  return null;
}

/**
 * A copy of `s` that holds nothing else: imapflow's parsed strings are slices of the response
 * line they came from, so keeping one kept its whole FETCH response alive.
 */
function ownString(s: string | undefined): string | null {
  return s === undefined ? null : Buffer.from(s, 'utf16le').toString('utf16le');
}

/** UID sets of at most UIDS_PER_FETCH UIDs each, runs written as ranges ("3:7,9"). */
function uidSets(uids: readonly number[]): string[] {
  const sorted = [...new Set(uids)].sort((a, b) => a - b);
  const out: string[] = [];
  for (let i = 0; i < sorted.length; i += UIDS_PER_FETCH) {
    const part = sorted.slice(i, i + UIDS_PER_FETCH);
    const ranges: string[] = [];
    let lo = part[0]!;
    let hi = lo;
    for (const u of part.slice(1)) {
      if (u === hi + 1) hi = u;
      else {
        ranges.push(lo === hi ? String(lo) : `${lo}:${hi}`);
        lo = hi = u;
      }
    }
    ranges.push(lo === hi ? String(lo) : `${lo}:${hi}`);
    out.push(ranges.join(','));
  }
  return out;
}

/**
 * imapflow logs its protocol life at info and every refused command at warn. For us those are
 * diagnostics: a refusal reaches the user as a PopsyncError, so repeating it at warn would say
 * everything twice. Only imapflow's own errors stay visible by default.
 */
/**
 * imapflow's own log, one level down. While `connecting` says so its errors are debug: a failed
 * connect is reported once, by connectImap, as a typed error with the fix. imapflow's connect
 * now runs beside the APPEND connection's, so a wrong port or TLS mode fails both, and imapflow
 * would print OpenSSL's raw text as a warning above that error.
 */
function imapflowLogger(log: Logger, connecting: () => boolean): NonNullable<ImapFlowOptions['logger']> {
  return {
    trace: () => {},
    debug: (o: object) => log.debug(o),
    info: (o: object) => log.debug(o),
    warn: (o: object) => log.info(o),
    error: (o: object) => (connecting() ? log.debug(o) : log.warn(o)),
    fatal: (o: object) => log.error(o),
  };
}

/**
 * Thrown by openSink when imapflow's connection was turned away at its greeting (a BYE in its
 * place, or a close before it) while the APPEND connection opened beside it was greeted and
 * waited to log in: `error` is what is reported if connectImap cannot do better.
 */
class SessionTurnedAway {
  constructor(readonly error: PopsyncError) {}
}

/**
 * imapflow's session and the APPEND connection (openSink). A server that allows one connection
 * at a time and enforces it at accept (couriertcpd -maxperip, xinetd per_source, a proxy's
 * per-address limit) greets the APPEND connection, whose socket opens first, and turns imapflow's
 * away before its greeting; one that enforces it at connect (a firewall's connlimit rejecting
 * with a TCP reset, a front that resets) refuses or resets imapflow's connect; where a limit
 * enforced at the login refuses the APPEND connection's login after letting imapflow's in. All
 * are one limit, and the run should go on over imapflow's session alone (the one-connection
 * fallback) rather than reconnect until exit 75, or, refused at connect, stop at once as though
 * nothing listened there. So, once: the APPEND connection is given up, imapflow's session opened
 * alone (tried again while turned away so, as ImapWriter.loginAlone tries a login after a logout:
 * the server may count the connection just closed a moment longer), and the APPEND connection
 * opened after its login, where what decides is what decides at a limit enforced at login (a BYE
 * greeting at once; a close before the greeting, a refused connect or a reset only when seen
 * twice 1 s apart). A server that was only restarting gets both connections, nothing decided; one
 * down for good after greeting the first fails the session's three tries and is reported as the
 * refused connect it is (connect-hints.ts: "it refused the connection", not "nothing accepts").
 */
export async function connectImap(opts: ImapOptions): Promise<ImapSink> {
  try {
    return await openSink(opts, false);
  } catch (err) {
    if (!(err instanceof SessionTurnedAway)) throw err;
    const log = (opts.logger ?? silentLogger).child({ component: 'imap', host: opts.host });
    log.debug(
      { err: err.error.message },
      "IMAP server turned imapflow's connection away at its greeting while it greeted the APPEND connection; " +
        "opening imapflow's session alone first",
    );
    for (let attempt = 1; ; attempt++) {
      await turnedAwayPause(attempt);
      try {
        return await openSink(opts, true);
      } catch (again) {
        if (!(again instanceof SessionTurnedAway)) throw again;
        if (attempt >= SESSION_FIRST_TRIES) throw again.error;
      }
    }
  }
}

/**
 * `sessionFirst`: imapflow's session connects alone, and the APPEND connection only once its
 * login passed (connectImap); throws SessionTurnedAway when it is turned away at its greeting.
 * Otherwise both side by side, as below; SessionTurnedAway then when only imapflow's was.
 */
async function openSink(opts: ImapOptions, sessionFirst: boolean): Promise<ImapSink> {
  const log = (opts.logger ?? silentLogger).child({ component: 'imap', host: opts.host });
  let security: Pick<ImapFlowOptions, 'secure' | 'doSTARTTLS'>;
  switch (opts.tls) {
    case 'implicit':
      security = { secure: true };
      break;
    case 'starttls':
      // true makes the upgrade mandatory: a missing STARTTLS capability fails instead of
      // continuing in cleartext (the capability list itself arrived unprotected).
      security = { secure: false, doSTARTTLS: true };
      break;
    case 'none':
      security = { secure: false, doSTARTTLS: false };
      break;
    default:
      throw new PopsyncError('config', `Unknown IMAP tls mode: ${String(opts.tls)}`);
  }
  const socketTimeout = opts.timeoutMs ?? DEFAULT_IMAP_SOCKET_TIMEOUT_MS;
  const connectTimeoutMs = opts.timeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
  // Every form of every secret a login of this sink sent, for blanking server replies.
  const secrets: string[] = [];
  // Both connections open side by side (greeting, TLS), each a few round trips that used to
  // follow one another. imapflow's is started once the APPEND connection's socket is open, so the
  // server still sees the connection that carries the messages first. imapflow's logs in first and
  // the APPEND connection's login waits for its verdict: a wrong password is refused once. That
  // order because imapflow's connection is the longer road to the first APPEND (after its login,
  // ID and NAMESPACE, then the folder's STATUS, one at a time), while the APPEND connection has
  // only its login to do: its wait costs nothing, where the other way round it cost imapflow's
  // session a round trip.
  // A run whose server already turned a second connection away tries no APPEND connection again.
  const knownOne = opts.oneConnection?.reason ?? null;
  const appendPath = knownOne !== null ? 'imapflow' : (opts.appendPath ?? 'auto');
  let socketOpen: () => void = () => undefined;
  const appendSocket = new Promise<void>((resolve) => {
    socketOpen = resolve;
  });
  let verdictFailed = false;
  let settleVerdict: (failure: unknown) => void = () => undefined;
  const verdict = new Promise<void>((resolve, reject) => {
    settleVerdict = (failure) => {
      if (failure === null) return resolve();
      verdictFailed = true;
      reject(failure);
    };
  });
  verdict.catch(() => undefined);
  let imapflowLoggedIn = false;
  verdict.then(
    () => {
      imapflowLoggedIn = true;
    },
    () => undefined,
  );
  // The APPEND connection was greeted (a per-connection limit at accept then turns imapflow's away).
  let appendGreeted = false;
  // Set when the server turned the APPEND connection away after letting imapflow's in.
  let secondRefused: string | null = knownOne;
  // How it worded that, when with a NO read as refused credentials (ImapOptions.oneConnection).
  let limitNo: string | undefined = knownOne !== null ? opts.oneConnection?.loginNo : undefined;
  // The refusal that decided it on this sink (secondRefused), not known from an earlier one.
  let refusedNow = null as TurnedAway | null;
  const opening: Promise<PipelinedAppender | null> =
    appendPath === 'imapflow'
      ? Promise.resolve(null)
      : (sessionFirst
          ? verdict.then(() => PipelinedAppender.open(opts, connectTimeoutMs, log, 'pipelined', secrets))
          : PipelinedAppender.open(opts, connectTimeoutMs, log, 'pipelined', secrets, socketOpen, verdict, () => {
              appendGreeted = true;
            })
        )
          // A close before the greeting decides the run only when it happens again (a restart, a
          // proxy overloaded for a moment look the same): asked where it would decide, below.
          .catch((err: unknown) =>
            appendPath === 'auto' && imapflowLoggedIn
              ? openAgainIfUnheard(
                  err,
                  () => PipelinedAppender.open(opts, connectTimeoutMs, log, 'pipelined', secrets),
                  log,
                )
              : Promise.reject(err),
          )
          .catch((err: unknown) => {
            // The same user's login, accepted on imapflow's connection, turned away on this one
            // (a NO or BYE to it, a BYE or close for its greeting, or its connect refused or reset
            // before the greeting): a per-user or per-address connection limit
            // (Dovecot's mail_max_userip_connections = 1 says NO [UNAVAILABLE]), which no retry
            // lifts. Exit 75 would have cron retry forever; imapflow's session alone can carry the
            // copy, as append-pool.ts goes on with fewer. Only that: a TLS failure, a timeout or a
            // drop of this connection is reported and retried as ever, never a quiet slow run.
            // A greeting refused before imapflow's login was accepted is not waited on: the
            // connect fails at once, as it did (imapflow's connect is then not even started).
            // Recorded for the run and said once imapflow's connect is done (below).
            if (appendPath === 'auto' && err instanceof TurnedAway && imapflowLoggedIn) {
              secondRefused = `the server refused a second IMAP connection for this user: ${err.said}`;
              if (err.kind === 'auth') limitNo = err.context.responseCode ?? '';
              refusedNow = err;
              return null;
            }
            if (!(err instanceof PipelineUnsupported)) throw err;
            if (appendPath === 'pipelined')
              throw new PopsyncError(
                'config',
                `IMAP server ${opts.host}:${opts.port} cannot take pipelined APPEND: ${err.message}`,
              );
            log.debug({ reason: err.message }, 'IMAP APPEND goes through imapflow, one at a time');
            return null;
          });
  let appendFailed = false;
  const settledOpening = opening.then(
    () => undefined,
    () => {
      appendFailed = true;
    },
  );
  const target = imapSocketTarget(opts, connectTimeoutMs);
  // An APPEND connection that failed before its socket opened (a refused port, a bad certificate)
  // is the error reported; imapflow's would only fail the same way. Otherwise imapflow's socket
  // opens once the APPEND connection's has, while imapflow still loads (early-socket.ts).
  let early: EarlySocket | undefined;
  const imapflowSocket = (sessionFirst ? Promise.resolve() : Promise.race([appendSocket, settledOpening])).then(() => {
    if (!appendFailed) early = new EarlySocket(target, security.secure === true);
  });
  // Loaded only now, with the APPEND connection's connect under way (imapflow-load.ts).
  const flow = await loadImapflow().catch((err: unknown) => {
    settleVerdict(err);
    void opening.then(
      (a) => a?.destroy(),
      () => undefined,
    );
    void imapflowSocket.then(() => early?.discard());
    throw err;
  });
  let connecting = true;
  // imapflow's options and login, for its session opened beside the APPEND connection and for
  // any opened again later (a server that allows one connection: ImapWriter.streamAlone).
  const createSession = (
    sockets: Socket[],
    early: () => EarlySocket | undefined,
    /** While true, imapflow's errors are debug: a failed connect is reported once, typed. */
    quiet: () => boolean,
    verdict?: (failure: unknown) => void,
    /** Told when the login begins (the greeting, and STARTTLS if any, are behind it). */
    loginBegins?: () => void,
  ): ImapFlow =>
    flow.createImapFlow(
      {
        host: opts.host,
        port: opts.port,
        ...security,
        // Only to satisfy imapflow's checks: the login itself is ours (imapflow-adapter.ts).
        auth: { user: opts.user, pass: opts.password || 'unused' },
        // Our sockets (net/connect.ts): the same TLS options, CA merge and SNI as every other connection.
        transport: flow.imapflowTransport(target, early, (s) => sockets.push(s)),
        logger: imapflowLogger(log, quiet),
        clientInfo: { name: 'popsync' },
        connectionTimeout: opts.timeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
        greetingTimeout: opts.timeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
        socketTimeout,
        // IDLE is for watching a mailbox; we never wait for news, and an IDLE would have to be
        // broken (one more round trip) before every command.
        disableAutoIdle: true,
        // ENABLE CONDSTORE UTF8=ACCEPT IMAP4rev2 is a round trip for nothing popsync uses, and
        // UTF8=ACCEPT or IMAP4rev2 would make imapflow name folders in UTF-8 while our APPEND
        // connection, which never enables them, must use modified UTF-7 for the same names.
        disableAutoEnable: true,
        ...SESSION_LIMITS,
      },
      {
        auth: opts.auth ?? 'auto',
        host: opts.host,
        port: opts.port,
        credentials: async () => {
          loginBegins?.();
          const creds = await credentialsFor(opts);
          for (const f of loginSecretForms(creds, opts)) if (!secrets.includes(f)) secrets.push(f);
          return creds;
        },
        ...(verdict ? { verdict } : {}),
      },
    );
  // imapflow's sockets (the plain one, and TLS over it after STARTTLS): close() lets them go.
  const flowSockets: Socket[] = [];
  const client = createSession(
    flowSockets,
    () => early,
    () => connecting,
    (failure) => settleVerdict(failure),
  );
  // An 'error' without a listener is thrown by the EventEmitter and kills the process; connect()
  // reports its own failures by rejecting, and the sink installs the real listener afterwards.
  const ignore = (): void => {};
  client.on('error', ignore);
  const imapflowConnect = imapflowSocket.then(() => (appendFailed ? undefined : client.connect()));
  // A connect that failed before or without a verdict (greeting, TLS) must not leave the APPEND
  // connection waiting for one.
  imapflowConnect.then(
    () => settleVerdict(appendFailed ? new Error('imapflow did not connect') : null),
    (err: unknown) => settleVerdict(err),
  );
  const [appender, session] = await Promise.allSettled([opening, imapflowConnect]);
  connecting = false;
  if (appender.status === 'rejected' || session.status === 'rejected') {
    client.close();
    // Opened, but imapflow's connect never started (the APPEND connection failed first).
    early?.discard();
    if (appender.status === 'fulfilled') appender.value?.destroy();
    // The failure that came first is the one reported: imapflow's when the APPEND connection only
    // gave up waiting for it (its login refused, or its connect failed), else the APPEND
    // connection's (then imapflow's connect never started, or failed the same way).
    // A BYE that refused the login's credentials, which imapflow reports as its connection closed.
    const failure: unknown =
      session.status === 'rejected' ? (flow.loginRefusalOf(client) ?? session.reason) : undefined;
    const err =
      appender.status === 'rejected' && !(verdictFailed && session.status === 'rejected')
        ? (appender.reason as PopsyncError)
        : (closedAfterGreeting(client, failure, opts) ?? mapConnectError(failure, { ...opts, secrets }));
    log.debug({ err, kind: err.kind }, 'IMAP connect failed');
    // imapflow's turned away at its greeting: with the APPEND connection greeted meanwhile, a limit
    // at accept (connectImap); in its own turn, still that limit, or the server's for everyone.
    if (
      appendPath === 'auto' &&
      session.status === 'rejected' &&
      (sessionFirst || (verdictFailed && appendGreeted)) &&
      turnedAwayAtGreeting(client, failure, security.secure === true)
    )
      throw new SessionTurnedAway(err);
    throw err;
  }
  const pipeline = appender.value;
  if (refusedNow !== null) {
    // Only with imapflow's session connected and still open is the refusal a second connection's.
    // A server going down or restarting refuses, resets or closes connections as a limit does, and
    // ends the session too (Dovecot's restart closes its clients): then it is a lost connection,
    // reconnected as ever, and never a limit for the rest of the process (ImapOptions.oneConnection).
    if (!client.usable) {
      client.close();
      // Not the refusal's words: "closed the connection before greeting it" would read as a
      // port that does not greet (connect-hints.ts).
      const err = new PopsyncError(
        'connection',
        `IMAP connection to ${opts.host}:${opts.port} lost while popsync opened a second one (the server ` +
          'ended the session: going down or restarting?)',
      );
      log.debug({ err, said: refusedNow.said }, 'IMAP connect failed');
      throw err;
    }
    if (opts.oneConnection) {
      opts.oneConnection.reason = secondRefused;
      if (limitNo !== undefined) opts.oneConnection.loginNo = limitNo;
    }
    log.warn(
      { reason: refusedNow.message },
      `the IMAP server refused a second IMAP connection for this user (${refusedNow.said}); ` +
        'going on with one connection, one APPEND at a time (slower; a message too large for ' +
        'memory is streamed alone, with the session logged out meanwhile)',
    );
  }
  client.off('error', ignore);
  // imapflow's session anew, logged in as the first was (ImapWriter.streamAlone).
  const reopen = async (): Promise<FlowSession> => {
    const sockets: Socket[] = [];
    let opening = true;
    // How far it got, for what counts as the server turning it away (as pipeline.ts's stages).
    let login = 'not yet' as 'not yet' | 'begun' | 'passed';
    const again = createSession(
      sockets,
      () => undefined,
      () => opening,
      (failure) => {
        if (failure === null) login = 'passed';
      },
      () => {
        login = 'begun';
      },
    );
    again.on('error', ignore);
    try {
      await again.connect();
    } catch (thrown) {
      again.close();
      // A BYE that refused the login's credentials, which imapflow reports as its connection closed.
      const err = flow.loginRefusalOf(again) ?? thrown;
      const e = closedAfterGreeting(again, err, opts) ?? mapConnectError(err, { ...opts, secrets });
      // The server turning this login away, as pipeline.ts names it for its own connections
      // (ImapWriter.loginAlone tries only that again): a NO or BYE to the login, a BYE or a close
      // in place of the greeting (right after our logout, most likely the server still counting
      // the connection logged out). A close without BYE after the greeting is a drop.
      const greeted = greetedBy(again);
      const unheard = !greeted && again.byeReason === undefined && closedUnheard(err);
      const beforeTls = !greeted && security.secure === true && closedBeforeTls(err);
      const atConnect = greeted ? null : refusedAtConnect(err);
      const said = refusedLogin(err)
        ? (e.context.serverResponse ?? 'NO')
        : again.byeReason !== undefined && (!greeted || login === 'begun')
          ? redact(`BYE ${again.byeReason}`, secrets).slice(0, 200)
          : unheard
            ? 'closed the connection before greeting it'
            : beforeTls
              ? 'closed the connection before the TLS handshake'
              : atConnect !== null
                ? AT_CONNECT_WORDS[atConnect]
                : null;
      throw said === null ? e : new TurnedAway(e, said, unheard || beforeTls || atConnect !== null);
    } finally {
      opening = false;
    }
    again.off('error', ignore);
    return { client: again, sockets };
  };
  return new ImapWriter(
    client,
    flow,
    log,
    secrets,
    socketTimeout,
    pipeline,
    (mode) => PipelinedAppender.open(opts, connectTimeoutMs, log, mode, secrets),
    `IMAP server ${opts.host}:${opts.port}`,
    opts.appendConnections,
    flowSockets,
    secondRefused,
    reopen,
    limitNo,
  );
}

/** imapflow's connection was greeted: its greeting kept, or its login state already set past it. */
function greetedBy(client: ImapFlow): boolean {
  return client.greeting !== undefined || client.authenticated !== false;
}

/**
 * imapflow's connect() failed on a close without BYE after the server greeted the connection (in
 * STARTTLS, the login, ID or NAMESPACE): a drop, as such a close at our APPEND connection's login
 * is, retried as one (then exit 4 for migrate). imapflow names every close before connect() is
 * done ClosedAfterConnect*, which connect-hints.ts takes for a close before the greeting: "did
 * not greet, check the port", or on a port that greeted (this very connection) a connection
 * turned away (75). So it is worded here, without imapflow's error as its cause. Null otherwise.
 */
function closedAfterGreeting(client: ImapFlow, err: unknown, t: { host: string; port: number }): PopsyncError | null {
  if (!greetedBy(client) || client.byeReason !== undefined || !closedUnheard(err)) return null;
  return new PopsyncError(
    'connection',
    `IMAP server ${t.host}:${t.port} closed the connection after greeting it, before the session was set up ` +
      '(no reason given)',
  );
}

/**
 * imapflow's connect() failed before any greeting: a BYE in its place, or a close without a word
 * (with implicit TLS, also one before the handshake), or the connection refused or reset at
 * connect (a limit enforced below the protocol: connect-hints.ts refusedAtConnect).
 */
function turnedAwayAtGreeting(client: ImapFlow, err: unknown, implicitTls: boolean): boolean {
  return (
    !greetedBy(client) &&
    (client.byeReason !== undefined ||
      closedUnheard(err) ||
      (implicitTls && closedBeforeTls(err)) ||
      refusedAtConnect(err) !== null)
  );
}

/** An imapflow session and its sockets (the plain one, and TLS over it after STARTTLS). */
interface FlowSession {
  client: ImapFlow;
  sockets: Socket[];
}

class ImapWriter implements ImapSink {
  readonly capabilities: ReadonlySet<string>;
  private dead: PopsyncError | null = null;
  /**
   * imapflow ended the session over a response past SESSION_LIMITS: what every operation then
   * fails with, a protocol error (exit 4) rather than a lost connection the engine would open
   * again, to the same server, to be sent the same.
   */
  private overLimit: PopsyncError | null = null;
  private closed = false;
  private chain: Promise<unknown> = Promise.resolve();
  private busy = false;
  /** Last time imapflow's own connection carried a command (pipelined APPENDs do not). */
  private lastUse = Date.now();
  /** A streamed batch is running: the serial slot is taken, imapflow's socket is idle. */
  private pipelining = false;
  /** Set by a pipelined batch so serial() does not count it as use of imapflow's connection. */
  private lastUseOverride: number | null = null;
  private keepalive: NodeJS.Timeout | null = null;
  /** Pipelined batches handed over whose replies are still awaited (outside the serial slot). */
  private readonly replying = new Set<Promise<AppendOutcome[]>>();
  private readonly counts = { pipelined: 0, imapflow: 0, streamed: 0, multiappend: 0 };
  /** Per folder and UIDVALIDITY, the highest UID an APPENDUID of this session has named. */
  private readonly lastAppendUid = new Map<string, number>();
  /** Per folder and UIDVALIDITY, the highest UIDNEXT a STATUS of this session announced. */
  private readonly uidNextSeen = new Map<string, number>();
  /** Folders whose kept flags were read back this session (reportRefusedFlags). */
  private readonly flagsChecked = new Set<string>();
  /**
   * formatFlag's output per flag list given (formattedFlags): routing hands every copy that
   * neither X-Status nor a rule adds to one of two lists for the run (mapping/rules.ts), so
   * formatting them again and a new array per message was ~2.6 ms per 10,000 messages read.
   */
  private readonly formatted = new WeakMap<readonly string[], string[]>();
  /** Our APPEND connection for file bodies when there is no pipelined one; opened on first use. */
  private streamer: PipelinedAppender | null = null;
  /** Why the server allows no streaming connection (file bodies are then refused), or null. */
  private streamerUnsupported: string | null = null;
  /** Takes the sink's listeners off the current imapflow session (watch()). */
  private detach: () => void;
  /** Why the server allows this sink one connection (ImapSink.oneConnection), or null. */
  readonly oneConnection: string | null;
  /** The pipelined connection, and the further ones folders get (append-pool.ts); null without one. */
  private readonly pool: AppendPool | null;

  constructor(
    private client: ImapFlow,
    /** imapflow's encoders, for the APPEND connection to name and flag as imapflow does. */
    private readonly flow: ImapflowAdapter,
    private readonly log: Logger,
    /** Every form of the login secrets sent so far; grows when the APPEND connection logs in later. */
    private readonly secret: readonly string[],
    private readonly socketTimeout: number,
    pipeline: PipelinedAppender | null = null,
    private readonly openAppender: (mode: 'pipelined' | 'streaming') => Promise<PipelinedAppender> = () =>
      Promise.reject(new Error('no pipeline')),
    private readonly server = 'the IMAP server',
    /** APPEND connections at most, one folder on each at a time (append-pool.ts). */
    appendConnections = 1,
    /** imapflow's sockets, released at close() so its LOGOUT's reply keeps no process waiting. */
    private flowSockets: readonly Socket[] = [],
    /** Why the server refused the APPEND connection though imapflow's was let in; no streaming one either. */
    secondRefused: string | null = null,
    /** imapflow's session anew, for streamAlone; null where the sink cannot log in again. */
    private readonly reopen: (() => Promise<FlowSession>) | null = null,
    /** The code of the NO that refused a second connection for the limit (ImapOptions.oneConnection). */
    private readonly limitNo: string | undefined = undefined,
  ) {
    this.streamerUnsupported = secondRefused;
    this.oneConnection = secondRefused;
    this.pool = pipeline && new AppendPool(pipeline, appendConnections, () => openAppender('pipelined'), log);
    this.capabilities = new Set(client.capabilities.keys());
    // imapflow keeps APPENDLIMIT's value apart from its name; plans need the number.
    const limit = client.capabilities.get('APPENDLIMIT');
    if (typeof limit === 'number' && limit > 0) (this.capabilities as Set<string>).add(`APPENDLIMIT=${limit}`);
    this.detach = this.watch(client);
    // imapflow's inactivity timer also fires while *we* are idle (the engine fetching a large
    // POP3 message), and then closes a healthy session. A NOOP when we have been quiet for a
    // third of it keeps the session and still lets the timer catch a silent server mid-command.
    const every = Math.max(100, Math.floor(socketTimeout / 3));
    this.keepalive = setInterval(() => {
      if (this.dead || this.closed || Date.now() - this.lastUse < every) return;
      if (this.pipelining) {
        // Seen on Dovecot: 20,000 pipelined APPENDs left imapflow's session silent for 60 s and
        // its timer closed it. The streamed batch does not use imapflow, so a NOOP may go now.
        this.lastUse = Date.now();
        this.client.noop().catch(() => {});
        return;
      }
      if (this.busy) return;
      this.serial('NOOP', () => this.client.noop()).catch(() => {});
    }, every);
    this.keepalive.unref();
  }

  /**
   * A session's end is the sink's, unless streamAlone ended it on purpose: the function returned
   * takes the listeners off (an 'error' is still taken, so none can kill the process).
   */
  private watch(client: ImapFlow): () => void {
    const onError = (err: unknown): void => {
      if (isOverLimit(err) && this.overLimit === null)
        this.overLimit = new PopsyncError(
          'protocol',
          `${this.server} sent a response longer than popsync's IMAP session takes ` +
            `(${(err as Error).message}); popsync asks for nothing so long`,
          {},
          { cause: err },
        );
      this.markDead(this.overLimit ?? mapCommandError(err, 'session', undefined, this.secret));
    };
    const onClose = (): void => {
      if (!this.closed) {
        const why = client.byeReason ? `server said BYE: ${client.byeReason}` : 'connection closed';
        this.markDead(new PopsyncError('connection', `IMAP connection lost (${why})`));
      }
    };
    client.on('error', onError);
    client.on('close', onClose);
    return () => {
      client.off('error', onError);
      client.off('close', onClose);
      client.on('error', () => undefined);
    };
  }

  ensureFolder(path: string): Promise<FolderStatus> {
    return this.serial(`ensureFolder "${path}"`, async () => {
      const levels = this.levelsOf(path);
      const existing = await this.statusOrNull(levels, path);
      if (existing) return existing;
      // Level by level, so parents exist on servers that do not create them implicitly.
      for (let depth = 1; depth <= levels.length; depth++) {
        await this.createLevel(levels.slice(0, depth), path);
      }
      const st = await this.statusOrNull(levels, path);
      if (!st)
        throw new PopsyncError('server', `IMAP folder "${path}" still does not exist after CREATE`, { folder: path });
      return st;
    });
  }

  status(path: string): Promise<FolderStatus> {
    return this.serial(`STATUS "${path}"`, async () => {
      const levels = this.levelsOf(path);
      const st = await this.statusOrNull(levels, path);
      if (!st)
        throw new PopsyncError('server', `IMAP folder "${path}" does not exist`, {
          folder: path,
          responseCode: 'NONEXISTENT',
        });
      return st;
    });
  }

  get appendCounts(): { pipelined: number; imapflow: number; streamed: number; multiappend: number } {
    return { ...this.counts };
  }

  /**
   * A server assigns UIDs in strictly ascending order (RFC 3501 2.3.1.1), so an APPENDUID that
   * is not above every earlier one of this session, or below the UIDNEXT a STATUS announced,
   * names a message that may already have that UID: one of the two copies could never be
   * found again. Seen: a server answering UID 7 to every
   * APPEND. It is the server's fault, and nothing of it may reach the journal.
   */
  private ascending(
    path: string,
    onOutcome?: (index: number, outcome: AppendOutcome) => void,
  ): (index: number, outcome: AppendOutcome) => void {
    // The UIDNEXTs announced before this batch was handed over: a STATUS while it is outstanding
    // (another batch's, in the engine's window) may already count its copies.
    const announcedBefore = new Map(this.uidNextSeen);
    // The key of the UIDVALIDITY seen last, and that UIDNEXT: a batch's copies share one, and a
    // key made and looked up afresh for each was a bigint formatted and a new string per copy.
    let validity: bigint | null = null;
    let key = '';
    let announced: number | undefined;
    return (index, outcome) => {
      if (outcome.ok && outcome.uid !== null && outcome.uidValidity !== null) {
        if (outcome.uidValidity !== validity) {
          validity = outcome.uidValidity;
          key = `${validity}/${path}`;
          announced = announcedBefore.get(key);
        }
        const last = this.lastAppendUid.get(key);
        const why =
          last !== undefined && outcome.uid <= last
            ? `after it had already given UID ${last}; UIDs of new messages must ascend`
            : announced !== undefined && outcome.uid < announced
              ? `below the UIDNEXT ${announced} it had announced, so the UID may belong to an older message`
              : null;
        if (why !== null) {
          throw new PopsyncError(
            'protocol',
            `${this.server} gave UID ${outcome.uid} in "${path}" to a new message ${why}`,
            {
              folder: path,
              hint:
                'the server is at fault: two messages cannot share a UID. That message is not recorded ' +
                'as copied; the next run looks for it in the destination',
            },
          );
        }
        this.lastAppendUid.set(key, outcome.uid);
      }
      onOutcome?.(index, outcome);
    };
  }

  /**
   * The serial slot covers only what uses imapflow's connection (the CLOSE, the one-at-a-time
   * fallback) and the hand-over of a batch to the pipelined connection. That batch's replies
   * are awaited outside it, so the engine's next batch can be handed over, and written down the
   * same connection, while they are outstanding (its intent is journaled before it calls).
   */
  appendBatch(
    path: string,
    items: AppendRequest[],
    given?: (index: number, outcome: AppendOutcome) => void,
  ): Promise<AppendOutcome[]> {
    const onOutcome = this.ascending(path, given);
    let levels: string[] = [];
    const handedOver = this.serial(`APPEND to "${path}"`, async () => {
      levels = this.levelsOf(path);
      return this.appendNow(path, levels, items, onOutcome);
    });
    return handedOver.then(async (r) => {
      let outcomes: AppendOutcome[];
      if (Array.isArray(r)) outcomes = r;
      else {
        this.replying.add(r.replies);
        try {
          outcomes = await this.replies(`APPEND to "${path}"`, r.replies);
        } finally {
          this.replying.delete(r.replies);
        }
      }
      const flagged = outcomes.some((o, i) => o.ok && o.uid !== null && items[i]!.flags.length > 0);
      // Only then: a serial() call counts as use of imapflow's connection (its keepalive waits).
      if (flagged && !this.flagsChecked.has(path)) {
        // Best effort: the copies are stored whatever happens to this check.
        await this.serial(`FETCH flags from "${path}"`, () =>
          this.reportRefusedFlags(path, levels, items, outcomes),
        ).catch(() => {});
      }
      return outcomes;
    });
  }

  /** A pipelined batch's outcomes; its failure mapped as serial() maps one (a drop ends the sink). */
  private async replies(what: string, replies: Promise<AppendOutcome[]>): Promise<AppendOutcome[]> {
    try {
      return await replies;
    } catch (err) {
      const mapped = err instanceof PopsyncError ? err : mapCommandError(err, what, undefined, this.secret);
      if (mapped.kind === 'connection') throw this.markDead(mapped);
      throw mapped;
    }
  }

  /**
   * A server keeps on an appended message only the flags its PERMANENTFLAGS allow (a keyword
   * like $Migrated needs `\*`) and says nothing about the others. So, once per folder and
   * session, the flags of the batch's copies are read back and those missing are named in a
   * warning. Not from PERMANENTFLAGS itself: popsync only EXAMINEs, and Dovecot reports an
   * empty list for a read-only selection.
   */
  private async reportRefusedFlags(
    path: string,
    levels: string[],
    items: AppendRequest[],
    outcomes: AppendOutcome[],
  ): Promise<void> {
    if (this.flagsChecked.has(path)) return;
    const asked = new Map<number, string[]>();
    outcomes.forEach((o, i) => {
      if (o.ok && o.uid !== null && items[i]!.flags.length > 0) asked.set(o.uid, items[i]!.flags);
    });
    if (asked.size === 0) return;
    this.flagsChecked.add(path);
    const refused = new Set<string>();
    try {
      await this.open(levels, path);
      for (const set of uidSets([...asked.keys()])) {
        for await (const m of this.client.fetch(set, { uid: true, flags: true }, { uid: true })) {
          const kept = new Set([...(m.flags ?? [])].map((f) => f.toLowerCase()));
          for (const f of asked.get(m.uid) ?? []) if (!kept.has(f.toLowerCase())) refused.add(f);
        }
      }
    } catch (err) {
      // The copies are stored either way; a session that died here fails the next command.
      this.log.debug({ folder: path, err: String(err) }, 'could not read back the flags of appended copies');
      return;
    }
    if (refused.size > 0) {
      const names = [...refused].join(' ');
      this.log.warn(
        { folder: path, flags: [...refused] },
        `${this.server} did not keep ${names} on the copies in "${path}" (not among the flags it stores ` +
          `there); the copies arrived without ${refused.size === 1 ? 'it' : 'them'}`,
      );
    }
  }

  /** The outcomes, or for a batch handed to the pipelined connection the promise of them. */
  private async appendNow(
    path: string,
    levels: string[],
    items: AppendRequest[],
    onOutcome: (index: number, outcome: AppendOutcome) => void,
  ): Promise<AppendOutcome[] | { replies: Promise<AppendOutcome[]> }> {
    // Appending to the open mailbox makes imapflow chase the new message's sequence number
    // (NOOP, and SEARCH without UIDPLUS) after every APPEND. One CLOSE is cheaper. Also before
    // a pipelined batch: imapflow would otherwise answer STATUS of it from a stale selection.
    const closed = this.isSelected(levels);
    if (closed) await this.client.mailboxClose();
    if (items.length === 0) return [];
    // One indexed pass, not a callback per message for each question (and a NUL looked for only
    // where the server cannot take it in a binary literal).
    const binary = this.pool?.capabilities.has('BINARY') ?? false;
    let hasNul = false;
    let bytes = 0;
    for (let i = 0; this.pool && i < items.length; i++) {
      const body = items[i]!.body;
      bytes += bodySize(body);
      if (!binary && !hasNul) hasNul = bodyHasNul(body);
    }
    if (this.pool && (binary || !hasNul)) {
      const pipeline = await this.pool.forFolder(path, bytes);
      // Handing over is no use of imapflow's connection: its keepalive must still come.
      if (!closed) this.lastUseOverride = this.lastUse;
      return { replies: this.appendPipelined(path, levels, items, onOutcome, pipeline) };
    }
    if (items.some((it) => isFileBody(it.body))) {
      const streamer = await this.streaming();
      if (streamer) {
        const imapflowUsedAt = this.lastUse;
        this.pipelining = true;
        try {
          return await this.appendPipelined(path, levels, items, onOutcome, streamer);
        } finally {
          this.pipelining = false;
          // serial() is about to mark "used"; imapflow's socket was not, unless a NOOP went meanwhile.
          this.lastUseOverride = Math.max(imapflowUsedAt, this.lastUse);
        }
      }
    }
    const outcomes: AppendOutcome[] = [];
    for (let index = 0; index < items.length; index++) {
      const item = items[index]!;
      if (isFileBody(item.body) && this.oneConnection !== null && this.reopen !== null) {
        // This message and those kept in a file right after it go together, in their order.
        let end = index + 1;
        while (end < items.length && isFileBody(items[end]!.body)) end++;
        const from = index;
        outcomes.push(
          ...(await this.streamAlone(path, levels, items.slice(from, end), (i, o) => onOutcome(from + i, o))),
        );
        index = end - 1;
        continue;
      }
      let outcome: AppendOutcome;
      if (isFileBody(item.body)) {
        // Reading it for imapflow would hold the whole message, whatever its size (invariant 3).
        outcome = { ok: false, error: this.unstreamable(path, item.body.size) };
        outcomes.push(outcome);
        onOutcome(index, outcome);
        continue;
      }
      try {
        this.counts.imapflow++;
        const res = await this.client.append(levels, await bodyBuffer(item.body), item.flags, item.internalDate);
        if (!res)
          throw new PopsyncError('connection', `IMAP APPEND to "${path}": session no longer authenticated`, {
            folder: path,
          });
        // imapflow only sets uidValidity from a real APPENDUID; a UID it guessed via SEARCH
        // (no UIDPLUS) comes without one and is not an identity we can journal.
        outcome =
          res.uid !== undefined && res.uidValidity !== undefined
            ? { ok: true, uid: res.uid, uidValidity: res.uidValidity }
            : { ok: true, uid: null, uidValidity: null };
      } catch (err) {
        if (err instanceof PopsyncError) throw err;
        const failure = classifyAppendError(err, path);
        if (failure.scope === 'session') throw failure.error;
        outcome = { ok: false, error: failure.error };
        this.log.debug({ folder: path, index, serverResponse: failure.error.context.serverResponse }, 'APPEND refused');
      }
      outcomes.push(outcome);
      onOutcome(index, outcome);
    }
    return outcomes;
  }

  /**
   * The batch down the APPEND connection, with imapflow's own encoding of the name and flags,
   * its date format (append-head.ts, the same bytes), so both paths store the same thing, and
   * its APPENDLIMIT pre-check.
   */
  private async appendPipelined(
    path: string,
    levels: string[],
    items: AppendRequest[],
    onOutcome: (index: number, outcome: AppendOutcome) => void,
    pipeline: PipelinedAppender,
  ): Promise<AppendOutcome[]> {
    const mailbox = this.flow.encodePath(this.client, this.flow.normalizePath(this.client, levels));
    const limit = this.client.capabilities.get('APPENDLIMIT');
    const prepared = items.map((item): PipelineItem | { skip: AppendOutcome } => {
      if (typeof limit === 'number' && limit < bodySize(item.body)) {
        const err = Object.assign(new Error(`Message content too big for APPENDLIMIT=${limit}`), {
          serverResponseCode: 'APPENDLIMIT',
        });
        return { skip: { ok: false, error: classifyAppendError(err, path).error } };
      }
      return {
        body: item.body,
        hasNul: bodyHasNul(item.body),
        flags: this.formattedFlags(path, item.flags),
        date: item.internalDate ? internalDateTime(item.internalDate) : undefined,
      };
    });
    const sent: AppendCounts = { appended: 0, multiappended: 0 };
    try {
      return await pipeline.append(mailbox, path, prepared, onOutcome, sent);
    } finally {
      this.counts[this.pool?.has(pipeline) ? 'pipelined' : 'streamed'] += sent.appended;
      this.counts.multiappend += sent.multiappended;
    }
  }

  /**
   * The flags as APPEND sends them, shared by every message given the same list (read only
   * from here on: append-head.ts). A list with a flag IMAP cannot carry is formatted each time,
   * so each message that had it says so in the log as before.
   */
  private formattedFlags(path: string, given: readonly string[]): string[] {
    if (given.length === 0) return NO_FLAGS;
    const known = this.formatted.get(given);
    if (known !== undefined) return known;
    const flags: string[] = [];
    let dropped = false;
    for (const f of given) {
      const formatted = f ? this.flow.formatFlag(f) : false;
      if (formatted) flags.push(formatted);
      else if (f) {
        dropped = true;
        this.log.info({ folder: path, flag: f }, 'Dropped a flag IMAP cannot carry');
      }
    }
    if (!dropped) this.formatted.set(given, flags);
    return flags;
  }

  /**
   * Messages kept in a file on a server that allows one connection per user: imapflow's append
   * takes a Buffer (holding the message whole, invariant 3), and a second connection is refused.
   * So, with nothing of imapflow's in flight (the serial slot is ours, and such a sink has no
   * pipelined batches), imapflow's session logs out and the server closes it; a streaming
   * connection logs in alone, sends them from their files as any APPEND connection does, logs
   * out; and imapflow's session logs in again. Exactly once as on every path: their intents were
   * journaled before the batch came (the engine), each outcome is reported as its reply arrives,
   * and a drop or a failed login from the logout on rejects ('connection': serial() sees
   * imapflow's session unusable and ends the sink), leaving what was not reported to be settled by
   * content, as after a drop of a pipelined batch. Costs two logins and two logouts per such run of
   * messages, which are rare (over 4 MB and past the room their batch has left under --batch-mb).
   */
  private async streamAlone(
    path: string,
    levels: string[],
    items: AppendRequest[],
    onOutcome: (index: number, outcome: AppendOutcome) => void,
  ): Promise<AppendOutcome[]> {
    this.detach();
    await this.logout(true);
    let streamer: PipelinedAppender;
    try {
      streamer = await this.loginAlone(() => this.openAppender('streaming'));
    } catch (err) {
      if (!(err instanceof TurnedAway || err instanceof PipelineUnsupported)) throw err;
      // The session back first: only a server that lets it in again turned away the streaming
      // connection alone (the one connection someone else's, a mail app of the user's, or it
      // cannot stream), which fails these messages alone. One that refuses the session too is
      // down or restarting (every connect refused or closed unheard): a lost connection, thrown
      // from here, whose intents the engine settles by content on reconnect, never counted as
      // these messages' own failure for an outage.
      await this.resume();
      const why = err instanceof TurnedAway ? `it turned away the connection for them too: ${err.said}` : err.message;
      this.log.warn(
        { folder: path, messages: items.length },
        `could not stream messages too large for memory (${why})`,
      );
      return items.map((it, i) => {
        const o: AppendOutcome = { ok: false, error: this.unstreamable(path, bodySize(it.body), why) };
        onOutcome(i, o);
        return o;
      });
    }
    let outcomes: AppendOutcome[];
    try {
      outcomes = await this.appendPipelined(path, levels, items, onOutcome, streamer);
    } catch (err) {
      streamer.destroy();
      // Not a drop (an outcome refused: the server's UIDs): the session comes back so the error
      // keeps its kind; otherwise serial() finds the session gone and ends the sink.
      if (err instanceof PopsyncError && err.kind !== 'connection') await this.resume().catch(() => undefined);
      throw err;
    }
    await streamer.logout();
    await this.resume();
    this.log.debug({ folder: path, messages: items.length }, 'streamed alone between two imapflow sessions');
    return outcomes;
  }

  /** imapflow's session logged in again after streamAlone logged it out. */
  private async resume(): Promise<void> {
    const session = await this.loginAlone(this.reopen!);
    this.client = session.client;
    this.flowSockets = session.sockets;
    this.detach = this.watch(session.client);
  }

  /**
   * A login just after our other connection logged out, tried again a few times while refused
   * (TurnedAway): the server may count the old one a moment longer (Dovecot hears of a disconnect
   * through another process; a firewall's connlimit, of a close). Nothing else is tried again
   * here: a timeout, a reset after the greeting or a TLS failure is no sign of that count, and each
   * try of a silent server would hold the serial slot a whole timeout; such an error goes the way
   * of any lost connection (serial() ends the sink, the engine reconnects). Nor is a NO that says
   * the credentials are wrong ([AUTHENTICATIONFAILED], or no code) where the server words its limit
   * otherwise ([UNAVAILABLE], a BYE, a close): the password was changed meanwhile, or the token
   * command's token refused, which no try lifts and each try would count against the account
   * (lockouts, fail2ban). It ends the run as a refused first login does: 'auth', exit 3, and no
   * other login is tried.
   *
   * A server that words its limit as such a NO (limitNo: it refused the APPEND connection's login
   * with it while imapflow's session, logged in with the same credentials, was open, so there it
   * could not mean the password) is the case no wording tells apart: here nothing of ours is logged
   * in, and the same NO is the limit still counting the connection just closed, or the password
   * changed meanwhile. It gets one more try, after the whole of the pauses (1.4 s, far past the
   * moment a server takes to count a close), and is then taken at its word: 'auth', exit 3, with
   * a hint naming the limit. Two failed logins at most, where four tries for each of the two
   * logins made eight, past many lockout thresholds (fail2ban's default is five).
   */
  private async loginAlone<T>(login: () => Promise<T>): Promise<T> {
    // Those NOs are counted on their own: a try turned away otherwise before (a close before the
    // greeting, a refused connect) is no failed login, and must not use up the limit NO's second.
    // On the last try it is taken at its word too, as a TurnedAway would fail a streamed message
    // alone and let the session's login after it add failed logins of its own.
    let limitNos = 0;
    for (let attempt = 1; ; attempt++) {
      try {
        return await login();
      } catch (err) {
        const credentials = err instanceof TurnedAway && err.kind === 'auth';
        if (credentials) {
          const asLimit = (err.context.responseCode ?? '') === this.limitNo;
          if (asLimit) limitNos++;
          if (!asLimit || limitNos >= LIMIT_NO_TRIES || attempt >= ALONE_LOGIN_TRIES)
            throw new PopsyncError(
              err.kind,
              err.message,
              asLimit
                ? {
                    ...err.context,
                    hint:
                      'Check the IMAP user name and password; the server words its limit on connections the ' +
                      'same way (it refused a second connection so): if the password is right, another client ' +
                      'of this user may hold the one connection',
                  }
                : err.context,
              { cause: err.cause },
            );
        }
        if (attempt >= ALONE_LOGIN_TRIES || !(err instanceof TurnedAway)) throw err;
        this.log.debug({ attempt, err: err.message }, 'login after a logout refused; trying again');
        await (credentials ? pause(LIMIT_NO_PAUSE_MS) : turnedAwayPause(attempt));
      }
    }
  }

  /** The refusal of a message kept in a file when nothing can stream it. */
  private unstreamable(path: string, size: number, why = this.streamerUnsupported): PopsyncError {
    return new PopsyncError(
      'message',
      `IMAP APPEND to "${path}": this message (${size} bytes) is too large to hold in memory, and ` +
        `${this.server} allows no APPEND connection of popsync's own to stream it ` +
        `(${why ?? 'not opened'}); it was not sent`,
      {
        folder: path,
        hint:
          'popsync streams from a temporary file a message over 4 MB that does not fit in its batch ' +
          '(--batch-mb); set skip_larger_than (config file) ' +
          'to skip such messages quietly, or copy them another way',
      },
    );
  }

  /** A connection that can stream a file body, or null when the server allows none. */
  private async streaming(): Promise<PipelinedAppender | null> {
    if (this.streamerUnsupported !== null) return null;
    if (this.streamer?.usable) return this.streamer;
    const broken = this.streamer?.protocolFailure;
    if (broken) throw broken;
    this.streamer?.destroy();
    this.streamer = null;
    try {
      this.streamer = await this.openAppender('streaming');
      return this.streamer;
    } catch (err) {
      if (!(err instanceof PipelineUnsupported)) throw err;
      this.streamerUnsupported = err.message;
      this.log.warn(
        { reason: err.message },
        'messages too large for memory are refused: the server allows no APPEND connection of our own to stream them',
      );
      return null;
    }
  }

  listSince(path: string, sinceUid: number, belowUid?: number): Promise<DestinationMessage[]> {
    return this.serial(`FETCH from "${path}"`, async () => {
      const levels = this.levelsOf(path);
      // Always re-select: EXISTS from other writers is only learned at SELECT or a NOOP.
      await this.open(levels, path);
      const from = Math.max(1, Math.floor(sinceUid));
      const below = belowUid === undefined ? Infinity : Math.floor(belowUid);
      if (below <= from) return [];
      // An empty mailbox answers "1:*" with NO on some servers; nothing to list anyway.
      if (this.client.mailbox && this.client.mailbox.exists === 0) return [];
      const range = below === Infinity ? `${from}:*` : `${from}:${below - 1}`;
      // Streamed, keeping three fields a message: fetchAll held every response and its parsed
      // ENVELOPE until the last (10,000 automated notices: about 40 MB, a folder's size unbounded).
      const out: DestinationMessage[] = [];
      for await (const m of this.client.fetch(range, { uid: true, size: true, envelope: true }, { uid: true })) {
        // "N:*" also matches the highest UID when every UID is below N (RFC 3501 6.4.8).
        if (m.uid >= from && m.uid < below)
          out.push({ uid: m.uid, size: m.size ?? 0, messageId: ownString(m.envelope?.messageId) });
      }
      return out;
    });
  }

  fetchBody(path: string, uid: number): Promise<Buffer> {
    return this.serial(`FETCH body from "${path}"`, async () => {
      const levels = this.levelsOf(path);
      if (!this.isSelected(levels)) await this.open(levels, path);
      // `source` is BODY.PEEK[]: the exact stored bytes, and \Seen stays as it was.
      const msg = await this.client.fetchOne(String(uid), { uid: true, source: true }, { uid: true });
      if (!msg || !msg.source) {
        throw new PopsyncError('server', `IMAP folder "${path}" has no message with UID ${uid}`, {
          folder: path,
          messageNumber: uid,
        });
      }
      return msg.source;
    });
  }

  scanHeaders(
    path: string,
    which: { uids: readonly number[] } | { since: number },
    each: (m: StoredHeader) => void,
  ): Promise<{ uidValidity: bigint } | null> {
    return this.serial(`FETCH headers from "${path}"`, async () => {
      const levels = this.levelsOf(path);
      // Always re-select: EXISTS from other writers is only learned at SELECT or a NOOP. Whether
      // the folder exists is asked (STATUS) only when EXAMINE fails: asked first, it was a round
      // trip before every scan (adoption, the check before DELE) of a folder that nearly always does.
      try {
        await this.open(levels, path);
      } catch (err) {
        if (!this.client.usable || (await this.statusOrNull(levels, path)) !== null) throw err;
        return null;
      }
      // The UIDVALIDITY of the session that FETCHes: the UIDs below belong to it.
      const uidValidity = this.client.mailbox ? this.client.mailbox.uidValidity : undefined;
      if (uidValidity === undefined)
        throw new PopsyncError('protocol', `IMAP server gave no UIDVALIDITY when opening "${path}"`, { folder: path });
      const since = 'since' in which ? Math.max(1, Math.floor(which.since)) : null;
      const wanted = 'uids' in which ? new Set(which.uids) : null;
      const sets = wanted !== null ? uidSets([...wanted]) : [`${since}:*`];
      for (const set of sets) {
        // fetch() hands over one message at a time (backpressure), so nothing accumulates.
        for await (const m of this.client.fetch(set, { uid: true, size: true, headers: true }, { uid: true })) {
          // "N:*" also answers the highest UID when every UID is below N (RFC 3501 6.4.8).
          if (wanted !== null ? !wanted.has(m.uid) : m.uid < since!) continue;
          each({ uid: m.uid, size: m.size ?? 0, header: m.headers ?? Buffer.alloc(0) });
        }
      }
      return { uidValidity };
    });
  }

  readBodies(path: string, uids: ReadonlyArray<{ uid: number; size: number }>, reader: BodyReader): Promise<void> {
    return this.serial(`FETCH bodies from "${path}"`, async () => {
      const levels = this.levelsOf(path);
      if (!this.isSelected(levels)) await this.open(levels, path);
      const small = uids.filter((u) => u.size <= BODY_PIECE_BYTES).map((u) => u.uid);
      for (const set of uidSets(small)) {
        for await (const m of this.client.fetch(set, { uid: true, source: true }, { uid: true })) {
          if (!m.source) continue;
          reader.chunk(m.uid, m.source);
          reader.end(m.uid);
        }
      }
      // A large message in pieces: one round trip each, but memory stays at one piece.
      for (const { uid } of uids.filter((u) => u.size > BODY_PIECE_BYTES)) {
        for (let start = 0; ; start += BODY_PIECE_BYTES) {
          const m = await this.client.fetchOne(
            String(uid),
            { uid: true, source: { start, maxLength: BODY_PIECE_BYTES } },
            { uid: true },
          );
          if (!m) break;
          const piece = m.source ?? Buffer.alloc(0);
          if (piece.length > 0) reader.chunk(uid, piece);
          if (piece.length < BODY_PIECE_BYTES) {
            reader.end(uid);
            break;
          }
        }
      }
    });
  }

  specialUse(): Promise<Map<string, string>> {
    return this.serial('LIST (SPECIAL-USE)', async () => {
      const ns = this.client.namespace;
      const roles = new Map<string, string>();
      for (const f of await this.client.list({ listOnly: true })) {
        // imapflow fills `specialUse` only without listOnly (it returns before assigning it), so
        // the role is read from the LIST attributes themselves, as the server sent them.
        const role = specialUseRoleOf(f.flags);
        if (role === null || roles.has(role)) continue;
        // Back to the engine's naming: no namespace prefix, '/' between levels.
        let name = f.path;
        if (ns?.prefix && name.startsWith(ns.prefix)) name = name.slice(ns.prefix.length);
        const delimiter = f.delimiter ?? ns?.delimiter;
        const levels = delimiter ? name.split(delimiter) : [name];
        if (levels.some((l) => l.includes('/') || l === '')) continue; // not expressible as a '/' path
        // A name the server sent as a literal may hold CR, LF or NUL, which no command can carry
        // back: used, it failed as a lost connection, retried, then "run again later" (exit 4).
        // The characters a config's folder name may not hold (mapping/rules.ts folderNameProblem).
        // biome-ignore lint/suspicious/noControlCharactersInRegex: finding control characters is the point
        if (/[\x00-\x1f\x7f]/.test(name)) continue;
        roles.set(role, levels.join('/'));
      }
      return roles;
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.keepalive) clearInterval(this.keepalive);
    // Let a running operation finish rather than cut it mid-APPEND, pipelined batches included.
    await this.chain.catch(() => {});
    await Promise.allSettled([...this.replying]);
    // Every connection's LOGOUT is written and none of their replies awaited (each was a round trip).
    void this.logout();
    await Promise.all([this.pool?.close(), this.streamer?.close()]);
  }

  /**
   * imapflow's LOGOUT, its reply not awaited: every copy is confirmed and journaled before a sink
   * closes (the operations above settled first), so only the end of the run would wait for it, a
   * round trip (imapflow's own logout() also holds the process for up to 10 s of a server that
   * does not answer). So the session is taken from imapflow (unbind(), its public hand-over) and
   * ended as the APPEND connection is (pipeline.ts close()): LOGOUT, then our end of the stream.
   * The reply is read and dropped; the sockets no longer keep the process alive (a write still
   * pending does, so the LOGOUT leaves), and are destroyed if the server never closes its end.
   * Resolves once they are closed: close() does not wait, streamAlone does (`waited`).
   */
  private logout(waited = false): Promise<void> {
    const client = this.client;
    if (this.dead || !client.usable) {
      client.close();
      return Promise.resolve();
    }
    let session: ReturnType<ImapFlow['unbind']>;
    try {
      session = client.unbind();
    } catch (err) {
      this.log.debug({ err }, 'IMAP LOGOUT not sent; closing');
      client.close();
      return Promise.resolve();
    }
    const ignore = (): void => undefined;
    // imapflow's listeners went with unbind(): a reset now must not be an unhandled 'error'.
    session.readSocket.on('error', ignore);
    session.writeSocket.on('error', ignore);
    for (const s of this.flowSockets) s.on('error', ignore).unref();
    session.readSocket.resume();
    session.writeSocket.end('Z LOGOUT\r\n');
    const sockets = this.flowSockets;
    const timer = setTimeout(() => {
      for (const s of sockets) s.destroy();
    }, this.socketTimeout);
    // Awaited (streamAlone), the timer is all that may be left to end the wait.
    if (!waited) timer.unref();
    const last = sockets.at(-1);
    // Resolved once the server has closed it: streamAlone's next login must not be counted
    // against a session the server still holds.
    return new Promise<void>((resolve) => {
      if (!last || last.destroyed) {
        clearTimeout(timer);
        client.close();
        return resolve();
      }
      last.once('close', () => {
        clearTimeout(timer);
        // imapflow's own state (the socket is gone already).
        client.close();
        resolve();
      });
    });
  }

  /** Runs one operation after the previous one, with the dead/closed checks and error mapping. */
  private serial<T>(what: string, fn: () => Promise<T>): Promise<T> {
    const run = async (): Promise<T> => {
      if (this.dead) throw this.dead;
      if (this.closed) throw new PopsyncError('connection', `IMAP ${what}: the IMAP session was closed`);
      if (!this.client.usable)
        throw this.markDead(new PopsyncError('connection', `IMAP ${what}: connection is no longer usable`));
      this.busy = true;
      try {
        return await fn();
      } catch (err) {
        if (this.overLimit) throw this.overLimit;
        const mapped = err instanceof PopsyncError ? err : mapCommandError(err, what, undefined, this.secret);
        // A refusal leaves the session usable; anything else may have left imapflow mid-command.
        if (mapped.kind === 'connection' || !this.client.usable) throw this.markDead(mapped);
        throw mapped;
      } finally {
        this.busy = false;
        this.lastUse = this.lastUseOverride ?? Date.now();
        this.lastUseOverride = null;
      }
    };
    const p = this.chain.then(run, run);
    this.chain = p.catch(() => {});
    return p;
  }

  private markDead(err: PopsyncError): PopsyncError {
    if (!this.dead) {
      this.dead =
        err.kind === 'connection' || err === this.overLimit
          ? err
          : new PopsyncError('connection', `IMAP session ended after: ${err.message}`, err.context, { cause: err });
      this.log.debug({ err: this.dead }, 'IMAP session is dead');
      if (this.keepalive) clearInterval(this.keepalive);
      this.client.close();
      this.pool?.destroy();
      this.streamer?.destroy();
    }
    // A refused login (streamAlone's) keeps its kind: the engine stops with exit 3 rather than
    // reconnect, which would only send the refused credentials once more.
    return err.kind === 'connection' || err.kind === 'auth' ? err : this.dead;
  }

  private levelsOf(path: string): string[] {
    const levels = folderLevels(path);
    checkLevels(path, levels, this.client.namespace?.delimiter);
    return levels;
  }

  private isSelected(levels: string[]): boolean {
    const mb = this.client.mailbox;
    return !!mb && mb.path === serverName(levels, this.client.namespace);
  }

  private async open(levels: string[], path: string): Promise<void> {
    try {
      await this.client.mailboxOpen(levels, { readOnly: true });
    } catch (err) {
      throw mapCommandError(err, `EXAMINE "${path}"`, path, this.secret);
    }
  }

  /** STATUS, or null when the folder does not exist (imapflow has confirmed that via LIST). */
  private async statusOrNull(levels: string[], path: string): Promise<FolderStatus | null> {
    let st: Awaited<ReturnType<ImapFlow['status']>>;
    try {
      st = await this.client.status(levels, { uidValidity: true, uidNext: true, messages: true });
    } catch (err) {
      if ((err as { code?: string }).code === 'NotFound') return null;
      throw mapCommandError(err, `STATUS "${path}"`, path, this.secret);
    }
    if (!st) {
      // imapflow answers false both for a refused STATUS and for a lost connection.
      if (!this.client.usable)
        throw new PopsyncError('connection', `IMAP STATUS "${path}": connection lost`, { folder: path });
      return null;
    }
    if (st.uidValidity === undefined || st.uidNext === undefined) {
      throw new PopsyncError('protocol', `IMAP server did not return UIDVALIDITY/UIDNEXT for "${path}"`, {
        folder: path,
      });
    }
    // A new message's UID is at least the UIDNEXT announced before it was appended (others'
    // appends only raise it): the floor for the APPENDUIDs that follow (ascending()).
    const key = `${st.uidValidity}/${path}`;
    this.uidNextSeen.set(key, Math.max(this.uidNextSeen.get(key) ?? 0, st.uidNext));
    return {
      path,
      uidValidity: st.uidValidity,
      uidNext: st.uidNext,
      ...(st.messages === undefined ? {} : { messages: st.messages }),
    };
  }

  private async createLevel(levels: string[], path: string): Promise<void> {
    try {
      const res = await this.client.mailboxCreate(levels);
      if (res.created) this.log.info({ folder: levels.join('/') }, 'created IMAP folder');
    } catch (err) {
      // Servers without RFC 5530 codes answer a CREATE of an existing folder with a bare NO
      // (or a race with another client created it): believe LIST, not the wording.
      if (isRefusal(err) && (await this.listed(levels))) return;
      const e = mapCommandError(err, `CREATE "${levels.join('/')}"`, path, this.secret);
      throw responseCodeOf(err) === 'NOPERM' ? e.with({ hint: 'The IMAP account may not create folders here' }) : e;
    }
  }

  private async listed(levels: string[]): Promise<boolean> {
    const want = serverName(levels, this.client.namespace);
    const all = await this.client.list({ listOnly: true });
    return all.some((f) => f.path === want || (want === 'INBOX' && f.path.toUpperCase() === 'INBOX'));
  }
}
