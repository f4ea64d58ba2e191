/**
 * The POP3 session's measured round trip (pop3/connection.ts roundTripMs), which sets how many
 * RETRs go ahead (engine/retr-ahead.ts): timed on commands written into an idle connection,
 * through lab/slow-proxy.ts for a link that really takes time. Only lower bounds are asserted: a
 * loaded machine can make a round trip longer, never shorter.
 */
import { describe, expect, it } from 'vitest';
import { startSlowProxy } from '../../lab/slow-proxy.js';
import type { FakeContext } from '../support/fake-pop3.js';
import { usePop3Harness } from '../support/pop3-harness.js';

const { fake, connect } = usePop3Harness();

const notes = Array.from({ length: 50 }, (_, i) => ({
  body: Buffer.from(`Subject: ${i}\r\n\r\nnote\r\n`),
  uidl: `n${i}`,
}));

describe('the POP3 round trip', () => {
  it('is known once logged in, and is at least what the link takes', async () => {
    const pop = await fake({ messages: notes, pipelining: true });
    // 20 ms each way.
    const slow = await startSlowProxy(pop.port, 20);
    try {
      const s = await connect(pop, { port: slow.port });
      expect(s.roundTripMs).toBeGreaterThanOrEqual(40);
      expect(Number.isFinite(s.roundTripMs)).toBe(true);
    } finally {
      await slow.close();
    }
  });

  it('CAPA, written ahead of the greeting, is timed too: a slow login and a slow STAT do not inflate it', async () => {
    const slowly = (ms: number) => async (ctx: FakeContext) => {
      await new Promise((r) => setTimeout(r, ms));
      await ctx.useDefault();
    };
    const pop = await fake({ messages: notes, pipelining: true, handlers: { AUTH: slowly(1000), STAT: slowly(1000) } });
    const s = await connect(pop);
    // The login and STAT each took a second: only CAPA can have been timed below it.
    expect(s.roundTripMs).toBeLessThan(1000);
  });

  it('on loopback it is measured too', async () => {
    const pop = await fake({ messages: notes, pipelining: true });
    const s = await connect(pop);
    expect(Number.isFinite(s.roundTripMs)).toBe(true);
    expect(s.roundTripMs).toBeGreaterThanOrEqual(0);
  });
});
