/**
 * popsync's connections to one server resume each other's TLS session (src/net/connect.ts),
 * proven on the real Dovecot: imapflow's connection and our APPEND connections (a further one
 * opened for a second folder too), and POP3 after POP3. The lab runs Dovecot's login processes
 * shared (high-performance mode): in its default mode every connection has a login process
 * with its own ticket key and none can resume.
 * What must never resume is test/protocol/net-tls-resume.test.ts.
 */
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { readFileSync } from 'node:fs';
import { startDovecot, type Lab } from '../../lab/dovecot.js';
import { connectImap } from '../../src/imap/index.js';
import { connectPop3 } from '../../src/pop3/index.js';

let lab: Lab;
let ca: string;
/** isSessionReused() of every TLS connection made, in order of their handshakes. */
const handshakes: boolean[] = [];

beforeAll(async () => {
  lab = await startDovecot({ sharedLoginProcesses: true });
  ca = readFileSync(lab.caFile, 'utf8');
  const connect = tls.connect;
  vi.spyOn(tls, 'connect').mockImplementation(((...args: Parameters<typeof tls.connect>) => {
    const s = connect(...args);
    s.once('secureConnect', () => handshakes.push(s.isSessionReused()));
    return s;
  }) as typeof tls.connect);
});
afterAll(async () => {
  vi.restoreAllMocks();
  await lab?.stop();
});

/** The handshakes `what` made. */
async function during(what: () => Promise<void>): Promise<boolean[]> {
  const from = handshakes.length;
  await what();
  return handshakes.slice(from);
}

describe('TLS sessions resume between popsync connections to the real Dovecot', () => {
  it('imaps: after the first sink, every IMAP connection resumes', async () => {
    const sink = async (): Promise<void> => {
      const s = await connectImap({
        host: lab.imaps.host,
        port: lab.imaps.port,
        tls: 'implicit',
        user: lab.newUser('resume'),
        password: lab.password,
        ca: [ca],
        timeoutMs: 10_000,
        appendPath: 'pipelined',
      });
      await s.close();
    };
    const first = await during(sink);
    const second = await during(sink);
    // imapflow's connection and ours: two handshakes each time. The first sink's open side
    // by side, mostly before either has a ticket; the second's find those the first brought.
    expect(first).toHaveLength(2);
    expect(first[0]).toBe(false);
    expect(second).toEqual([true, true]);
  });

  it('imaps: a further APPEND connection, opened for a second folder, resumes', async () => {
    const sink = await connectImap({
      host: lab.imaps.host,
      port: lab.imaps.port,
      tls: 'implicit',
      user: lab.newUser('resume'),
      password: lab.password,
      ca: [ca],
      timeoutMs: 10_000,
      appendPath: 'pipelined',
      appendConnections: 2,
    });
    const mail = { body: Buffer.from('From: a@example.org\r\nSubject: r\r\n\r\nbody\r\n'), flags: [] };
    try {
      const further = await during(async () => {
        for (const folder of ['A', 'B']) {
          await sink.ensureFolder(folder);
          expect(await sink.appendBatch(folder, [mail])).toMatchObject([{ ok: true }]);
        }
      });
      // Folder A went down the connection opened with the sink; B's is the only handshake here.
      expect(further).toEqual([true]);
    } finally {
      await sink.close();
    }
  });

  it('pop3s: the next account on the same server resumes', async () => {
    const source = async (): Promise<void> => {
      const s = await connectPop3({
        host: lab.pop3s.host,
        port: lab.pop3s.port,
        tls: 'implicit',
        user: lab.newUser('resume'),
        password: lab.password,
        ca: [ca],
        timeoutMs: 10_000,
      });
      await s.quit();
    };
    expect(await during(source)).toEqual([false]);
    expect(await during(source)).toEqual([true]);
  });
});
