/**
 * One POP3 connection: the socket (plain, implicit TLS, or upgraded by STLS), the response
 * decoder, the command queue and the timers. It knows nothing about what commands mean beyond
 * "does +OK start a body"; client.ts and sasl.ts give commands their meaning.
 *
 * Ordering: commands are written in call order and responses are matched to them in the same
 * order (POP3 has no tags). With a window of 1 we wait for each response before writing the
 * next; with PIPELINING the window is larger, so a burst of RETRs costs one round trip.
 *
 * Failure is sticky: after a drop, timeout or protocol violation we can no longer tell which
 * bytes belong to which command, so every in-flight, queued and later command rejects with the
 * same cause. Callers must not retry on the same connection.
 *
 * Secrets: the debug log shows `label`, never `line`, and never SASL responses; server lines
 * are redacted (redact.ts) before they reach a log, an error or a caller.
 */

import type net from 'node:net';
import { PopsyncError, type ErrorContext, type ErrorKind } from '../errors.js';
import type { Logger } from '../log.js';
import { openSocket, type SocketTarget, startTls } from '../net/connect.js';
import { tlsOnlyPort } from '../net/tls-probe.js';
import { TLS_ONLY_PORT_CODE } from '../connect-hints.js';
import { type SocketChunks, socketChunks } from '../net/read-arena.js';
import { ResponseDecoder, type FrameEvent, type StatusLine } from './framing.js';
import { formatBytes, MIN_BYTES_PER_SECOND, ReplyBudget, ReplyOverCeiling, SMALL_REPLY_MAX } from './limits.js';
import { redact } from '../net/redact.js';

export interface CommandSpec {
  /** The command as written, without CRLF. */
  line: string;
  /** What logs and error messages show: `line` with credentials replaced. */
  label: string;
  /** Whether +OK is followed by a dot-terminated body. */
  multiline: boolean;
  messageNumber?: number;
  /** Body chunks as they arrive (otherwise they are collected). Return false to pause reading. */
  onData?: (chunk: Buffer) => boolean;
  /** SASL: answer a `+ challenge` line with the next client line (never logged). */
  onContinue?: (status: StatusLine) => string;
  /** STLS: stop decoding after this reply, so no plaintext byte is read past it. */
  upgrade?: boolean;
  /**
   * Most decoded bytes the reply may hold (limits.ts); SMALL_REPLY_MAX when absent. A function is
   * asked when the reply becomes the next one due, after every earlier reply was read: a LIST
   * written right behind STAT (pipelined) is bounded by the count STAT then gave.
   */
  ceiling?: number | (() => number);
  /** Called with the final status line as it is read, before any later reply is (see `ceiling`). */
  onStatus?: (status: StatusLine) => void;
}

export interface Reply {
  status: StatusLine;
  /** The decoded body of a multi-line +OK, unless the command streamed it via onData. */
  body?: Buffer;
}

/** The narrow view of a connection that command code needs. */
export interface CommandChannel {
  send(spec: CommandSpec): Promise<Reply>;
}

/** Where post() delivers a command's outcome: send()'s promise, or a RETR body (client.ts). */
export interface ReplySink {
  resolve(reply: Reply): void;
  reject(e: PopsyncError): void;
}

export interface ConnectionOptions {
  host: string;
  port: number;
  implicitTls: boolean;
  ca?: Array<string | Buffer>;
  rejectUnauthorized: boolean;
  timeoutMs: number;
  connectTimeoutMs: number;
  logger: Logger;
  /** Credential forms (redact.ts) blanked out of every server line before it is used. */
  secrets?: readonly string[];
}

interface Pending {
  spec: CommandSpec;
  /** Created when this reply becomes the next one due. */
  budget?: ReplyBudget;
  status?: StatusLine;
  /** When it was written into an idle connection (now()'s clock): its reply then times a round trip. */
  sentIdle?: number;
  chunks: Buffer[];
  to: ReplySink;
}

const GREETING: CommandSpec = { line: '', label: '(greeting)', multiline: false };

/** The `chunks` of every reply streamed to its onData: never added to, so one serves them all. */
const STREAMED: Buffer[] = Object.freeze([]) as unknown as Buffer[];

export class Pop3Connection implements CommandChannel {
  private socket: net.Socket;
  /** How the socket is read (its stream, or an arena under implicit TLS). */
  private chunks: SocketChunks;
  private readonly decoder = new ResponseDecoder();
  private readonly queue: Pending[] = [];
  private readonly inflight: Pending[] = [];
  private window = 1;
  private failure: PopsyncError | undefined;
  private timer: NodeJS.Timeout | undefined;
  /** A verdict of silence or slowness, waiting for the sockets to be read first (judgeAfterPoll). */
  private judging: NodeJS.Immediate | undefined;
  /**
   * When the wait `timer` bounds began: it was armed, or bytes last arrived. Kept here, and the
   * timer re-armed when it fires early, rather than refresh()ed on every chunk: a refresh moves
   * the timer in Node's lists, once per chunk (4,000 on the typical mix, 17,000 over TLS).
   */
  private idleFrom = 0;
  /** Enforces the head reply's pace (limits.ts); `paceFor` is the reply it was armed for. */
  private paceTimer: NodeJS.Timeout | undefined;
  private paceFor: Pending | undefined;
  /** When paceTimer fires (now()'s clock). */
  private paceAt = 0;
  private paused = false;
  /** Commands written this tick, sent as one string at its end (writeThisTick). */
  private out = '';
  private upgrading = false;
  /** The least time a command written into an idle connection waited for its status line (ms). */
  private leastReplyMs = Number.POSITIVE_INFINITY;
  /** A command was written before the greeting was read (sendBehindGreeting). */
  private wroteAhead = false;
  /** That command (sendBehindGreeting's spec), to know whether the server answered it. */
  private aheadSpec: CommandSpec | undefined;
  /**
   * The server dropped the connection before answering the command written ahead of its
   * greeting, and the port is no TLS-only one (lost()), or said nothing at all for a while after
   * it (silentAhead()), or greeted and left it unanswered as long (unansweredAhead()): some
   * servers punish talk before their greeting by hanging up or by silence, or throw it away
   * (client.ts then connects again without it).
   */
  droppedAhead = false;
  /** Any byte came from the server (decrypted, under implicit TLS). */
  private heard = false;
  private readonly reader = {
    chunk: (chunk: Buffer): void => this.receive(chunk),
    close: (): void => this.lost('POP3 server closed the connection'),
  };
  private readonly onSocketError = (e: Error): void => this.lost(`POP3 connection error: ${e.message}`, e);
  /**
   * Whether the command and reply lines are logged: asked once, as each message has two, and an
   * object built for a debug line that is not logged was garbage per message at every other level.
   */
  private readonly debug: boolean;

  /** Resolves with the server greeting (which may be -ERR). */
  readonly greeting: Promise<Reply>;

  private constructor(
    socket: net.Socket,
    private readonly opts: ConnectionOptions,
  ) {
    this.socket = socket;
    this.debug = opts.logger.isLevelEnabled?.('debug') ?? true;
    this.chunks = socketChunks(socket);
    this.greeting = new Promise<Reply>((resolve, reject) => {
      this.inflight.push({ spec: GREETING, chunks: [], to: { resolve, reject } });
    });
    this.attach();
    this.updateTimer();
  }

  /** Opens TCP (and TLS for implicit mode). The greeting is not awaited here. */
  static async open(opts: ConnectionOptions): Promise<Pop3Connection> {
    return new Pop3Connection(await openSocket(target(opts), opts.implicitTls), opts);
  }

  /** 1 = one command at a time; more = PIPELINING. */
  setWindow(n: number): void {
    this.window = Math.max(1, n);
    this.pump();
  }

  send(spec: CommandSpec): Promise<Reply> {
    if (this.failure) return Promise.reject(this.laterError(spec));
    return new Promise<Reply>((resolve, reject) => this.post(spec, { resolve, reject }));
  }

  /**
   * send() without a promise: the outcome goes to `to` as it is read (a rejection at once if the
   * connection already failed). A RETR per message had a promise and two callbacks on it.
   */
  post(spec: CommandSpec, to: ReplySink): void {
    if (this.failure) {
      to.reject(this.laterError(spec));
      return;
    }
    const p: Pending = { spec, chunks: spec.onData ? STREAMED : [], to };
    // Written at once when nothing waits before it (most RETRs): through the queue, each message's
    // push into the array its shift() had emptied allocated the array's storage anew.
    if (this.queue.length === 0 && this.inflight.length < this.window && !this.upgrading) {
      this.start(p);
      this.updateTimer();
      return;
    }
    this.queue.push(p);
    this.pump();
  }

  /**
   * send(), but written now even while the greeting is still awaited, whatever the window: the
   * reply is matched after the greeting's, as replies come in order. For a first command that
   * needs nothing the greeting says (CAPA): a connect whose greeting is on its way then costs one
   * round trip for both instead of one each.
   */
  sendBehindGreeting(spec: CommandSpec): Promise<Reply> {
    this.wroteAhead = true;
    this.aheadSpec = spec;
    const window = this.window;
    this.window = Math.max(window, this.inflight.length + this.queue.length + 1);
    try {
      return this.send(spec);
    } finally {
      this.window = window;
    }
  }

  /**
   * The round trip as this connection saw it: the least time between writing a command while
   * nothing else was awaited and reading its status line (the link's round trip plus the
   * server's least work). Infinity before any such reply. Costs one clock read per command
   * written into an idle connection, not per pipelined one.
   */
  get roundTripMs(): number {
    return this.leastReplyMs;
  }

  /** Restart reading after an onData consumer returned false. */
  resumeReading(): void {
    if (!this.paused) return;
    this.paused = false;
    this.inflight[0]?.budget?.resume(now());
    // Re-armed below for the time the budget has left.
    this.clearPace();
    if (!this.failure) this.chunks.resume();
    this.updateTimer();
  }

  /**
   * RFC 2595 STLS: wrap the same TCP socket in TLS. Call after the STLS command (sent with
   * `upgrade: true`) returned +OK.
   */
  async upgradeTls(): Promise<void> {
    if (this.failure) throw this.laterError({ line: 'STLS', label: 'STLS', multiline: false });
    if (this.decoder.buffered > 0 || this.inflight.length > 0) {
      // Bytes after the +OK arrived in plaintext; accepting them would let an attacker inject responses.
      throw this.fail('tls', 'POP3 server sent data after the STLS reply, before the TLS handshake');
    }
    this.detach();
    let secure: net.Socket;
    try {
      secure = await startTls(this.socket, target(this.opts));
    } catch (e) {
      const he = e as PopsyncError;
      throw this.fail('tls', he.message, he.cause ?? he, he.context);
    }
    this.socket = secure;
    this.chunks = socketChunks(secure);
    this.upgrading = false;
    this.attach();
    this.pump();
  }

  /**
   * After QUIT's +OK: close politely; later commands reject. `release`: QUIT was written and
   * nobody waits for its reply, so the socket no longer holds the process, and is destroyed if
   * the server has not closed it within the timeout.
   */
  end(release = false): void {
    if (this.failure) return;
    this.failure = new PopsyncError('connection', 'POP3 session already ended with QUIT');
    this.clearTimer();
    this.detach();
    // QUIT (leave) may still be queued for this tick.
    this.flush();
    const socket = this.socket;
    socket.on('error', () => {});
    socket.end();
    if (!release) return;
    socket.unref();
    const timer = setTimeout(() => socket.destroy(), this.opts.timeoutMs);
    timer.unref();
    socket.once('close', () => clearTimeout(timer));
  }

  /**
   * Ends the connection as one dropped before its greeting (droppedAhead) when a command was
   * written ahead of the greeting and the server has sent not one byte since: client.ts calls
   * it once it has waited long enough for that silence to look like a punishment rather than a
   * slow server. Does nothing once anything was heard: a greeting on its way is waited for.
   */
  silentAhead(reason: string): void {
    if (this.failure || this.heard || !this.wroteAhead) return;
    this.droppedAhead = true;
    this.fail('connection', reason);
  }

  /**
   * The same once the server greeted but has not begun to answer the command written ahead of
   * its greeting: a server that throws away what it read before greeting (its input flushed as it
   * greets) never will. Does nothing once that answer's status line came.
   */
  unansweredAhead(reason: string): void {
    if (this.failure || !this.inflight.some((p) => p.spec === this.aheadSpec && p.status === undefined)) return;
    this.droppedAhead = true;
    this.fail('connection', reason);
  }

  /** Drop the connection; pending commands reject with 'connection'. */
  destroy(reason = 'POP3 connection closed by popsync'): void {
    this.fail('connection', reason);
    // After QUIT the socket may still be half-open; destroy means gone.
    this.socket.destroy();
  }

  private attach(): void {
    this.chunks.start(this.reader);
    this.socket.on('error', this.onSocketError);
  }

  private detach(): void {
    this.chunks.stop();
    this.socket.off('error', this.onSocketError);
  }

  /**
   * The connection is gone. A plain one that had not even greeted, after a command was written
   * ahead of its greeting, may be a port that speaks TLS from the first byte: such a server
   * drops a first line that is no TLS hello at once, where it would otherwise sit silent until
   * the TLS check (tls-probe.ts). So the port is asked now, and such a drop fails as that check's
   * would, with the advice to use TLS, instead of as a lost connection to reconnect to.
   */
  private lost(reason: string, cause?: unknown): void {
    if (this.failure) return;
    const unGreeted = this.inflight[0]?.spec === GREETING && !this.opts.implicitTls;
    const told = (cause as { code?: string } | undefined)?.code === TLS_ONLY_PORT_CODE;
    const aheadUnanswered = this.inflight.some((p) => p.spec === this.aheadSpec && p.status === undefined);
    if (!(this.wroteAhead && unGreeted) || told) {
      this.droppedAhead = aheadUnanswered && !told;
      this.fail('connection', reason, cause);
      return;
    }
    this.clearTimer();
    const { host, port, connectTimeoutMs } = this.opts;
    void tlsOnlyPort({ host, port, timeoutMs: connectTimeoutMs }).then((tlsOnly) => {
      if (tlsOnly) {
        this.fail('connection', `POP3 connection error: ${tlsOnly.message}`, tlsOnly);
        return;
      }
      this.droppedAhead = aheadUnanswered;
      this.fail('connection', reason, cause);
    });
  }

  private pump(): void {
    if (this.failure || this.upgrading) return;
    while (this.queue.length > 0 && this.inflight.length < this.window) {
      const p = this.queue.shift() as Pending;
      this.start(p);
      // STLS must be the last thing written in plaintext.
      if (p.spec.upgrade) break;
    }
    this.updateTimer();
  }

  /** Writes `p`'s command (at the end of this tick) and awaits its reply after those in flight. */
  private start(p: Pending): void {
    // Behind nothing but the greeting (sendBehindGreeting) counts too: a reply cannot come
    // back sooner than a round trip after its command left, whatever came before it.
    if (this.inflight.length === 0 || (this.inflight.length === 1 && this.inflight[0]?.spec === GREETING))
      p.sentIdle = now();
    this.inflight.push(p);
    if (this.debug) this.opts.logger.debug({ command: p.spec.label }, 'pop3 >');
    this.writeThisTick(`${p.spec.line}\r\n`);
  }

  /**
   * After a reply: the window is refilled once a quarter of it is free, not reply by reply, so
   * the commands waiting behind it leave in one write while the server still has three quarters
   * of a window of them to work through.
   */
  private refill(): void {
    // Nothing queued, pump() would only re-arm the timers, which receive() does once its chunk is
    // decoded: per reply that was a pump, a clock read and a pace check for each message read.
    if (this.queue.length > 0 && this.inflight.length <= (this.window * 3) / 4) this.pump();
  }

  /**
   * Commands sent in one tick leave in one write of one string: a burst of RETRs cost one write
   * per command before (225 ms of popsync's CPU on 10,000 small messages), and then, corked, one
   * string per command in a writev (6.5-13 ms per 10,000 in a microbenchmark, 2-3 ms as one
   * string). The string is written before any I/O is polled, so no command waits longer for it.
   */
  private writeThisTick(text: string): void {
    if (this.out === '') process.nextTick(this.flush);
    this.out += text;
  }

  /** Writes what this tick queued, to the socket it was queued for (STLS waits for a reply first). */
  private readonly flush = (): void => {
    const text = this.out;
    if (text === '') return;
    this.out = '';
    // After a failure the socket is destroyed and what was queued is dropped, as corked writes were.
    if (!this.socket.destroyed) this.socket.write(text);
  };

  private receive(chunk: Buffer): void {
    if (this.failure) return;
    this.heard = true;
    this.idleFrom = now();
    this.decoder.push(chunk);
    try {
      while (!this.upgrading && !this.failure) {
        const ev = this.decoder.next();
        if (!ev) break;
        this.handle(ev);
      }
    } catch (e) {
      if (e instanceof PopsyncError) {
        // Decoder errors quote the offending line; the cause would carry it unredacted. Only a
        // ceiling's marker (no server text in it) is passed on.
        const context =
          e.context.serverResponse === undefined
            ? e.context
            : { ...e.context, serverResponse: this.redact(e.context.serverResponse) };
        this.fail(e.kind, this.redact(e.message), e.cause instanceof ReplyOverCeiling ? e.cause : undefined, context);
      } else {
        this.fail('internal', `POP3 client bug: ${(e as Error).message}`, e);
      }
    }
    this.updateTimer();
  }

  private handle(ev: FrameEvent): void {
    const p = this.inflight[0];
    if (!p) {
      // Typically a farewell such as "-ERR Disconnected for inactivity" before the server hangs up.
      const line = ev.type === 'status' ? ev.status.line.slice(0, 200) : '';
      throw new PopsyncError(
        'connection',
        `POP3 server sent an unsolicited line and cannot be trusted to stay in step: ${line}`,
        {
          serverResponse: line,
        },
      );
    }
    this.charge(
      p,
      ev.type === 'status' ? Buffer.byteLength(ev.status.line) + 2 : ev.type === 'data' ? ev.chunk.length : 0,
    );
    switch (ev.type) {
      case 'status': {
        // The greeting precedes every credential, and APOP needs its timestamp as sent. A streamed
        // body's +OK (RETR) is read for its kind alone and its text shown nowhere but the debug
        // log: searching it for every secret form was a few calls per message for nothing.
        const s =
          p.spec === GREETING ||
          (ev.status.kind === 'ok' && p.spec.onData !== undefined && p.spec.onStatus === undefined && !this.debug)
            ? ev.status
            : this.redactStatus(ev.status);
        if (s.kind === 'continue') {
          if (!p.spec.onContinue) {
            throw new PopsyncError('protocol', `POP3 server sent a continuation to ${p.spec.label}`, {
              serverResponse: s.line,
            });
          }
          this.opts.logger.debug({ response: '+ (challenge)' }, 'pop3 <');
          const answer = p.spec.onContinue(s);
          this.opts.logger.debug({ command: '(SASL response)' }, 'pop3 >');
          this.writeThisTick(`${answer}\r\n`);
          return;
        }
        if (this.debug) this.opts.logger.debug({ response: s.line }, 'pop3 <');
        if (p.sentIdle !== undefined) this.leastReplyMs = Math.min(this.leastReplyMs, now() - p.sentIdle);
        p.spec.onStatus?.(s);
        if (s.kind === 'ok' && p.spec.multiline) {
          p.status = s;
          this.decoder.beginBody();
          return;
        }
        this.inflight.shift();
        if (p.spec.upgrade && s.kind === 'ok') this.upgrading = true;
        p.to.resolve({ status: s });
        this.refill();
        return;
      }
      case 'data':
        if (p.spec.onData) {
          if (!p.spec.onData(ev.chunk) && !this.paused) {
            this.paused = true;
            p.budget?.pause(now());
            this.chunks.pause();
          }
        } else {
          p.chunks.push(ev.chunk);
        }
        return;
      case 'end': {
        this.inflight.shift();
        const status = p.status as StatusLine;
        if (p.spec.onData) p.to.resolve({ status });
        else p.to.resolve({ status, body: Buffer.concat(p.chunks) });
        this.refill();
        return;
      }
    }
  }

  private updateTimer(): void {
    const waiting = this.inflight.length > 0 && !this.paused && !this.failure && !this.upgrading;
    if (!waiting) {
      this.clearTimer();
    } else if (!this.timer) {
      this.idleFrom = now();
      this.timer = setTimeout(() => this.onTimeout(), this.opts.timeoutMs);
    }
    this.armPace();
  }

  private clearTimer(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.clearPace();
  }

  /**
   * The reply due next gets its budgets; the pace timer follows whichever reply is due. A timer
   * armed for an earlier reply is kept when it fires no later than this reply's deadline: it
   * re-checks the reply due then (onPace). Re-armed for each reply, it was a clearTimeout and a
   * setTimeout per message, 10,000 of each on 10,000 small messages.
   */
  private armPace(): void {
    const head = this.inflight[0];
    if (!head || this.failure || this.upgrading) {
      this.clearPace();
      return;
    }
    head.budget ??= this.budgetFor(head);
    if (this.paceFor === head && this.paceTimer) return;
    const t = now();
    const left = head.budget.msLeft(t);
    if (left === Infinity) {
      this.clearPace();
      return;
    }
    // Node turns a delay past 2^31-1 ms into 1 ms; the re-check on firing makes a shorter wait safe.
    const delay = Math.min(MAX_TIMER_MS, Math.max(0, Math.ceil(left)));
    if (!(this.paceTimer && this.paceAt <= t + delay)) {
      this.clearPace();
      this.paceAt = t + delay;
      this.paceTimer = setTimeout(() => this.onPace(), delay);
    }
    this.paceFor = head;
  }

  private clearPace(): void {
    if (this.paceTimer) clearTimeout(this.paceTimer);
    this.paceTimer = undefined;
    this.paceFor = undefined;
  }

  /** Rather than re-arming on every chunk, the timer re-checks when it fires. */
  private onPace(): void {
    this.paceTimer = undefined;
    const head = this.inflight[0];
    if (!head?.budget || head !== this.paceFor || this.failure) {
      this.paceFor = undefined;
      this.armPace();
      return;
    }
    if (head.budget.msLeft(now()) > 0) {
      this.paceFor = undefined;
      this.armPace();
      return;
    }
    this.judgeAfterPoll();
  }

  /** The verdict on a reply too slow: the pace it had to keep, and how it was missed. */
  private failSlow(head: Pending, t: number): void {
    const budget = head.budget as ReplyBudget;
    const seconds = Math.round(budget.elapsed(t) / 1000);
    this.fail(
      'protocol',
      `POP3 server ${this.where} sends its reply to ${head.spec.label} too slowly: ${budget.received} ` +
        `bytes in ${seconds} s`,
      undefined,
      {
        hint:
          `popsync waits ${this.opts.timeoutMs / 1000} s (--timeout) plus 1 s per ` +
          `${formatBytes(MIN_BYTES_PER_SECOND)} received for a reply, so a trickle cannot hold a run ` +
          `forever; if the link is really that slow, raise --timeout`,
      },
    );
  }

  private budgetFor(p: Pending): ReplyBudget {
    const c = p.spec.ceiling;
    return new ReplyBudget((typeof c === 'function' ? c() : c) ?? SMALL_REPLY_MAX, this.opts.timeoutMs, now());
  }

  /** Counts a reply's decoded bytes against its ceiling; a reply over it ends the connection. */
  private charge(p: Pending, bytes: number): void {
    p.budget ??= this.budgetFor(p);
    const budget = p.budget;
    if (budget.add(bytes)) return;
    throw new PopsyncError(
      'protocol',
      `POP3 server ${this.where} sent more than ${formatBytes(budget.ceiling)} in reply to ${p.spec.label}, ` +
        `more than that reply can hold`,
      {
        ...(p.spec.messageNumber === undefined ? {} : { messageNumber: p.spec.messageNumber }),
        hint:
          'popsync stops reading a reply at a ceiling derived from what it can hold (for RETR and TOP: ' +
          'twice the LIST size plus 128 KiB); the server is broken or hostile',
      },
      { cause: new ReplyOverCeiling(budget.ceiling) },
    );
  }

  private redact(text: string): string {
    return this.opts.secrets ? redact(text, this.opts.secrets) : text;
  }

  private redactStatus(s: StatusLine): StatusLine {
    if (!this.opts.secrets || this.opts.secrets.length === 0) return s;
    // `text` is part of `line`: a line without a secret is passed on as it is, not copied (a new
    // status object and two strings per message before).
    const line = this.redact(s.line);
    return line === s.line ? s : { ...s, line, text: this.redact(s.text) };
  }

  private get where(): string {
    return `${this.opts.host}:${this.opts.port}`;
  }

  private onTimeout(): void {
    this.timer = undefined;
    const idle = now() - this.idleFrom;
    if (idle < this.opts.timeoutMs) {
      this.timer = setTimeout(() => this.onTimeout(), Math.ceil(this.opts.timeoutMs - idle));
      return;
    }
    this.judgeAfterPoll();
  }

  /**
   * A timer ran out: the verdict waits for the sockets to be read once. When this process was
   * stalled (a loaded machine, a paused VM), every timer due meanwhile runs before any socket is
   * read, and the server's bytes may be waiting in ours: a stall of 300 ms failed a 250 ms
   * --timeout whose server had written 150 ms before. setImmediate runs after the poll for I/O.
   */
  private judgeAfterPoll(): void {
    if (this.judging === undefined) this.judging = setImmediate(this.judge);
  }

  private readonly judge = (): void => {
    this.judging = undefined;
    const head = this.inflight[0];
    // Paused, the server cannot send and is not blamed; on resume, updateTimer() arms afresh.
    if (!head || this.failure || this.paused || this.upgrading) return;
    const t = now();
    // Silence first: a reply with no bytes yet is due when the idle timer is, and the idle timer,
    // fired a fraction of a millisecond early, re-arms; whichever fires first, a silence is told
    // as one (connection), not as 'too slowly' (it was in about 1 of 100 runs).
    if (t - this.idleFrom >= this.opts.timeoutMs) this.failIdle();
    else if (head.budget && head.budget.msLeft(t) <= 0) this.failSlow(head, t);
    // Otherwise bytes came in the poll, and receive() armed the timers again.
  };

  private failIdle(): void {
    const head = this.inflight[0];
    this.fail(
      'connection',
      `POP3 server sent nothing for ${this.opts.timeoutMs} ms while popsync waited for ` +
        `${head?.spec.label ?? 'a reply'}`,
    );
  }

  /** Makes the connection unusable and rejects everything pending; returns the error. */
  private fail(kind: ErrorKind, reason: string, cause?: unknown, context: ErrorContext = {}): PopsyncError {
    if (this.failure) return this.failure;
    const pending = [...this.inflight, ...this.queue];
    this.inflight.length = 0;
    this.queue.length = 0;
    const shown = pending.slice(0, 8).map((p) => p.spec.label);
    const more = pending.length > shown.length ? ` and ${pending.length - shown.length} more` : '';
    const message = pending.length > 0 ? `${reason} (pending: ${shown.join(', ')}${more})` : reason;
    this.failure = new PopsyncError(kind, message, context, { cause });
    this.clearTimer();
    this.detach();
    this.socket.on('error', () => {});
    this.socket.destroy();
    for (const [i, p] of pending.entries()) {
      const ctx = p.spec.messageNumber === undefined ? context : { ...context, messageNumber: p.spec.messageNumber };
      // A ceiling is the fault of the reply being read (the head), not of the commands behind it.
      const own = cause instanceof ReplyOverCeiling && i > 0 ? undefined : cause;
      p.to.reject(new PopsyncError(kind, message, ctx, { cause: own }));
    }
    return this.failure;
  }

  private laterError(spec: CommandSpec): PopsyncError {
    const f = this.failure as PopsyncError;
    const ctx = spec.messageNumber === undefined ? {} : { messageNumber: spec.messageNumber };
    const kind = f.kind === 'tls' || f.kind === 'protocol' ? f.kind : 'connection';
    return new PopsyncError(kind, `cannot send ${spec.label}: ${f.message}`, ctx, { cause: f });
  }
}

/** The longest delay setTimeout keeps. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** Monotonic milliseconds: wall-clock jumps must not fake a slow server. */
function now(): number {
  return performance.now();
}

function target(opts: ConnectionOptions): SocketTarget {
  return {
    protocol: 'POP3',
    host: opts.host,
    port: opts.port,
    ca: opts.ca,
    rejectUnauthorized: opts.rejectUnauthorized,
    connectTimeoutMs: opts.connectTimeoutMs,
    arena: true,
  };
}
