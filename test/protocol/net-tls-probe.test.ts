/**
 * The TLS check of a silent port (src/net/tls-probe.ts), against Node servers: a plain connection
 * to a port that speaks TLS from the first byte is ended with an error naming that, while a
 * server that is only slow to greet, or silent without being TLS, is left to its --timeout.
 * The real Dovecot's TLS ports: test/e2e/connect-hints.test.ts.
 */
import net, { type AddressInfo } from 'node:net';
import tls from 'node:tls';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { TLS_ONLY_PORT_CODE } from '../../src/connect-hints.js';
import { speaksTls, tlsProbeVerdict, watchForTlsOnlyPort } from '../../src/net/tls-probe.js';
import { generateTestCertificate } from '../support/fake-pop3.js';

let cert: { key: string; cert: string };
const servers: net.Server[] = [];

beforeAll(() => {
  cert = generateTestCertificate();
});
afterEach(async () => {
  vi.useRealTimers();
  for (const s of servers.splice(0)) await new Promise((r) => s.close(r));
});

async function listen(s: net.Server): Promise<number> {
  servers.push(s);
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  return (s.address() as AddressInfo).port;
}

/** pop3s: TLS from the first byte; the greeting follows the handshake. */
const tlsServer = () =>
  listen(
    tls.createServer({ key: cert.key, cert: cert.cert }, (c) => {
      c.on('error', () => {});
      c.end('+OK ready\r\n');
    }),
  );

/** Plain, and says nothing at all (not TLS either: it reads and ignores). */
const mute = () =>
  listen(
    net.createServer((c) => {
      c.on('error', () => {});
      c.resume();
    }),
  );

const target = (port: number) => ({ host: '127.0.0.1', port, timeoutMs: 10_000 });

/** A plain socket under watch: resolves with how it ended, or with its first bytes. */
function watched(port: number, afterMs: number): Promise<{ code?: string; data?: string }> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    watchForTlsOnlyPort(s, target(port), { afterMs });
    s.on('error', (e: NodeJS.ErrnoException) => resolve({ code: e.code ?? '' }));
    s.once('data', (d) => {
      resolve({ data: d.toString() });
      s.destroy();
    });
  });
}

describe('speaksTls', () => {
  it('is true for a TLS port, false for a greeting in plain text, a silence and a closed connection', async () => {
    expect(await speaksTls(target(await tlsServer()))).toBe(true);
    const greets = await listen(
      net.createServer((c) => {
        c.on('error', () => {});
        c.resume().end('+OK plain\r\n');
      }),
    );
    expect(await speaksTls(target(greets))).toBe(false);
    expect(await speaksTls({ ...target(await mute()), timeoutMs: 100 })).toBe(false);
    const closes = await listen(net.createServer((c) => c.destroy()));
    expect(await speaksTls(target(closes))).toBe(false);
  });
});

describe('watchForTlsOnlyPort', () => {
  it('ends its probe with the connection it asks about', async () => {
    // Both connections reach a server that says nothing; the probe would wait its whole bound.
    let accepted = 0;
    let closed = 0;
    const port = await listen(
      net.createServer((c) => {
        accepted++;
        c.on('error', () => {});
        c.on('close', () => closed++);
        c.resume();
      }),
    );
    const s = net.connect(port, '127.0.0.1');
    watchForTlsOnlyPort(s, { ...target(port), timeoutMs: 600_000 }, { afterMs: 20 });
    while (accepted < 2) await new Promise((r) => setTimeout(r, 10));
    s.destroy();
    while (closed < 2) await new Promise((r) => setTimeout(r, 10));
    expect(closed).toBe(2);
  });

  it('ends a silent plain connection to a TLS port with TLS_ONLY_PORT_CODE', async () => {
    expect(await watched(await tlsServer(), 20)).toEqual({ code: TLS_ONLY_PORT_CODE });
  });

  it('leaves a server that greets late alone: the greeting arrives on the watched connection', async () => {
    // Greets the first connection only once the probe's hello came in (and was answered in
    // plain text): the probe certainly ran, and found no TLS.
    let first: net.Socket | undefined;
    const port = await listen(
      net.createServer((c) => {
        c.on('error', () => {});
        if (first === undefined) {
          first = c;
          c.resume();
          return;
        }
        c.resume().once('data', () => {
          c.end('-ERR not TLS\r\n');
          first?.write('+OK late\r\n');
        });
      }),
    );
    expect(await watched(port, 20)).toEqual({ data: '+OK late\r\n' });
  });

  it('probes only a connection that has heard nothing when the time comes', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const greets = await listen(
      net.createServer((c) => {
        c.on('error', () => {});
        c.resume().write('+OK at once\r\n');
      }),
    );
    const silent = await mute();
    const probed: number[] = [];
    const probe = async (t: { port: number }) => {
      probed.push(t.port);
      return 'no-answer' as const;
    };
    const open = async (port: number) => {
      const s = net.connect(port, '127.0.0.1');
      watchForTlsOnlyPort(s, target(port), { afterMs: 1000, probe });
      await new Promise((r) => s.once('connect', r));
      return s;
    };
    const a = await open(greets);
    const b = await open(silent);
    // The greeting is not read (early-socket.ts leaves it waiting in the socket), yet it counts.
    while (a.bytesRead === 0) await new Promise((r) => setImmediate(r));
    vi.advanceTimersByTime(1000);
    expect(probed).toEqual([silent]);
    // A probe that finds no TLS leaves the connection to its own timeout.
    await Promise.resolve();
    expect(b.destroyed).toBe(false);
    a.destroy();
    b.destroy();
    vi.useRealTimers();
  });
});

describe('tlsProbeVerdict: what the hello found, for the hint of a connection that then timed out', () => {
  /** Watches a plain connection until its probe has a verdict, then closes it. */
  async function verdictFor(port: number, timeoutMs: number) {
    const s = net.connect(port, '127.0.0.1');
    s.on('error', () => {});
    watchForTlsOnlyPort(s, { ...target(port), timeoutMs }, { afterMs: 50 });
    while (tlsProbeVerdict('127.0.0.1', port) === undefined) await new Promise((r) => setTimeout(r, 20));
    s.destroy();
    return tlsProbeVerdict('127.0.0.1', port);
  }

  it('not-tls for a server that answers the hello in plain text, no-answer for a silence, tls for TLS', async () => {
    // Silent until spoken to, as a plain server waiting for a command would be.
    const answers = await listen(
      net.createServer((c) => {
        c.on('error', () => {});
        c.once('data', () => c.end('-ERR what?\r\n'));
      }),
    );
    expect(await verdictFor(answers, 10_000)).toBe('not-tls');
    expect(await verdictFor(await mute(), 100)).toBe('no-answer');
    expect(await verdictFor(await tlsServer(), 10_000)).toBe('tls');
  });
});
