/**
 * What one POP3 connection of an account learnt of its server holds for the account's later
 * connections (the reconnects of a run): here, that the server hangs up on a CAPA written
 * ahead of its greeting (pop3/client.ts connectWithCapa).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { resolveAccount, type AccountInput } from '../../src/cli/account.js';
import { silentLogger } from '../../src/log.js';
import type { Pop3Session } from '../../src/pop3/types.js';
import { startFakePop3, type FakePop3 } from '../support/fake-pop3.js';

let pop: FakePop3 | undefined;
const sessions: Pop3Session[] = [];
afterEach(async () => {
  for (const s of sessions.splice(0)) s.destroy();
  await pop?.close();
  pop = undefined;
});

describe("an account's POP3 connections", () => {
  it('after the server hung up on CAPA ahead of its greeting, later connections wait for the greeting', async () => {
    pop = await startFakePop3({
      messages: ['Subject: a\r\n\r\na\r\n'],
      pipelining: true,
      handlers: {
        // Greets after 100 ms, and hangs up on a connection that talked before.
        GREETING: async (ctx) => {
          await new Promise((r) => setTimeout(r, 100));
          if (ctx.server.received.some((r) => r.connection === ctx.connection)) ctx.drop();
          else ctx.reply(ctx.greeting);
        },
      },
    });
    const input: AccountInput = {
      pop: { url: `pop3://alice@127.0.0.1:${pop.port}`, tls: 'none', password: 'secret' },
      imap: { url: 'imap://bob@127.0.0.1:1', tls: 'none', password: 'p' },
      journal: '/nonexistent/j.sqlite',
      timeoutSeconds: 5,
    };
    const account = await resolveAccount(input, { logger: silentLogger, createJournalDir: false });
    const capas = () => pop!.received.filter((r) => r.verb === 'CAPA').map((r) => r.repliesBefore);
    sessions.push(await account.openSource());
    // Written ahead and hung up on, then written after the greeting.
    expect(capas()).toEqual([0, 1]);
    const connections = pop.connections;
    sessions.push(await account.openSource(), await account.openSource());
    expect(capas()).toEqual([0, 1, 1, 1]);
    expect(pop.connections).toBe(connections + 2);
    // `sync --every` resolves the same input again each cycle: the next cycle remembers it.
    const nextCycle = await resolveAccount(input, { logger: silentLogger, createJournalDir: false });
    sessions.push(await nextCycle.openSource());
    expect(capas()).toEqual([0, 1, 1, 1, 1]);
    expect(pop.connections).toBe(connections + 3);
    // Another account (another input) learns for itself.
    const other = await resolveAccount({ ...input }, { logger: silentLogger, createJournalDir: false });
    sessions.push(await other.openSource());
    expect(capas()).toEqual([0, 1, 1, 1, 1, 0, 1]);
  });
});
