/**
 * Opens every socket popsync uses: the POP3 connection, imapflow's control connection (through
 * the transport imap/imapflow-adapter.ts hands it) and our own APPEND connection. One place for
 * the TLS options (trust.ts: CA merge, verification, SNI), the connect and handshake deadline,
 * Nagle off, and the sorting of failures into 'connection' (the network) and 'tls' (certificate
 * or handshake), so the same broken certificate reads the same on both sides.
 */

import net from 'node:net';
import tls from 'node:tls';
import { PopsyncError } from '../errors.js';
import { noteGreeted } from './greeted.js';
import { arenaOption } from './read-arena.js';
import { watchForTlsOnlyPort } from './tls-probe.js';
import { addedCas, type TlsTarget, type TrustSources, tlsOptions, trustedCas } from './trust.js';

export interface SocketTarget extends TlsTarget {
  /** 'POP3' or 'IMAP': names the server in error messages. */
  protocol: string;
  /** Bound on TCP connect plus TLS handshake. */
  connectTimeoutMs: number;
  /** Read into arenas of our own (read-arena.ts), plain TCP or implicit TLS: the POP3 connection's reading. */
  arena?: boolean;
}

/** TCP-level failures are 'connection'; anything else while TLS is being set up is 'tls'. */
const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ETIMEDOUT',
  'EPIPE',
  'EADDRNOTAVAIL',
]);

/**
 * A socket being opened, for callers that own the waiting themselves (imapflow's transport):
 * TLS from the first byte when `secure`, else plain TCP. Failures are emitted as 'error'.
 */
export function createSocket(t: SocketTarget, secure: boolean, onConnect?: () => void): net.Socket {
  const w = takeWarm(t, secure);
  let s: net.Socket;
  if (w !== null) {
    if (onConnect) {
      // One still connecting is handed over before the server could close it: its connect is told
      // in the same turn, and no 'end' or 'close' can come before.
      if (w.open) connectedBefore(w.socket, t, onConnect);
      else w.ready.then(onConnect, () => undefined);
    }
    s = w.socket;
  } else s = newSocket(t, secure, onConnect);
  if (t.protocol === 'IMAP') readGreeting(s, t);
  return s;
}

/**
 * Tells the user of a socket that connected before it was taken (a warm one, imapflow's early
 * one: early-socket.ts) that it is connected, on the next turn, once the user holds it. A server
 * may have closed it meanwhile without a word (overloaded, a limit on connections enforced at
 * accept, a proxy with no backend): its 'end' and 'close' then went to no one, and imapflow, which
 * listens for them only from its connect callback on, waited out its greeting timeout (30 s, 60 s
 * from the CLI) before saying the server sent no greeting. Such a socket fails with an 'error'
 * instead, at once, saying the server closed it. An error the socket met was heard already: by
 * its user, or by EarlySocket, which throws it when taken.
 */
export function connectedBefore(s: net.Socket, t: SocketTarget, onConnect: () => void): void {
  setImmediate(() => {
    if (!s.readableEnded && !s.destroyed) return onConnect();
    s.destroy();
    // Never an 'error' without a listener (it would end the process); every user listens.
    if (s.errored === null && s.listenerCount('error') > 0) s.emit('error', closedBeforeGreeting(t));
  });
}

/**
 * A connection the server closed before sending a byte: connect-hints.ts words it "did not greet"
 * (check the port) when no connection to that port was greeted (greeted.ts), else a connection
 * turned away for now. The same words for imapflow's connection and our APPEND connection.
 */
export function closedBeforeGreeting(t: Pick<SocketTarget, 'protocol' | 'host' | 'port'>): PopsyncError {
  return new PopsyncError(
    'connection',
    `${t.protocol} server ${t.host}:${t.port} closed the connection before greeting`,
  );
}

/** The most of a foreign greeting quoted in the error, as our APPEND connection quotes one. */
const GREETING_QUOTED = 200;

/**
 * imapflow's connection reads POP3's "+OK" greeting (IMAP pointed at a POP3 port) as no greeting
 * at all and waits out --timeout, then says the server sent none. The first bytes are looked at
 * here instead and put back unread for imapflow; a "+OK" ends the connection at once with the
 * words our APPEND connection uses ("did not greet us: +OK ..."), which connect-hints.ts turns
 * into "answered as a POP3 server" (exit 4, not retried). An IMAP greeting is noted (greeted.ts),
 * as our APPEND connection notes its own. A paused 'readable' listener, not a 'data' one: nothing
 * flows to imapflow before the check is done, and once it is removed the stream flows to whatever
 * imapflow piped it to.
 */
function readGreeting(s: net.Socket, t: SocketTarget): void {
  const onReadable = (): void => {
    const chunk = s.read() as Buffer | null;
    if (chunk === null) {
      if (s.readableEnded || s.destroyed) s.off('readable', onReadable);
      return;
    }
    s.off('readable', onReadable);
    s.unshift(chunk);
    const head = chunk.subarray(0, 10).toString('latin1');
    if (/^\* (OK|PREAUTH)\b/i.test(head)) noteGreeted(t.protocol, t.host, t.port);
    if (!/^\+OK\b/i.test(head)) return;
    const line = chunk.subarray(0, GREETING_QUOTED).toString('latin1').split(/\r?\n/)[0]!;
    s.destroy(new PopsyncError('connection', `IMAP server ${t.host}:${t.port} did not greet us: ${line}`));
  };
  s.on('readable', onReadable);
}

function newSocket(t: SocketTarget, secure: boolean, onConnect?: () => void): net.Socket {
  const arena = t.arena === true ? arenaOption(secure) : null;
  const onread = arena ? { onread: arena.onread } : {};
  const s = secure
    ? resuming(t, (o) => tls.connect({ ...o, port: t.port, ...onread }, onConnect))
    : net.connect({ host: t.host, port: t.port, ...onread }, onConnect);
  arena?.bind(s);
  s.setNoDelay(true);
  // Every plain connection awaits a greeting first (STARTTLS comes after it).
  if (!secure) watchForTlsOnlyPort(s, { host: t.host, port: t.port, timeoutMs: t.connectTimeoutMs });
  return s;
}

/** TLS on a connected plain socket (STARTTLS, STLS), with the same options as implicit TLS. */
export function createTlsUpgrade(socket: net.Socket, t: SocketTarget, onSecure?: () => void): tls.TLSSocket {
  return resuming(t, (o) => tls.connect({ ...o, socket }, onSecure));
}

/**
 * TLS sessions to resume (tickets, or TLS 1.2 session ids), by trust and then by server. A
 * run opens several connections to one server (imapflow's, our APPEND connection, a streaming
 * one, reconnects; a batch many accounts'), and each full handshake costs the server a
 * signature and the client a certificate check, and under TLS 1.2 a round trip.
 * Node skips the host name check on a resumed session, so a session is offered only to a
 * connection with the very expectations it was verified under: the same secure context (CA
 * list), host (also the SNI name), port and verification setting. (Node hands a session over
 * only once the connection that got it passed verification, TLS 1.2's too: checked on Node
 * 20.) A TLS 1.3 ticket is used once (RFC 8446 C.4); a server sends one or two per
 * connection, so every connection brings the next.
 */
const sessions = new Map<tls.SecureContext | undefined, Map<string, Buffer[]>>();
/** Servers remembered per context: a batch of many hosts keeps the most recent ones. */
const MAX_SERVERS = 100;
const TICKETS_PER_SERVER = 4;

function resuming<S extends tls.TLSSocket>(t: SocketTarget, connect: (o: tls.ConnectionOptions) => S): S {
  const o = sharedContext(t);
  let byServer = sessions.get(o.secureContext);
  if (byServer === undefined) {
    byServer = new Map();
    sessions.set(o.secureContext, byServer);
  }
  const server = `${t.host}\0${t.port}\0${o.rejectUnauthorized !== false}`;
  const saved = byServer.get(server)?.pop();
  const socket = connect(saved === undefined ? o : { ...o, session: saved });
  const keep = (ticket: Buffer): void => {
    const tickets = byServer.get(server) ?? [];
    byServer.delete(server); // re-inserted last: the Map's order is least recently used first
    byServer.set(server, [...tickets, ticket].slice(-TICKETS_PER_SERVER));
    if (byServer.size > MAX_SERVERS) byServer.delete(byServer.keys().next().value!);
  };
  socket.on('session', keep);
  socket.once('secureConnect', () => {
    // A resumed TLS 1.2 session brings no new one, and may be resumed again.
    if (saved !== undefined && socket.isSessionReused() && socket.getProtocol() !== 'TLSv1.3') keep(saved);
  });
  return socket;
}

/** Secure contexts by the trust they hold; a run has a handful at most. */
const contexts = new Map<string, tls.SecureContext>();

/**
 * The options of a TLS connection to `t`, with the secure context of its trust. With a CA file
 * the `ca` list (Node's ~140 roots plus the file) is parsed into a fresh X.509 store for every
 * connection: about 100 ms of CPU each on a loaded machine, a tenth of a small mailbox's copy
 * over TLS (--cpu-prof: addCACerts), paid again for every reconnect and account. One context
 * per trust is built once and shared; a trust is known by the CA file's text and the
 * NODE_EXTRA_CA_CERTS path, so a connection neither rebuilds the list nor rereads that file
 * (0.56 ms of CPU per connection when it did). Bad PEM still throws here, inside the
 * caller's try, as before.
 * Nor is that list parsed at all: the context starts from Node's own store, whose ~140 roots
 * the process parsed once, and only NODE_EXTRA_CA_CERTS and the file are added to it (the
 * `ca` option parsed every root again: 22-25 ms of CPU per context, 1 ms this way).
 */
export function sharedContext(t: TlsTarget, from: TrustSources = {}): tls.ConnectionOptions {
  const o = tlsOptions({ ...t, ca: undefined }, from);
  if (t.ca === undefined || t.ca.length === 0) return o;
  const key = [(from.env ?? process.env).NODE_EXTRA_CA_CERTS ?? '', ...t.ca.map(String)].join('\0');
  let context = contexts.get(key);
  if (context === undefined) {
    context = tls.createSecureContext();
    // Node's own addCACert, as its `ca` option calls it for each entry: on a context made
    // without `ca` the first call copies Node's store of parsed roots (roots only: hence
    // addedCas' NODE_EXTRA_CA_CERTS) and the rest add to that copy. It is not public API: a
    // Node without it gets the whole list parsed, as before.
    const native = (context as tls.SecureContext & { context?: { addCACert?(pem: string | Buffer): void } }).context;
    if (typeof native?.addCACert === 'function') for (const pem of addedCas(t.ca, from)) native.addCACert(pem);
    else context = tls.createSecureContext({ ca: trustedCas(t.ca, from) });
    contexts.set(key, context);
  }
  return { ...o, secureContext: context };
}

/** Opens TCP (and TLS when `secure`); resolves once usable, rejects with a PopsyncError. */
export function openSocket(t: SocketTarget, secure: boolean): Promise<net.Socket> {
  return takeWarm(t, secure)?.ready ?? handshake(() => newSocket(t, secure), t, secure ? 'secureConnect' : 'connect');
}

/**
 * Sockets opened ahead of the code that uses them (warmUp): a run opens its connections before
 * it opens the journal and loads the IMAP code, so the connect, the TLS handshake and the
 * greeting are on the wire during that CPU instead of after it. The greeting waits in the socket,
 * unread, as it does for any socket not yet read. The next openSocket or createSocket for the
 * same server, TLS mode and trust takes one as if it had opened it then; one not taken in time
 * (a run that waited for the account lock) is closed and a fresh one opened instead, so no
 * socket a server may already have timed out is ever used.
 */
interface WarmSocket {
  socket: net.Socket;
  /** The connect's verdict (TLS secured when implicit), as openSocket gives it. */
  ready: Promise<net.Socket>;
  open: boolean;
  failed: boolean;
  openedAt: number;
}

const warm = new Map<string, WarmSocket[]>();
/** A warm socket older than this is not used: far below any server's pre-login timeout. */
const WARM_MAX_AGE_MS = 5_000;

function warmKey(t: SocketTarget, secure: boolean): string {
  const trust = [t.rejectUnauthorized !== false, ...(t.ca ?? []).map(String)];
  return [t.protocol, t.host, t.port, secure, t.arena === true, ...trust].join('\0');
}

/** Opens `count` sockets to `t` for the next callers; returns what closes those not taken by then. */
export function warmUp(t: SocketTarget, secure: boolean, count = 1): () => void {
  const key = warmKey(t, secure);
  const mine: WarmSocket[] = [];
  for (let i = 0; i < count; i++) {
    let socket: net.Socket | undefined;
    const make = (): net.Socket => {
      socket = newSocket(t, secure);
      return socket;
    };
    const ready = handshake(make, t, secure ? 'secureConnect' : 'connect');
    // Bad options throw at creation: the caller's own connect reports them.
    if (socket === undefined) {
      ready.catch(() => undefined);
      break;
    }
    // An idle warm socket's error must not crash the process; its user hears it too.
    socket.on('error', () => undefined);
    const w: WarmSocket = { socket, ready, open: false, failed: false, openedAt: Date.now() };
    ready.then(
      () => {
        w.open = true;
      },
      () => {
        w.failed = true;
      },
    );
    mine.push(w);
  }
  warm.set(key, [...(warm.get(key) ?? []), ...mine]);
  return () => {
    const list = warm.get(key) ?? [];
    for (const w of list) if (mine.includes(w)) w.socket.destroy();
    const kept = list.filter((w) => !mine.includes(w));
    if (kept.length === 0) warm.delete(key);
    else warm.set(key, kept);
  };
}

/** A warm socket for `t` that is still usable, taken out of the pool; null when there is none. */
function takeWarm(t: SocketTarget, secure: boolean): WarmSocket | null {
  if (warm.size === 0) return null;
  const key = warmKey(t, secure);
  const list = warm.get(key);
  while (list !== undefined && list.length > 0) {
    const w = list.shift()!;
    if (list.length === 0) warm.delete(key);
    if (!w.failed && !w.socket.destroyed && Date.now() - w.openedAt <= WARM_MAX_AGE_MS) return w;
    w.socket.destroy();
  }
  return null;
}

/**
 * Wraps a connected plain socket in TLS after the server agreed to STARTTLS/STLS. The caller
 * must have stopped reading the plain socket: bytes after the server's OK would be plaintext.
 * On failure the plain socket is destroyed too.
 */
export async function startTls(raw: net.Socket, t: SocketTarget): Promise<tls.TLSSocket> {
  // The TLS socket reports failures from here on; an unlistened 'error' on raw would crash.
  raw.on('error', () => {});
  try {
    return await handshake(() => createTlsUpgrade(raw, t), t, 'secureConnect');
  } catch (e) {
    raw.destroy();
    // Whatever went wrong, the upgrade was required and did not happen: that is a TLS failure.
    const he = e instanceof PopsyncError ? e : new PopsyncError('tls', String(e));
    throw he.kind === 'tls' ? he : new PopsyncError('tls', he.message, he.context, { cause: he.cause ?? he });
  }
}

/**
 * Waits for `event` under connectTimeoutMs and turns failures into PopsyncError: 'connection'
 * for network trouble, 'tls' for certificate and handshake trouble.
 */
function handshake<S extends net.Socket>(
  make: () => S,
  t: SocketTarget,
  event: 'connect' | 'secureConnect',
): Promise<S> {
  const where = `${t.host}:${t.port}`;
  return new Promise<S>((resolve, reject) => {
    let socket: S;
    try {
      socket = make();
    } catch (e) {
      // Bad options (an unparseable CA, say) throw synchronously.
      const kind = event === 'secureConnect' ? 'tls' : 'connection';
      reject(
        new PopsyncError(kind, `cannot set up the connection to ${where}: ${(e as Error).message}`, {}, { cause: e }),
      );
      return;
    }
    let tcpUp = event === 'secureConnect' && !socket.connecting;
    const timer = setTimeout(() => {
      const tlsStage = event === 'secureConnect' && tcpUp;
      finish(
        new PopsyncError(
          tlsStage ? 'tls' : 'connection',
          `${tlsStage ? 'TLS handshake with' : 'could not connect to'} ${where} within ${t.connectTimeoutMs} ms`,
        ),
      );
    }, t.connectTimeoutMs);
    const onConnect = (): void => {
      tcpUp = true;
    };
    const onError = (e: NodeJS.ErrnoException): void => {
      const code = e.code ?? '';
      if (event === 'connect' || !tcpUp || NETWORK_CODES.has(code)) {
        finish(
          new PopsyncError(
            'connection',
            `cannot connect to ${t.protocol} server ${where}: ${e.message}`,
            {},
            { cause: e },
          ),
        );
      } else {
        finish(
          new PopsyncError(
            'tls',
            `TLS with ${t.protocol} server ${where} failed: ${e.message}${code ? ` (${code})` : ''}`,
            {
              hint: 'If the server uses a private CA or a self-signed certificate, give its CA certificate (ca option)',
            },
            { cause: e },
          ),
        );
      }
    };
    const onClose = (): void =>
      finish(
        new PopsyncError(
          tcpUp ? 'tls' : 'connection',
          `${t.protocol} server ${where} closed the connection during ` +
            (event === 'connect' ? 'connect' : 'the TLS handshake'),
        ),
      );
    const onDone = (): void => finish(undefined);
    function finish(err: PopsyncError | undefined): void {
      clearTimeout(timer);
      socket.off('connect', onConnect);
      socket.off('error', onError);
      socket.off('close', onClose);
      socket.off(event, onDone);
      if (err) {
        socket.on('error', () => {});
        socket.destroy();
        reject(err);
      } else {
        resolve(socket);
      }
    }
    socket.on('connect', onConnect);
    socket.on('error', onError);
    socket.on('close', onClose);
    socket.once(event, onDone);
  });
}
