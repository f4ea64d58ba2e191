/**
 * Where a sink's IMAP connections connect, with the same TLS expectations (net/connect.ts), and
 * their sockets opened ahead (warmImap). Outside the lazily loaded IMAP code (imapflow-load.ts),
 * so a run can open the sockets before that code is loaded.
 */
import { DEFAULT_CONNECT_TIMEOUT_MS } from '../defaults.js';
import { type SocketTarget, warmUp } from '../net/connect.js';
import type { ImapOptions } from './types.js';

type TargetOptions = Pick<ImapOptions, 'host' | 'port' | 'ca' | 'rejectUnauthorized'>;

export function imapSocketTarget(opts: TargetOptions, connectTimeoutMs: number): SocketTarget {
  return {
    protocol: 'IMAP',
    host: opts.host,
    port: opts.port,
    ca: opts.ca,
    rejectUnauthorized: opts.rejectUnauthorized,
    connectTimeoutMs,
  };
}

/**
 * Opens the two sockets connectImap with these options takes first (the APPEND connection's and
 * imapflow's: net/connect.ts warmUp); returns what closes them if they were not taken.
 */
export function warmImap(opts: TargetOptions & Pick<ImapOptions, 'tls' | 'timeoutMs'>): () => void {
  const target = imapSocketTarget(opts, opts.timeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS);
  return warmUp(target, opts.tls === 'implicit', 2);
}
