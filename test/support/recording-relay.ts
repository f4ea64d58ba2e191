/**
 * A loopback relay in front of a real server that records, in one global order, every line
 * each side sent, and can hold the server's bytes back: tests of round trips count what the
 * client wrote before it had an answer, never how long anything took.
 *
 * Several relays (POP3 and IMAP) share one sequence, so order across protocols is visible too.
 */
import net from 'node:net';

export interface RelayEvent {
  /** Position in the shared order. */
  seq: number;
  /** Which relay. */
  relay: string;
  /** Connection of that relay, counting from 0 in accept order. */
  conn: number;
  /** 'accept': the connection arrived; '>': a client line reached the relay; '<': a server line left it. */
  dir: 'accept' | '>' | '<';
  line: string;
}

export interface RecordingRelay {
  port: number;
  close(): Promise<void>;
  /** Hands held server data on (each connection's, in order) and stops holding. */
  release(): void;
}

export interface RelayLog {
  events: RelayEvent[];
  /** Client lines of a relay, optionally of one connection. */
  sent(relay: string, conn?: number): RelayEvent[];
}

export function relayLog(): RelayLog {
  const events: RelayEvent[] = [];
  return {
    events,
    sent: (relay, conn) =>
      events.filter((e) => e.relay === relay && e.dir === '>' && (conn === undefined || e.conn === conn)),
  };
}

export interface RelayRules {
  /**
   * Asked for each server chunk while not released: true holds it (and everything after it on
   * that connection) until release(). `log` is the shared log up to now.
   */
  hold?: (conn: number, log: RelayLog) => boolean;
  /** Called after each event this relay records, with the relay (e.g. to release on a command). */
  onEvent?: (e: RelayEvent, relay: RecordingRelay) => void;
}

/** Whole lines of a byte stream, as they complete (the text is only for matching commands). */
function lineSplitter(): (d: Buffer) => string[] {
  let partial = '';
  return (d) => {
    const lines = (partial + d.toString('latin1')).split('\r\n');
    partial = (lines.pop() ?? '').slice(-1024);
    return lines;
  };
}

export async function startRecordingRelay(
  name: string,
  targetPort: number,
  log: RelayLog,
  rules: RelayRules = {},
): Promise<RecordingRelay> {
  let accepted = 0;
  let released = false;
  const open = new Set<net.Socket>();
  const flushers: Array<() => void> = [];
  const self: RecordingRelay = {
    port: 0,
    release: () => {
      released = true;
      for (const f of flushers) f();
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of open) s.destroy();
        server.close(() => resolve());
      }),
  };
  const record = (conn: number, dir: RelayEvent['dir'], line: string): void => {
    const e = { seq: log.events.length, relay: name, conn, dir, line };
    log.events.push(e);
    rules.onEvent?.(e, self);
  };
  const server = net.createServer((client) => {
    const conn = accepted++;
    record(conn, 'accept', '');
    const upstream = net.connect(targetPort, '127.0.0.1');
    const held: Buffer[] = [];
    let holding = false;
    for (const s of [client, upstream]) {
      s.setNoDelay(true);
      open.add(s);
      s.on('error', () => undefined);
    }
    client.on('close', () => upstream.destroy());
    // While its bytes are held, the server's hang-up is held too: the client sees neither.
    upstream.on('close', () => {
      if (!holding) client.destroy();
    });
    const clientLines = lineSplitter();
    client.on('data', (d: Buffer) => {
      for (const line of clientLines(d)) record(conn, '>', line);
      upstream.write(d);
    });
    client.on('end', () => upstream.end());
    const serverLines = lineSplitter();
    const pass = (d: Buffer): void => {
      for (const line of serverLines(d)) record(conn, '<', line);
      client.write(d);
    };
    flushers.push(() => {
      holding = false;
      for (const d of held.splice(0)) pass(d);
      if (upstream.destroyed) client.end();
    });
    upstream.on('data', (d: Buffer) => {
      if (!released && !holding && rules.hold?.(conn, log)) holding = true;
      if (holding) held.push(d);
      else pass(d);
    });
    upstream.on('end', () => {
      if (!holding) client.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  self.port = (server.address() as net.AddressInfo).port;
  return self;
}
