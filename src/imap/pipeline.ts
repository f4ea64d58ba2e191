/**
 * APPEND on a second, hand-written IMAP connection: pipelined (RFC 7888 LITERAL+ / LITERAL-),
 * batched (RFC 3502 MULTIAPPEND), with UIDs from RFC 4315 APPENDUID where the server gives them.
 *
 * Why hand-written: imapflow keeps one command in flight, sends `{n+}` only up to 4 KiB and has
 * no MULTIAPPEND, so every APPEND waits for its tagged OK (a large one also for '+') and costs
 * the server one transaction: about half of what Dovecot takes, far less on small mail, where
 * the server's per-transaction CPU is the limit. Writing our own commands down imapflow's
 * socket would confuse its parser. So this module owns one more connection, used for APPEND
 * only: each batch goes as MULTIAPPEND commands where offered (append-plan.ts cuts them), else
 * one APPEND per message, all written without waiting for replies, and the tagged replies are
 * read in order as they come back. A literal the server must accept first (no LITERAL+, or
 * over LITERAL-'s 4 KiB) waits for its '+'; everything else keeps flowing.
 *
 * What it reuses from imapflow (its exported `lib/` modules): the command compiler for LOGIN's
 * strings, and the caller hands in the mailbox name already encoded by imapflow's own
 * normalizePath/encodePath, so both connections name the same folder. The APPEND heads are
 * written by append-head.ts with the compiler's quoting rules (the compiler built a token tree
 * and a Buffer per token for each message). Error kinds come from errors.ts, as for imapflow's path.
 *
 * It is also the only way a message kept in a file (too large for memory, engine/spool.ts) can
 * be sent, since imapflow's append takes a Buffer: the literal is streamed from the file. So on
 * a server that offers none of the above the writer still opens this connection, in
 * 'streaming' mode, for such messages: synchronising literals, and no UID where the server
 * gives no APPENDUID.
 *
 * It connects through net/connect.ts and logs in as login.ts decides, like imapflow's connection
 * (same TLS, CA, SNI, mechanism and token source).
 *
 * What it does not do: SELECT, FETCH or anything but APPEND; COMPRESS; reconnects mid-batch (a
 * drop throws 'connection' and unreported outcomes stay unknown, which the engine reconciles by
 * content: a MULTIAPPEND cut off stored all of its messages or none). The password is never
 * logged: only command names are.
 */

import type net from 'node:net';
import { PopsyncError } from '../errors.js';
import type { Logger } from '../log.js';
import { closedBeforeGreeting, openSocket, startTls } from '../net/connect.js';
import { closedBeforeTls, refusedAtConnect } from '../connect-hints.js';
import { noteGreeted } from '../net/greeted.js';
import { redact } from '../net/redact.js';
import {
  appendUids,
  literalModeOf,
  MULTIAPPEND_LIMITS,
  nonSynchronizing,
  planUnits,
  type LiteralMode,
} from './append-plan.js';
import { appendCommand, mailboxArgument, messageHead } from './append-head.js';
import { bodyPieces, bodySize, isFileBody, sendPiece, type MessageBody, whenDrained } from './body.js';
import type { AppendOutcome, ImapOptions } from './types.js';
import {
  loginByeRefusal,
  classifyAppendError,
  isTlsFailure,
  mapConnectError,
  type ImapFlowErrorLike,
} from './errors.js';
import { loadImapflow } from './imapflow-load.js';
import { chooseLogin, credentialsFor, loginSecretForms, mechanismFor, SaslConversation } from './login.js';
import { imapSocketTarget } from './socket-target.js';
import { WriteGather } from './write-gather.js';

/**
 * Unacknowledged literal bytes written before the writer waits for replies. Not what bounds
 * memory: the bodies are the engine's until their batch is settled (its APPEND window holds
 * DEFAULT_APPEND_WINDOW batches of --batch-mb), and writes wait for the socket to drain. So it is
 * set well above that window: at 8 MiB one message of a few MB made the next batch wait a
 * round trip plus the server's work on the last one (seen at 30 ms RTT on every few-MB message
 * of the bench's mix), with the connection idle meanwhile. It still bounds a caller that hands
 * over more than the engine does.
 */
const MAX_IN_FLIGHT_BYTES = 64 * 1024 * 1024;

const LITERAL_WORDS: Record<LiteralMode, string> = {
  plus: 'LITERAL+',
  minus: 'LITERAL-',
  sync: 'synchronising literals',
};

/** The session lacks what the pipelined path needs; the caller falls back to imapflow. */
export class PipelineUnsupported extends Error {}

/**
 * The server turned this connection away: a BYE for a greeting, or the connection closed before
 * one, or refused at connect or reset before a byte (connect-hints.ts refusedAtConnect), or a NO
 * or BYE for the login. The same error (kind, words, context) as before it had a name of its own,
 * so a caller that does not ask keeps its old behaviour (a first connection refused is still
 * "nothing accepts connections there"); writer.ts asks, because a server that just let the same
 * user in on imapflow's connection and turns this one away is limiting connections per user or
 * address, which no retry lifts. A TLS failure, a timeout, a reset after the greeting or a drop
 * at any other point is never this.
 */
export class TurnedAway extends PopsyncError {
  constructor(
    err: PopsyncError,
    /** The server's words (redacted), or what it did when it said nothing. */
    readonly said: string,
    /** The server closed the connection before greeting it: not a word of why (openAgainIfUnheard). */
    readonly unheard = false,
  ) {
    super(err.kind, err.message, err.context, { cause: err.cause, scope: err.scope });
    this.name = 'PopsyncError';
  }
}

/** What the server did, as TurnedAway.said, when it refused or reset a connection at connect. */
export const AT_CONNECT_WORDS = {
  refused: 'refused the connection at connect',
  reset: 'reset the connection before greeting it',
} as const;

/** The pause before a connection closed unheard is opened once more (openAgainIfUnheard). */
const UNHEARD_PAUSE_MS = 1000;

/**
 * After `err` from opening an APPEND connection: when the server closed that connection before
 * greeting it, `open()` once more after a pause, and that second try's outcome (its own
 * TurnedAway, a connection, an error) stands. A close without a word is how some servers turn a
 * connection away, but it is also what a backend restarting or a proxy overloaded does for a
 * moment, and the callers decide much on a refusal: the run's one connection (writer.ts, once per
 * run) or the pool's cap (append-pool.ts). A NO or BYE is the server's verdict and stands at
 * once. Any other error is thrown as it is.
 */
export async function openAgainIfUnheard(
  err: unknown,
  open: () => Promise<PipelinedAppender>,
  log: Logger,
): Promise<PipelinedAppender> {
  if (!(err instanceof TurnedAway) || !err.unheard) throw err;
  log.debug(
    { pauseMs: UNHEARD_PAUSE_MS },
    'IMAP server closed an APPEND connection before greeting it; trying once more',
  );
  await new Promise((resolve) => setTimeout(resolve, UNHEARD_PAUSE_MS));
  try {
    return await open();
  } catch (again) {
    if (!(again instanceof TurnedAway) || !again.unheard) throw again;
    throw new TurnedAway(again, `${again.said}, twice ${UNHEARD_PAUSE_MS / 1000} s apart`, true);
  }
}

interface Tagged {
  tag: string;
  status: 'OK' | 'NO' | 'BAD';
  code: string | undefined;
  line: string;
}

/**
 * The longest response this connection takes, its CRLFs and literals counted. Its replies are
 * short: a tagged OK or NO (a MULTIAPPEND's APPENDUID names at most 100 UIDs, about 1 KiB), a
 * CAPABILITY list (a few hundred bytes), an ALERT, an EXISTS. 64 KiB is room for any of them
 * many times over, and keeps what a server that never ends a line (invariant 3) makes us hold to
 * 64 KiB per connection.
 */
export const MAX_REPLY_BYTES = 64 * 1024;
/**
 * Lines read that no caller has taken yet: the rest of a socket read after the line a caller
 * waited for (a read is at most 64 KiB, so at most 64 KiB of replies wait there in practice), or
 * untagged lines sent while the connection is idle between batches (an alert, a keepalive every
 * few minutes). Past these, the server is flooding us, and the connection fails; each line is
 * counted at least MIN_LINE_COST bytes, about the heap a short string and its slot take.
 */
export const MAX_QUEUED_BYTES = 1024 * 1024;
const MIN_LINE_COST = 64;

/** Response lines off a socket; an untagged line's literals are skipped (we need none). */
class LineReader {
  /** Pieces of the line being read, no CRLF among them yet; searched once each, as they come. */
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  /** Bytes of the response being read, in lines ended by a literal and their literals. */
  private responseBytes = 0;
  private lines: string[] = [];
  private queuedBytes = 0;
  private partial = '';
  private skip = 0;
  private waiter: { resolve: (l: string) => void; reject: (e: Error) => void; timer: NodeJS.Timeout } | null = null;
  private ended: PopsyncError | null = null;
  /** The last untagged BYE read, whether or not a caller took its line. */
  bye: string | null = null;
  /** The session ended because the server closed it (no error, no timeout of ours came first). */
  closedByServer = false;

  constructor(
    private readonly sock: net.Socket,
    readonly timeoutMs: number,
    readonly where: string,
  ) {
    sock.on('data', this.onData);
    sock.on('error', this.onError);
    sock.on('close', this.onClose);
  }

  get usable(): boolean {
    return !this.ended && !this.sock.destroyed;
  }

  /** Why the connection ended, when the server broke the protocol (no drop, no timeout). */
  get protocolFailure(): PopsyncError | null {
    return this.ended?.kind === 'protocol' ? this.ended : null;
  }

  /** Bytes that arrived after the last line handed out (must be none after STARTTLS's OK). */
  get buffered(): number {
    return this.pendingBytes + this.lines.length;
  }

  detach(): void {
    this.sock.off('data', this.onData);
    this.sock.off('error', this.onError);
    this.sock.off('close', this.onClose);
  }

  next(): Promise<string> {
    const line = this.lines.shift();
    if (line !== undefined) {
      this.queuedBytes -= Math.max(line.length + 2, MIN_LINE_COST);
      return Promise.resolve(line);
    }
    if (this.ended) return Promise.reject(this.ended);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.fail(
          new PopsyncError(
            'connection',
            `IMAP ${this.where}: no response within ${this.timeoutMs} ms`,
            {},
            { cause: Object.assign(new Error('timeout'), { code: 'ETIMEOUT' }) },
          ),
        );
        this.sock.destroy();
      }, this.timeoutMs);
      this.waiter = { resolve, reject, timer };
    });
  }

  /**
   * Only the bytes of `chunk` are searched for a line's end, never those held from earlier
   * chunks: a line that comes a byte at a time costs time in proportion to its length.
   */
  private readonly onData = (chunk: Buffer): void => {
    let at = 0;
    while (at < chunk.length && !this.ended) {
      if (this.skip > 0) {
        const n = Math.min(this.skip, chunk.length - at);
        at += n;
        this.skip -= n;
        continue;
      }
      let eol = -1;
      for (let from = at; ; ) {
        const lf = chunk.indexOf(10, from);
        if (lf < 0) break;
        // A CR just before, in this chunk or at the end of the piece held (never in a line before).
        const cr = lf > at ? chunk[lf - 1] === 13 : this.pendingBytes > 0 && this.pending.at(-1)!.at(-1) === 13;
        if (cr) {
          eol = lf;
          break;
        }
        from = lf + 1;
      }
      const end = eol < 0 ? chunk.length : eol + 1;
      if (this.responseBytes + this.pendingBytes + end - at > MAX_REPLY_BYTES) {
        this.overflow('response');
        return;
      }
      if (eol < 0) {
        this.pending.push(chunk.subarray(at));
        this.pendingBytes += chunk.length - at;
        return;
      }
      const piece = chunk.subarray(at, end);
      const raw = this.pendingBytes > 0 ? Buffer.concat([...this.pending, piece]) : piece;
      this.pending = [];
      this.pendingBytes = 0;
      at = end;
      const text = raw.subarray(0, raw.length - 2).toString('utf8');
      const lit = /\{(\d+)\}$/.exec(text);
      if (lit) {
        this.responseBytes += raw.length + Number(lit[1]);
        if (this.responseBytes > MAX_REPLY_BYTES) {
          this.overflow('response');
          return;
        }
        this.partial += text;
        this.skip = Number(lit[1]);
        continue;
      }
      this.responseBytes = 0;
      this.push(this.partial + text);
      this.partial = '';
    }
  };

  /** The server sent more than this connection takes (invariant 3): the connection is spent. */
  private overflow(what: 'response' | 'queue'): void {
    this.lines = [];
    this.queuedBytes = 0;
    this.pending = [];
    this.pendingBytes = 0;
    this.fail(
      new PopsyncError(
        'protocol',
        `IMAP ${this.where}: the server sent ` +
          (what === 'response'
            ? `a response longer than ${MAX_REPLY_BYTES / 1024} KiB (a line without end, or a literal)`
            : `more than ${MAX_QUEUED_BYTES / 1024 / 1024} MiB of responses no command asked for`) +
          '; an IMAP server answering APPEND sends none so long',
      ),
    );
    this.sock.destroy();
  }

  private push(line: string): void {
    if (/^\* BYE\b/i.test(line)) this.bye = line;
    const w = this.waiter;
    if (w) {
      this.waiter = null;
      clearTimeout(w.timer);
      w.resolve(line);
      return;
    }
    this.lines.push(line);
    this.queuedBytes += Math.max(line.length + 2, MIN_LINE_COST);
    if (this.queuedBytes > MAX_QUEUED_BYTES) this.overflow('queue');
  }

  private readonly onError = (err: Error): void => {
    const code = (err as { code?: string }).code;
    this.fail(
      new PopsyncError(
        isTlsFailure(err) ? 'tls' : 'connection',
        `IMAP ${this.where}: ${isTlsFailure(err) ? 'TLS failed' : 'connection lost'} ` +
          `(${code ? `${code}: ` : ''}${err.message})`,
        {},
        { cause: err },
      ),
    );
  };

  private readonly onClose = (): void => {
    if (!this.ended) this.closedByServer = true;
    this.fail(new PopsyncError('connection', `IMAP ${this.where}: connection closed by the server`));
  };

  private fail(err: PopsyncError): void {
    if (!this.ended) this.ended = err;
    const w = this.waiter;
    if (w) {
      this.waiter = null;
      clearTimeout(w.timer);
      w.reject(this.ended);
    }
  }
}

function parseTagged(line: string): Tagged | null {
  const m = /^(\S+) (OK|NO|BAD)(?: \[([^\]]*)\])?/i.exec(line);
  if (!m || m[1] === '*' || m[1] === '+') return null;
  return { tag: m[1]!, status: m[2]!.toUpperCase() as Tagged['status'], code: m[3], line };
}

function capabilitiesOf(line: string): Set<string> | null {
  const m = /^\* (?:OK \[)?CAPABILITY ([^\]]*)/i.exec(line) ?? /\[CAPABILITY ([^\]]*)\]/i.exec(line);
  return m
    ? new Set(
        m[1]!
          .trim()
          .split(/\s+/)
          .map((c) => c.toUpperCase()),
      )
    : null;
}

/** The error-like shape errors.ts classifies (the same properties imapflow puts on its errors). */
function refusal(t: Tagged, extra: ImapFlowErrorLike = {}): ImapFlowErrorLike {
  const text = t.line.replace(/^\S+\s+/, '');
  const throttled = /Request is throttled/i.test(text) && /Backoff Time/i.test(text);
  return {
    message: `Command failed: ${text}`,
    responseStatus: t.status,
    response: t.line,
    ...(t.code ? { serverResponseCode: t.code.split(' ')[0]!.toUpperCase() } : {}),
    ...(throttled ? { code: 'ETHROTTLE' } : {}),
    ...extra,
  };
}

/** One append() call: its items, its outcomes so far, and its caller's promise. */
interface Batch {
  /** The mailbox as the command names it (append-head.ts mailboxArgument()). */
  mailbox: string;
  folder: string;
  items: ReadonlyArray<PipelineItem | { skip: AppendOutcome }>;
  planned: ReadonlyArray<{ size: number; inFile: boolean } | null>;
  outcomes: AppendOutcome[];
  report: (index: number, outcome: AppendOutcome) => void;
  /** Its commands written or queued and not yet answered. */
  open: number;
  /**
   * Its commands whose bytes the socket may still read from the bodies' memory. The batch is
   * settled only when this and `open` are both 0: the caller then reuses that memory
   * (engine/slabs.ts), and a server that answers before it read a literal whole (a hostile or
   * broken one) must not have us send the next batch's bytes in its place.
   */
  unsent: number;
  /** Armed once `open` is 0 while `unsent` is not (awaitUnsent). */
  stall?: NodeJS.Timeout;
  counts: AppendCounts;
  resolve: (outcomes: AppendOutcome[]) => void;
  reject: (err: unknown) => void;
}

/** One APPEND command: one message, or several in a MULTIAPPEND, all of one batch. */
interface Unit {
  tag: string;
  batch: Batch;
  /** The batch items it carries, in order. */
  indices: number[];
  /** Their literal octets, counted against MAX_IN_FLIGHT_BYTES until the reply. */
  bytes: number;
}

/** What one append() sent down this connection; for tests and diagnostics. */
export interface AppendCounts {
  /** Messages sent. */
  appended: number;
  /** Of those, messages sent within a MULTIAPPEND of two or more. */
  multiappended: number;
}

export interface PipelineItem {
  body: MessageBody;
  /** Whether the body holds a NUL (sent as a binary literal where the server offers BINARY). */
  hasNul: boolean;
  /**
   * Flags already formatted by imapflow's formatFlag; never changed once given, as messages
   * with the same flags share one list (append-head.ts sends a list as it sent it last).
   */
  flags: readonly string[];
  /** The internal date as APPEND sends it (append-head.ts internalDateTime()). */
  date: string | undefined;
}

/**
 * What the server did to turn the connection away while `stage` ran, or null: a BYE at the
 * login (the server's words, secrets blanked), or its close before any greeting. A close without
 * BYE during the login is not counted: a drop looks the same.
 */
function turnedAwayBy(stage: string, reader: LineReader, secrets: readonly string[]): string | null {
  if (stage === 'login' && reader.bye !== null) return redact(reader.bye.slice(2, 202), secrets);
  if (stage === 'greeting' && reader.closedByServer) return 'closed the connection before greeting it';
  return null;
}

export class PipelinedAppender {
  private seq = 0;
  /** The command whose literal waits for the server's '+'; at most one at a time. */
  private cont: { unit: Unit; resolve: (go: boolean) => void } | null = null;
  /** An untagged CAPABILITY list read while waiting for a login's reply. */
  private announced: Set<string> | null = null;
  /** Commands not yet begun, in the order they will be written (batch after batch). */
  private readonly unwritten: Unit[] = [];
  /** Commands begun and not yet answered, in the order written: the order of their replies. */
  private readonly unanswered: Unit[] = [];
  /** Batches with a command not yet answered. */
  private readonly open = new Set<Batch>();
  /** Literal octets of the commands in `unanswered`. */
  private inFlight = 0;
  private writing = false;
  private reading = false;
  /** Wakes the writer when a reply lowered `inFlight`, or the reader when a command began. */
  private acked: (() => void) | null = null;
  private begun: (() => void) | null = null;
  /**
   * Why the batches outstanding here were given up (a drop, a refusal of the whole session, an
   * outcome the caller rejected): the connection is spent, and no later batch may use it.
   */
  failure: unknown = null;

  private constructor(
    private sock: net.Socket,
    private reader: LineReader,
    readonly capabilities: ReadonlySet<string>,
    private readonly log: Logger,
  ) {}

  get usable(): boolean {
    return this.reader.usable;
  }

  /**
   * The server broke the protocol on this connection (LineReader's bounds), even while it
   * was idle: the caller says so rather than opening another to the same server.
   */
  get protocolFailure(): PopsyncError | null {
    return this.reader.protocolFailure;
  }

  private get literals(): LiteralMode {
    return literalModeOf(this.capabilities);
  }

  /**
   * Connects, secures and logs in like imapflow does (same TLS mode, CA, verification, SNI and
   * login), then, in 'pipelined' mode, checks for LITERAL+, LITERAL- or MULTIAPPEND. Throws
   * PipelineUnsupported when the session lacks what the mode needs (the connection is closed),
   * a PopsyncError like connectImap's for everything else. 'streaming' mode needs none of them.
   * The forms of the secret this login sends are added to `secrets`, for whoever maps later
   * server replies.
   */
  static async open(
    opts: ImapOptions,
    timeoutMs: number,
    log: Logger,
    mode: 'pipelined' | 'streaming' = 'pipelined',
    secrets: string[] = [],
    /** Called once the socket is open, before the greeting (writer.ts opens imapflow's then). */
    connected?: () => void,
    /** Another connection's login, awaited before this one logs in (writer.ts); a rejection abandons it. */
    after?: Promise<unknown>,
    /** Called once the server greeted it (writer.ts: then a close of the other one is a limit). */
    greeted?: () => void,
  ): Promise<PipelinedAppender> {
    const where = `${opts.host}:${opts.port}`;
    const target = imapSocketTarget(opts, timeoutMs);
    // Before connecting: a slow token command must not hold a connection the server may time out.
    const creds = await credentialsFor(opts);
    const forms = loginSecretForms(creds, opts);
    // Once each: a sink that logs in again and again (writer.ts streamAlone) must not grow the list.
    for (const f of forms) if (!secrets.includes(f)) secrets.push(f);
    const fail = (err: unknown): PopsyncError => mapConnectError(err, { ...opts, secrets: forms });
    let sock = await openSocket(target, opts.tls === 'implicit').catch((err: unknown) => {
      // Closed before the TLS handshake, as a limit at accept before a TLS server does: the
      // server turning it away unheard, as a close before the greeting is over plain TCP.
      if (err instanceof PopsyncError && closedBeforeTls(err))
        throw new TurnedAway(err, 'closed the connection before the TLS handshake', true);
      // Refused or reset at connect, as a limit enforced below the protocol does (a firewall's
      // connlimit rejecting with a TCP reset, a front that resets): unheard too, decided only
      // when seen again (openAgainIfUnheard), since a server restarting refuses the same way.
      const at = err instanceof PopsyncError ? refusedAtConnect(err) : null;
      if (at !== null) throw new TurnedAway(err as PopsyncError, AT_CONNECT_WORDS[at], true);
      throw err;
    });
    connected?.();
    let reader = new LineReader(sock, timeoutMs, `APPEND connection to ${where}`);
    const a = new PipelinedAppender(sock, reader, new Set(), log);
    // Where a BYE or the server's close means "turned away" (TurnedAway): before the greeting and
    // at the login, not during STARTTLS or the capability exchange between them.
    let stage: 'greeting' | 'setup' | 'login' | 'done' = 'greeting';
    try {
      const greeting = await reader.next();
      if (!/^\* (OK|PREAUTH)\b/i.test(greeting)) {
        const e = new PopsyncError('connection', `IMAP server ${where} did not greet us: ${greeting.slice(0, 200)}`);
        throw /^\* BYE\b/i.test(greeting) ? new TurnedAway(e, greeting.slice(2, 202)) : e;
      }
      noteGreeted('IMAP', opts.host, opts.port);
      greeted?.();
      stage = 'setup';
      let caps = capabilitiesOf(greeting) ?? (await a.capability());
      if (opts.tls === 'starttls') {
        if (!caps.has('STARTTLS')) {
          throw new PopsyncError('tls', `IMAP server ${where} does not offer STARTTLS`, {
            hint: "Check the server's certificate and the CA option; with tls: starttls the server must offer STARTTLS",
          });
        }
        const t = await a.simple(Buffer.from(`S STARTTLS\r\n`), 'S');
        if (t.status !== 'OK') throw fail(refusal(t));
        if (reader.buffered) throw new PopsyncError('protocol', `IMAP server ${where} sent data after STARTTLS's OK`);
        reader.detach();
        sock = await startTls(sock, target);
        reader = new LineReader(sock, timeoutMs, `APPEND connection to ${where}`);
        a.sock = sock;
        a.reader = reader;
        caps = await a.capability();
      }
      if (!/^\* PREAUTH\b/i.test(greeting)) {
        if (after) await after;
        stage = 'login';
        const step = chooseLogin(opts.auth ?? 'auto', caps, { token: creds.token, admin: creds.admin !== undefined });
        // Only a list sent in answer to the login counts (not one from before STARTTLS).
        a.announced = null;
        let t: Tagged;
        if (step.kind === 'sasl') {
          t = await a.authenticate(
            new SaslConversation(mechanismFor(step.mechanism, creds, opts), caps.has('SASL-IR')),
          );
        } else if (!caps.has('LOGINDISABLED')) {
          // The compiler sends STRING values quoted, never as literals, so LOGIN needs no '+' wait.
          const { compiler } = await loadImapflow();
          t = await a.simple(
            Buffer.concat([
              compiler(
                {
                  tag: 'L',
                  command: 'LOGIN',
                  attributes: [
                    { type: 'STRING', value: creds.user },
                    { type: 'STRING', value: creds.secret },
                  ],
                },
                { literalPlus: true },
              ),
              Buffer.from('\r\n'),
            ]),
            'L',
          );
        } else {
          throw new PipelineUnsupported('no SASL mechanism for this login, and LOGIN disabled');
        }
        if (t.status !== 'OK') {
          const e = fail(refusal(t, { authenticationFailed: true }));
          // BAD is a login the server did not understand, not one it turned away.
          throw t.status === 'NO' ? new TurnedAway(e, e.context.serverResponse ?? 'NO') : e;
        }
        // RFC 3501 §6.2.2: a server that sends its new list with the login's OK (Dovecot, Cyrus,
        // Gmail) or just before it needs no CAPABILITY command, which would cost a round trip.
        caps = capabilitiesOf(t.line) ?? a.announced ?? (await a.capability());
      }
      // Without UIDPLUS the copies come back without UIDs, as through imapflow, and the engine
      // finds them by content (reconciler.ts learnUids); what this path needs is something to
      // gain over imapflow's one command at a time.
      const literals = literalModeOf(caps);
      if (mode === 'pipelined' && literals === 'sync' && !caps.has('MULTIAPPEND'))
        throw new PipelineUnsupported('no LITERAL+, LITERAL- or MULTIAPPEND after login');
      stage = 'done';
      (a as { capabilities: ReadonlySet<string> }).capabilities = caps;
      // Tests find the path taken by these words.
      const how = `${LITERAL_WORDS[literals]}${caps.has('MULTIAPPEND') ? ', MULTIAPPEND' : ''}`;
      log.debug(
        { host: opts.host },
        mode === 'pipelined'
          ? `IMAP APPEND connection ready (pipelined ${how})`
          : 'IMAP APPEND connection ready (streaming, one at a time)',
      );
      return a;
    } catch (err) {
      // A reset before the greeting (a front that accepts and resets): turned away unheard, in
      // the reset's own words, never "closed the connection before greeting" ("did not greet":
      // a wrong port) for a server whose every connection is reset.
      if (
        stage === 'greeting' &&
        err instanceof PopsyncError &&
        !(err instanceof TurnedAway) &&
        refusedAtConnect(err) === 'reset'
      ) {
        a.destroy();
        throw new TurnedAway(err, AT_CONNECT_WORDS.reset, true);
      }
      const why = err instanceof TurnedAway ? null : turnedAwayBy(stage, a.reader, forms);
      if (err instanceof PipelineUnsupported) await a.close();
      else a.destroy();
      // A close before the greeting in the words imapflow's connection uses for it, which
      // connect-hints.ts reads as "did not greet" or, on a port that greeted, a connection turned away.
      const unheard = why !== null && stage === 'greeting';
      // A BYE for the login that names the credentials refused them, as a NO does ('auth').
      const refusedBye = stage === 'login' && a.reader.bye !== null ? loginByeRefusal(a.reader.bye) : null;
      const e = unheard
        ? closedBeforeGreeting({ protocol: 'IMAP', host: opts.host, port: opts.port })
        : refusedBye !== null
          ? fail(refusedBye)
          : err instanceof PopsyncError || err instanceof PipelineUnsupported
            ? err
            : fail(err);
      throw why !== null && e instanceof PopsyncError ? new TurnedAway(e, why, unheard) : e;
    }
  }

  /** AUTHENTICATE on this connection, answering challenges as the conversation says. */
  private async authenticate(sasl: SaslConversation): Promise<Tagged> {
    const tag = 'L';
    this.sock.write(
      `${tag} AUTHENTICATE ${sasl.mechanismName}${sasl.argument === undefined ? '' : ` ${sasl.argument}`}\r\n`,
    );
    for (;;) {
      const line = await this.reader.next();
      if (line.startsWith('+')) {
        this.sock.write(`${sasl.answer(line.slice(1))}\r\n`);
        continue;
      }
      const t = parseTagged(line);
      if (!t) {
        this.announced = capabilitiesOf(line) ?? this.announced;
        continue;
      }
      if (t.tag !== tag)
        throw new PopsyncError('protocol', `IMAP APPEND connection: expected a reply to ${tag}, got one to ${t.tag}`);
      return t;
    }
  }

  /**
   * Sends the batch and reports each message's outcome as its command's tagged reply arrives,
   * in the server's order (so UIDs ascend). `mailbox` is the name exactly as imapflow would
   * send it. Items with `skip` get that outcome first and are not sent.
   *
   * Where the server offers MULTIAPPEND, runs of messages go in one command each (bounded by
   * count and bytes, append-plan.ts); otherwise one APPEND per message. Commands are written
   * one after another without waiting for replies, bounded by MAX_IN_FLIGHT_BYTES; a literal
   * the server must first accept (no LITERAL+, or over LITERAL-'s 4 KiB) waits for its '+',
   * and a tagged refusal in place of the '+' ends that command (nothing of it was stored). A
   * MULTIAPPEND refused as a whole stored none of its messages (RFC 3502 atomicity), so its
   * messages are sent again one per APPEND, and only the message at fault fails.
   *
   * A further call may come before this one's replies are in (the engine's window): its
   * commands are written right after this batch's, down the same stream, and its replies read
   * after this batch's. The caller journals each batch's intent before calling. Anything that
   * spends the connection (a drop, BYE, an outcome `onOutcome` throws for) rejects every batch
   * still outstanding with it, and later calls at once: their outcomes are unknown. A mailbox
   * name no command can carry (append-head.ts) spends nothing: nothing of the batch is written,
   * and each of its messages fails with that error, naming the folder.
   */
  append(
    mailbox: string,
    folder: string,
    items: Array<PipelineItem | { skip: AppendOutcome }>,
    onOutcome: (index: number, outcome: AppendOutcome) => void,
    counts: AppendCounts = { appended: 0, multiappended: 0 },
  ): Promise<AppendOutcome[]> {
    if (this.failure !== null) return Promise.reject(this.failure);
    if (this.protocolFailure !== null) return Promise.reject(this.protocolFailure);
    let named = '';
    let unsendable: PopsyncError | null = null;
    try {
      named = mailboxArgument(mailbox, folder);
    } catch (err) {
      if (!(err instanceof PopsyncError)) throw err;
      unsendable = err;
    }
    return new Promise<AppendOutcome[]>((resolve, reject) => {
      const outcomes: AppendOutcome[] = new Array(items.length);
      const batch: Batch = {
        mailbox: named,
        folder,
        items,
        planned: items.map((it) => ('skip' in it ? null : { size: bodySize(it.body), inFile: isFileBody(it.body) })),
        outcomes,
        report: (i, o) => {
          outcomes[i] = o;
          onOutcome(i, o);
        },
        open: 0,
        unsent: 0,
        counts,
        resolve,
        reject,
      };
      const multi = this.capabilities.has('MULTIAPPEND');
      const units =
        unsendable !== null
          ? []
          : planUnits(batch.planned, multi ? MULTIAPPEND_LIMITS : { maxMessages: 1, maxBytes: 0 }).map((indices) =>
              this.unit(batch, indices),
            );
      try {
        // Indexed: entries() is a pair and an iterator result per message until this is optimised.
        for (let i = 0; i < items.length; i++) {
          const it = items[i]!;
          if ('skip' in it) batch.report(i, it.skip);
          else if (unsendable !== null) batch.report(i, { ok: false, error: unsendable });
        }
      } catch (err) {
        reject(err);
        return;
      }
      if (units.length === 0) {
        resolve(outcomes);
        return;
      }
      this.open.add(batch);
      this.queue(units);
    });
  }

  /** Commands to write after those already queued; starts the writer and the reader as needed. */
  private queue(units: Unit[]): void {
    for (let i = 0; i < units.length; i++) {
      const u = units[i]!;
      u.batch.open++;
      u.batch.unsent++;
    }
    this.unwritten.push(...units);
    if (!this.writing) void this.write();
    if (!this.reading) void this.read();
  }

  /**
   * Writes queued commands in order while unanswered literals stay within MAX_IN_FLIGHT_BYTES.
   * Consecutive commands share socket writes (write-gather.ts): what is queued leaves together
   * unless a literal must wait for its '+' or a body comes from a spool file.
   */
  private async write(): Promise<void> {
    this.writing = true;
    const out = new WriteGather(this.sock, 'encrypted' in this.sock);
    try {
      for (;;) {
        const u = this.unwritten[0];
        if (u === undefined || this.failure !== null) return;
        if (this.inFlight > 0 && this.inFlight + u.bytes > MAX_IN_FLIGHT_BYTES) {
          out.flush();
          await new Promise<void>((r) => {
            this.acked = r;
          });
          continue;
        }
        if (this.sock.destroyed) {
          // The reader may be idle (nothing unanswered): it would never see the close.
          this.abort(
            this.protocolFailure ??
              new PopsyncError('connection', 'IMAP APPEND connection closed before a batch was written'),
          );
          return;
        }
        // A write that left in an earlier call may still fill the socket.
        if (!out.holding && this.sock.writableNeedDrain) await whenDrained(this.sock);
        this.unwritten.shift();
        this.unanswered.push(u);
        this.inFlight += u.bytes;
        this.wake('begun');
        await this.writeUnit(u, out);
      }
    } catch {
      // A body that cannot be read (spool file gone) leaves a literal unfinished: the connection
      // is spent, and closing it makes the reader fail instead of waiting for a reply.
      this.destroy();
    } finally {
      out.flush();
      this.writing = false;
    }
  }

  /** Reads the tagged replies in the order the commands were written, and settles them. */
  private async read(): Promise<void> {
    this.reading = true;
    try {
      for (;;) {
        const u = this.unanswered[0];
        if (u === undefined) {
          if (this.unwritten.length === 0 || this.failure !== null) return;
          await new Promise<void>((r) => {
            this.begun = r;
          });
          continue;
        }
        const t = await this.replyTo(u.tag);
        this.unanswered.shift();
        if (this.cont?.unit === u) this.settleContinuation(false);
        this.inFlight -= u.bytes;
        this.wake('acked');
        this.settle(u, t);
      }
    } catch (err) {
      this.abort(err);
    } finally {
      this.reading = false;
    }
  }

  private wake(which: 'acked' | 'begun'): void {
    const f = which === 'acked' ? this.acked : this.begun;
    if (which === 'acked') this.acked = null;
    else this.begun = null;
    f?.();
  }

  /** One command's tagged reply as its messages' outcomes; a session-wide failure is thrown. */
  private settle(u: Unit, t: Tagged): void {
    const b = u.batch;
    if (u.indices.length === 1) {
      b.report(u.indices[0]!, this.outcomeOf(t, b.folder, u.indices[0]!));
    } else if (t.status === 'OK') {
      const given = appendUids(t.code, u.indices.length);
      if (given === null && /^APPENDUID\b/i.test(t.code ?? ''))
        this.log.info(
          { folder: b.folder, code: t.code, messages: u.indices.length },
          'MULTIAPPEND answered with an APPENDUID that does not name each message; their UIDs are found by content',
        );
      // Indexed, as in append(): this runs for every message stored.
      for (let k = 0; k < u.indices.length; k++)
        b.report(
          u.indices[k]!,
          given
            ? { ok: true, uid: given.uids[k]!, uidValidity: given.uidValidity }
            : { ok: true, uid: null, uidValidity: null },
        );
    } else {
      const failure = classifyAppendError(refusal(t), b.folder);
      if (failure.scope === 'session') throw failure.error;
      // Atomic: none of them was stored. Each goes again alone, after what is queued (a later
      // batch's commands may be ahead of them: their UIDs still ascend in reply order).
      this.log.debug(
        { folder: b.folder, messages: u.indices.length, serverResponse: failure.error.context.serverResponse },
        'MULTIAPPEND refused; sending its messages one by one',
      );
      this.queue(u.indices.map((i) => this.unit(b, [i])));
    }
    b.open--;
    this.done(b);
  }

  /** A command's last byte left for the kernel (or TLS took it), or it never will be written. */
  private sent(u: Unit): void {
    u.batch.unsent--;
    this.done(u.batch);
  }

  /** Settles a batch answered and written whole (unless a failure settled it already). */
  private done(b: Batch): void {
    if (b.open === 0 && b.unsent > 0) this.awaitUnsent(b);
    if (b.open > 0 || b.unsent > 0 || !this.open.delete(b)) return;
    clearTimeout(b.stall);
    b.resolve(b.outcomes);
  }

  /**
   * Every command of `b` answered while the socket still holds bytes of it: the server answered
   * before it read a literal whole. One that reads on takes them at once; one that stopped
   * reading would hold the batch for ever, as no reply is awaited and so no reply timeout runs
   * (test/protocol/imap-pipeline-early-reply). The connection fails once the reply timeout
   * has passed with them still unsent.
   */
  private awaitUnsent(b: Batch): void {
    if (b.stall !== undefined) return;
    const ms = this.reader.timeoutMs;
    b.stall = setTimeout(() => {
      if (!this.open.has(b)) return;
      this.abort(
        new PopsyncError(
          'connection',
          `IMAP ${this.reader.where}: the server answered an APPEND before it had read the message, and had ` +
            `not read the rest ${ms} ms later`,
        ),
      );
    }, ms);
  }

  /** The connection is spent: every outstanding batch fails with `err`, and so will later ones. */
  private abort(err: unknown): void {
    if (this.failure === null) this.failure = err;
    this.settleContinuation(false);
    this.destroy();
    this.unwritten.length = 0;
    this.unanswered.length = 0;
    this.inFlight = 0;
    this.wake('acked');
    this.wake('begun');
    const open = [...this.open];
    this.open.clear();
    for (const b of open) {
      clearTimeout(b.stall);
      b.reject(this.failure);
    }
  }

  private unit(batch: Batch, indices: number[]): Unit {
    const bytes = indices.reduce((n, i) => n + batch.planned[i]!.size, 0);
    return { tag: `P${++this.seq}`, batch, indices, bytes };
  }

  /**
   * One command: the APPEND and each message's flags, date and literal, added to `out`'s
   * writes. Returns early when the server refuses the command in place of a '+' (the reply loop
   * reports it); sent(u) is called once nothing of it remains to be written. Bodies in memory
   * are written as the buffers that hold them (no copy, no view unless a buffer is larger than
   * a write may be).
   */
  private async writeUnit(u: Unit, out: WriteGather): Promise<void> {
    const sock = this.sock;
    const { mailbox, counts } = u.batch;
    const items = u.batch.items as readonly PipelineItem[];
    const n = u.indices.length;
    if (n > 1) counts.multiappended += n;
    // Read once per command, not per message: the session's capabilities do not change here.
    const literals = this.literals;
    const binary = this.capabilities.has('BINARY');
    for (let k = 0; k < n; k++) {
      const it = items[u.indices[k]!]!;
      const body = it.body;
      const size = bodySize(body);
      const nonSync = nonSynchronizing(literals, size);
      // A binary literal (RFC 3516) only where the server offers BINARY; otherwise a NUL goes in
      // a plain literal, as imapflow sends it, and the server decides.
      const head = messageHead(it.flags, it.date, size, it.hasNul && binary, nonSync);
      if (out.add(k === 0 ? appendCommand(u.tag, mailbox, head) : head)) await whenDrained(sock);
      if (!nonSync) {
        out.flush();
        if (!(await this.continuation(u))) return this.sent(u);
      }
      if (sock.destroyed) return this.sent(u);
      counts.appended++;
      if (!isFileBody(body)) {
        const chunks = Buffer.isBuffer(body) ? 1 : body.chunks.length;
        for (let c = 0; c < chunks; c++) {
          const b = Buffer.isBuffer(body) ? body : body.chunks[c]!;
          // Only a caller's Buffer is larger than a TLS write may be (a slab is 256 KiB).
          for (let at = 0; at < b.length; at += out.largest) {
            if (out.add(b.length <= out.largest ? b : b.subarray(at, at + out.largest))) await whenDrained(sock);
          }
        }
      } else {
        out.flush();
        // A file body is read in pieces as the socket drains: never whole in memory.
        for await (const piece of bodyPieces(body)) {
          if (sock.destroyed) return this.sent(u);
          await sendPiece(sock, piece);
        }
      }
    }
    if (out.add('\r\n', () => this.sent(u))) await whenDrained(sock);
  }

  /** Waits for the server's '+' (true), or for the command's tagged reply in its place (false). */
  private continuation(u: Unit): Promise<boolean> {
    return new Promise((resolve) => {
      this.cont = { unit: u, resolve };
    });
  }

  private settleContinuation(go: boolean): void {
    const c = this.cont;
    this.cont = null;
    c?.resolve(go);
  }

  /** A tagged reply as an outcome; a session-wide failure (BYE, auth) is thrown. */
  private outcomeOf(t: Tagged, folder: string, index: number): AppendOutcome {
    if (t.status === 'OK') {
      const given = appendUids(t.code, 1);
      return given
        ? { ok: true, uid: given.uids[0]!, uidValidity: given.uidValidity }
        : { ok: true, uid: null, uidValidity: null };
    }
    const failure = classifyAppendError(refusal(t), folder);
    if (failure.scope === 'session') throw failure.error;
    this.log.debug({ folder, index, serverResponse: failure.error.context.serverResponse }, 'APPEND refused');
    return { ok: false, error: failure.error };
  }

  /** The tagged reply to `tag`; a '+' on the way is handed to the command waiting for it. */
  private async replyTo(tag: string): Promise<Tagged> {
    for (;;) {
      const line = await this.reader.next();
      if (line.startsWith('+')) {
        this.settleContinuation(true);
        continue;
      }
      const t = parseTagged(line);
      if (!t) continue; // untagged (EXISTS of nothing selected, alerts)
      if (t.tag !== tag)
        throw new PopsyncError('protocol', `IMAP APPEND connection: expected a reply to ${tag}, got one to ${t.tag}`);
      return t;
    }
  }

  /**
   * LOGOUT, without waiting for its reply: every reply that mattered was read, and waiting would
   * hold the end of the run a round trip. The socket no longer holds the process, and is
   * destroyed if the server has not closed it within the reader's timeout.
   */
  async close(): Promise<void> {
    if (!this.usable) return this.destroy();
    const sock = this.sock;
    sock.end('Z LOGOUT\r\n');
    sock.unref();
    const timer = setTimeout(() => sock.destroy(), this.reader.timeoutMs);
    timer.unref();
    sock.once('close', () => clearTimeout(timer));
  }

  /**
   * LOGOUT, resolved once the server has closed the connection (or the reader's timeout passed and
   * it was destroyed): a server that allows one connection per user counts this one until then,
   * and the caller logs in another next (writer.ts streamAlone).
   */
  async logout(): Promise<void> {
    const sock = this.sock;
    if (sock.destroyed) return;
    const gone = new Promise<void>((resolve) => sock.once('close', () => resolve()));
    if (this.usable) sock.end('Z LOGOUT\r\n');
    else sock.destroy();
    const timer = setTimeout(() => sock.destroy(), this.reader.timeoutMs);
    await gone;
    clearTimeout(timer);
  }

  destroy(): void {
    this.sock.destroy();
  }

  private async tagged(tag: string): Promise<Tagged> {
    for (;;) {
      const line = await this.reader.next();
      const t = parseTagged(line);
      if (!t) {
        // untagged (EXISTS of nothing selected, alerts, a new capability list) or stray continuation
        this.announced = capabilitiesOf(line) ?? this.announced;
        continue;
      }
      if (t.tag !== tag)
        throw new PopsyncError('protocol', `IMAP APPEND connection: expected a reply to ${tag}, got one to ${t.tag}`);
      return t;
    }
  }

  private async simple(cmd: Buffer, tag: string): Promise<Tagged> {
    this.sock.write(cmd);
    return this.tagged(tag);
  }

  private async capability(): Promise<Set<string>> {
    const tag = `C${++this.seq}`;
    this.sock.write(`${tag} CAPABILITY\r\n`);
    let caps: Set<string> | null = null;
    for (;;) {
      const line = await this.reader.next();
      const t = parseTagged(line);
      if (!t) {
        caps = capabilitiesOf(line) ?? caps;
        continue;
      }
      if (t.tag !== tag) throw new PopsyncError('protocol', `IMAP APPEND connection: unexpected reply to ${t.tag}`);
      if (t.status !== 'OK' || !caps)
        throw new PopsyncError('protocol', 'IMAP CAPABILITY failed on the APPEND connection');
      return caps;
    }
  }
}
