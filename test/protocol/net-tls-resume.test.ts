/**
 * TLS session resumption between popsync's connections (src/net/connect.ts), against Node TLS
 * servers: what is resumed, and above all what never is. Node skips the host name check on a
 * resumed session, so a session offered to the wrong server would let it through. The real
 * Dovecot's side is test/e2e/tls-resume.test.ts.
 */
import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openSocket, type SocketTarget } from '../../src/net/connect.js';
import { generateTestCertificate } from '../support/fake-pop3.js';

let cert: { key: string; cert: string };
let otherCa: string;
const servers: tls.Server[] = [];

beforeAll(() => {
  cert = generateTestCertificate(); // localhost and 127.0.0.1
  otherCa = generateTestCertificate().cert;
});
afterAll(async () => {
  for (const s of servers) await new Promise((r) => s.close(r));
});

/** A TLS server that greets each connection, so that TLS 1.3's tickets (sent first) arrive. */
async function server(maxVersion: tls.SecureVersion, host = '127.0.0.1', ticketKeys?: Buffer): Promise<number> {
  const s = tls.createServer({ key: cert.key, cert: cert.cert, maxVersion, ticketKeys }, (c) => {
    c.on('error', () => {});
    c.end('* OK hello\r\n');
  });
  servers.push(s);
  await new Promise<void>((r) => s.listen(0, host, r));
  return (s.address() as AddressInfo).port;
}

const target = (port: number, extra: Partial<SocketTarget> = {}): SocketTarget => ({
  protocol: 'IMAP',
  host: '127.0.0.1',
  port,
  ca: [cert.cert],
  connectTimeoutMs: 10_000,
  ...extra,
});

/** Opens a verified connection, reads the greeting, and says whether its session was resumed. */
async function resumed(t: SocketTarget): Promise<boolean> {
  const s = (await openSocket(t, true)) as tls.TLSSocket;
  const reused = s.isSessionReused();
  await new Promise((r) => s.once('end', r).resume());
  s.destroy();
  return reused;
}

describe('TLS session resumption (src/net/connect.ts)', () => {
  for (const version of ['TLSv1.2', 'TLSv1.3'] as const) {
    it(`${version}: the next connection to the same server resumes, every time`, async () => {
      const port = await server(version);
      expect([await resumed(target(port)), await resumed(target(port)), await resumed(target(port))]).toEqual([
        false,
        true,
        true,
      ]);
    });
  }

  it('a session is offered only under the same trust: not with another CA list, nor verification off', async () => {
    const port = await server('TLSv1.3');
    expect(await resumed(target(port))).toBe(false);
    expect(await resumed(target(port, { ca: [cert.cert, otherCa] }))).toBe(false);
    expect(await resumed(target(port, { rejectUnauthorized: false }))).toBe(false);
    // An unverified connection's session is not offered to a verified one either.
    expect(await resumed(target(port, { rejectUnauthorized: false }))).toBe(true);
    expect(await resumed(target(port))).toBe(true);
  });

  for (const version of ['TLSv1.2', 'TLSv1.3'] as const) {
    it(`${version}: a session is not offered to another server, even one that could resume it`, async () => {
      // Two servers with one ticket key, as behind a load balancer; the certificate names
      // 127.0.0.1, not 127.0.0.2 (loopback too). Resumed, the second would skip the name check.
      const ticketKeys = randomBytes(48);
      const good = await server(version, '127.0.0.1', ticketKeys);
      const wrong = await server(version, '127.0.0.2', ticketKeys);
      expect(await resumed(target(good))).toBe(false);
      expect(await resumed(target(good))).toBe(true);
      await expect(openSocket(target(wrong, { host: '127.0.0.2' }), true)).rejects.toThrow(/altnames|does not match/i);
    });
  }
});
