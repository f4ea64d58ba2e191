/**
 * A server that answers an APPEND before it has read the literal (a broken or hostile one).
 * A batch's bodies live in slabs the engine reuses once the batch is settled (engine/slabs.ts):
 * the batch must not settle while our socket still holds bytes to send from that memory, which
 * would go out as the next batch's bytes; it settles once the socket let go of them. And time
 * stays bounded (pipeline.ts): if the server then never reads again, nothing else is awaited
 * with a reply's timeout, so the run must still end, with a connection error after --timeout
 * without progress, not wait for ever.
 */
import net from 'node:net';
import { afterEach, expect, it } from 'vitest';
import { PopsyncError } from '../../src/errors.js';
import { silentLogger } from '../../src/log.js';
import { PipelinedAppender } from '../../src/imap/pipeline.js';

const CAPS = 'IMAP4rev1 LITERAL+ UIDPLUS';
const cleanup: Array<() => void> = [];
afterEach(() => {
  for (const f of cleanup.splice(0)) f();
});

/**
 * Answers LOGIN, then the first APPEND as soon as its command line arrives, and stops reading
 * until resume().
 */
async function earlyServer(): Promise<{ port: number; resume: () => void; read: () => number }> {
  let conn: net.Socket | null = null;
  let bytes = 0;
  const server = net.createServer((s) => {
    conn = s;
    let text = '';
    let loggedIn = false;
    let answered = false;
    s.write(`* OK [CAPABILITY ${CAPS}] ready\r\n`);
    s.on('data', (d: Buffer) => {
      bytes += d.length;
      if (answered) return;
      text += d.toString('latin1', 0, Math.min(d.length, 4096));
      if (!loggedIn && text.includes('\r\n')) {
        loggedIn = true;
        text = '';
        s.write(`L OK [CAPABILITY ${CAPS}] in\r\n`);
      } else if (loggedIn && /^P1 APPEND INBOX \{\d+\+\}\r\n/.test(text)) {
        answered = true;
        s.pause();
        s.write('P1 OK [APPENDUID 7 1] stored (it says)\r\n');
      }
    });
    s.on('error', () => {});
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  cleanup.push(() => {
    conn?.destroy();
    server.close();
  });
  return {
    port: (server.address() as net.AddressInfo).port,
    resume: () => conn?.resume(),
    read: () => bytes,
  };
}

it('settles an APPEND answered before its literal was read only once the socket let go of the body', async () => {
  const server = await earlyServer();
  const a = await PipelinedAppender.open(
    { host: '127.0.0.1', port: server.port, tls: 'none', user: 'u', password: 'p' },
    30_000,
    silentLogger,
  );
  cleanup.push(() => a.destroy());
  // Far more than the kernel buffers between us hold while the server does not read.
  const body = Buffer.alloc(40 * 1024 * 1024, 'x');
  let answered!: () => void;
  const reply = new Promise<void>((r) => {
    answered = r;
  });
  let settled = false;
  const batch = a
    .append('INBOX', 'INBOX', [{ body, hasNul: false, flags: [], date: undefined }], () => answered())
    .then((outcomes) => {
      settled = true;
      return outcomes;
    });
  await reply;
  for (let i = 0; i < 10; i++) await new Promise((r) => setImmediate(r));
  expect(server.read()).toBeLessThan(body.length);
  expect(settled).toBe(false);
  server.resume();
  expect(await batch).toEqual([{ ok: true, uid: 1, uidValidity: 7n }]);
});

it('an APPEND answered early by a server that then stops reading ends in a connection error, not a hang', async () => {
  const server = await earlyServer();
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
