/**
 * imapflow's connection is opened before imapflow takes it (src/imap/early-socket.ts, and the
 * sockets net/connect.ts warmUp opens ahead). A server that accepts it and closes it at once
 * (overloaded, a limit on connections enforced at accept, a proxy with no backend) closed it
 * while no one listened: imapflow, which listens from its connect callback on, then waited out
 * its greeting timeout (--timeout, 60 s from the CLI) and said the server sent no greeting. The
 * connect must fail at once, saying the server closed the connection, over plain TCP and TLS.
 *
 * A front server before the fake IMAP server scripts each connection, in the order accepted:
 * the APPEND connection's comes first (it is relayed), imapflow's second. imapflow's load, which
 * the CLI pays in each run (40-200 ms, imapflow-load.ts) and which is what leaves the server time
 * to close the early socket, is held here until the server has closed it: in this process
 * imapflow is loaded once, and the close would otherwise race imapflow's taking the socket.
 */
import net, { type AddressInfo } from 'node:net';
import tls from 'node:tls';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { PopsyncError } from '../../src/errors.js';
import { connectImap, type ImapOptions } from '../../src/imap/index.js';
import { wasGreeted } from '../../src/net/greeted.js';
import { FAKE_PASSWORD, FAKE_USER, type FakeImap, startFakeImap } from '../support/fake-imap.js';
import { generateTestCertificate } from '../support/fake-pop3.js';

/**
 * The guard: without the fix each case took this long (imapflow's greeting timeout). The bound,
 * half of it, is far above the 1.5 s a case takes (1.4 s of it the tries of imapflow's session
 * alone when it is turned away while the APPEND connection is let in, writer.ts connectImap), so
 * only that wait, not a loaded machine, crosses it (8 s left a loaded machine 2.5 s).
 */
const TIMEOUT_MS = 20_000;

const load = vi.hoisted(() => ({ held: Promise.resolve() as Promise<unknown> }));
vi.mock('../../src/imap/imapflow-load.js', async (original) => {
  const real = await original<typeof import('../../src/imap/imapflow-load.js')>();
  return { ...real, loadImapflow: () => load.held.then(() => real.loadImapflow()) };
});

/**
 * 'close': closed once accepted (over TLS, once the handshake is done), before a byte;
 * 'partial': half a greeting, then closed; 'reset': closed before the TLS handshake.
 */
type Act = 'relay' | 'close' | 'partial' | 'reset';

let cert: { key: string; cert: string };
let fake: FakeImap;
const servers: net.Server[] = [];
const sockets = new Set<net.Socket>();

beforeAll(async () => {
  cert = generateTestCertificate();
  fake = await startFakeImap({ mailboxes: ['Archive'] });
});
afterEach(async () => {
  for (const s of sockets) s.destroy();
  for (const s of servers.splice(0)) await new Promise((r) => s.close(r));
});
afterAll(async () => {
  await fake.close();
});

/**
 * Listens in front of the fake server; `act(n)` says what the n-th connection (from 1) meets.
 * imapflow's load waits until the first connection not relayed is closed at both ends (the
 * client ends its side once it has read the server's close), or, after half a greeting, which
 * the client does not read before imapflow does, until the server's close was sent.
 */
async function front(act: (n: number) => Act, secure: boolean): Promise<number> {
  let n = 0;
  let scripted: () => void = () => undefined;
  // Bounded: a script that never closes costs the guard's time, not the test runner's.
  load.held = Promise.race([
    new Promise<void>((resolve) => {
      scripted = resolve;
    }),
    new Promise((resolve) => setTimeout(resolve, TIMEOUT_MS)),
  ]);
  const server = net.createServer((raw) => {
    const what = act(++n);
    sockets.add(raw);
    raw.on('error', () => {});
    if (what === 'close' || what === 'reset') raw.once('close', scripted);
    if (what === 'reset') return void raw.destroy();
    const client = secure ? new tls.TLSSocket(raw, { isServer: true, key: cert.key, cert: cert.cert }) : raw;
    client.on('error', () => {});
    if (what === 'partial') client.once('finish', () => setTimeout(scripted, 100));
    const go = (): void => {
      if (what === 'close') return void client.end();
      if (what === 'partial') return void client.end('* OK [CAPABILITY IMAP4rev1');
      const upstream = net.connect(fake.port, fake.host);
      sockets.add(upstream);
      upstream.on('error', () => client.destroy());
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
      client.pipe(upstream).pipe(client);
    };
    if (secure) client.once('secure', go);
    else go();
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return (server.address() as AddressInfo).port;
}

async function connectFailure(
  act: (n: number) => Act,
  secure: boolean,
  extra: Partial<ImapOptions> = {},
): Promise<{ err: PopsyncError; ms: number; port: number }> {
  const port = await front(act, secure);
  const started = Date.now();
  const err = await connectImap({
    host: '127.0.0.1',
    port,
    tls: secure ? 'implicit' : 'none',
    ...(secure ? { ca: [cert.cert] } : {}),
    user: FAKE_USER,
    password: FAKE_PASSWORD,
    timeoutMs: TIMEOUT_MS,
    ...extra,
  }).then(
    async (sink) => {
      await sink.close();
      throw new Error('connected');
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(PopsyncError);
  return { err: err as PopsyncError, ms: Date.now() - started, port };
}

describe.each([
  ['plain', false],
  ['TLS', true],
] as const)('%s: the server closes imapflow’s connection before greeting', (_name, secure) => {
  // Every connection after the APPEND connection's: imapflow's, then its three tries alone.
  it('while the APPEND connection is let in: fails once tried alone, saying the server closed it', async () => {
    const { err, ms, port } = await connectFailure((n) => (n >= 2 ? 'close' : 'relay'), secure);
    expect(err.kind).toBe('connection');
    // The last try's words: imapflow, loaded by then, may take the socket before the close and
    // hear it itself (connect-hints.ts reads both alike).
    expect(err.message).toMatch(
      new RegExp(
        `^IMAP (server 127.0.0.1:${port} closed the connection before greeting$|connect to .*ClosedAfterConnect)`,
      ),
    );
    expect(ms).toBeLessThan(TIMEOUT_MS / 2);
    // The APPEND connection was greeted: the port is right (the CLI says "closed a connection
    // before greeting it", exit 75 once retried, not "check the port": cli-closed-at-accept).
    expect(wasGreeted('IMAP', '127.0.0.1', port)).toBe(true);
  });

  it('as its only connection (no APPEND connection): the same', async () => {
    const { err, ms, port } = await connectFailure(() => 'close', secure, { appendPath: 'imapflow' });
    expect(err.kind).toBe('connection');
    expect(err.message).toBe(`IMAP server 127.0.0.1:${port} closed the connection before greeting`);
    expect(ms).toBeLessThan(TIMEOUT_MS / 2);
    expect(wasGreeted('IMAP', '127.0.0.1', port)).toBe(false);
  });

  // imapflow reads the half line, then hears the close: it never waited here (a regression guard).
  it('after half a greeting: the connect fails at once', async () => {
    const { err, ms } = await connectFailure((n) => (n >= 2 ? 'partial' : 'relay'), secure);
    expect(err.kind).toBe('connection');
    expect(err.message).not.toMatch(/greeting from server in required time|GREETING_TIMEOUT/);
    expect(ms).toBeLessThan(TIMEOUT_MS / 2);
  });
});

// The early socket's error, met before imapflow took it, is thrown to imapflow: it never waited
// here either. Every connection after the APPEND connection's: imapflow's, then its tries alone.
it('TLS: a close before the handshake fails the connect once tried alone, as a connection error', async () => {
  const { err, ms } = await connectFailure((n) => (n >= 2 ? 'reset' : 'relay'), true);
  expect(err.kind).toBe('connection');
  expect(ms).toBeLessThan(TIMEOUT_MS / 2);
});

describe('a greeting is noted for the port, on either connection (net/greeted.ts)', () => {
  it("imapflow's session alone: its greeting is noted", async () => {
    const server = await startFakeImap({ mailboxes: ['Archive'] });
    try {
      expect(wasGreeted('IMAP', server.host, server.port)).toBe(false);
      const sink = await connectImap({
        host: server.host,
        port: server.port,
        tls: 'none',
        user: FAKE_USER,
        password: FAKE_PASSWORD,
        appendPath: 'imapflow',
        timeoutMs: TIMEOUT_MS,
      });
      await sink.close();
      expect(server.connections).toBe(1);
      expect(wasGreeted('IMAP', server.host, server.port)).toBe(true);
    } finally {
      await server.close();
    }
  });

  it("the APPEND connection's close before its greeting is worded as imapflow's is", async () => {
    // The APPEND connection is the first accepted; imapflow's, the second, is relayed.
    const { err, port } = await connectFailure((n) => (n === 1 ? 'close' : 'relay'), false);
    expect(err.kind).toBe('connection');
    expect(err.message).toBe(`IMAP server 127.0.0.1:${port} closed the connection before greeting`);
    // imapflow's connect was not started (the APPEND connection failed while imapflow loaded):
    // nothing was greeted, so the CLI says "did not greet" and "check the port", as for imapflow's.
    expect(wasGreeted('IMAP', '127.0.0.1', port)).toBe(false);
  });
});
