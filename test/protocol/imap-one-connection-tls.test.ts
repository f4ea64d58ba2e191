/**
 * A limit of one connection enforced at accept in front of an implicit-TLS server (couriertcpd
 * -maxperip 1 before couriertls, haproxy in TCP mode): a connection while another is open is
 * closed before the TLS handshake, which the client sees as "disconnected before secure TLS
 * connection was established" (ECONNRESET), not as a close before the greeting. It is the same
 * limit as over plain TCP (imap-one-connection.test.ts): the copy goes on over imapflow's session
 * alone, large messages streamed while it is logged out.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectImap } from '../../src/imap/index.js';
import { FAKE_PASSWORD, FAKE_USER, type FakeImap, startFakeImap } from '../support/fake-imap.js';
import { generateTestCertificate } from '../support/fake-pop3.js';
import { fileBodies } from '../support/file-bodies.js';
import { type Front, startFront } from '../support/relay.js';
import { warningsLogger } from '../support/warnings-logger.js';

let cert: { key: string; cert: string };
let fake: FakeImap;
let front: Front;
let closedAtAccept: number[] = [];

beforeAll(async () => {
  cert = generateTestCertificate();
  fake = await startFakeImap({ mailboxes: ['Archive'] });
  // A connection while another is open is closed at accept, before the TLS handshake.
  front = await startFront(fake.port, {
    host: fake.host,
    tls: cert,
    at: (n, f) => {
      if (f.open() < 1) return 'relay';
      closedAtAccept.push(n);
      return 'close';
    },
  });
});
afterAll(async () => {
  await front.close();
  await fake.close();
});

const inFile = fileBodies('popsync-one-connection-tls-');
const msg = (n: number) => Buffer.from(`Message-ID: <t${n}@test>\r\nSubject: ${n}\r\n\r\nbody ${n}\r\n`);

describe('one connection enforced at accept before implicit TLS', () => {
  it("imapflow's session alone, the APPEND connection closed twice 1 s apart: one connection", async () => {
    closedAtAccept = [];
    const { logger, warnings } = warningsLogger();
    const sink = await connectImap({
      host: '127.0.0.1',
      port: front.port,
      tls: 'implicit',
      ca: [cert.cert],
      user: FAKE_USER,
      password: FAKE_PASSWORD,
      timeoutMs: 5000,
      logger,
    });
    try {
      expect(sink.oneConnection).toBe(
        'the server refused a second IMAP connection for this user: closed the connection before the TLS ' +
          'handshake, twice 1 s apart',
      );
      expect(warnings).toHaveLength(1);
      // 2 imapflow's beside the APPEND connection, then the APPEND connection twice after the session's login.
      // (One more closed among them when the front had not yet counted the APPEND connection's close.)
      expect(closedAtAccept[0]).toBe(2);
      expect(closedAtAccept.at(-1)).toBe(closedAtAccept.at(-2)! + 1);
      const large = Buffer.concat([msg(2), Buffer.alloc(300 * 1024, '2'), Buffer.from('\r\n')]);
      const outcomes = await sink.appendBatch('Archive', [
        { body: msg(1), flags: [] },
        { body: inFile('large', large), flags: [] },
      ]);
      expect(outcomes.map((o) => o.ok)).toEqual([true, true]);
      expect(sink.appendCounts).toMatchObject({ pipelined: 0, imapflow: 1, streamed: 1 });
      expect(fake.mailboxes.get('Archive')!.messages.map((m) => m.body.equals(m.uid === 1 ? msg(1) : large))).toEqual([
        true,
        true,
      ]);
    } finally {
      await sink.close();
    }
  });
});
