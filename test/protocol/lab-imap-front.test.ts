/**
 * The lab's no-UIDPLUS relay (lab/imap-front.ts) against a scripted server: it must remove
 * APPENDUID/COPYUID from status lines only, never from message bytes inside a literal, however
 * the stream is split, and count what the client sends. A relay that rewrote a stored message
 * would make every e2e test behind it compare against corrupted mail.
 */
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { startImapFront, type ImapFront } from '../../lab/imap-front.js';

const cleanup: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanup.splice(0)) await c();
});

/** A server that writes `script` in chunks of `chunk` bytes once the client has sent anything. */
async function scriptedServer(script: Buffer, chunk: number): Promise<{ port: number; received: () => Buffer }> {
  let got = Buffer.alloc(0);
  const server = net.createServer((s) => {
    let sent = false;
    s.on('data', (d: Buffer) => {
      got = Buffer.concat([got, d]);
      if (sent) return;
      sent = true;
      void (async () => {
        for (let i = 0; i < script.length; i += chunk) {
          s.write(script.subarray(i, i + chunk));
          await new Promise((r) => setImmediate(r));
        }
        s.end();
      })();
    });
    s.on('error', () => {});
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  cleanup.push(() => new Promise<void>((r) => server.close(() => r())));
  return { port: (server.address() as net.AddressInfo).port, received: () => got };
}

async function through(front: ImapFront, send: Buffer): Promise<Buffer> {
  const c = net.connect(front.port, '127.0.0.1');
  const parts: Buffer[] = [];
  c.on('data', (d: Buffer) => parts.push(d));
  c.write(send);
  await new Promise<void>((r) => c.on('close', () => r()));
  return Buffer.concat(parts);
}

const body = Buffer.from(
  'Subject: x\r\n\r\na1 OK [APPENDUID 9 9] not a status line\r\n* OK [COPYUID 1 2 3] nor this\r\n',
);
const script = Buffer.concat([
  Buffer.from(`* 1 FETCH (UID 4 BODY[] {${body.length}}\r\n`),
  body,
  Buffer.from(
    ')\r\na1 OK [APPENDUID 1795957674 7] Append completed.\r\n* OK [COPYUID 1795957674 1 8] Moved.\r\na2 OK ' +
      '[READ-ONLY] Examine completed.\r\n',
  ),
]);
const expected = Buffer.concat([
  Buffer.from(`* 1 FETCH (UID 4 BODY[] {${body.length}}\r\n`),
  body,
  Buffer.from(')\r\na1 OK Append completed.\r\n* OK Moved.\r\na2 OK [READ-ONLY] Examine completed.\r\n'),
]);

describe('lab IMAP front (no UIDPLUS)', () => {
  for (const chunk of [1, 7, 64, script.length]) {
    it(`hides UIDPLUS codes in status lines only, literal bytes untouched (server chunks of ${chunk})`, async () => {
      const server = await scriptedServer(script, chunk);
      const front = await startImapFront(server.port, { hideUidplus: true });
      cleanup.push(() => front.close());
      const out = await through(front, Buffer.from('a1 NOOP\r\n'));
      expect(out.toString('latin1')).toBe(expected.toString('latin1'));
      expect(front.stats().hiddenUidCodes).toBe(2);
    });
  }

  it('passes everything through when UIDPLUS is not hidden, and counts APPENDs and {n+} literals', async () => {
    const server = await scriptedServer(script, 13);
    const front = await startImapFront(server.port, { hideUidplus: false });
    cleanup.push(() => front.close());
    const msg = 'Subject: y\r\n\r\nb2 APPEND INBOX {3+}\r\n';
    const send = Buffer.from(
      `b1 APPEND INBOX {${msg.length}+}\r\n${msg}\r\nb3 APPEND INBOX (\\Seen) {5}\r\nhello\r\n` +
        `b4 APPEND INBOX {5+}\r\nhello (\\Seen) {5+}\r\nworld {5}\r\nagain\r\nb5 NOOP\r\n`,
    );
    const out = await through(front, send);
    expect(out.equals(script)).toBe(true);
    expect(server.received().equals(send)).toBe(true);
    // The APPEND line inside b1's literal is message text, not a command; b4 is one MULTIAPPEND.
    expect(front.stats()).toEqual({
      appends: 3,
      nonSyncLiterals: 3,
      hiddenUidCodes: 0,
      oversizeNonSyncLiterals: 0,
      multiAppends: 1,
    });
  });

  it('as a LITERAL- server, ends the session on a {n+} over 4,096 octets before Dovecot sees it', async () => {
    // A server that only listens: the session ends by the relay alone.
    let got = '';
    const sink = net.createServer((sock) => {
      sock.on('data', (d: Buffer) => {
        got += d.toString('latin1');
      });
      sock.on('error', () => {});
    });
    await new Promise<void>((r) => sink.listen(0, '127.0.0.1', () => r()));
    cleanup.push(() => new Promise<void>((r) => sink.close(() => r())));
    const front = await startImapFront((sink.address() as net.AddressInfo).port, {
      hideUidplus: false,
      literalMinus: true,
    });
    cleanup.push(() => front.close());
    const small = `c1 APPEND INBOX {4096+}\r\n${'s'.repeat(4096)}\r\n`;
    const c = net.connect(front.port, '127.0.0.1');
    const heard: Buffer[] = [];
    c.on('data', (d: Buffer) => heard.push(d));
    const closed = new Promise<void>((r) => c.on('close', () => r()));
    c.write(small);
    await new Promise((r) => setTimeout(r, 100));
    c.write(`c2 APPEND INBOX {4097+}\r\n${'b'.repeat(4097)}\r\n`);
    await closed;
    expect(Buffer.concat(heard).toString('latin1')).toContain('* BYE [TOOBIG]');
    expect(got).toBe(small);
    expect(front.stats()).toMatchObject({ nonSyncLiterals: 2, oversizeNonSyncLiterals: 1 });
  });
});
