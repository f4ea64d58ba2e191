/**
 * Servers that greeted a connection of this process, by protocol, host and port. A server that
 * closes a connection before greeting it without a word may be the wrong port (nothing there
 * speaks the protocol), or the right one turning connections away for now: a limit on
 * connections enforced at accept, a proxy whose backend is missing for a moment, the server
 * still counting a connection just logged out. Another connection greeted on the same port tells
 * them apart (connect-hints.ts: "check the port" only for a port that never greeted).
 * Bounded: a batch over many hosts keeps the latest.
 */
const greeted = new Set<string>();
const MAX_SERVERS = 100;
const key = (protocol: string, host: string, port: number): string => `${protocol}\0${host}\0${port}`;

/** A greeting was read from `host`:`port` (IMAP's "* OK" or "* PREAUTH"; POP3 notes none yet). */
export function noteGreeted(protocol: string, host: string, port: number): void {
  const k = key(protocol, host, port);
  greeted.delete(k); // re-inserted last: the Set's order is least recently greeted first
  greeted.add(k);
  if (greeted.size > MAX_SERVERS) greeted.delete(greeted.values().next().value!);
}

/** Whether a connection of this process to `host`:`port` was greeted. */
export function wasGreeted(protocol: string, host: string, port: number): boolean {
  return greeted.has(key(protocol, host, port));
}
