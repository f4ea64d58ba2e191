/**
 * Every loopback relay and front of the tests: each connection accepted gets a connection of its
 * own to the target, Nagle off on both, and both end when either closes or fails. close() ends
 * every pair still open and the listener.
 *
 * - startRelay: what crosses a pair is up to `pair`, given the pair and the function that ends it
 *   (kill-relay.ts, cutting-proxy.ts, throttle-proxy.ts, append-relay.ts).
 * - startFront: byte for byte, and the n-th connection (from 1) may instead be reset or closed
 *   before a byte, after TLS is taken off or not; the front can stop listening (every connect
 *   refused, as a server gone or a firewall's connect limit: connect-limit-front.ts) and listen
 *   again, and end every pair at once (a server going down).
 */
import net from 'node:net';
import tls from 'node:tls';

export interface Relay {
  port: number;
  close(): Promise<void>;
}

/**
 * What the n-th connection meets: relayed; reset before a byte (SO_LINGER 0: the client sees
 * ECONNRESET); or closed before a byte (a FIN: "closed the connection before greeting it", or
 * before the TLS handshake).
 */
type AtAccept = 'relay' | 'reset' | 'close';

export interface Front extends Relay {
  /** Connections accepted, whatever they met. */
  accepted(): number;
  /** Connections relayed to the target. */
  relayed(): number;
  /** Relayed connections still open. */
  open(): number;
  /** Stops listening: every connect from now on is refused (ECONNREFUSED) until listen(). */
  stopListening(): void;
  /** Listens again, on the same port (nothing when it listens). */
  listen(): Promise<void>;
  /** Ends every relayed connection still open, as a server going down does. */
  dropRelayed(): void;
}

export interface FrontOptions {
  /** What the n-th connection (from 1) meets; it may wait first. Default: every one relayed. */
  at?: (n: number, front: Front) => AtAccept | Promise<AtAccept>;
  /** Called once a relayed connection has ended (`open()` counts it no more). */
  onEnded?: (front: Front) => void;
  /** Takes implicit TLS off each relayed connection (the target speaks plain). */
  tls?: { key: string; cert: string };
  /** The target's host (default 127.0.0.1). */
  host?: string;
}

type Pair = (client: net.Socket, upstream: net.Socket, end: () => void) => void;

const byteForByte: Pair = (client, upstream) => {
  client.pipe(upstream).pipe(client);
};

export function startRelay(targetPort: number, pair: Pair): Promise<Relay> {
  return listenFront(targetPort, {}, pair);
}

export function startFront(targetPort: number, options: FrontOptions = {}): Promise<Front> {
  return listenFront(targetPort, options, byteForByte);
}

async function listenFront(targetPort: number, o: FrontOptions, pair: Pair): Promise<Front> {
  /** Every socket still open, for close(); `pairs`: those of relayed connections, for dropRelayed(). */
  const sockets = new Set<net.Socket>();
  const pairs = new Set<net.Socket>();
  let accepted = 0;
  let relayed = 0;
  let open = 0;
  let port = 0;
  // Counted from the accept, before any TLS handshake, as a limit at accept counts it.
  const relay = (raw: net.Socket): void => {
    relayed++;
    open++;
    raw.once('close', () => {
      open--;
      o.onEnded?.(front);
    });
    if (o.tls === undefined) return void connect(raw);
    const client = new tls.TLSSocket(raw, { isServer: true, key: o.tls.key, cert: o.tls.cert });
    client.on('error', () => raw.destroy());
    client.once('secure', () => connect(client));
  };
  const connect = (client: net.Socket): void => {
    const upstream = net.connect(targetPort, o.host ?? '127.0.0.1');
    const end = (): void => {
      for (const s of [client, upstream]) {
        s.destroy();
        sockets.delete(s);
        pairs.delete(s);
      }
    };
    for (const s of [client, upstream]) {
      s.setNoDelay(true);
      sockets.add(s);
      pairs.add(s);
      s.on('close', end);
      s.on('error', end);
    }
    pair(client, upstream, end);
  };
  const meet = (raw: net.Socket, what: AtAccept): void => {
    if (what === 'reset') return void raw.resetAndDestroy();
    if (what === 'close') return void raw.end();
    relay(raw);
  };
  const server = net.createServer((raw) => {
    const n = ++accepted;
    sockets.add(raw);
    raw.on('error', () => {});
    raw.on('close', () => sockets.delete(raw));
    const what = o.at?.(n, front) ?? 'relay';
    // A decision at once is acted on in this same turn: no other connection is accepted between.
    if (typeof what === 'string') meet(raw, what);
    else
      what.then(
        (w) => meet(raw, w),
        () => raw.destroy(),
      );
  });
  const listen = (): Promise<void> =>
    new Promise<void>((resolve, reject) => {
      if (server.listening) return resolve();
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
  const front: Front = {
    port: 0,
    accepted: () => accepted,
    relayed: () => relayed,
    open: () => open,
    stopListening: () => {
      if (server.listening) server.close();
    },
    listen,
    dropRelayed: () => {
      for (const s of pairs) s.destroy();
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        if (server.listening) server.close(() => resolve());
        else resolve();
      }),
  };
  await listen();
  port = (server.address() as net.AddressInfo).port;
  front.port = port;
  return front;
}
