/**
 * An account's IMAP server that allows one connection per user (imap/writer.ts, the fallback
 * when the APPEND connection is turned away) is asked once per process: the later sinks of the
 * same account input, a reconnect's or a later `sync --every` cycle's, open imapflow's session
 * alone, with no refused login and no warning.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { resolveAccount, type AccountInput } from '../../src/cli/account.js';
import type { ImapSink } from '../../src/imap/types.js';
import { FAKE_PASSWORD, FAKE_USER, type FakeImap, startFakeImap } from '../support/fake-imap.js';
import { warningsLogger } from '../support/warnings-logger.js';

let imap: FakeImap | undefined;
const sinks: ImapSink[] = [];
afterEach(async () => {
  for (const s of sinks.splice(0)) await s.close().catch(() => undefined);
  await imap?.close();
  imap = undefined;
});

describe("an account's IMAP server that allows one connection", () => {
  it('is asked once per account input: later cycles open one connection and warn no more', async () => {
    imap = await startFakeImap({ maxLoggedIn: 1 });
    const input: AccountInput = {
      pop: { url: 'pop3://alice@127.0.0.1:1', tls: 'none', password: 'p' },
      imap: { url: `imap://${FAKE_USER}@127.0.0.1:${imap.port}`, tls: 'none', password: FAKE_PASSWORD },
      journal: '/nonexistent/j.sqlite',
      timeoutSeconds: 5,
    };
    const { logger, warnings } = warningsLogger();
    const open = async (i: AccountInput): Promise<ImapSink> => {
      const account = await resolveAccount(i, { logger, createJournalDir: false });
      const sink = await account.openSink();
      sinks.push(sink);
      // One connection at a time, as the server allows: the next cycle finds it free.
      await sink.close();
      return sink;
    };
    const first = await open(input);
    expect(first.oneConnection).toMatch(/NO \[UNAVAILABLE\] Maximum number of connections/);
    // imapflow's session and the APPEND connection it turned away.
    expect(imap.connections).toBe(2);
    expect(warnings).toHaveLength(1);
    // `sync --every` resolves the same input again each cycle.
    const nextCycle = await open(input);
    expect(nextCycle.oneConnection).toBe(first.oneConnection);
    expect(imap.connections).toBe(3);
    expect(warnings).toHaveLength(1);
    // Another account (another input) asks for itself.
    await open({ ...input });
    expect(imap.connections).toBe(5);
    expect(warnings).toHaveLength(2);
  });
});
