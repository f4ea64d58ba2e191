/**
 * app/run-account.ts: the sockets an account's warmUp opens connect before the journal opens.
 * Node leaves a socket's connect for the next tick and the journal opens synchronously, so
 * without a tick between them the servers' greetings would only set off after it. warmUp here
 * stands for net.connect (a connect scheduled with process.nextTick); the journal is stubbed.
 */
import { describe, expect, it, vi } from 'vitest';
import type { AccountEndpoints } from '../../src/app/account.js';
import { runAccount } from '../../src/app/run-account.js';
import type { RunResult } from '../../src/engine/types.js';
import { silentLogger } from '../../src/log.js';

const order = vi.hoisted((): string[] => []);

vi.mock('../../src/engine/lock.js', () => ({
  withLockedJournal: async () => {
    order.push('journal opens');
    return {} as RunResult;
  },
}));

describe('runAccount', () => {
  it("lets warmUp's connects leave before the journal opens, and closes what the run did not take", async () => {
    const unused = async () => {
      throw new Error('not reached: the journal is stubbed');
    };
    const account: AccountEndpoints = {
      sourceKey: 'u@pop.example',
      journalPath: '/nonexistent/journal.sqlite',
      pop: { display: 'u@pop.example' },
      imap: { display: 'u@imap.example' },
      openSource: unused,
      openSink: unused,
      warmUp: () => {
        process.nextTick(() => order.push('connect'));
        return () => order.push('unused sockets closed');
      },
    };
    await runAccount(
      account,
      {
        routing: { rules: [], defaultFolder: 'INBOX', flags: [], seen: [], arrivalDate: true },
        batchMessages: 100,
        batchBytes: 1 << 20,
        reconnectAttempts: 1,
      },
      { command: 'migrate', logger: silentLogger },
    );
    expect(order).toEqual(['connect', 'journal opens', 'unused sockets closed']);
  });
});
