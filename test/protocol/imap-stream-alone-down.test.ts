/**
 * A server going down while the one-connection sink has logged its session out to stream a
 * message kept in a file (ImapWriter.streamAlone): every connect refused. That is a lost
 * connection, settled by content on reconnect, never the message's own failure ("allows no
 * APPEND connection of popsync's own to stream it"), which is for a server that lets the session
 * back in and turns only the streaming connection away.
 */
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { PopsyncError } from '../../src/errors.js';
import type { AppendOutcome, ImapSink } from '../../src/imap/index.js';
import { type FakeImap, startFakeImap } from '../support/fake-imap.js';
import { loginTo } from '../support/fake-imap-sink.js';
import { fileBodies } from '../support/file-bodies.js';
import { warningsLogger } from '../support/warnings-logger.js';

const open: Array<{ close(): Promise<unknown> }> = [];
afterEach(async () => {
  for (const o of open.splice(0).reverse()) await o.close().catch(() => undefined);
});

/** A relay to `fake` that can stop listening (`down()`): every connect after it is refused. */
async function relay(fake: FakeImap): Promise<{ port: number; down(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    client.on('error', () => {});
    const upstream = net.connect(fake.port, '127.0.0.1');
    upstream.on('error', () => {});
    for (const s of [client, upstream]) sockets.add(s);
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  // close() stops listening at once; its callback waits for the connections still open.
  const down = async (): Promise<void> => {
    if (server.listening) server.close();
  };
  open.push({
    close: async () => {
      for (const s of sockets) s.destroy();
      await down();
    },
  });
  return { port: (server.address() as net.AddressInfo).port, down };
}

const msg = (n: number) => Buffer.from(`Message-ID: <m${n}@test>\r\nSubject: ${n}\r\n\r\nbody ${n}\r\n`);

describe('the server going down while the session is logged out to stream a large message', () => {
  const inFile = fileBodies('popsync-stream-alone-down-');
  const large = Buffer.concat([msg(1), Buffer.alloc(300 * 1024, '1'), Buffer.from('\r\n')]);

  it('every connect refused: a lost connection, and the message is not reported failed', async () => {
    // One connection per user, enforced at login (NO [UNAVAILABLE] to the APPEND connection).
    const fake = await startFakeImap({ mailboxes: ['Archive'], maxLoggedIn: 1 });
    open.push(fake);
    const front = await relay(fake);
    const { logger, warnings } = warningsLogger();
    const sink: ImapSink = await loginTo({ ...fake, port: front.port }, { logger });
    open.push(sink);
    expect(sink.oneConnection).toMatch(/NO \[UNAVAILABLE\]/);
    // Down from now on: the session stays (its socket is open), every new connect is refused.
    await front.down();
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
