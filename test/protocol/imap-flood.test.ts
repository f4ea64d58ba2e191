/**
 * Invariant 3 on popsync's own APPEND connections (imap/pipeline.ts LineReader): whatever the
 * server sends, what popsync holds stays bounded. A server that answers an APPEND with a line
 * that never ends, one that floods untagged lines while the connection waits between batches, and
 * one that announces a literal larger than any reply: each spends the connection with a protocol
 * error naming the server and the connection, after popsync took a bounded number of bytes. What
 * is counted is what the server managed to write (it writes as fast as its socket drains): that
 * is popsync's reading plus what the kernel buffers between the two sockets, never RSS or time.
 * Through the binary, the same server ends the run with exit 4 and no stack trace.
 */
import diagnostics from 'node:diagnostics_channel';
import net from 'node:net';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { PopsyncError } from '../../src/errors.js';
import { silentLogger } from '../../src/log.js';
import { MAX_QUEUED_BYTES, MAX_REPLY_BYTES, PipelinedAppender } from '../../src/imap/pipeline.js';
import { runCli } from '../support/cli.js';
import { startFakeImap, FAKE_PASSWORD, FAKE_USER, type FakeImap } from '../support/fake-imap.js';
import { startFakePop3, type FakePop3 } from '../support/fake-pop3.js';

const MIB = 1024 * 1024;
/** What the server may send before it gives up by itself: far past any bound popsync keeps. */
const SERVER_MAX = 64 * MIB;
/**
 * What the kernel may take off the server's socket beyond what popsync read before it closed:
 * the server's send buffer and popsync's receive buffer, autotuned on loopback. Measured here: the
 * server wrote 4.0-4.1 MiB each time, its send buffer filled to net.ipv4.tcp_wmem's maximum
 * (4 MiB) while popsync read 64-128 KiB; the bound leaves room for a larger setting.
 */
const KERNEL_SLACK = 8 * MIB;
/** One socket read past the limit: the read that crossed it is taken whole before the check. */
const SOCKET_READ = 64 * 1024;
const GREETING_AND_LOGIN = 4096;
const CAPS = 'IMAP4rev1 LITERAL+ MULTIAPPEND UIDPLUS';

/** Bytes popsync's sockets to `port` read, as Node counts them (socket.bytesRead). */
function watchReads(port: number): () => number {
  const sockets: net.Socket[] = [];
  const onSocket = (m: unknown): void => {
    const socket = (m as { socket: net.Socket }).socket;
    socket.once('connect', () => {
      if (socket.remotePort === port) sockets.push(socket);
    });
  };
  diagnostics.subscribe('net.client.socket', onSocket);
  cleanup.push(() => diagnostics.unsubscribe('net.client.socket', onSocket));
  return () => sockets.reduce((n, s) => n + s.bytesRead, 0);
}

const cleanup: Array<() => void> = [];
afterEach(() => {
  for (const f of cleanup.splice(0)) f();
});

/**
 * Greets offering LITERAL+ and MULTIAPPEND, takes any LOGIN, then does `after` with the socket:
 * 'login' once the login is answered, 'append' once an APPEND command line has come.
 */
async function rawServer(
  when: 'login' | 'append',
  then: (s: net.Socket, count: (n: number) => void) => void,
): Promise<{ port: number; sent: () => number; stopped: Promise<void> }> {
  let sent = 0;
  let stop!: () => void;
  const stopped = new Promise<void>((r) => {
    stop = r;
  });
  const server = net.createServer((s) => {
    let text = '';
    let loggedIn = false;
    let started = false;
    s.write(`* OK [CAPABILITY ${CAPS}] ready\r\n`);
    s.on('close', stop);
    s.on('error', () => {});
    s.on('data', (d: Buffer) => {
      if (started) return;
      text += d.toString('latin1', 0, Math.min(d.length, 4096));
      if (!loggedIn && text.includes('\r\n')) {
        loggedIn = true;
        text = '';
        s.write(`L OK [CAPABILITY ${CAPS}] in\r\n`);
        if (when === 'login') started = true;
      } else if (loggedIn && /APPEND INBOX/.test(text)) started = true;
      if (started)
        then(s, (n) => {
          sent += n;
        });
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  cleanup.push(() => server.close());
  return { port: (server.address() as net.AddressInfo).port, sent: () => sent, stopped };
}

/** Writes `piece` over and over as fast as the socket drains, up to SERVER_MAX bytes. */
function flood(piece: Buffer): (s: net.Socket, count: (n: number) => void) => void {
  return (s, count) => {
    let total = 0;
    const more = (): void => {
      while (total < SERVER_MAX && !s.destroyed) {
        total += piece.length;
        count(piece.length);
        if (!s.write(piece)) {
          s.once('drain', more);
          return;
        }
      }
      // Given up by itself: half-close, so a popsync still waiting sees the end.
      if (!s.destroyed) s.end();
    };
    more();
  };
}

async function open(port: number, timeoutMs = 20_000): Promise<PipelinedAppender> {
  const a = await PipelinedAppender.open(
    { host: '127.0.0.1', port, tls: 'none', user: 'u', password: 'p' },
    timeoutMs,
    silentLogger,
  );
  cleanup.push(() => a.destroy());
  return a;
}

const item = { body: Buffer.from('Subject: x\r\n\r\nbody\r\n'), hasNul: false, flags: [], date: undefined };

function outcomeOf(a: PipelinedAppender): Promise<unknown> {
  return a
    .append('INBOX', 'INBOX', [item], () => {})
    .then(
      (o) => o,
      (e: unknown) => e,
    );
}

function expectProtocolError(e: unknown, port: number, what: RegExp): void {
  expect(e).toBeInstanceOf(PopsyncError);
  expect((e as PopsyncError).kind).toBe('protocol');
  expect((e as PopsyncError).message).toMatch(
    new RegExp(`^IMAP APPEND connection to 127\\.0\\.0\\.1:${port}: the server sent ${what.source}`),
  );
}

describe('the APPEND connection holds a bounded amount of what a server sends', () => {
  it('a reply line that never ends: a protocol error once it passes the limit', async () => {
    const server = await rawServer('append', flood(Buffer.alloc(64 * 1024, 'x')));
    const read = watchReads(server.port);
    const a = await open(server.port);
    const e = await outcomeOf(a);
    await server.stopped;
    expectProtocolError(e, server.port, /a response longer than 64 KiB/);
    expect(read()).toBeLessThan(MAX_REPLY_BYTES + SOCKET_READ + GREETING_AND_LOGIN);
    // Before the limit, popsync read whatever came (64 MiB, quadratically) until its reply timeout.
    expect(server.sent()).toBeLessThan(MAX_REPLY_BYTES + KERNEL_SLACK);
  }, 30_000);

  it('a literal announced in an untagged reply past the limit: a protocol error at once', async () => {
    const server = await rawServer('append', (s, count) => {
      const head = Buffer.from('* 1 FETCH (BODY[] {1000000000}\r\n');
      count(head.length);
      s.write(head);
      flood(Buffer.alloc(64 * 1024, 'y'))(s, count);
    });
    const read = watchReads(server.port);
    const a = await open(server.port);
    const e = await outcomeOf(a);
    await server.stopped;
    expectProtocolError(e, server.port, /a response longer than 64 KiB/);
    expect(read()).toBeLessThan(SOCKET_READ + GREETING_AND_LOGIN);
    expect(server.sent()).toBeLessThan(KERNEL_SLACK);
  }, 30_000);

  it('untagged lines flooded while the connection is idle: the next batch fails with a protocol error', async () => {
    const server = await rawServer('login', flood(Buffer.from('* OK still here\r\n'.repeat(4096))));
    const read = watchReads(server.port);
    const a = await open(server.port);
    // Nothing reads replies between batches: the lines queue until the server stops or we do.
    await server.stopped;
    expect(a.usable).toBe(false);
    expectProtocolError(await outcomeOf(a), server.port, /more than 1 MiB of responses no command asked for/);
    // Each line is counted at least 64 bytes: 17-byte lines fill the queue at 1 MiB * 17 / 64.
    expect(read()).toBeLessThan(MAX_QUEUED_BYTES + SOCKET_READ + GREETING_AND_LOGIN);
    expect(server.sent()).toBeLessThan(MAX_QUEUED_BYTES + KERNEL_SLACK);
  }, 30_000);

  it('a long reply within the limit is still read (an ALERT of 60 KiB before the APPEND reply)', async () => {
    const server = await rawServer('append', (s) => {
      s.write(`* OK [ALERT] ${'a'.repeat(60 * 1024)}\r\nP1 OK [APPENDUID 7 1] done\r\n`);
    });
    const a = await open(server.port);
    expect(await outcomeOf(a)).toEqual([{ ok: true, uid: 1, uidValidity: 7n }]);
  });
});

describe('through the binary', () => {
  const dir = mkdtempSync(join(tmpdir(), 'popsync-imap-flood-'));
  let servers: Array<FakePop3 | FakeImap> = [];
  afterEach(async () => {
    await Promise.all(servers.map((s) => s.close()));
    servers = [];
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('an APPEND answered by a line that never ends: exit 4, the server and connection named, no stack', async () => {
    const pop = await startFakePop3({
      user: 'src',
      password: 'pop-pw',
      messages: ['From: a@example.org\r\nSubject: one\r\nMessage-ID: <m1@example.org>\r\n\r\nbody\r\n'],
    });
    let sent = 0;
    const imap = await startFakeImap({
      capabilities: ['IMAP4rev1', 'UIDPLUS', 'LITERAL+', 'MULTIAPPEND'],
      onAppend: () => ({
        kind: 'flood',
        piece: Buffer.alloc(64 * 1024, 'x'),
        max: SERVER_MAX,
        sent: (n) => {
          sent += n;
        },
      }),
    });
    servers.push(pop, imap);
    const config = join(mkdtempSync(join(dir, 'run-')), 'flood.yml');
    writeFileSync(
      config,
      [
        'accounts:',
        `  - source: { url: 'pop3://src@127.0.0.1:${pop.port}', tls: none, password_env: POP_PW }`,
        `    destination: { url: 'imap://${FAKE_USER}@127.0.0.1:${imap.port}', tls: none, password_env: IMAP_PW }`,
        '    journal: flood.sqlite',
        '',
      ].join('\n'),
    );
    const r = await runCli(['migrate', '--config', config, '--no-progress'], {
      env: { POP_PW: 'pop-pw', IMAP_PW: FAKE_PASSWORD },
    });
    expect(r.code, r.stderr).toBe(4);
    expect(r.stderr).toMatch(
      new RegExp(
        `IMAP APPEND connection to 127\\.0\\.0\\.1:${imap.port}: the server sent a response longer than 64 KiB`,
      ),
    );
    expect(r.stderr).not.toMatch(/\n\s+at /);
    expect(sent).toBeLessThan(MAX_REPLY_BYTES + KERNEL_SLACK);
  }, 60_000);
});
