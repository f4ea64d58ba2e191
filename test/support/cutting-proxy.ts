/**
 * A loopback TCP relay in front of a real server that can cut a connection at a chosen
 * moment: after the server has done something (e.g. stored an APPEND) but before the client
 * hears about it. This puts real Dovecot into the failure windows that matter for exactly-once
 * delivery, which a scripted fake server could only imitate.
 */
import { startRelay } from './relay.js';

interface CutDecision {
  /** Which connection this is, counting from 0 in accept order. */
  connection: number;
  /** The chunk about to be relayed, and everything this direction carried before it. */
  chunk: Buffer;
  seenBefore: number;
}

export interface CuttingProxy {
  port: number;
  connections(): number;
  cuts(): number;
  close(): Promise<void>;
}

export interface ProxyRules {
  /** Return true to drop both sockets instead of relaying this server->client chunk. */
  cutServerData?: (d: CutDecision) => boolean;
  /** Return true to drop both sockets instead of relaying this client->server chunk. */
  cutClientData?: (d: CutDecision) => boolean;
}

export async function startCuttingProxy(targetPort: number, rules: ProxyRules): Promise<CuttingProxy> {
  let accepted = 0;
  let cuts = 0;
  const relay = await startRelay(targetPort, (client, upstream, end) => {
    const connection = accepted++;
    const cut = () => {
      cuts++;
      end();
    };
    let fromServer = 0;
    let fromClient = 0;
    upstream.on('data', (chunk: Buffer) => {
      if (rules.cutServerData?.({ connection, chunk, seenBefore: fromServer })) return cut();
      fromServer += chunk.length;
      client.write(chunk);
    });
    client.on('data', (chunk: Buffer) => {
      if (rules.cutClientData?.({ connection, chunk, seenBefore: fromClient })) return cut();
      fromClient += chunk.length;
      upstream.write(chunk);
    });
  });
  return {
    port: relay.port,
    connections: () => accepted,
    cuts: () => cuts,
    close: () => relay.close(),
  };
}

/**
 * How many stored messages the APPENDUID response codes in `chunk` name: one for a single
 * APPEND, the size of the UID set for a MULTIAPPEND. Lets a test cut "after the N-th message"
 * whether the client sends one message per command or many.
 */
export function appendUidCount(chunk: Buffer): number {
  let n = 0;
  for (const m of chunk.toString('latin1').matchAll(/APPENDUID \d+ ([\d:,]+)/g)) {
    for (const part of m[1]!.split(',')) {
      const [a, b = a] = part.split(':').map(Number);
      n += Math.abs(b! - a!) + 1;
    }
  }
  return n;
}
