/**
 * A server going down while the one-connection sink has logged its session out to stream a
 * message kept in a file (ImapWriter.streamAlone): every connect refused. That is a lost
 * connection, settled by content on reconnect, never the message's own failure ("allows no
 * APPEND connection of popsync's own to stream it"), which is for a server that lets the session
 * back in and turns only the streaming connection away.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { PopsyncError } from '../../src/errors.js';
import type { AppendOutcome, ImapSink } from '../../src/imap/index.js';
import { startFakeImap } from '../support/fake-imap.js';
import { loginTo } from '../support/fake-imap-sink.js';
import { fileBodies } from '../support/file-bodies.js';
import { startFront } from '../support/relay.js';
import { warningsLogger } from '../support/warnings-logger.js';

const open: Array<{ close(): Promise<unknown> }> = [];
afterEach(async () => {
  for (const o of open.splice(0).reverse()) await o.close().catch(() => undefined);
});

const msg = (n: number) => Buffer.from(`Message-ID: <m${n}@test>\r\nSubject: ${n}\r\n\r\nbody ${n}\r\n`);

describe('the server going down while the session is logged out to stream a large message', () => {
  const inFile = fileBodies('popsync-stream-alone-down-');
  const large = Buffer.concat([msg(1), Buffer.alloc(300 * 1024, '1'), Buffer.from('\r\n')]);

  it('every connect refused: a lost connection, and the message is not reported failed', async () => {
    // One connection per user, enforced at login (NO [UNAVAILABLE] to the APPEND connection).
    const fake = await startFakeImap({ mailboxes: ['Archive'], maxLoggedIn: 1 });
    open.push(fake);
    const front = await startFront(fake.port);
    open.push(front);
    const { logger, warnings } = warningsLogger();
    const sink: ImapSink = await loginTo({ ...fake, port: front.port }, { logger });
    open.push(sink);
    expect(sink.oneConnection).toMatch(/NO \[UNAVAILABLE\]/);
    // Down from now on: the session stays (its socket is open), every new connect is refused.
    front.stopListening();
    const reported: AppendOutcome[] = [];
    const err = await sink
      .appendBatch('Archive', [{ body: inFile('large', large), flags: [] }], (_i, o) => reported.push(o))
      .then(
        () => null,
        (e: unknown) => e,
      );
    expect(err).toBeInstanceOf(PopsyncError);
    expect((err as PopsyncError).kind).toBe('connection');
    // Not the message's failure: its intent is settled by content on reconnect, and it is
    // copied then, where a failure would count it failed in this run (exit 1) for an outage.
    expect(reported.map((o) => (o.ok ? 'ok' : `${o.error.kind}: ${o.error.message}`))).toEqual([]);
    expect(warnings.join('\n')).not.toMatch(/could not stream messages too large for memory/);
    expect(fake.appends).toHaveLength(0);
  }, 20_000);
});
