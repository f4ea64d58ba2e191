/**
 * A scripted POP3 server that sends as fast as its socket takes: every command is answered the
 * moment it is read, with big bodies made on the fly (nothing is held per message, so a test can
 * serve hundreds of MB), and while a reply does not fit in the socket it reads no further command
 * until it does, as a blocking server does. A client that stopped reading replies while it had
 * commands to write would deadlock against it; one that reads whatever arrives holds all of it.
 *
 * Usage: `const pop = await startFloodPop3({ count: 400, size: 700 * 1024 })`, then
 * `connectPop3(pop.clientOptions())`; `pop.digest(n)` and `pop.wireBytes(n)` say what RETR n
 * carries. A liar lists one size and sends another (`listed`, `sent`).
 *
 * The fake-pop3.ts server holds its mailbox in memory and reads commands while it writes; this
 * one exists for the two things it cannot do. With `tls` it speaks pop3s (TLS from the first
 * byte) and clientOptions() trusts its certificate.
 */
import { createHash } from 'node:crypto';
import net from 'node:net';
import tls from 'node:tls';
import type { Pop3Options } from '../../src/pop3/types.js';

export interface FloodOptions {
  /** Messages in the mailbox. */
  count: number;
  /** About how many bytes each body has (rounded down to whole filler lines). */
  size: number;
  /** What LIST says for message n (default: its real size). */
  listed?: (n: number, real: number) => number;
  /** About how many body bytes RETR n really sends (default: the real body); more than listed is a lie. */
  sent?: (n: number, real: number) => number;
  user?: string;
  password?: string;
  /** TLS from the first byte with this certificate (fake-pop3.ts generateTestCertificate). */
  tls?: { key: string; cert: string };
}

export interface FloodPop3 {
  readonly host: string;
  readonly port: number;
  /** Connections accepted so far. */
  readonly connections: number;
  /** RETR commands answered, across connections. */
  readonly retrs: number;
  /** Most commands read from one connection and not yet answered: how far the client wrote ahead. */
  readonly mostQueued: number;
  /** Times a reply did not fit in the socket, so the server stopped reading until it drained. */
  readonly stalls: number;
  /** The Message-ID of message n, as its header carries it. */
  messageId(n: number): string;
  /** sha256 (hex) of message n's body as RETR n sends it. */
  digest(n: number): string;
  /** Bytes of the whole RETR n reply on the wire: status line, body, terminator. */
  wireBytes(n: number): number;
  clientOptions(extra?: Partial<Pop3Options>): Pop3Options;
  close(): Promise<void>;
}

/** 76 printable bytes and CRLF: no line starts with a dot, so the wire carries the body as it is. */
const LINE = Buffer.from(`${'flood-'.repeat(12)}0123\r\n`, 'latin1');

export async function startFloodPop3(o: FloodOptions): Promise<FloodPop3> {
  const user = o.user ?? 'alice';
  const password = o.password ?? 'secret';
  const head = (n: number): Buffer => Buffer.from(`Message-ID: <${n}.flood@test>\r\nSubject: flood ${n}\r\n\r\n`);
  const fillerLines = (n: number): number => Math.max(0, Math.floor((o.size - head(n).length) / LINE.length));
  const realBytes = (n: number): number => head(n).length + fillerLines(n) * LINE.length;
  const listed = (n: number): number => o.listed?.(n, realBytes(n)) ?? realBytes(n);
  // Whole filler lines, so the terminator that follows starts a line.
  const fillerBytes = (n: number): number => {
    const sent = o.sent?.(n, realBytes(n));
    if (sent === undefined) return fillerLines(n) * LINE.length;
    return Math.max(0, Math.floor((sent - head(n).length) / LINE.length)) * LINE.length;
  };
  // Bodies are written as views of one filler; a liar's longer reply is several of them.
  const filler = Buffer.alloc(Math.min(8 * 1024 * 1024, Math.ceil(o.size / LINE.length + 1) * LINE.length));
  for (let i = 0; i + LINE.length <= filler.length; i += LINE.length) LINE.copy(filler, i);
  const status = (n: number): string => `+OK ${listed(n)} octets\r\n`;

  const sockets = new Set<net.Socket>();
  let connections = 0;
  let retrs = 0;
  let mostQueued = 0;
  let stalls = 0;

  const serve = (socket: net.Socket): void => {
    connections++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    let pending = Buffer.alloc(0);
    let busy = false;
    let loggedIn = false;
    const lines: string[] = [];

    /** Writes; false when the socket is full: then no command is read until it drained. */
    const send = async (bytes: Buffer | string): Promise<void> => {
      if (socket.destroyed) return;
      if (socket.write(bytes)) return;
      stalls++;
      socket.pause();
      await new Promise<void>((resolve) => {
        const done = (): void => {
          socket.off('drain', done);
          socket.off('close', done);
          resolve();
        };
        socket.on('drain', done);
        socket.on('close', done);
      });
      socket.resume();
    };
    const retr = async (n: number): Promise<void> => {
      retrs++;
      await send(status(n));
      await send(head(n));
      let left = fillerBytes(n);
      while (left > 0 && !socket.destroyed) {
        const piece = Math.min(left, filler.length);
        await send(filler.subarray(0, piece));
        left -= piece;
      }
      await send('.\r\n');
    };
    const answer = async (line: string): Promise<void> => {
      const [verb = '', ...args] = line.split(' ');
      const n = Number(args[0]);
      const known = Number.isInteger(n) && n >= 1 && n <= o.count;
      switch (verb.toUpperCase()) {
        case 'CAPA':
          return send('+OK\r\nUSER\r\nUIDL\r\nTOP\r\nPIPELINING\r\n.\r\n');
        case 'USER':
          return send('+OK\r\n');
        case 'PASS':
          loggedIn = args.join(' ') === password;
          return send(loggedIn ? '+OK\r\n' : '-ERR [AUTH] no\r\n');
        case 'STAT':
          return send(`+OK ${o.count} ${o.count * o.size}\r\n`);
        case 'LIST':
        case 'UIDL': {
          const value = (i: number): string => (verb.toUpperCase() === 'LIST' ? String(listed(i)) : `flood-${i}`);
          if (args[0] !== undefined) return send(known ? `+OK ${n} ${value(n)}\r\n` : '-ERR no such message\r\n');
          const out: string[] = ['+OK\r\n'];
          for (let i = 1; i <= o.count; i++) out.push(`${i} ${value(i)}\r\n`);
          out.push('.\r\n');
          return send(out.join(''));
        }
        case 'RETR':
          return known && loggedIn ? retr(n) : send('-ERR no such message\r\n');
        case 'NOOP':
        case 'RSET':
        case 'UTF8':
          return send('+OK\r\n');
        case 'QUIT':
          await send('+OK bye\r\n');
          socket.end();
          return;
        default:
          return send('-ERR unknown command\r\n');
      }
    };
    const work = async (): Promise<void> => {
      if (busy) return;
      busy = true;
      for (let line = lines.shift(); line !== undefined && !socket.destroyed; line = lines.shift()) {
        await answer(line);
      }
      busy = false;
    };
    socket.on('data', (chunk: Buffer) => {
      pending = Buffer.concat([pending, chunk]);
      for (let lf = pending.indexOf(0x0a); lf >= 0; lf = pending.indexOf(0x0a)) {
        lines.push(pending.toString('latin1', 0, lf).replace(/\r$/, ''));
        pending = pending.subarray(lf + 1);
      }
      mostQueued = Math.max(mostQueued, lines.length);
      void work();
    });
    void send('+OK flood POP3 ready\r\n');
  };

  const server = o.tls ? tls.createServer({ key: o.tls.key, cert: o.tls.cert }, serve) : net.createServer(serve);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;

  const digest = (n: number): string => {
    const h = createHash('sha256').update(head(n));
    for (let left = fillerBytes(n); left > 0; ) {
      const piece = Math.min(left, filler.length);
      h.update(filler.subarray(0, piece));
      left -= piece;
    }
    return h.digest('hex');
  };

  return {
    host: '127.0.0.1',
    port,
    get connections() {
      return connections;
    },
    get retrs() {
      return retrs;
    },
    get mostQueued() {
      return mostQueued;
    },
    get stalls() {
      return stalls;
    },
    messageId: (n) => `<${n}.flood@test>`,
    digest,
    wireBytes: (n) => Buffer.byteLength(status(n)) + head(n).length + fillerBytes(n) + 3,
    clientOptions: (extra = {}) => ({
      host: '127.0.0.1',
      port,
      ...(o.tls ? { tls: 'implicit' as const, ca: [o.tls.cert] } : { tls: 'none' as const }),
      user,
      password,
      ...extra,
    }),
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
