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
import { startFront } from './relay.js';

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
  const max = options.max ?? 1;
  let closing = false;
  const front = await startFront(target, {
    at: (_n, f) => {
      if (f.open() >= max) return 'reset';
      // Refused from now on, until one has closed.
      if (limit === 'refuse' && f.open() + 1 >= max) f.stopListening();
      return 'relay';
    },
    onEnded: (f) => {
      if (limit !== 'refuse' || options.once === true) return;
      setTimeout(() => {
        if (!closing && f.open() < max) f.listen().catch(() => undefined);
      }, options.relistenAfterMs ?? 0);
    },
  });
  return {
    port: front.port,
    relayed: front.relayed,
    reset: () => front.accepted() - front.relayed(),
    close: () => {
      closing = true;
      return front.close();
    },
  };
}
