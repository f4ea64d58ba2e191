/**
 * What every loopback relay of the tests shares (kill-relay.ts, cutting-proxy.ts,
 * throttle-proxy.ts, append-relay.ts): each accepted connection gets a connection of its own to
 * the target, Nagle off on both, and both end when either closes or fails. What crosses them is
 * up to `pair`, which is given the pair and the function that ends it. close() ends every pair
 * still open and the listener.
 */
import net from 'node:net';

export interface Relay {
  port: number;
  close(): Promise<void>;
}

export async function startRelay(
  targetPort: number,
  pair: (client: net.Socket, upstream: net.Socket, end: () => void) => void,
): Promise<Relay> {
  const open = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(targetPort, '127.0.0.1');
    const end = (): void => {
      for (const s of [client, upstream]) {
        s.destroy();
        open.delete(s);
      }
    };
    for (const s of [client, upstream]) {
      s.setNoDelay(true);
      open.add(s);
      s.on('close', end);
      s.on('error', end);
    }
    pair(client, upstream, end);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of open) s.destroy();
        server.close(() => resolve());
      }),
  };
}
