/**
 * A server going down just as the sink opens a further APPEND connection (--append-connections,
 * imap/append-pool.ts): the session and the first APPEND connection closed, the further one
 * reset, and refused a second later. That is a lost connection (the pass ends, the run
 * reconnects with as many connections as asked for), never "refused a further APPEND
 * connection" and a lowered cap, which is for a server whose session stays open meanwhile.
 * What decides it is the pool's `destroyed`: writer.ts destroys the pool on the session's
 * 'close', which imapflow emits in the same call that makes the session unusable.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { PopsyncError } from '../../src/errors.js';
import type { ImapSink } from '../../src/imap/index.js';
import { type FakeImap, startFakeImap } from '../support/fake-imap.js';
import { loginTo } from '../support/fake-imap-sink.js';
import { type Front, startFront } from '../support/relay.js';
import { warningsLogger } from '../support/warnings-logger.js';

const open: Array<{ close(): Promise<unknown> }> = [];
afterEach(async () => {
  for (const o of open.splice(0).reverse()) await o.close().catch(() => undefined);
});

/**
 * A relay to `fake` whose connection number `downAt` (from 1) finds the server going down: every
 * connection relayed so far is closed, that one reset, and nothing listens any more.
 */
async function goesDownAt(fake: FakeImap, downAt: number): Promise<Front> {
  const front = await startFront(fake.port, {
    at: (n, f) => {
      if (n !== downAt) return 'relay';
      f.dropRelayed();
      f.stopListening();
      return 'reset';
    },
  });
  open.push(front);
  return front;
}

const msg = (n: number) => Buffer.from(`Message-ID: <m${n}@test>\r\nSubject: ${n}\r\n\r\nbody ${n}\r\n`);

describe('the server going down as a further APPEND connection opens', () => {
  it('is a lost connection, not a limit: no warning, no lowered cap', async () => {
    const fake = await startFakeImap({ mailboxes: ['Archive', 'Other'] });
    open.push(fake);
    // 1 the APPEND connection, 2 imapflow's session, 3 the further APPEND connection for 'Other'.
    const front = await goesDownAt(fake, 3);
    const { logger, warnings } = warningsLogger();
    const sink: ImapSink = await loginTo({ ...fake, port: front.port }, { logger, appendConnections: 2 });
    open.push(sink);
    await sink.appendBatch('Archive', [{ body: msg(1), flags: [] }]);
    const err = await sink.appendBatch('Other', [{ body: msg(2), flags: [] }]).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(PopsyncError);
    expect((err as PopsyncError).kind).toBe('connection');
    // The refusal of the try a second later, as any lost connection's cause is reported.
    expect((err as PopsyncError).message).toMatch(/^cannot connect to IMAP server 127\.0\.0\.1:\d+: .*ECONNREFUSED/);
    expect(warnings.join('\n')).not.toMatch(/refused a further APPEND connection/);
    // The one try more a second later was refused (nothing listened): it was not relayed.
    expect(front.accepted()).toBe(3);
    expect(fake.appends).toHaveLength(1);
  }, 20_000);
});
