/**
 * popsync's IMAP sink logged in to a scripted fake server, for the protocol tests that drive the
 * sink itself; each wrote this set-up and its clean-up out by hand.
 */
import { afterEach } from 'vitest';
import { connectImap, type ImapOptions, type ImapSink } from '../../src/imap/index.js';
import { FAKE_PASSWORD, FAKE_USER, type FakeImap, type FakeImapOptions, startFakeImap } from './fake-imap.js';

type Opening = (
  fakeOpts?: FakeImapOptions,
  extra?: Partial<ImapOptions>,
) => Promise<{ fake: FakeImap; sink: ImapSink }>;

/**
 * Call at a test file's top level: returns what starts a fake server with `fakeOpts` and logs a
 * sink in to it (plain text, the fake's user and password unless `extra` says otherwise). Both
 * are closed after each test, the sink first; a sink whose login failed leaves its server to close.
 */
export function fakeImapSinks(): Opening {
  const opening = fakeImapSinkOpenings();
  return async (fakeOpts = {}, extra = {}) => {
    const { fake, sink } = await opening(fakeOpts, extra);
    return { fake, sink: await sink };
  };
}

/**
 * The same, with the login not yet awaited: for the tests that time it, or expect it to fail
 * (the promise has a handler, so a failure left to the test is not an unhandled rejection).
 */
export function fakeImapSinkOpenings(): (
  fakeOpts?: FakeImapOptions,
  extra?: Partial<ImapOptions>,
) => Promise<{ fake: FakeImap; sink: Promise<ImapSink> }> {
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
    const sink = loginTo(fake, extra);
    void sink.then(
      (s) => {
        entry.sink = s;
      },
      () => undefined,
    );
    return { fake, sink };
  };
}

/** A sink logged in to `fake` as the openers above log in; the caller closes it. */
export function loginTo(fake: FakeImap, extra: Partial<ImapOptions> = {}): Promise<ImapSink> {
  return connectImap({
    host: fake.host,
    port: fake.port,
    tls: 'none',
    user: FAKE_USER,
    password: FAKE_PASSWORD,
    timeoutMs: 5000,
    ...extra,
  });
}
