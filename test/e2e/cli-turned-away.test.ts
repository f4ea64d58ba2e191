/**
 * A server that turns the connection away in place of its greeting ("Too many connections"):
 * IMAP's `* BYE`, POP3's `-ERR` without a code. That is "try later" for migrate as for sync
 * (exit 75, after the usual reconnects), with the server's words; not a wrong port (exit 4 at
 * once, "check the port"), which is what migrate said of the BYE while sync, mapping every
 * connection failure to 75, hid the difference.
 */
import net from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../support/cli.js';
import { startFakeImap, FAKE_PASSWORD, FAKE_USER, type FakeImap } from '../support/fake-imap.js';
import { startFakePop3, type FakePop3 } from '../support/fake-pop3.js';
import { loopbackArgs } from '../support/lab-fixture.js';

const dir = mkdtempSync(join(tmpdir(), 'popsync-turned-away-'));
const servers: net.Server[] = [];
let pop: FakePop3;
let imap: FakeImap;

beforeAll(async () => {
  pop = await startFakePop3({ messages: ['Subject: a\r\n\r\nhi\r\n'], user: FAKE_USER, password: FAKE_PASSWORD });
  imap = await startFakeImap();
});

afterAll(async () => {
  for (const s of servers) s.close();
  await pop.close();
  await imap.close();
  rmSync(dir, { recursive: true, force: true });
});

/** A server that answers every connection with `line` and closes it. */
function turningAway(line: string): Promise<number> {
  return new Promise((resolve) => {
    const s = net
      .createServer((c) => c.end(`${line}\r\n`))
      .listen(0, '127.0.0.1', () => {
        resolve((s.address() as net.AddressInfo).port);
      });
    servers.push(s);
  });
}

function args(command: string, popPort: number, imapPort: number): string[] {
  const journal = join(dir, `${command}-${popPort}-${imapPort}.sqlite`);
  return loopbackArgs(command, { pop3: popPort, imap: imapPort }, FAKE_USER, FAKE_USER, journal, [
    '--no-progress',
    // One reconnect (1 s): enough to show it is retried, not ended as a mistake.
    '--reconnect-attempts',
    '1',
  ]);
}

describe('a server that turns the connection away at its greeting', () => {
  it('IMAP * BYE: migrate and sync both exit 75 with the server words, after a retry', async () => {
    const port = await turningAway('* BYE Too many connections from your IP');
    for (const command of ['migrate', 'sync']) {
      const r = await runCli(args(command, pop.port, port), { env: { PW: FAKE_PASSWORD } });
      expect(r.code, `${command}: ${r.stderr}`).toBe(75);
      expect(r.stderr).toContain(`popsync: IMAP server 127.0.0.1:${port} turned the connection away\n`);
      expect(r.stderr).toContain('server said: "* BYE Too many connections from your IP"');
      expect(r.stderr).toMatch(/reconnecting .*attempt=1/);
      expect(r.stderr).toContain('hint: gave up after 1 reconnect attempt; run again later to resume\n');
      expect(r.stderr).not.toMatch(/check the port|did not greet/);
    }
  });

  it('IMAP * BYE [AUTHENTICATIONFAILED] to the login: a refused login, exit 3 at once, not retried', async () => {
    let logins = 0;
    const refusing = await startFakeImap({
      onCommand: (c) =>
        c.name === 'LOGIN' && ++logins > 0
          ? { kind: 'bye', text: '[AUTHENTICATIONFAILED] Invalid credentials' }
          : undefined,
    });
    try {
      for (const command of ['migrate', 'sync']) {
        const before = logins;
        const r = await runCli(args(command, pop.port, refusing.port), { env: { PW: FAKE_PASSWORD } });
        expect(r.code, `${command}: ${r.stderr}`).toBe(3);
        expect(r.stderr).toContain(
          `popsync: IMAP server 127.0.0.1:${refusing.port} rejected the login for ${FAKE_USER}: ` +
            'BYE [AUTHENTICATIONFAILED] Invalid credentials\n',
        );
        expect(r.stderr).not.toMatch(/reconnect|turned the connection away/);
        expect(logins - before).toBe(1);
      }
    } finally {
      await refusing.close();
    }
  });

  it('POP3 -ERR without a code: the same, for both commands', async () => {
    const port = await turningAway('-ERR Too many connections');
    for (const command of ['migrate', 'sync']) {
      const r = await runCli(args(command, port, imap.port), { env: { PW: FAKE_PASSWORD } });
      expect(r.code, `${command}: ${r.stderr}`).toBe(75);
      // The server's words are in the message; a "server said" line would only repeat them.
      expect(r.stderr).toContain('popsync: POP3 server refused the connection: -ERR Too many connections\n');
      expect(r.stderr).not.toContain('server said');
      expect(r.stderr).toMatch(/reconnecting .*attempt=1/);
    }
  });
});
