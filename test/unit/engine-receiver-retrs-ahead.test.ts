/**
 * The receiver writes as many RETRs ahead as the POP3 connection's measured round trip needs
 * (engine/retr-ahead.ts): a batch's count on loopback, up to RETRS_AHEAD_MAX on a distant link.
 * Counted as RETRs written before the first batch is returned, over an in-memory source.
 */
import { describe, expect, it } from 'vitest';
import { DEFAULT_BATCH_MESSAGES, RETRS_AHEAD_MAX } from '../../src/defaults.js';
import type { RunContext } from '../../src/engine/context.js';
import { HELD_MESSAGE_FLOOR } from '../../src/engine/receive-ahead.js';
import { Receiver, type ReceiveLimits } from '../../src/engine/receiver.js';
import { Spool } from '../../src/engine/spool.js';
import { RetrBody } from '../../src/pop3/retr-body.js';
import type { Pop3Session } from '../../src/pop3/types.js';

const note = (i: number): Buffer => Buffer.from(`Subject: ${i}\r\n\r\n${'A short note.\r\n'.repeat(20)}`);

/** RETRs written before the receiver handed over its first batch, on a link of `roundTripMs`. */
async function retrsBeforeFirstBatch(
  roundTripMs: number | undefined,
  limits: Pick<ReceiveLimits, 'messages' | 'bytes'> = { messages: DEFAULT_BATCH_MESSAGES, bytes: 10 * 1024 * 1024 },
  batch = DEFAULT_BATCH_MESSAGES,
): Promise<number> {
  const count = 2000;
  let written = 0;
  const source = {
    ...(roundTripMs === undefined ? {} : { roundTripMs }),
    retrStream: (n: number) => {
      written++;
      const body = new RetrBody(() => undefined);
      body.push(note(n));
      body.end();
      return body;
    },
  } as unknown as Pop3Session;
  const todo = Array.from({ length: count }, (_, i) => ({ n: i + 1, uidl: `u${i + 1}`, size: note(i + 1).length }));
  const ctx = { o: {}, receiveFailures: new Map() } as unknown as RunContext;
  const receiver = new Receiver(ctx, source, todo, new Spool(), {
    ...limits,
    spillAt: Math.min(4 * 1024 * 1024, limits.bytes),
    setAsideAfter: 3,
  });
  const got = await receiver.batch();
  expect(got?.items).toHaveLength(batch);
  receiver.close();
  return written;
}

describe('RETRs the receiver writes ahead', () => {
  it('on loopback (a round trip well under a millisecond): a batch and the top-up, no more', async () => {
    // The first batch's count, topped up by a batch again once a quarter of it was read.
    expect(await retrsBeforeFirstBatch(0.2)).toBeLessThanOrEqual(2 * DEFAULT_BATCH_MESSAGES);
  });

  it('at 30 ms: RETRS_AHEAD_MAX go ahead at once', async () => {
    expect(await retrsBeforeFirstBatch(30)).toBeGreaterThanOrEqual(RETRS_AHEAD_MAX);
  });

  it('a session that does not measure its round trip is taken as distant', async () => {
    expect(await retrsBeforeFirstBatch(undefined)).toBeGreaterThanOrEqual(RETRS_AHEAD_MAX);
  });

  it('a batch of tiny messages is what its byte cap holds at the floor, whatever --batch-messages says', async () => {
    // A cap of 32 floors: a batch holds 32 of them, so 32 is the batch's count that goes ahead
    // on loopback, not the 100,000 asked for (a stream and a command each, all written at once).
    const written = await retrsBeforeFirstBatch(0.2, { messages: 100_000, bytes: 32 * HELD_MESSAGE_FLOOR }, 32);
    expect(written).toBeLessThanOrEqual(2 * 32);
  });
});
