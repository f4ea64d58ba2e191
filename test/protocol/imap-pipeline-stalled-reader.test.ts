/**
 * Bounded time on the APPEND connection (pipeline.ts) whatever the server does: one that answers
 * an APPEND at its command line and then never reads again (broken or hostile) leaves our socket
 * full of the literal. A batch settles only once the socket let go of its bytes (08cf13e), and
 * nothing else is awaited with a reply's timeout then: the run must still end, with a connection
 * error after --timeout without progress, not wait for ever.
 */
import net from 'node:net';
import { afterEach, expect, it } from 'vitest';
import { PopsyncError } from '../../src/errors.js';
import { PipelinedAppender } from '../../src/imap/pipeline.js';
import { silentLogger } from '../../src/log.js';

const CAPS = 'IMAP4rev1 LITERAL+ UIDPLUS';
const cleanup: Array<() => void> = [];
afterEach(() => {
  for (const f of cleanup.splice(0)) f();
});

/** Answers LOGIN, then every APPEND as soon as its command line arrives, and stops reading. */
async function stalledServer(): Promise<{ port: number }> {
  const server = net.createServer((s) => {
    let text = '';
    let loggedIn = false;
    s.write(`* OK [CAPABILITY ${CAPS}] ready\r\n`);
    s.on('data', (d: Buffer) => {
      text += d.toString('latin1', 0, Math.min(d.length, 4096));
      if (!loggedIn && text.includes('\r\n')) {
        loggedIn = true;
        text = '';
        s.write(`L OK [CAPABILITY ${CAPS}] in\r\n`);
      } else if (loggedIn && /^P1 APPEND INBOX \{\d+\+\}\r\n/.test(text)) {
        // Never reads again: the rest of the literal stays in our socket.
        s.pause();
        s.write('P1 OK [APPENDUID 7 1] stored (it says)\r\n');
      }
    });
    s.on('error', () => {});
    cleanup.push(() => s.destroy());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  cleanup.push(() => server.close());
  return { port: (server.address() as net.AddressInfo).port };
}

it('an APPEND answered early by a server that then stops reading ends in a connection error, not a hang', async () => {
  const server = await stalledServer();
  // A short --timeout: nothing here may wait longer than it without progress.
  const timeoutMs = 300;
  const a = await PipelinedAppender.open(
    { host: '127.0.0.1', port: server.port, tls: 'none', user: 'u', password: 'p' },
    timeoutMs,
    silentLogger,
  );
  cleanup.push(() => a.destroy());
  // Far more than the kernel buffers between us hold while the server does not read.
  const body = Buffer.alloc(40 * 1024 * 1024, 'x');
  const outcome = await a
    .append('INBOX', 'INBOX', [{ body, hasNul: false, flags: [], date: undefined }], () => {})
    .then(
      (o) => o,
      (e: unknown) => e,
    );
  expect(outcome).toBeInstanceOf(PopsyncError);
  expect((outcome as PopsyncError).kind).toBe('connection');
  expect((outcome as PopsyncError).message).toMatch(
    /IMAP APPEND connection to 127\.0\.0\.1:\d+: the server answered an APPEND before it had read the message/,
  );
}, 20_000);
