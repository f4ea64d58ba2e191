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

import { Readable } from 'node:stream';
import { PopsyncError } from '../errors.js';
import { silentLogger } from '../log.js';
import { Pop3Connection, type CommandSpec, type Reply } from './connection.js';
import { replyError } from './reply-errors.js';
import { authenticate, chooseAuthMethod } from './sasl.js';
import type { Pop3Options, Pop3Session, Pop3SizeEntry, Pop3Stat, Pop3UidlEntry } from './types.js';

export const DEFAULT_TIMEOUT_MS = 60_000;
export const DEFAULT_CONNECT_TIMEOUT_MS = 30_000;
/** How many commands may be written ahead of their responses when PIPELINING is on. */
export const PIPELINE_WINDOW = 64;

/** Connects, reads the greeting, runs CAPA, STLS if asked, logs in; returns a TRANSACTION session. */
export async function connectPop3(opts: Pop3Options): Promise<Pop3Session> {
  checkOptions(opts);
  const logger = (opts.logger ?? silentLogger).child({ pop3: `${opts.host}:${opts.port}` });
  const conn = await Pop3Connection.open({
    host: opts.host,
    port: opts.port,
    implicitTls: opts.tls === 'implicit',
    ...(opts.ca ? { ca: opts.ca } : {}),
    rejectUnauthorized: opts.rejectUnauthorized !== false,
    timeoutMs: opts.timeoutMs ?? DEFAULT_TIMEOUT_MS,
    connectTimeoutMs: opts.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
    logger,
  });
  try {
    const hello = await conn.greeting;
    if (hello.status.kind !== 'ok') throw replyError(hello.status, 'the connection', 'command');
    const greeting = hello.status.line;

    let caps = await capa(conn);
    if (opts.tls === 'starttls') {
      if (!caps.has('STLS')) {
        throw new PopsyncError('tls', `POP3 server ${opts.host}:${opts.port} does not offer STLS; refusing to log in without TLS`, {
          hint: "Use implicit TLS (usually port 995) if the server has it; plaintext needs an explicit tls: 'none'.",
        });
      }
      const r = await conn.send({ line: 'STLS', label: 'STLS', multiline: false, upgrade: true });
      if (r.status.kind !== 'ok') {
        throw new PopsyncError('tls', `POP3 server refused STLS: ${r.status.line}`, { serverResponse: r.status.line });
      }
      await conn.upgradeTls();
      // RFC 2595 §4: forget what was learnt before TLS; a man in the middle could have edited it.
      caps = await capa(conn);
    }

    const method = chooseAuthMethod(opts.auth ?? 'auto', caps, greeting);
    logger.debug({ method }, 'pop3 login');
    await authenticate(conn, { user: opts.user, password: opts.password }, method, greeting);

    // RFC 2449 §5: capabilities may differ in TRANSACTION state (PIPELINING in particular).
    if (caps.size > 0) {
      const after = await capa(conn);
      if (after.size > 0) caps = after;
    }
    const pipelining = opts.pipelining !== false && caps.has('PIPELINING');
    conn.setWindow(pipelining ? PIPELINE_WINDOW : 1);
    return new Session(conn, greeting, caps, pipelining);
  } catch (e) {
    conn.destroy();
    throw e;
  }
}

function checkOptions(opts: Pop3Options): void {
  // A CR or LF would let a config value inject POP3 commands.
  for (const [name, value] of [
    ['user', opts.user],
    ['password', opts.password],
  ] as const) {
    if (/[\r\n\0]/.test(value)) {
      throw new PopsyncError('config', `POP3 ${name} contains a line break or NUL, which POP3 cannot carry`);
    }
  }
  if (!Number.isInteger(opts.port) || opts.port < 1 || opts.port > 65535) {
    throw new PopsyncError('config', `POP3 port must be 1-65535, got ${String(opts.port)}`);
  }
}

/** CAPA (RFC 2449). A server without it gets an empty map, not an error. */
async function capa(conn: Pop3Connection): Promise<Map<string, string[]>> {
  const r = await conn.send({ line: 'CAPA', label: 'CAPA', multiline: true });
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

function checkMessageNumber(n: number): void {
  if (!Number.isSafeInteger(n) || n < 1) {
    throw new PopsyncError('internal', `POP3 message numbers start at 1; got ${String(n)}`);
  }
}

function protocolError(what: string, line: string): PopsyncError {
  return new PopsyncError('protocol', `POP3 server sent a malformed ${what}: ${JSON.stringify(line.slice(0, 200))}`, {
    serverResponse: line.slice(0, 200),
  });
}

/** "n value" lines of LIST and UIDL. */
function parseListing(body: Buffer | undefined, what: string): Array<{ n: number; value: string }> {
  const out: Array<{ n: number; value: string }> = [];
  for (const line of bodyLines(body)) {
    if (line.trim() === '') continue;
    const m = /^\s*(\d+)\s+(\S+)/.exec(line);
    if (!m) throw protocolError(`${what} line`, line);
    out.push({ n: Number(m[1]), value: m[2] as string });
  }
  return out;
}

class Session implements Pop3Session {
  constructor(
    private readonly conn: Pop3Connection,
    readonly greeting: string,
    readonly capabilities: ReadonlyMap<string, string[]>,
    readonly pipelining: boolean,
  ) {}

  /** Sends a command and turns -ERR into PopsyncError('server'/'temporary'). */
  private async run(spec: CommandSpec): Promise<Reply> {
    const reply = await this.conn.send(spec);
    if (reply.status.kind !== 'ok') {
      throw replyError(reply.status, spec.label, 'command', spec.messageNumber === undefined ? {} : { messageNumber: spec.messageNumber });
    }
    return reply;
  }

  private simple(line: string, messageNumber?: number): Promise<Reply> {
    return this.run({ line, label: line, multiline: false, ...(messageNumber === undefined ? {} : { messageNumber }) });
  }

  private async multi(line: string, messageNumber?: number): Promise<Buffer> {
    const r = await this.run({ line, label: line, multiline: true, ...(messageNumber === undefined ? {} : { messageNumber }) });
    return r.body ?? Buffer.alloc(0);
  }

  async stat(): Promise<Pop3Stat> {
    const r = await this.simple('STAT');
    const m = /^(\d+)\s+(\d+)/.exec(r.status.text);
    if (!m) throw protocolError('STAT reply', r.status.line);
    return { count: Number(m[1]), size: Number(m[2]) };
  }

  async list(): Promise<Pop3SizeEntry[]> {
    return parseListing(await this.multi('LIST'), 'LIST').map(({ n, value }) => {
      const size = Number(value);
      if (!Number.isSafeInteger(size)) throw protocolError('LIST size', value);
      return { n, size };
    });
  }

  async uidl(): Promise<Pop3UidlEntry[]> {
    return parseListing(await this.multi('UIDL'), 'UIDL').map(({ n, value }) => ({ n, uidl: value }));
  }

  async top(n: number, lines: number): Promise<Buffer> {
    checkMessageNumber(n);
    if (!Number.isSafeInteger(lines) || lines < 0) throw new PopsyncError('internal', `TOP line count must be >= 0; got ${String(lines)}`);
    return this.multi(`TOP ${n} ${lines}`, n);
  }

  async retr(n: number): Promise<Buffer> {
    checkMessageNumber(n);
    return this.multi(`RETR ${n}`, n);
  }

  retrStream(n: number): Readable {
    const conn = this.conn;
    const stream = new Readable({
      // The socket is paused while our buffer is full; reading more un-pauses it.
      read: () => conn.resumeReading(),
      destroy: (err, cb) => {
        // The rest of the response must still be read to stay in step, so never leave the socket paused.
        conn.resumeReading();
        cb(err);
      },
    });
    try {
      checkMessageNumber(n);
    } catch (e) {
      process.nextTick(() => stream.destroy(e as Error));
      return stream;
    }
    const line = `RETR ${n}`;
    this.run({
      line,
      label: line,
      multiline: true,
      messageNumber: n,
      onData: (chunk) => (stream.destroyed ? true : stream.push(chunk)),
    }).then(
      () => {
        if (!stream.destroyed) stream.push(null);
      },
      (e: unknown) => stream.destroy(e as Error),
    );
    return stream;
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

  destroy(): void {
    this.conn.destroy('POP3 session destroyed by popsync');
  }
}
