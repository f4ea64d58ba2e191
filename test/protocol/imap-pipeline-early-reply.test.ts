/**
 * A batch's bodies live in slabs the engine reuses once the batch is settled (engine/slabs.ts).
 * A server that answers an APPEND before it has read the literal (a broken or hostile one) must
 * not make the batch settle while our socket still holds bytes to send from that memory: they
 * would go out as the next batch's bytes. The batch settles once the socket let go of them.
 */
import net from 'node:net';
import { afterEach, expect, it } from 'vitest';
import { silentLogger } from '../../src/log.js';
import { PipelinedAppender } from '../../src/imap/pipeline.js';

const CAPS = 'IMAP4rev1 LITERAL+ UIDPLUS';
const cleanup: Array<() => void> = [];
afterEach(() => {
  for (const f of cleanup.splice(0)) f();
});

/** Answers LOGIN, then the first APPEND as soon as its command line arrives, and stops reading. */
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
