/**
 * Sockets opened ahead of their users (src/net/connect.ts warmUp): the next openSocket or
 * createSocket for the same server, TLS mode and trust takes one instead of connecting, the
 * greeting that arrived meanwhile is still there to read, and nothing else ever takes one:
 * another server, another trust, one that failed, one too old; those not taken are closed by the
 * function warmUp returns. Against a plain TCP server on loopback that counts its connections.
 */
import net, { type AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { EarlySocket } from '../../src/imap/early-socket.js';
import { createSocket, openSocket, type SocketTarget, warmUp } from '../../src/net/connect.js';

let server: net.Server;
let port: number;
let accepted = 0;
const open = new Set<net.Socket>();

beforeAll(async () => {
  server = net.createServer((c) => {
    accepted++;
    open.add(c);
    c.on('close', () => open.delete(c));
    c.on('error', () => {});
    c.write('+OK hello\r\n');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as AddressInfo).port;
});
afterAll(async () => {
  for (const c of open) c.destroy();
  await new Promise((r) => server.close(r));
});
afterEach(() => {
  vi.useRealTimers();
  // A failed test leaves nothing behind for the next one to count (or take: a closed warm socket
  // is never handed out).
  for (const c of open) c.destroy();
});

const target = (extra: Partial<SocketTarget> = {}): SocketTarget => ({
  protocol: 'POP3',
  host: '127.0.0.1',
  port,
  connectTimeoutMs: 5_000,
  ...extra,
});

const firstLine = (s: net.Socket): Promise<string> =>
  new Promise((resolve) => s.once('data', (d: Buffer) => resolve(d.toString())));

/** Until `done` (sockets connect and close in the background); fails rather than waiting on. */
async function until(what: string, done: () => boolean): Promise<void> {
  for (let i = 0; !done(); i++) {
    if (i > 2000) throw new Error(`never: ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Until the server has seen `n` connections. */
const acceptedReaches = (n: number) => until(`${n} connections accepted`, () => accepted >= n);

/** Until the server holds `n` open connections. */
const openReaches = (n: number) => until(`${n} connections open`, () => open.size === n);

describe('sockets opened ahead', () => {
  it('openSocket and createSocket take them, greeting unread, and open no connection of their own', async () => {
    const before = accepted;
    const cool = warmUp(target(), false, 2);
    await acceptedReaches(before + 2);
    // The greetings have arrived by now and wait in the sockets.
    await new Promise((r) => setTimeout(r, 20));
    const a = await openSocket(target(), false);
    expect(await firstLine(a)).toBe('+OK hello\r\n');
    const connected = vi.fn();
    const b = createSocket(target(), false, connected);
    expect(await firstLine(b)).toBe('+OK hello\r\n');
    await vi.waitFor(() => expect(connected).toHaveBeenCalledTimes(1));
    expect(accepted).toBe(before + 2);
    // Both taken: the next one connects.
    const c = await openSocket(target(), false);
    expect(accepted).toBe(before + 3);
    cool();
    for (const s of [a, b, c]) expect(s.destroyed).toBe(false);
    for (const s of [a, b, c]) s.destroy();
    await openReaches(0);
  });

  it("imapflow's early socket takes one connected long before, and tells imapflow it is connected", async () => {
    const before = accepted;
    const cool = warmUp(target(), false, 1);
    await acceptedReaches(before + 1);
    await new Promise((r) => setTimeout(r, 20));
    // Taken in the same tick as it is made: the socket's own 'connect' event is long past.
    const early = new EarlySocket(target(), false);
    const connected = vi.fn();
    expect(early.take(false, connected)).toBe(early.socket);
    await vi.waitFor(() => expect(connected).toHaveBeenCalledTimes(1));
    expect(accepted).toBe(before + 1);
    expect(await firstLine(early.socket)).toBe('+OK hello\r\n');
    early.socket.destroy();
    cool();
    await openReaches(0);
  });

  it("imapflow's early socket the server closed before it was taken: an error naming the server", async () => {
    // A server that accepts and closes without a word (a limit on connections enforced at accept).
    const closing = net.createServer((c) => c.end());
    await new Promise<void>((r) => closing.listen(0, '127.0.0.1', r));
    const t = target({ protocol: 'IMAP', port: (closing.address() as AddressInfo).port });
    const early = new EarlySocket(t, false);
    await new Promise((r) => early.socket.once('close', r));
    const connected = vi.fn();
    // imapflow listens for errors from the moment it holds the socket, for 'end' and 'close' only
    // from its connect callback on: it never heard those, and waited out its greeting timeout.
    expect(early.take(false, connected)).toBe(early.socket);
    // The guard: without the error this waits no longer than this.
    const err = await new Promise<Error | null>((r) => {
      early.socket.once('error', r);
      setTimeout(() => r(null), 2000);
    });
    expect(err).toMatchObject({
      kind: 'connection',
      message: `IMAP server 127.0.0.1:${t.port} closed the connection before greeting`,
    });
    await new Promise((r) => setTimeout(r, 20));
    expect(connected).not.toHaveBeenCalled();
    await new Promise((r) => closing.close(r));
  });

  it('another server, TLS mode or trust takes none; those not taken are closed by what warmUp returned', async () => {
    const before = accepted;
    const cool = warmUp(target(), false, 1);
    await acceptedReaches(before + 1);
    const other = await openSocket(target({ ca: ['another trust'] }), false);
    const otherProtocol = await openSocket(target({ protocol: 'IMAP' }), false);
    expect(accepted).toBe(before + 3);
    other.destroy();
    otherProtocol.destroy();
    await openReaches(1);
    cool();
    await openReaches(0);
    // Closed, so not taken later either.
    const fresh = await openSocket(target(), false);
    expect(accepted).toBe(before + 4);
    fresh.destroy();
    await openReaches(0);
  });

  it('one that failed to connect is not handed out: the caller connects and hears its own verdict', async () => {
    const spare = net.createServer();
    await new Promise<void>((r) => spare.listen(0, '127.0.0.1', r));
    const deadPort = (spare.address() as AddressInfo).port;
    await new Promise((r) => spare.close(r));
    const dead = target({ port: deadPort });
    const cool = warmUp(dead, false, 1);
    // The warm connect is refused meanwhile, and no one hears of it.
    await new Promise((r) => setTimeout(r, 50));
    await expect(openSocket(dead, false)).rejects.toMatchObject({ kind: 'connection' });
    cool();
  });

  it('one older than a few seconds is closed and a fresh one opened', async () => {
    const before = accepted;
    const cool = warmUp(target(), false, 1);
    await acceptedReaches(before + 1);
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(Date.now() + 60_000);
    const s = await openSocket(target(), false);
    expect(accepted).toBe(before + 2);
    await openReaches(1);
    s.destroy();
    cool();
    await openReaches(0);
  });
});
