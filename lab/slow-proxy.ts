/**
 * A loopback relay that holds every chunk for a fixed time in both directions, as a distant
 * server would: a client's round trips then take real time, so behaviour that depends on
 * the clock between two commands (Courier's empty INBOX takes a new UIDVALIDITY every second)
 * shows on every run instead of only on a loaded machine. Order is kept per direction.
 *
 * With a delay of 0 it only relays (piped, with the sockets' own flow control), so a bench can
 * watch a client's traffic (`observe`) without slowing it down.
 */
import net from 'node:net';

export interface SlowProxy {
  port: number;
  close(): Promise<void>;
}

/**
 * Shown every chunk as it reaches the relay, before it is held: `up` from the client, `down`
 * from the server; `conn` numbers the client's connections from 1; `at` is performance.now().
 */
export type ProxyObserver = (conn: number, dir: 'up' | 'down', chunk: Buffer, at: number) => void;

export async function startSlowProxy(targetPort: number, delayMs: number, observe?: ProxyObserver): Promise<SlowProxy> {
  const open = new Set<net.Socket>();
  let conns = 0;
  const server = net.createServer((client) => {
    const upstream = net.connect(targetPort, '127.0.0.1');
    // A link holds nothing back beyond its delay. With Nagle on, a chunk written while the one
    // before was unacknowledged waited for the client's delayed ACK (40 ms on Linux): every
    // reply that reached the relay in several pieces (LIST, UIDL, a batch's tagged OKs) lost
    // 40 ms more than the round trip, for every client measured here alike.
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    const conn = ++conns;
    open.add(client);
    open.add(upstream);
    const relay = (from: net.Socket, to: net.Socket, dir: 'up' | 'down'): void => {
      if (observe) from.on('data', (d: Buffer) => observe(conn, dir, d, performance.now()));
      if (delayMs === 0) {
        from.pipe(to);
        return;
      }
      from.on('data', (d: Buffer) => {
        setTimeout(() => {
          if (!to.destroyed) to.write(d);
        }, delayMs);
      });
      // The end travels as late as the data before it.
      from.on('end', () => setTimeout(() => to.end(), delayMs));
    };
    relay(client, upstream, 'up');
    relay(upstream, client, 'down');
    const close = (): void => {
      setTimeout(() => {
        client.destroy();
        upstream.destroy();
        open.delete(client);
        open.delete(upstream);
      }, delayMs);
    };
    for (const s of [client, upstream]) {
      s.on('close', close);
      s.on('error', close);
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of open) s.destroy();
        server.close(() => resolve());
      }),
  };
}
