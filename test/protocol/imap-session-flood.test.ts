/**
 * Invariant 3 on imapflow's session connection: popsync gives imapflow limits (writer.ts
 * SESSION_LIMITS: 256 MiB a line or literal, 1 MiB more a response) in place of imapflow's own
 * (1 GiB, 2 GiB). A server that answers STATUS with a line that never ends, or announces a header
 * block past the limit, ends the session with a protocol error naming the server, after popsync
 * took a bounded number of bytes; through the binary, exit 4 and no stack trace, not a lost
 * connection opened again to be sent the same. What is counted is what the server managed to
 * write as fast as its socket drained (popsync's reading plus the kernel's buffers).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { PopsyncError } from '../../src/errors.js';
import { SESSION_LIMITS } from '../../src/imap/writer.js';
import { runCli } from '../support/cli.js';
import { FAKE_PASSWORD, FAKE_USER, type FakeImap, startFakeImap } from '../support/fake-imap.js';
import { fakeImapSinks } from '../support/fake-imap-sink.js';
import { startFakePop3, type FakePop3 } from '../support/fake-pop3.js';

const MIB = 1024 * 1024;
/** What the server sends before it gives up by itself: well past the limit. */
const SERVER_MAX = SESSION_LIMITS.maxResponseSize + 64 * MIB;
/** The kernel's buffers between the sockets (loopback; 4 MiB measured for the APPEND connection). */
const KERNEL_SLACK = 8 * MIB;
/** One socket read past the limit: imapflow counts a read whole before it checks. */
const SOCKET_READ = MIB;
/** imapflow's session only: no LITERAL+ or MULTIAPPEND, so no APPEND connection of popsync's. */
const CAPABILITIES = ['IMAP4rev1', 'UIDPLUS'];

const connect = fakeImapSinks();

function endless(count: (n: number) => void, head = Buffer.alloc(0)) {
  return {
    kind: 'flood' as const,
    piece: Buffer.concat([head, Buffer.alloc(64 * 1024 - head.length, 'x')]),
    max: SERVER_MAX,
    sent: count,
  };
}

describe("imapflow's session holds a bounded amount of what a server sends", () => {
  it('STATUS answered with a line that never ends: a protocol error past the limit', async () => {
    let sent = 0;
    const { fake, sink } = await connect(
      {
        capabilities: CAPABILITIES,
        onCommand: (c) =>
          c.name === 'STATUS'
            ? endless((n) => {
                sent += n;
              }, Buffer.from('* STATUS INBOX (MESSAGES 1 '))
            : undefined,
      },
      { timeoutMs: 10_000 },
    );
    const e = await sink.status('INBOX').then(
      (x) => x,
      (err: unknown) => err,
    );
    expect(e).toBeInstanceOf(PopsyncError);
    expect((e as PopsyncError).kind).toBe('protocol');
    expect((e as PopsyncError).message).toMatch(
      new RegExp(`^IMAP server 127\\.0\\.0\\.1:${fake.port} sent a response longer than popsync's IMAP session takes`),
    );
    // Before: imapflow read all the server sent (1 GiB a line), until the reply timeout.
    expect(sent).toBeLessThan(SESSION_LIMITS.maxLineLength + SOCKET_READ + KERNEL_SLACK);
    // The session is spent, and says why to every later operation.
    await expect(sink.status('INBOX')).rejects.toMatchObject({ kind: 'protocol' });
  }, 60_000);

  it('a literal announced past the limit: a protocol error at once', async () => {
    let sent = 0;
    const { fake, sink } = await connect(
      {
        capabilities: CAPABILITIES,
        onCommand: (c) =>
          c.name === 'STATUS'
            ? endless(
                (n) => {
                  sent += n;
                },
                Buffer.from(`* STATUS {${SESSION_LIMITS.maxLiteralSize + 1}}\r\n`),
              )
            : undefined,
      },
      { timeoutMs: 10_000 },
    );
    const e = await sink.status('INBOX').then(
      (x) => x,
      (err: unknown) => err,
    );
    expect((e as PopsyncError).kind).toBe('protocol');
    expect((e as PopsyncError).message).toContain(`IMAP server 127.0.0.1:${fake.port} sent a response longer`);
    expect(sent).toBeLessThan(SOCKET_READ + KERNEL_SLACK);
  }, 60_000);
});

describe('through the binary', () => {
  const dir = mkdtempSync(join(tmpdir(), 'popsync-session-flood-'));
  let servers: Array<FakePop3 | FakeImap> = [];
  afterEach(async () => {
    await Promise.all(servers.map((s) => s.close()));
    servers = [];
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('SELECT answered with a line that never ends: exit 4, the server named, no stack, no reconnect', async () => {
    const pop = await startFakePop3({
      user: 'src',
      password: 'pop-pw',
      messages: ['From: a@example.org\r\nSubject: one\r\nMessage-ID: <m1@example.org>\r\n\r\nbody\r\n'],
    });
    let sent = 0;
    let floods = 0;
    const imap = await startFakeImap({
      capabilities: CAPABILITIES,
      onCommand: (c) => {
        if (c.name !== 'STATUS' && c.name !== 'SELECT' && c.name !== 'EXAMINE') return undefined;
        floods++;
        return endless((n) => {
          sent += n;
        });
      },
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
    const r = await runCli(['migrate', '--config', config, '--no-progress', '--timeout', '10'], {
      env: { POP_PW: 'pop-pw', IMAP_PW: FAKE_PASSWORD },
    });
    expect(r.code, r.stderr).toBe(4);
    expect(r.stderr).toMatch(
      new RegExp(`IMAP server 127\\.0\\.0\\.1:${imap.port} sent a response longer than popsync's IMAP session takes`),
    );
    expect(r.stderr).not.toMatch(/\n\s+at /);
    expect(floods).toBe(1);
    expect(sent).toBeLessThan(SESSION_LIMITS.maxLineLength + SOCKET_READ + KERNEL_SLACK);
  }, 120_000);
});
