/**
 * An IMAP server that lets the first connection in and closes every later one as soon as it has
 * accepted it, without a word (overloaded, a limit on connections enforced at accept, a proxy
 * with no backend). imapflow's connection is the second, opened while imapflow loads
 * (src/imap/early-socket.ts); it used to be closed before imapflow listened, and the run waited
 * out --timeout, then said the server "sent no greeting within" it. Now the run ends at once, as
 * README's table has it for a server that accepts and closes without a word: exit 4 for migrate,
 * 75 for sync, "accepted the connection but did not greet".
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../support/cli.js';
import { FAKE_PASSWORD, FAKE_USER, startFakeImap } from '../support/fake-imap.js';
import { type FakePop3, startFakePop3 } from '../support/fake-pop3.js';
import { loopbackArgs } from '../support/lab-fixture.js';

const dir = mkdtempSync(join(tmpdir(), 'popsync-closed-at-accept-'));
let pop: FakePop3;

beforeAll(async () => {
  pop = await startFakePop3({ messages: ['Subject: a\r\n\r\nhi\r\n'], user: FAKE_USER, password: FAKE_PASSWORD });
});
afterAll(async () => {
  await pop.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('an IMAP server that closes every connection after the first at accept', () => {
  it.each([
    ['migrate', 4],
    ['sync', 75],
  ] as const)('%s: ends at once (exit %i), saying the server did not greet', async (command, code) => {
    const imap = await startFakeImap({ greeting: (n) => (n >= 2 ? { line: 'close' } : undefined) });
    try {
      const started = Date.now();
      const r = await runCli(
        loopbackArgs(
          command,
          { pop3: pop.port, imap: imap.port },
          FAKE_USER,
          FAKE_USER,
          join(dir, `${command}.sqlite`),
          [
            '--no-progress',
            // The guard: the wait this used to end with.
            '--timeout',
            '5',
          ],
        ),
        { env: { PW: FAKE_PASSWORD } },
      );
      expect(r.code, r.stderr).toBe(code);
      expect(r.stderr).toContain(
        `popsync: IMAP server 127.0.0.1:${imap.port} accepted the connection but did not greet\n`,
      );
      expect(r.stderr).not.toMatch(/within 5 s|longer --timeout/);
      expect(Date.now() - started).toBeLessThan(5000);
    } finally {
      await imap.close();
    }
  });
});
