/**
 * A scripted, in-process POP3 server for tests (RFC 1939 + CAPA, RESP-CODES, SASL PLAIN/LOGIN,
 * APOP, PIPELINING, STLS / implicit TLS). Listens on 127.0.0.1, port 0.
 *
 * Why a fake and not only Dovecot: faults. Tests need a server that drops the socket in the
 * middle of RETR, says `-ERR [IN-USE]`, goes silent, loses the QUIT reply or sends a dot-stuffed
 * body in odd pieces, and they need to see exactly which commands the client sent.
 *
 * Usage:
 *
 *   const pop = await startFakePop3({ messages: ['Subject: a\r\n\r\nhi\r\n'], pipelining: true });
 *   const session = await connectPop3(pop.clientOptions());
 *   ...
 *   expect(pop.commands('RETR')).toEqual(['RETR 1']);
 *   await pop.close();
 *
 * Every verb has a default handler working on an in-memory mailbox (`pop.mailbox`). A test
 * overrides any verb with `handlers: { RETR: (ctx, args) => ... }` (or by assigning to
 * `pop.handlers` later); `ctx.useDefault()` falls through to the built-in behaviour. The special
 * verb 'GREETING' runs when a client connects. A handler that writes nothing makes the server
 * silent for that command.
 *
 * Mailbox semantics follow RFC 1939: a session sees a snapshot numbered from 1, DELE only marks,
 * and marked messages leave `pop.mailbox` when QUIT is answered with +OK. The mailbox persists
 * across connections, so engine tests can check what a second run sees.
 *
 * The server is CRLF-exact: it writes CRLF everywhere and records whether each command line the
 * client sent ended in CRLF (`received[i].crlf`).
 */

import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import type { Pop3Options } from '../../src/pop3/types.js';

interface FakeMessage {
  uidl: string;
  body: Buffer;
}

type FakeMessageInput = Buffer | string | { body: Buffer | string; uidl?: string };

type FakeHandler = (ctx: FakeContext, args: string[]) => void | Promise<void>;

interface FakeTlsOptions {
  key: string | Buffer;
  cert: string | Buffer;
  /** 'starttls': advertise STLS and upgrade on it; 'implicit': TLS from the first byte. */
  mode: 'starttls' | 'implicit';
}

export interface FakePop3Options {
  messages?: FakeMessageInput[];
  user?: string;
  password?: string;
  /** Put an APOP timestamp in the greeting (true: a generated one). */
  apop?: boolean | string;
  /** CAPA lines (STLS and PIPELINING are added from their own options); false: CAPA answers -ERR. */
  capa?: string[] | false;
  /** SASL mechanisms advertised and accepted (default PLAIN LOGIN; [] for none). */
  sasl?: string[];
  /** The OAuth2 access token XOAUTH2 and OAUTHBEARER accept (add them to `sasl`); a function is asked each time. */
  token?: string | ((token: string) => boolean);
  /** PLAIN with an authzid: the admin users that may act for `user` (with `password`). */
  admins?: string[];
  pipelining?: boolean;
  tls?: FakeTlsOptions;
  handlers?: Partial<Record<string, FakeHandler>>;
}

interface ReceivedCommand {
  /** Which connection (0, 1, ...) sent it. */
  connection: number;
  /** The line without its line end, verbatim (credentials included: this is the server's view). */
  line: string;
  /** Upper-cased first word. */
  verb: string;
  /** Whether the line ended in CRLF. */
  crlf: boolean;
  /**
   * How many replies this connection had written when the line arrived. Pipelined commands
   * arrive before the replies to earlier ones, so they share a value.
   */
  repliesBefore: number;
}

export interface FakeContext {
  readonly server: FakePop3;
  /** Index of this connection in arrival order. */
  readonly connection: number;
  state: 'AUTHORIZATION' | 'TRANSACTION' | 'UPDATE';
  /** This session's snapshot; `deleted` marks DELE. */
  readonly messages: Array<FakeMessage & { deleted: boolean }>;
  readonly greeting: string;
  readonly secure: boolean;
  /** Writes one status line (CRLF added) and counts it as a reply. */
  reply(line: string): void;
  /** Writes a status line plus a dot-stuffed, terminated body; counts as one reply. */
  replyMulti(status: string, body: Buffer | string): void;
  /** Writes raw bytes, exactly as given (not counted as a reply). */
  write(bytes: Buffer | string): void;
  /**
   * write(), then waits until the bytes went to the kernel: a handler sending without end follows
   * the client's pace, and a drop() after it loses none of them; false once the client is gone.
   */
  writeWait(bytes: Buffer | string): Promise<boolean>;
  /** Reads the client's next line (for SASL exchanges); null if the client went away. */
  readLine(): Promise<string | null>;
  /** Destroys the socket at once, as a crash or network drop would. */
  drop(): void;
  /** Runs the built-in handler for the current command. */
  useDefault(): Promise<void>;
}

export interface FakePop3 {
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly password: string;
  /** The live mailbox; QUIT with +OK removes messages its session marked deleted. */
  readonly mailbox: FakeMessage[];
  /** Every command line received, in order, across connections. */
  readonly received: ReceivedCommand[];
  /** Per-verb overrides; assign at any time. */
  readonly handlers: Partial<Record<string, FakeHandler>>;
  /** Connections accepted so far. */
  readonly connections: number;
  /** Command lines received, optionally only those of one verb. */
  commands(verb?: string): string[];
  /** Options for connectPop3 pointing at this server, with its credentials. */
  clientOptions(extra?: Partial<Pop3Options>): Pop3Options;
  close(): Promise<void>;
}

/** RFC 1939 §3 encoding of a multi-line response: status line, stuffed body, terminator. */
export function multiline(status: string, body: Buffer | string): Buffer {
  const bytes = typeof body === 'string' ? Buffer.from(body, 'latin1') : body;
  const out: Buffer[] = [Buffer.from(`${status}\r\n`, 'latin1')];
  let lineStart = 0;
  while (lineStart < bytes.length) {
    const lf = bytes.indexOf(0x0a, lineStart);
    const end = lf < 0 ? bytes.length : lf + 1;
    if (bytes[lineStart] === 0x2e) out.push(Buffer.from('.'));
    out.push(bytes.subarray(lineStart, end));
    lineStart = end;
  }
  if (bytes.length > 0 && bytes[bytes.length - 1] !== 0x0a) out.push(Buffer.from('\r\n'));
  out.push(Buffer.from('.\r\n'));
  return Buffer.concat(out);
}

/**
 * A throwaway self-signed certificate for CN=localhost, IP 127.0.0.1, made with the openssl CLI
 * in a temp dir that is removed again. Keys never touch the repository.
 */
export function generateTestCertificate(): { key: string; cert: string } {
  const dir = mkdtempSync(join(tmpdir(), 'popsync-cert-'));
  try {
    const key = join(dir, 'key.pem');
    const cert = join(dir, 'cert.pem');
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'rsa:2048',
        '-nodes',
        '-keyout',
        key,
        '-out',
        cert,
        '-days',
        '2',
        '-subj',
        '/CN=localhost',
        '-addext',
        'subjectAltName=DNS:localhost,IP:127.0.0.1',
      ],
      { stdio: 'ignore' },
    );
    return { key: readFileSync(key, 'utf8'), cert: readFileSync(cert, 'utf8') };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function toMessage(input: FakeMessageInput, i: number): FakeMessage {
  if (typeof input === 'string') return { uidl: `uid-${i + 1}`, body: Buffer.from(input, 'latin1') };
  if (Buffer.isBuffer(input)) return { uidl: `uid-${i + 1}`, body: input };
  return {
    uidl: input.uidl ?? `uid-${i + 1}`,
    body: typeof input.body === 'string' ? Buffer.from(input.body, 'latin1') : input.body,
  };
}

export async function startFakePop3(options: FakePop3Options = {}): Promise<FakePop3> {
  const user = options.user ?? 'alice';
  const password = options.password ?? 'secret';
  const sasl = options.sasl ?? ['PLAIN', 'LOGIN'];
  const mailbox = (options.messages ?? []).map(toMessage);
  const received: ReceivedCommand[] = [];
  const handlers: Partial<Record<string, FakeHandler>> = { ...options.handlers };
  const sockets = new Set<net.Socket>();
  let connections = 0;

  const onConnection = (socket: net.Socket): void => {
    const id = connections++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    void serve(socket, id);
  };
  const server =
    options.tls?.mode === 'implicit'
      ? tls.createServer({ key: options.tls.key, cert: options.tls.cert }, onConnection)
      : net.createServer(onConnection);
  // A client that rejects our certificate makes the server side fail the handshake: expected.
  server.on('tlsClientError', () => {});

  const pop: FakePop3 = {
    host: '127.0.0.1',
    port: 0,
    user,
    password,
    mailbox,
    received,
    handlers,
    get connections() {
      return connections;
    },
    commands: (verb) => received.filter((r) => verb === undefined || r.verb === verb.toUpperCase()).map((r) => r.line),
    clientOptions: (extra = {}) => ({ host: '127.0.0.1', port: pop.port, tls: 'none', user, password, ...extra }),
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };

  async function serve(raw: net.Socket, id: number): Promise<void> {
    let socket: net.Socket = raw;
    let buffered = Buffer.alloc(0);
    const lines: Array<{ line: string; crlf: boolean }> = [];
    let waiter: ((l: string | null) => void) | undefined;
    let closed = false;
    let replies = 0;
    let pendingUser: string | undefined;
    let verb = '';
    let args: string[] = [];
    const timestamp =
      options.apop === true ? `<${process.pid}.${Date.now()}.${id}@fake.test>` : options.apop || undefined;
    const greeting = `+OK fake POP3 ready${timestamp ? ` ${timestamp}` : ''}`;

    const onData = (chunk: Buffer): void => {
      buffered = Buffer.concat([buffered, chunk]);
      for (let lf = buffered.indexOf(0x0a); lf >= 0; lf = buffered.indexOf(0x0a)) {
        const crlf = lf > 0 && buffered[lf - 1] === 0x0d;
        const line = buffered.toString('utf8', 0, crlf ? lf - 1 : lf);
        buffered = buffered.subarray(lf + 1);
        received.push({
          connection: id,
          line,
          verb: (line.split(' ')[0] ?? '').toUpperCase(),
          crlf,
          repliesBefore: replies,
        });
        lines.push({ line, crlf });
      }
      wake();
    };
    const wake = (): void => {
      if (!waiter) return;
      const next = lines.shift();
      if (next) {
        const w = waiter;
        waiter = undefined;
        w(next.line);
      } else if (closed) {
        const w = waiter;
        waiter = undefined;
        w(null);
      }
    };
    const listen = (s: net.Socket): void => {
      s.on('data', onData);
      s.on('error', () => {});
      s.on('close', () => {
        closed = true;
        wake();
      });
    };
    listen(socket);

    const ctx: FakeContext = {
      server: pop,
      connection: id,
      state: 'AUTHORIZATION',
      messages: [],
      greeting,
      get secure() {
        return socket instanceof tls.TLSSocket;
      },
      reply(line) {
        replies++;
        if (!socket.destroyed) socket.write(`${line}\r\n`);
      },
      replyMulti(status, body) {
        replies++;
        if (!socket.destroyed) socket.write(multiline(status, body));
      },
      write(bytes) {
        if (!socket.destroyed) socket.write(bytes);
      },
      writeWait(bytes) {
        if (socket.destroyed || closed) return Promise.resolve(false);
        // The callback runs once these bytes (and all before them) went to the kernel, so a drop
        // right after cannot lose them, and an endless sender follows the client's pace.
        return new Promise<boolean>((resolve) => socket.write(bytes, (err) => resolve(!err && !socket.destroyed)));
      },
      readLine: () =>
        new Promise<string | null>((resolve) => {
          waiter = resolve;
          wake();
        }),
      drop() {
        closed = true;
        socket.destroy();
        wake();
      },
      useDefault: () => builtin(verb, args),
    };

    const live = (nArg: string | undefined): (FakeMessage & { deleted: boolean }) | undefined => {
      const n = Number(nArg);
      const m = Number.isInteger(n) && n >= 1 ? ctx.messages[n - 1] : undefined;
      if (!m || m.deleted) {
        ctx.reply('-ERR no such message');
        return undefined;
      }
      return m;
    };
    const needState = (state: FakeContext['state']): boolean => {
      if (ctx.state === state) return true;
      ctx.reply(`-ERR not allowed in ${ctx.state} state`);
      return false;
    };
    const login = (): void => {
      ctx.state = 'TRANSACTION';
      ctx.messages.splice(0, ctx.messages.length, ...mailbox.map((m) => ({ ...m, deleted: false })));
      ctx.reply(`+OK logged in, ${ctx.messages.length} messages`);
    };
    const refuse = (): void => ctx.reply('-ERR [AUTH] Authentication failed');
    const decode = (b64: string): string => Buffer.from(b64, 'base64').toString('utf8');

    async function builtin(v: string, a: string[]): Promise<void> {
      switch (v) {
        case 'GREETING':
          return ctx.reply(greeting);
        case 'CAPA': {
          if (options.capa === false) return ctx.reply('-ERR unknown command');
          const caps = [
            ...(options.capa ?? [
              'TOP',
              'UIDL',
              'RESP-CODES',
              'AUTH-RESP-CODE',
              'USER',
              ...(sasl.length > 0 ? [`SASL ${sasl.join(' ')}`] : []),
            ]),
          ];
          if (options.pipelining) caps.push('PIPELINING');
          if (options.tls?.mode === 'starttls' && !ctx.secure && ctx.state === 'AUTHORIZATION') caps.push('STLS');
          return ctx.replyMulti('+OK capability list follows', caps.map((c) => `${c}\r\n`).join(''));
        }
        case 'STLS': {
          if (!needState('AUTHORIZATION')) return;
          if (options.tls?.mode !== 'starttls' || ctx.secure) return ctx.reply('-ERR STLS not available');
          ctx.reply('+OK begin TLS negotiation');
          socket.off('data', onData);
          buffered = Buffer.alloc(0);
          const secure = new tls.TLSSocket(socket, {
            isServer: true,
            secureContext: tls.createSecureContext({ key: options.tls.key, cert: options.tls.cert }),
          });
          socket = secure;
          listen(secure);
          return;
        }
        case 'USER':
          if (!needState('AUTHORIZATION')) return;
          pendingUser = a[0];
          return ctx.reply('+OK send PASS');
        case 'PASS':
          if (!needState('AUTHORIZATION')) return;
          if (pendingUser === user && a.join(' ') === password) return login();
          return refuse();
        case 'APOP': {
          if (!needState('AUTHORIZATION')) return;
          if (!timestamp) return ctx.reply('-ERR APOP not supported');
          const expected = createHash('md5')
            .update(timestamp + password)
            .digest('hex');
          if (a[0] === user && a[1] === expected) return login();
          return refuse();
        }
        case 'AUTH': {
          if (!needState('AUTHORIZATION')) return;
          const mech = (a[0] ?? '').toUpperCase();
          if (!sasl.includes(mech)) return ctx.reply('-ERR unsupported SASL mechanism');
          const ask = async (challenge: string): Promise<string | null> => {
            ctx.write(`+ ${Buffer.from(challenge).toString('base64')}\r\n`);
            const l = await ctx.readLine();
            return l === '*' ? null : l;
          };
          if (mech === 'PLAIN') {
            const response = a[1] !== undefined ? a[1] : await ask('');
            if (response === null) return ctx.reply('-ERR authentication cancelled');
            const [authz = '', authc, pw] = decode(response).split('\0');
            if (authz !== '' && authz !== authc) {
              // An admin acting for `user`: the admin's own password (here the same one) must match.
              const admin = authc !== undefined && (options.admins ?? []).includes(authc);
              return admin && authz === user && pw === password ? login() : refuse();
            }
            return authc === user && pw === password ? login() : refuse();
          }
          if (mech === 'XOAUTH2' || mech === 'OAUTHBEARER') {
            const response = a[1] !== undefined && a[1] !== '=' ? a[1] : await ask('');
            if (response === null) return ctx.reply('-ERR authentication cancelled');
            const text = decode(response);
            const fields = text.split('\x01');
            const token = fields.find((f) => f.startsWith('auth=Bearer '))?.slice('auth=Bearer '.length) ?? '';
            const first = fields[0] ?? '';
            const who = mech === 'XOAUTH2' ? first.replace(/^user=/, '') : /^n,a=([^,]*),/.exec(first)?.[1];
            const t = options.token;
            const good = who === user && (typeof t === 'function' ? t(token) : t !== undefined && t === token);
            if (good) return login();
            // RFC 7628 §3.2.2: the error as a challenge; the client's answer ends the exchange.
            const answer = await ask(JSON.stringify({ status: 'invalid_token', schemes: 'bearer' }));
            if (answer === null) return ctx.reply('-ERR authentication cancelled');
            return refuse();
          }
          const name = a[1] !== undefined ? a[1] : await ask('Username:');
          if (name === null) return ctx.reply('-ERR authentication cancelled');
          const pw = await ask('Password:');
          if (pw === null) return ctx.reply('-ERR authentication cancelled');
          return decode(name) === user && decode(pw) === password ? login() : refuse();
        }
        case 'STAT': {
          if (!needState('TRANSACTION')) return;
          const left = ctx.messages.filter((m) => !m.deleted);
          return ctx.reply(`+OK ${left.length} ${left.reduce((s, m) => s + m.body.length, 0)}`);
        }
        case 'LIST':
        case 'UIDL': {
          if (!needState('TRANSACTION')) return;
          const value = (m: FakeMessage): string => (v === 'LIST' ? String(m.body.length) : m.uidl);
          if (a[0] !== undefined) {
            const m = live(a[0]);
            return m ? ctx.reply(`+OK ${a[0]} ${value(m)}`) : undefined;
          }
          const lines = ctx.messages.flatMap((m, i) => (m.deleted ? [] : [`${i + 1} ${value(m)}\r\n`]));
          return ctx.replyMulti('+OK', lines.join(''));
        }
        case 'TOP': {
          if (!needState('TRANSACTION')) return;
          const m = live(a[0]);
          if (!m) return;
          const n = Number(a[1]);
          if (!Number.isInteger(n) || n < 0) return ctx.reply('-ERR bad line count');
          return ctx.replyMulti('+OK top of message follows', topOf(m.body, n));
        }
        case 'RETR': {
          if (!needState('TRANSACTION')) return;
          const m = live(a[0]);
          return m ? ctx.replyMulti(`+OK ${m.body.length} octets`, m.body) : undefined;
        }
        case 'DELE': {
          if (!needState('TRANSACTION')) return;
          const m = live(a[0]);
          if (!m) return;
          m.deleted = true;
          return ctx.reply(`+OK message ${a[0]} deleted`);
        }
        case 'RSET':
          if (!needState('TRANSACTION')) return;
          for (const m of ctx.messages) m.deleted = false;
          return ctx.reply('+OK');
        case 'NOOP':
          if (!needState('TRANSACTION')) return;
          return ctx.reply('+OK');
        case 'QUIT': {
          if (ctx.state === 'TRANSACTION') {
            ctx.state = 'UPDATE';
            for (const m of ctx.messages) {
              if (!m.deleted) continue;
              const at = mailbox.findIndex((x) => x.uidl === m.uidl && x.body === m.body);
              if (at >= 0) mailbox.splice(at, 1);
            }
          }
          ctx.reply('+OK bye');
          socket.end();
          return;
        }
        default:
          return ctx.reply('-ERR unknown command');
      }
    }

    const run = async (v: string, a: string[]): Promise<void> => {
      verb = v;
      args = a;
      const h = handlers[v];
      if (h) await h(ctx, a);
      else await builtin(v, a);
    };

    await run('GREETING', []);
    for (let line = await ctx.readLine(); line !== null; line = await ctx.readLine()) {
      const [v = '', ...a] = line.split(' ');
      await run(v.toUpperCase(), a);
    }
  }

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  (pop as { port: number }).port = (server.address() as net.AddressInfo).port;
  return pop;
}

/** RFC 1939 TOP: the header block, the blank line, then `n` body lines. */
function topOf(body: Buffer, n: number): Buffer {
  let at = body.indexOf('\r\n\r\n');
  let sep = 4;
  if (at < 0) {
    at = body.indexOf('\n\n');
    sep = 2;
  }
  if (at < 0) return body;
  let end = at + sep;
  for (let i = 0; i < n && end < body.length; i++) {
    const lf = body.indexOf(0x0a, end);
    end = lf < 0 ? body.length : lf + 1;
  }
  return body.subarray(0, end);
}
