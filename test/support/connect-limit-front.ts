/**
 * A relay in front of a server (the lab Dovecot) that allows `max` connections at a time (one) and
 * enforces it at connect, below the protocol, as these do:
 * - 'refuse': a firewall rule (iptables `connlimit --connlimit-above 1 -j REJECT --reject-with
 *   tcp-reset`) answers the second SYN with a reset, and the client's connect fails with
 *   ECONNREFUSED. Here the relay stops listening while a connection is open and listens again,
 *   on the same port, once it has closed: the kernel refuses a SYN meanwhile, as that rule does.
 * - 'reset': a front that accepts the second connection and resets it at once (SO_LINGER 0),
 *   before a byte: the client sees ECONNRESET (or a connect that worked, then the reset).
 * The first connection is relayed to `target` on loopback, byte for byte. `once`: the relay
 * never listens again after its first connection ('refuse'), as a server that went down right
 * after greeting it. `relistenAfterMs`: it listens again only that long after the open connection
 * closed, as a limit still counting a connection just closed does.
 */
import net from 'node:net';

export type ConnectLimit = 'refuse' | 'reset';

export interface ConnectLimitFront {
  port: number;
  /** Connections relayed to the server. */
  relayed(): number;
  /** Connections reset at accept ('reset'; 'refuse' never sees the ones it refuses). */
  reset(): number;
  close(): Promise<void>;
}

export async function startConnectLimitFront(
  target: number,
  limit: ConnectLimit,
  options: { once?: boolean; relistenAfterMs?: number; max?: number } = {},
): Promise<ConnectLimitFront> {
  let open = 0;
  let relayed = 0;
  let reset = 0;
  let closing = false;
  let port = 0;
  const sockets = new Set<net.Socket>();
  const listen = (): Promise<void> =>
    new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
  const server = net.createServer((client) => {
    client.on('error', () => {});
    const max = options.max ?? 1;
    if (open >= max) {
      reset++;
      client.resetAndDestroy();
      return;
    }
    open++;
    relayed++;
    // Refused from now on, until one has closed.
    if (limit === 'refuse' && open >= max) server.close();
    const upstream = net.connect(target, '127.0.0.1');
    upstream.on('error', () => {});
    for (const s of [client, upstream]) sockets.add(s);
    let counted = true;
    const end = (): void => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
      if (!counted) return;
      counted = false;
      open--;
      if (limit !== 'refuse' || options.once === true) return;
      setTimeout(() => {
        if (!closing && open < (options.max ?? 1) && !server.listening) listen().catch(() => undefined);
      }, options.relistenAfterMs ?? 0);
    };
    client.on('close', end);
    upstream.on('close', end);
    client.pipe(upstream).pipe(client);
  });
  await listen();
  port = (server.address() as net.AddressInfo).port;
  return {
    port,
    relayed: () => relayed,
    reset: () => reset,
    close: () =>
      new Promise<void>((resolve) => {
        closing = true;
        for (const s of sockets) s.destroy();
        if (server.listening) server.close(() => resolve());
        else resolve();
      }),
  };
}
