/**
 * Pipelined APPEND on a second, hand-written IMAP connection (RFC 7888 LITERAL+, RFC 4315 UIDPLUS).
 *
 * Why hand-written: imapflow keeps one command in flight and sends `{n+}` only up to 4 KiB, so
 * every APPEND waits for its tagged OK (and a large one also for '+'): about half of what the
 * server can take. It has no MULTIAPPEND or pipelining, and writing our own commands down its
 * socket would confuse its parser. So this module owns one more connection, used for APPEND
 * only, and writes every APPEND of a batch at once with non-synchronizing literals, reading
 * the tagged replies in order as they come back.
 *
 * What it reuses from imapflow (its exported `lib/` modules): the command compiler (quoting of
 * the mailbox name, flags, date, LOGIN strings), and the caller hands in the mailbox name
 * already encoded by imapflow's own normalizePath/encodePath, so both connections name the same
 * folder. Error kinds come from errors.ts, exactly as for the imapflow path.
 *
 * It is also the only way a message kept in a file (too large for memory, engine/spool.ts) can
 * be sent, since imapflow's append takes a Buffer: the literal is streamed from the file. So on
 * a server without LITERAL+ or UIDPLUS the writer still opens this connection, in 'streaming'
 * mode, for such messages: one APPEND at a time with a synchronising literal (command, wait for
 * '+', then the bytes), and no UID where the server gives no APPENDUID.
 *
 * It connects through net/connect.ts and logs in as login.ts decides, like imapflow's connection
 * (same TLS, CA, SNI, mechanism and token source).
 *
 * What it does not do: SELECT, FETCH or anything but APPEND; COMPRESS; reconnects mid-batch (a
 * drop throws 'connection' and unreported outcomes stay unknown, which the engine reconciles by
 * content). The password is
 * never logged: only command names are.
 */

import type net from 'node:net';
import { PopsyncError } from '../errors.js';
import type { Logger } from '../log.js';
import { openSocket, type SocketTarget, startTls } from '../net/connect.js';
import { bodyChunks, bodySize, sendPiece, type MessageBody } from './body.js';
import type { AppendOutcome, ImapOptions } from './types.js';
import { classifyAppendError, isTlsFailure, mapConnectError, type ImapFlowErrorLike } from './errors.js';
import { compiler } from './imapflow-adapter.js';
import { chooseLogin, credentialsFor, loginSecretForms, mechanismFor, SaslConversation } from './login.js';

/** Unacknowledged bytes written before we wait for replies: keeps memory and socket buffers flat. */
const MAX_IN_FLIGHT_BYTES = 8 * 1024 * 1024;

/** The session lacks what the pipelined path needs; the caller falls back to imapflow. */
export class PipelineUnsupported extends Error {}

interface Tagged {
  tag: string;
  status: 'OK' | 'NO' | 'BAD';
  code: string | undefined;
  line: string;
}

/** Response lines off a socket; an untagged line's literals are skipped (we need none). */
class LineReader {
  private buf: Buffer = Buffer.alloc(0);
  private lines: string[] = [];
  private partial = '';
  private skip = 0;
  private waiter: { resolve: (l: string) => void; reject: (e: Error) => void; timer: NodeJS.Timeout } | null = null;
  private ended: PopsyncError | null = null;

  constructor(
    private readonly sock: net.Socket,
    private readonly timeoutMs: number,
    private readonly where: string,
  ) {
    sock.on('data', this.onData);
    sock.on('error', this.onError);
    sock.on('close', this.onClose);
  }

  get usable(): boolean {
    return !this.ended && !this.sock.destroyed;
  }

  /** Bytes that arrived after the last line handed out (must be none after STARTTLS's OK). */
  get buffered(): number {
    return this.buf.length + this.lines.length;
  }

  detach(): void {
    this.sock.off('data', this.onData);
    this.sock.off('error', this.onError);
    this.sock.off('close', this.onClose);
  }

  next(): Promise<string> {
    const line = this.lines.shift();
    if (line !== undefined) return Promise.resolve(line);
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

  private readonly onData = (chunk: Buffer): void => {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    for (;;) {
      if (this.skip > 0) {
        const n = Math.min(this.skip, this.buf.length);
        this.buf = this.buf.subarray(n);
        this.skip -= n;
        if (this.skip > 0) return;
      }
      const eol = this.buf.indexOf('\r\n');
      if (eol < 0) return;
      const text = this.buf.subarray(0, eol).toString('utf8');
      this.buf = this.buf.subarray(eol + 2);
      const lit = /\{(\d+)\}$/.exec(text);
      if (lit) {
        this.partial += text;
        this.skip = Number(lit[1]);
        continue;
      }
      this.push(this.partial + text);
      this.partial = '';
    }
  };

  private push(line: string): void {
    const w = this.waiter;
    if (w) {
      this.waiter = null;
      clearTimeout(w.timer);
      w.resolve(line);
    } else this.lines.push(line);
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

export interface PipelineItem {
  body: MessageBody;
  /** Whether the body holds a NUL (sent as a binary literal where the server offers BINARY). */
  hasNul: boolean;
  /** Flags already formatted by imapflow's formatFlag. */
  flags: string[];
  /** imapflow's formatDateTime() of the internal date. */
  date: string | undefined;
}

export class PipelinedAppender {
  /** Messages sent down this connection; for tests and diagnostics. */
  appended = 0;
  private seq = 0;

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
   * Connects, secures and logs in like imapflow does (same TLS mode, CA, verification, SNI and
   * login), then, in 'pipelined' mode, checks LITERAL+ and UIDPLUS. Throws PipelineUnsupported
   * when the session lacks what the mode needs (the connection is closed), a PopsyncError like
   * connectImap's for everything else. 'streaming' mode needs neither extension. The forms of
   * the secret this login sends are added to `secrets`, for whoever maps later server replies.
   */
  static async open(
    opts: ImapOptions,
    timeoutMs: number,
    log: Logger,
    mode: 'pipelined' | 'streaming' = 'pipelined',
    secrets: string[] = [],
  ): Promise<PipelinedAppender> {
    const where = `${opts.host}:${opts.port}`;
    const target: SocketTarget = {
      protocol: 'IMAP',
      host: opts.host,
      port: opts.port,
      ca: opts.ca,
      rejectUnauthorized: opts.rejectUnauthorized,
      connectTimeoutMs: timeoutMs,
    };
    // Before connecting: a slow token command must not hold a connection the server may time out.
    const creds = await credentialsFor(opts);
    const forms = loginSecretForms(creds, opts);
    secrets.push(...forms);
    const fail = (err: unknown): PopsyncError => mapConnectError(err, { ...opts, secrets: forms });
    let sock = await openSocket(target, opts.tls === 'implicit');
    let reader = new LineReader(sock, timeoutMs, `APPEND connection to ${where}`);
    const a = new PipelinedAppender(sock, reader, new Set(), log);
    try {
      const greeting = await reader.next();
      if (!/^\* (OK|PREAUTH)\b/i.test(greeting))
        throw new PopsyncError('connection', `IMAP server ${where} did not greet us: ${greeting.slice(0, 200)}`);
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
        const step = chooseLogin(opts.auth ?? 'auto', caps, { token: creds.token, admin: creds.admin !== undefined });
        let t: Tagged;
        if (step.kind === 'sasl') {
          t = await a.authenticate(
            new SaslConversation(mechanismFor(step.mechanism, creds, opts), caps.has('SASL-IR')),
          );
        } else if (caps.has('LITERAL+') || mode === 'streaming') {
          // The compiler sends STRING values quoted, never as literals, so LOGIN needs no '+' wait.
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
          throw new PipelineUnsupported('no SASL mechanism for this login and no LOGIN with LITERAL+');
        }
        if (t.status !== 'OK') throw fail(refusal(t, { authenticationFailed: true }));
        caps = await a.capability();
      }
      if (mode === 'pipelined' && (!caps.has('LITERAL+') || !caps.has('UIDPLUS')))
        throw new PipelineUnsupported('no LITERAL+ or no UIDPLUS after login');
      (a as { capabilities: ReadonlySet<string> }).capabilities = caps;
      // Tests find the path taken by these words.
      log.debug(
        { host: opts.host },
        mode === 'pipelined'
          ? 'IMAP APPEND connection ready (pipelined LITERAL+)'
          : 'IMAP APPEND connection ready (streaming, one at a time)',
      );
      return a;
    } catch (err) {
      if (err instanceof PipelineUnsupported) await a.close();
      else a.destroy();
      throw err instanceof PopsyncError || err instanceof PipelineUnsupported ? err : fail(err);
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
      if (!t) continue;
      if (t.tag !== tag)
        throw new PopsyncError('protocol', `IMAP APPEND connection: expected a reply to ${tag}, got one to ${t.tag}`);
      return t;
    }
  }

  /**
   * Writes one APPEND per item, all at once (bounded by MAX_IN_FLIGHT_BYTES), and reports each
   * tagged reply in order. `mailbox` is the name exactly as imapflow would send it. Items with
   * `skip` set get that outcome at their place and are not sent. Without LITERAL+ the items go
   * one at a time with synchronising literals instead.
   */
  async append(
    mailbox: string,
    folder: string,
    items: Array<PipelineItem | { skip: AppendOutcome }>,
    onOutcome: (index: number, outcome: AppendOutcome) => void,
  ): Promise<AppendOutcome[]> {
    if (!this.capabilities.has('LITERAL+')) return this.appendOneByOne(mailbox, folder, items, onOutcome);
    const tags = items.map(() => `P${++this.seq}`);
    let inFlight = 0;
    let aborted = false;
    let acked: (() => void) | null = null;
    const sock = this.sock;
    const waitFor = (event: 'drain'): Promise<void> =>
      new Promise((resolve) => {
        const done = (): void => {
          sock.off(event, done);
          sock.off('close', done);
          resolve();
        };
        sock.once(event, done);
        sock.once('close', done);
      });
    const sizes = items.map((it) => ('skip' in it ? 0 : bodySize(it.body)));
    const writer = (async () => {
      for (const [i, it] of items.entries()) {
        if (aborted || sock.destroyed) return;
        if ('skip' in it) continue;
        const size = sizes[i]!;
        while (inFlight > 0 && inFlight + size > MAX_IN_FLIGHT_BYTES && !aborted) {
          await new Promise<void>((r) => {
            acked = r;
          });
        }
        if (aborted || sock.destroyed) return;
        inFlight += size;
        this.appended++;
        sock.write(this.command(tags[i]!, mailbox, it, '+'));
        // A file body is read in pieces as the socket drains: never whole in memory.
        for await (const chunk of bodyChunks(it.body)) {
          if (aborted || sock.destroyed) return;
          await sendPiece(sock, it.body, chunk);
        }
        if (!sock.write('\r\n')) await waitFor('drain');
      }
    })();
    // A body that cannot be read (spool file gone) leaves a literal unfinished: the connection
    // is spent, and closing it makes the reply loop below fail instead of waiting for a reply.
    writer.catch(() => this.destroy());
    const outcomes: AppendOutcome[] = [];
    try {
      for (const [i, it] of items.entries()) {
        let outcome: AppendOutcome;
        if ('skip' in it) {
          outcome = it.skip;
        } else {
          const t = await this.tagged(tags[i]!);
          inFlight -= sizes[i]!;
          const wake = acked as (() => void) | null;
          acked = null;
          wake?.();
          outcome = this.outcomeOf(t, folder, i);
        }
        outcomes.push(outcome);
        onOutcome(i, outcome);
      }
      await writer;
      return outcomes;
    } catch (err) {
      // Replies to commands already written would still arrive: this connection is spent.
      aborted = true;
      (acked as (() => void) | null)?.();
      this.destroy();
      await writer.catch(() => {});
      throw err;
    }
  }

  /**
   * The APPEND command up to and including its literal's announcement. A binary literal (RFC
   * 3516) only where the server offers BINARY; otherwise a NUL goes in a plain literal, as
   * imapflow sends it, and the server decides.
   */
  private command(tag: string, mailbox: string, it: PipelineItem, plus: '+' | ''): Buffer {
    const head = compiler({
      tag,
      command: 'APPEND',
      attributes: [
        { type: 'ATOM', value: mailbox },
        ...(it.flags.length || it.date ? [it.flags.map((f) => ({ type: 'ATOM' as const, value: f }))] : []),
        ...(it.date ? [{ type: 'STRING' as const, value: it.date }] : []),
      ],
    });
    const binary = it.hasNul && this.capabilities.has('BINARY');
    return Buffer.concat([head, Buffer.from(` ${binary ? '~' : ''}{${bodySize(it.body)}${plus}}\r\n`)]);
  }

  /**
   * Without LITERAL+: each APPEND announces a synchronising literal and waits for the server's
   * '+' before sending the bytes, streamed from memory or file; a tagged NO instead of '+' is
   * that message's refusal (nothing was sent). No APPENDUID (no UIDPLUS) means no UID.
   */
  private async appendOneByOne(
    mailbox: string,
    folder: string,
    items: Array<PipelineItem | { skip: AppendOutcome }>,
    onOutcome: (index: number, outcome: AppendOutcome) => void,
  ): Promise<AppendOutcome[]> {
    const outcomes: AppendOutcome[] = [];
    try {
      for (const [i, it] of items.entries()) {
        let outcome: AppendOutcome;
        if ('skip' in it) {
          outcome = it.skip;
        } else {
          const tag = `P${++this.seq}`;
          this.appended++;
          this.sock.write(this.command(tag, mailbox, it, ''));
          let t = await this.continuationOr(tag);
          if (t === null) {
            for await (const chunk of bodyChunks(it.body)) {
              if (this.sock.destroyed) break;
              await sendPiece(this.sock, it.body, chunk);
            }
            this.sock.write('\r\n');
            t = await this.tagged(tag);
          }
          outcome = this.outcomeOf(t, folder, i);
        }
        outcomes.push(outcome);
        onOutcome(i, outcome);
      }
      return outcomes;
    } catch (err) {
      // A literal cut short or a reply lost: the server's reading of the stream is unknown.
      this.destroy();
      throw err;
    }
  }

  /** A tagged reply as an outcome; a session-wide failure (BYE, auth) is thrown. */
  private outcomeOf(t: Tagged, folder: string, index: number): AppendOutcome {
    if (t.status === 'OK') {
      const m = /^APPENDUID (\d+) (\d+)$/i.exec(t.code ?? '');
      return m
        ? { ok: true, uid: Number(m[2]), uidValidity: BigInt(m[1]!) }
        : { ok: true, uid: null, uidValidity: null };
    }
    const failure = classifyAppendError(refusal(t), folder);
    if (failure.scope === 'session') throw failure.error;
    this.log.debug({ folder, index, serverResponse: failure.error.context.serverResponse }, 'APPEND refused');
    return { ok: false, error: failure.error };
  }

  /** Waits for '+' (null) or the command's tagged reply, skipping untagged lines. */
  private async continuationOr(tag: string): Promise<Tagged | null> {
    for (;;) {
      const line = await this.reader.next();
      if (line.startsWith('+')) return null;
      const t = parseTagged(line);
      if (!t) continue;
      if (t.tag !== tag)
        throw new PopsyncError('protocol', `IMAP APPEND connection: expected a reply to ${tag}, got one to ${t.tag}`);
      return t;
    }
  }

  async close(): Promise<void> {
    if (!this.usable) return this.destroy();
    try {
      this.sock.write('Z LOGOUT\r\n');
      for (;;) if (parseTagged(await this.reader.next())?.tag === 'Z') break;
    } catch {
      // closing anyway
    } finally {
      this.destroy();
    }
  }

  destroy(): void {
    this.sock.destroy();
  }

  private async tagged(tag: string): Promise<Tagged> {
    for (;;) {
      const line = await this.reader.next();
      const t = parseTagged(line);
      if (!t) continue; // untagged (EXISTS of nothing selected, alerts) or stray continuation
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
