/**
 * popsync's IMAP sink logged in to a scripted fake server, for the protocol tests that drive the
 * sink itself; each wrote this set-up and its clean-up out by hand.
 */
import { afterEach } from 'vitest';
import { connectImap, type ImapOptions, type ImapSink } from '../../src/imap/index.js';
import { FAKE_PASSWORD, FAKE_USER, type FakeImap, type FakeImapOptions, startFakeImap } from './fake-imap.js';

/**
 * Call at a test file's top level: returns what starts a fake server with `fakeOpts` and logs a
 * sink in to it (plain text, the fake's user and password unless `extra` says otherwise). Both
 * are closed after each test, the sink first; a sink whose login failed leaves its server to close.
 */
export function fakeImapSinks(): (
  fakeOpts?: FakeImapOptions,
  extra?: Partial<ImapOptions>,
) => Promise<{ fake: FakeImap; sink: ImapSink }> {
  const open: Array<{ fake: FakeImap; sink?: ImapSink }> = [];
  afterEach(async () => {
    for (const o of open.splice(0)) {
      await o.sink?.close().catch(() => {});
      await o.fake.close();
    }
  });
  return async (fakeOpts = {}, extra = {}) => {
    const fake = await startFakeImap(fakeOpts);
    const entry: { fake: FakeImap; sink?: ImapSink } = { fake };
    open.push(entry);
    entry.sink = await connectImap({
      host: fake.host,
      port: fake.port,
      tls: 'none',
      user: FAKE_USER,
      password: FAKE_PASSWORD,
      timeoutMs: 5000,
      ...extra,
    });
    return { fake, sink: entry.sink };
  };
}
