/**
 * A server that lets one user have one IMAP connection (Dovecot's mail_max_userip_connections = 1,
 * the real thing in test/e2e/one-connection.test.ts), scripted at the edges: the sink goes on
 * through imapflow's session alone only when the server turned the APPEND connection away (a NO
 * or BYE to its login, a BYE or close for its greeting) after letting imapflow's in. Anything
 * else on that connection (a drop, a silence) fails the connect as it always did, so the engine
 * reports and retries it instead of copying quietly over one slow connection.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { explainConnectFailure } from '../../src/connect-hints.js';
import { PopsyncError } from '../../src/errors.js';
import type { ImapOptions, ImapSink } from '../../src/imap/index.js';
import type { FileBody } from '../../src/imap/types.js';
import { FAKE_PASSWORD, type FakeImap, type FakeImapOptions, startFakeImap } from '../support/fake-imap.js';
import { type ConnectLimit, startConnectLimitFront } from '../support/connect-limit-front.js';
import { fakeImapSinkOpenings, loginTo } from '../support/fake-imap-sink.js';
import { fileBodies } from '../support/file-bodies.js';
import { startFront } from '../support/relay.js';
import { warningsLogger } from '../support/warnings-logger.js';
import type { Logger } from '../../src/log.js';

const opening = fakeImapSinkOpenings();

async function connect(
  fakeOpts: FakeImapOptions,
  extra: Partial<ImapOptions> = {},
): Promise<{ fake: FakeImap; sink: Promise<ImapSink>; warnings: string[] }> {
  const { logger, warnings } = warningsLogger();
  const { fake, sink } = await opening({ mailboxes: ['Archive'], ...fakeOpts }, { logger, ...extra });
  return { fake, sink, warnings };
}

/** Sinks a test logs in to a server `connect` started: closed after it, before their server. */
const later: ImapSink[] = [];
afterEach(async () => {
  for (const s of later.splice(0)) await s.close().catch(() => {});
});

/** Answers the n-th LOGIN (counted across connections, from 1) with `reply`. */
function nthLogin(n: number, reply: NonNullable<ReturnType<NonNullable<FakeImapOptions['onCommand']>>>) {
  let logins = 0;
  return (c: { name: string }) => (c.name === 'LOGIN' && ++logins === n ? reply : undefined);
}

/**
 * The APPEND connection (the first accepted) greeted with `line` only once imapflow's login has
 * been answered: a connection the server turns away while the session is logged in. `again`:
 * the connections after imapflow's (from 3) greeted with `line` at once.
 */
function greetedAfterLogin(line: string, again: readonly number[] = []): FakeImapOptions {
  let loggedIn: () => void = () => undefined;
  const after = new Promise<void>((resolve) => {
    loggedIn = resolve;
  });
  return {
    onCommand: (c) => {
      if (c.name === 'LOGIN') setTimeout(loggedIn, 100);
      return undefined;
    },
    greeting: (n) => (n === 1 ? { line, after } : again.includes(n) ? { line } : undefined),
  };
}

const msg = (n: number) => Buffer.from(`Message-ID: <m${n}@test>\r\nSubject: ${n}\r\n\r\nbody ${n}\r\n`);

// The APPEND connection is the first the server accepts; imapflow's logs in first, so the
// APPEND connection's login is the second.
describe('the server turns the APPEND connection away after letting imapflow in', () => {
  it.each([
    [
      'its LOGIN answered NO',
      {
        onCommand: nthLogin(2, {
          kind: 'no',
          text: '[UNAVAILABLE] Maximum number of connections from user+IP exceeded',
        }),
      },
      /NO \[UNAVAILABLE\] Maximum number of connections/,
    ],
    [
      'its LOGIN answered BYE',
      { onCommand: nthLogin(2, { kind: 'bye', text: 'Too many connections for alice' }) },
      /BYE Too many connections for alice/,
    ],
    // RFC 5530's codes: whatever the NO says, imapflow's session, logged in with the same
    // credentials a moment before, is open: it cannot be the password.
    [
      'its LOGIN answered NO [LIMIT]',
      { onCommand: nthLogin(2, { kind: 'no', text: '[LIMIT] Too many sessions' }) },
      /NO \[LIMIT\] Too many sessions/,
    ],
    [
      'its LOGIN answered NO [AUTHENTICATIONFAILED] (a limit so worded)',
      { onCommand: nthLogin(2, { kind: 'no', text: '[AUTHENTICATIONFAILED] Too many connections' }) },
      /NO \[AUTHENTICATIONFAILED\] Too many connections/,
    ],
    [
      'its LOGIN answered NO without a code',
      { onCommand: nthLogin(2, { kind: 'no', text: 'Too many connections' }) },
      /NO Too many connections/,
    ],
    ['its greeting a BYE', greetedAfterLogin('* BYE Too many connections'), /BYE Too many connections/],
    [
      'closed before its greeting, and again a second later',
      greetedAfterLogin('close', [3]),
      /closed the connection before greeting it, twice 1 s apart/,
    ],
  ] as const)('%s: a warning with its words, and the copy goes through imapflow', async (_name, fakeOpts, said) => {
    const { fake, sink: opening, warnings } = await connect(fakeOpts as FakeImapOptions);
    const sink = await opening;
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/refused a second IMAP connection for this user/);
    expect(warnings[0]).toMatch(said);
    expect(warnings[0]).not.toContain(FAKE_PASSWORD);
    const outcomes = await sink.appendBatch(
      'Archive',
      [1, 2].map((n) => ({ body: msg(n), flags: [] })),
    );
    expect(outcomes.map((o) => o.ok)).toEqual([true, true]);
    expect(sink.appendCounts).toMatchObject({ pipelined: 0, imapflow: 2 });
    expect(fake.appends).toHaveLength(2);
  });
});

describe('a close before the greeting decides nothing on its own', () => {
  it('closed once (a restart, a proxy overloaded): the APPEND connection opened again a second later', async () => {
    const { fake, sink: opening, warnings } = await connect(greetedAfterLogin('close'));
    const started = Date.now();
    const sink = await opening;
    expect(Date.now() - started).toBeGreaterThanOrEqual(900);
    expect(warnings).toEqual([]);
    expect(sink.oneConnection).toBeNull();
    // The closed one, imapflow's, the APPEND connection again.
    expect(fake.connections).toBe(3);
    await sink.appendBatch(
      'Archive',
      [1, 2].map((n) => ({ body: msg(n), flags: [] })),
    );
    expect(sink.appendCounts).toMatchObject({ pipelined: 2, imapflow: 0 });
  });

  it('a NO to its login still decides at once: no second try', async () => {
    const {
      fake,
      sink: opening,
      warnings,
    } = await connect({
      onCommand: nthLogin(2, { kind: 'no', text: '[UNAVAILABLE] Maximum number of connections' }),
    });
    const sink = await opening;
    expect(sink.oneConnection).toMatch(/NO \[UNAVAILABLE\] Maximum number of connections/);
    expect(warnings).toHaveLength(1);
    // No second try: it would be a third connection, a second later. Counted, not timed (a
    // loaded machine took the connect past the 900 ms this once asserted).
    expect(fake.connections).toBe(2);
  });
});

describe('one connection enforced at accept: a second one closed before its greeting', () => {
  const inFile = fileBodies('popsync-one-connection-');
  const large = Buffer.concat([msg(3), Buffer.alloc(300 * 1024, '3'), Buffer.from('\r\n')]);

  it("imapflow's session alone, then the APPEND connection closed twice 1 s apart: one connection", async () => {
    const closed: number[] = [];
    const { fake, sink: opening, warnings } = await connect({ maxOpen: 1, onClosedAtAccept: (n) => closed.push(n) });
    const sink = await opening;
    expect(sink.oneConnection).toBe(
      'the server refused a second IMAP connection for this user: closed the connection before greeting it, ' +
        'twice 1 s apart',
    );
    expect(warnings).toHaveLength(1);
    // 1 the APPEND connection (greeted, then given up), 2 imapflow's (closed), 3 imapflow's again,
    // 4 and 5 the APPEND connection (closed, and again a second later).
    // (One more closed among them when the server had not yet counted the APPEND connection's close.)
    expect(closed[0]).toBe(2);
    expect(closed.at(-1)).toBe(closed.at(-2)! + 1);
    const outcomes = await sink.appendBatch('Archive', [
      { body: msg(1), flags: [] },
      { body: msg(2), flags: [] },
      { body: inFile('large', large), flags: [] },
    ]);
    expect(outcomes.map((o) => o.ok)).toEqual([true, true, true]);
    expect(sink.appendCounts).toMatchObject({ pipelined: 0, imapflow: 2, streamed: 1 });
    expect(fake.mailboxes.get('Archive')!.messages.map((m) => m.uid)).toEqual([1, 2, 3]);
    expect((await sink.listSince('Archive', 1)).map((m) => m.uid)).toEqual([1, 2, 3]);
  });

  it("a BYE in place of imapflow's greeting: its session alone, then the APPEND connection's BYE decides", async () => {
    const closed: number[] = [];
    const { sink: opening } = await connect({
      maxOpen: 1,
      overMaxOpen: '* BYE Too many connections from your IP',
      onClosedAtAccept: (n) => closed.push(n),
    });
    const sink = await opening;
    expect(sink.oneConnection).toBe(
      'the server refused a second IMAP connection for this user: BYE Too many connections from your IP',
    );
    expect(closed[0]).toBe(2);
    expect(closed.length).toBeGreaterThanOrEqual(2);
    await sink.appendBatch('Archive', [{ body: msg(1), flags: [] }]);
    expect(sink.appendCounts).toMatchObject({ pipelined: 0, imapflow: 1 });
  });

  it("a close of imapflow's connection once (a restart): both connections, nothing decided", async () => {
    const { sink: opening, warnings } = await connect({ greeting: (n) => (n === 2 ? { line: 'close' } : undefined) });
    const sink = await opening;
    expect(sink.oneConnection).toBeNull();
    expect(warnings).toEqual([]);
    await sink.appendBatch('Archive', [{ body: msg(1), flags: [] }]);
    expect(sink.appendCounts).toMatchObject({ pipelined: 1, imapflow: 0 });
  });
});

/**
 * One connection enforced at connect, below the protocol (support/connect-limit-front.ts): the
 * second connection's connect refused (a firewall's connlimit with --reject-with tcp-reset), or
 * reset before a byte. imapflow's is that second one: its session is opened alone, and the APPEND
 * connection after its login is refused or reset twice 1 s apart, as a close before the greeting.
 */
describe('one connection enforced at connect: a second one refused or reset', () => {
  const inFile = fileBodies('popsync-one-connection-');
  const large = Buffer.concat([msg(3), Buffer.alloc(300 * 1024, '3'), Buffer.from('\r\n')]);
  const open: Array<{ close(): Promise<void> }> = [];
  afterEach(async () => {
    for (const o of open.splice(0).reverse()) await o.close().catch(() => undefined);
  });

  /** A sink logged in through a front enforcing `limit`; `retried`: the logins tried again after a logout, and why. */
  async function behind(
    limit: ConnectLimit,
    relistenAfterMs?: number,
  ): Promise<{ fake: FakeImap; sink: ImapSink; warnings: string[]; retried: string[] }> {
    const fake = await startFakeImap({ mailboxes: ['Archive'] });
    const front = await startConnectLimitFront(
      fake.port,
      limit,
      relistenAfterMs === undefined ? {} : { relistenAfterMs },
    );
    open.push(fake, front);
    const { logger: warn, warnings } = warningsLogger();
    const retried: string[] = [];
    const logger: Logger = {
      ...warn,
      debug: (o, m) => {
        if (m === 'login after a logout refused; trying again') retried.push(String((o as { err: string }).err));
      },
      child: () => logger,
    };
    const sink = await loginTo({ ...fake, port: front.port }, { logger });
    open.push(sink);
    return { fake, sink, warnings, retried };
  }

  it.each([
    ['refused', 'refuse', 'refused the connection at connect'],
    ['reset', 'reset', 'reset the connection before greeting it'],
  ] as const)('%s: one connection, a large message streamed alone, the session goes on', async (_n, limit, said) => {
    const { fake, sink, warnings } = await behind(limit);
    expect(sink.oneConnection).toBe(
      `the server refused a second IMAP connection for this user: ${said}, twice 1 s apart`,
    );
    expect(warnings).toHaveLength(1);
    const outcomes = await sink.appendBatch('Archive', [
      { body: msg(1), flags: [] },
      { body: msg(2), flags: [] },
      { body: inFile('large', large), flags: [] },
    ]);
    expect(outcomes.map((o) => o.ok)).toEqual([true, true, true]);
    expect(sink.appendCounts).toMatchObject({ pipelined: 0, imapflow: 2, streamed: 1 });
    expect(fake.mailboxes.get('Archive')!.messages.map((m) => m.uid)).toEqual([1, 2, 3]);
    expect((await sink.listSince('Archive', 1)).map((m) => m.uid)).toEqual([1, 2, 3]);
  });

  it('a server going down meanwhile (the session closed too): a lost connection, no limit recorded', async () => {
    // Connections, in the order the relay accepts them: 1 the APPEND connection (relayed), 2
    // imapflow's beside it (reset), 3 imapflow's session alone (relayed), then the APPEND
    // connection's (reset, twice 1 s apart): at the second, with imapflow's connect done, the
    // server goes down, closing the session first, as a restart does.
    const fake = await startFakeImap({ mailboxes: ['Archive'] });
    const front = await startFront(fake.port, {
      at: async (n, f) => {
        if (n !== 2 && n < 4) return 'relay';
        if (n !== 5) return 'reset';
        f.dropRelayed();
        await new Promise((resolve) => setTimeout(resolve, 100));
        return 'reset';
      },
    });
    open.push(fake, front);
    const run = { reason: null as string | null };
    const { logger, warnings } = warningsLogger();
    const port = front.port;
    const err = await loginTo({ ...fake, port }, { logger, oneConnection: run }).then(
      (s) => {
        open.push(s);
        return null;
      },
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(PopsyncError);
    expect((err as PopsyncError).kind).toBe('connection');
    expect((err as PopsyncError).message).toBe(
      `IMAP connection to 127.0.0.1:${port} lost while popsync opened a second one (the server ended the ` +
        'session: going down or restarting?)',
    );
    expect(explainConnectFailure(err, { protocol: 'IMAP', host: '127.0.0.1', port, tls: 'none', greeted: true })).toBe(
      err,
    );
    expect(run.reason).toBeNull();
    expect(warnings).toEqual([]);
    expect(front.accepted()).toBe(5);
  });

  it('refused at connect just after a logout (the limit still counting the one closed): tried again', async () => {
    // The front listens again only 300 ms after its one connection closed: the streaming
    // connection, opened once imapflow's session logged out, and imapflow's session again after
    // it, are each refused at first.
    const { fake, sink, retried } = await behind('refuse', 300);
    const outcomes = await sink.appendBatch('Archive', [{ body: inFile('large', large), flags: [] }]);
    expect(outcomes.map((o) => o.ok)).toEqual([true]);
    expect(sink.appendCounts).toMatchObject({ streamed: 1 });
    expect((await sink.listSince('Archive', 1)).map((m) => m.uid)).toEqual([1]);
    expect(fake.mailboxes.get('Archive')!.messages).toHaveLength(1);
    // The streaming connection's connect and imapflow's session's, each refused at least once.
    expect(retried.some((e) => /^cannot connect to IMAP server .*ECONNREFUSED/.test(e))).toBe(true);
    expect(retried.some((e) => /^IMAP connect to .*ECONNREFUSED/.test(e))).toBe(true);
  });
});

describe('decided once per run', () => {
  it("the run's later sinks (reconnects) open imapflow's session alone, say why, and warn no more", async () => {
    const run = { reason: null as string | null };
    let logins = 0;
    const refuseSecond = (c: { name: string }) =>
      c.name === 'LOGIN'
        ? ++logins % 2 === 0
          ? ({ kind: 'no', text: '[UNAVAILABLE] Too many' } as const)
          : undefined
        : undefined;
    const { fake, sink: first, warnings } = await connect({ onCommand: refuseSecond }, { oneConnection: run });
    expect((await first).oneConnection).toBe(
      'the server refused a second IMAP connection for this user: NO [UNAVAILABLE] Too many',
    );
    expect(run.reason).toBe((await first).oneConnection);
    await (await first).close();
    const before = fake.connections;
    const { logger, warnings: laterWarnings } = warningsLogger();
    const second = await loginTo(fake, { logger, oneConnection: run });
    later.push(second);
    expect(fake.connections - before).toBe(1);
    expect(second.oneConnection).toBe(run.reason);
    expect(warnings).toHaveLength(1);
    expect(laterWarnings).toEqual([]);
    await second.appendBatch('Archive', [{ body: msg(1), flags: [] }]);
    expect(second.appendCounts).toMatchObject({ pipelined: 0, imapflow: 1 });
  });

  it('a sink the server let have its APPEND connection says nothing of one connection', async () => {
    const run = { reason: null as string | null };
    const { sink } = await connect({}, { oneConnection: run });
    expect((await sink).oneConnection).toBeNull();
    expect(run.reason).toBeNull();
  });
});

describe('anything else on the APPEND connection fails the connect as before', () => {
  async function refusedWith(fakeOpts: FakeImapOptions, extra: Partial<ImapOptions> = {}): Promise<PopsyncError> {
    const { sink, warnings } = await connect(fakeOpts, extra);
    const err = await sink.then(
      () => {
        throw new Error('expected the connect to fail');
      },
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(PopsyncError);
    expect(warnings.join('\n')).not.toMatch(/refused a second IMAP connection/);
    return err as PopsyncError;
  }

  it('a drop at its LOGIN (no BYE): connection', async () => {
    const err = await refusedWith({ onCommand: nthLogin(2, { kind: 'drop' }) });
    expect(err.kind).toBe('connection');
  });

  it('no answer to its LOGIN: connection (timeout)', async () => {
    const err = await refusedWith({ onCommand: nthLogin(2, { kind: 'hang' }) }, { timeoutMs: 600 });
    expect(err.kind).toBe('connection');
    expect(err.message).toMatch(/no response within 600 ms/);
  });

  it("imapflow's own LOGIN answered BYE [AUTHENTICATIONFAILED]: auth, one login, no fallback", async () => {
    const { fake, sink, warnings } = await connect({
      onCommand: (c) =>
        c.name === 'LOGIN' ? { kind: 'bye', text: '[AUTHENTICATIONFAILED] Invalid credentials' } : undefined,
    });
    const err = await sink.then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(PopsyncError);
    expect((err as PopsyncError).kind).toBe('auth');
    expect((err as PopsyncError).message).toBe(
      `IMAP server 127.0.0.1:${fake.port} rejected the login for alice: BYE [AUTHENTICATIONFAILED] Invalid credentials`,
    );
    expect(warnings).toEqual([]);
    expect(fake.received.filter((l) => / LOGIN /.test(l))).toHaveLength(1);
  });

  // Nothing of popsync's is logged in yet: a NO naming the credentials (or none) is the
  // password, one login and exit 3; RFC 5530's LIMIT and UNAVAILABLE are the server's limit, 75.
  it.each([
    [
      '[AUTHENTICATIONFAILED] Authentication failed.',
      'auth',
      /rejected the login for alice: NO \[AUTHENTICATIONFAILED\]/,
    ],
    ['Login failed.', 'auth', /rejected the login for alice: NO Login failed\.$/],
    ['[LIMIT] Too many sessions', 'temporary', /cannot log in alice right now/],
    ['[UNAVAILABLE] Maximum number of connections', 'temporary', /cannot log in alice right now/],
  ] as const)("imapflow's own LOGIN answered NO %s: %s, one login, no fallback", async (text, kind, said) => {
    const { fake, sink, warnings } = await connect({ onCommand: nthLogin(1, { kind: 'no', text }) });
    const err = await sink.then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(PopsyncError);
    expect((err as PopsyncError).kind).toBe(kind);
    expect((err as PopsyncError).message).toMatch(said);
    expect(warnings).toEqual([]);
    expect(fake.received.filter((l) => / LOGIN /.test(l))).toHaveLength(1);
  });

  it('a BAD to its LOGIN (not understood, not turned away): auth', async () => {
    const err = await refusedWith({ onCommand: nthLogin(2, { kind: 'bad', text: 'Invalid arguments' }) });
    expect(err.kind).toBe('auth');
  });

  it("a BYE greeting before imapflow's login was accepted: the connect fails at once, as before", async () => {
    const { fake, sink } = await connect({
      greeting: (n) => (n === 1 ? { line: '* BYE Too many connections' } : undefined),
    });
    const err = await sink.then(
      () => new Error('expected the connect to fail'),
      (e: unknown) => e as PopsyncError,
    );
    expect(err).toBeInstanceOf(PopsyncError);
    expect((err as PopsyncError).kind).toBe('connection');
    expect(err.message).toContain('BYE Too many connections');
    // At once: no connection tried again (imapflow's alone, the APPEND connection a second
    // later), counted rather than timed; imapflow's own may have been opened or not.
    expect(fake.connections).toBeLessThanOrEqual(2);
  });

  it('a BYE greeting to every connection: a connection error, no fallback', async () => {
    // Which of the two reports it depends on whether imapflow's connect had started; either way
    // it is the connection failure cli-turned-away.test.ts follows to exit 75.
    const err = await refusedWith({ greeting: () => ({ line: '* BYE Too many connections from your IP' }) });
    expect(err.kind).toBe('connection');
  });
});

describe('messages kept in a file, on a server that lets one session in at a time', () => {
  const fileBody = fileBodies('popsync-one-connection-');
  const large = (n: number): Buffer => Buffer.concat([msg(n), Buffer.alloc(300 * 1024, `${n}`), Buffer.from('\r\n')]);

  it("streams them alone between two imapflow sessions, in the batch's order, and the session goes on", async () => {
    const { fake, sink: opening } = await connect({ maxLoggedIn: 1 });
    const sink = await opening;
    expect(sink.oneConnection).toMatch(/NO \[UNAVAILABLE\] Maximum number of connections/);
    const seen: number[] = [];
    const bodies = [msg(1), large(2), large(3), msg(4), large(5)];
    const outcomes = await sink.appendBatch(
      'Archive',
      bodies.map((b, i) => ({ body: i % 3 === 0 ? b : fileBody(`m${i}`, b), flags: [] })),
      (i) => seen.push(i),
    );
    expect(outcomes).toEqual([1, 2, 3, 4, 5].map((uid) => ({ ok: true, uid, uidValidity: 1001n })));
    expect(seen).toEqual([0, 1, 2, 3, 4]);
    expect(sink.appendCounts).toMatchObject({ pipelined: 0, imapflow: 2, streamed: 3 });
    const stored = fake.mailboxes.get('Archive')!.messages;
    expect(stored.map((m) => m.body.equals(bodies[m.uid - 1]!))).toEqual([true, true, true, true, true]);
    // Refused APPEND connection, imapflow's, then per run of file bodies a streaming one and imapflow's again.
    expect(fake.connections).toBe(2 + 2 * 2);
    // imapflow's session is back: it lists what was stored.
    expect((await sink.listSince('Archive', 1)).map((m) => m.uid)).toEqual([1, 2, 3, 4, 5]);
  });

  it('a drop while one streams: earlier outcomes stand, the rest is a connection error, the sink is dead', async () => {
    const { fake, sink: opening } = await connect({
      maxLoggedIn: 1,
      onAppend: (a) => (a.n === 3 ? { kind: 'drop' } : undefined),
    });
    const sink = await opening;
    const seen: number[] = [];
    const err = await sink
      .appendBatch(
        'Archive',
        [msg(1), large(2), large(3)].map((b, i) => ({ body: i === 0 ? b : fileBody(`m${i}`, b), flags: [] })),
        (i) => seen.push(i),
      )
      .then(
        () => null,
        (e: unknown) => e,
      );
    expect(err).toBeInstanceOf(PopsyncError);
    expect((err as PopsyncError).kind).toBe('connection');
    expect(seen).toEqual([0, 1]);
    // The third was stored before the drop: unknown to the sink, the engine's to settle by content.
    expect(fake.mailboxes.get('Archive')!.messages).toHaveLength(3);
    const next = await sink.status('Archive').then(
      () => null,
      (e: unknown) => e,
    );
    expect((next as PopsyncError).kind).toBe('connection');
  });

  it('a streamed message given a UID already given: protocol, as on any path, and the session is back', async () => {
    const { sink: opening } = await connect({
      maxLoggedIn: 1,
      onAppend: (a) => (a.n === 2 ? { kind: 'ok', appendUid: 1 } : undefined),
    });
    const sink = await opening;
    const err = await sink
      .appendBatch('Archive', [
        { body: msg(1), flags: [] },
        { body: fileBody('b', large(2)), flags: [] },
      ])
      .then(
        () => null,
        (e: unknown) => e,
      );
    expect((err as PopsyncError).kind).toBe('protocol');
    expect((err as PopsyncError).message).toMatch(/UIDs of new messages must ascend/);
    expect((await sink.status('Archive')).uidNext).toBe(3);
  });

  it('when the server turns the streaming connection away too, they fail alone and the session goes on', async () => {
    // LOGINs: 1 imapflow's, 2 the APPEND connection's, 3-6 the streaming connection's four tries,
    // 7 imapflow's again.
    let logins = 0;
    const { fake, sink: opening } = await connect({
      onCommand: (c) =>
        c.name === 'LOGIN' && ++logins >= 2 && logins <= 6
          ? { kind: 'no', text: '[UNAVAILABLE] Maximum number of connections from user+IP exceeded' }
          : undefined,
    });
    const sink = await opening;
    const outcomes = await sink.appendBatch('Archive', [
      { body: fileBody('a', large(1)), flags: [] },
      { body: msg(2), flags: [] },
    ]);
    expect(outcomes[1]).toEqual({ ok: true, uid: 1, uidValidity: 1001n });
    const failed = outcomes[0]!;
    if (failed.ok) throw new Error('expected the large message to fail');
    expect(failed.error.kind).toBe('message');
    expect(failed.error.message).toMatch(/too large to hold in memory.*turned away the connection for them too/);
    expect(logins).toBe(7);
    expect(fake.appends).toHaveLength(1);
  });
});

describe('a login after a logout (streamAlone) is tried again only while the server refuses it', () => {
  const inFile = fileBodies('popsync-one-connection-');
  const large = Buffer.concat([msg(1), Buffer.alloc(300 * 1024, '1'), Buffer.from('\r\n')]);
  const fileBody = (): FileBody => inFile('large', large);

  /**
   * LOGINs, counted across connections: 1 imapflow's, 2 the APPEND connection's (refused: the
   * run goes on with one connection), 3 the streaming connection's, 4 imapflow's again, ...
   */
  type Reply = NonNullable<ReturnType<NonNullable<FakeImapOptions['onCommand']>>>;
  function logins(script: Record<number, Reply>): { opts: FakeImapOptions; count: () => number } {
    let n = 0;
    const refused: Reply = { kind: 'no', text: '[UNAVAILABLE] Maximum number of connections from user+IP exceeded' };
    return {
      opts: {
        onCommand: (c) => {
          if (c.name !== 'LOGIN') return undefined;
          n++;
          return n === 2 ? refused : script[n];
        },
      },
      count: () => n,
    };
  }

  async function streamOne(fakeOpts: FakeImapOptions): Promise<{ err: unknown; ms: number }> {
    const { sink: opening } = await connect(fakeOpts, { timeoutMs: 600 });
    const sink = await opening;
    expect(sink.oneConnection).not.toBeNull();
    const started = Date.now();
    const err = await sink.appendBatch('Archive', [{ body: fileBody(), flags: [] }]).then(
      () => null,
      (e: unknown) => e,
    );
    return { err, ms: Date.now() - started };
  }

  it.each([
    ["the streaming connection's LOGIN", 3],
    ["imapflow's LOGIN again", 4],
  ])('%s unanswered: a connection error after one timeout, not four', async (_name, unanswered) => {
    const l = logins({ [unanswered]: { kind: 'hang' } });
    const { err } = await streamOne(l.opts);
    expect(err).toBeInstanceOf(PopsyncError);
    expect((err as PopsyncError).kind).toBe('connection');
    // Not tried again: four tries were four LOGINs (4 x 600 ms and 1.4 s of pauses), counted
    // here rather than timed.
    expect(l.count()).toBe(unanswered);
  });

  it("imapflow's LOGIN again dropped without BYE: a lost connection at once, not a close unheard", async () => {
    const l = logins({ 4: { kind: 'drop' } });
    const { err } = await streamOne(l.opts);
    expect(err).toBeInstanceOf(PopsyncError);
    expect((err as PopsyncError).kind).toBe('connection');
    expect((err as PopsyncError).message).toMatch(
      /closed the connection after greeting it, before the session was set up/,
    );
    // At once: a try after it would be a fifth LOGIN.
    expect(l.count()).toBe(4);
  });

  // Connections: 1 the APPEND connection (refused), 2 imapflow's, 3 the streaming one, 4 imapflow's again.
  const fourth =
    (line: string): FakeImapOptions['greeting'] =>
    (n) =>
      n === 4 ? { line } : undefined;
  it.each([
    ['its LOGIN answered BYE', { 4: { kind: 'bye', text: 'Too many' } } as Record<number, Reply>, undefined, 5],
    ['its greeting a BYE', {}, fourth('* BYE Too many connections'), 4],
    ['closed before its greeting', {}, fourth('close'), 4],
  ] as const)("imapflow's session logging in again turned away once, %s: tried again", async (...c) => {
    const [, script, greeting, count] = c;
    const l = logins(script);
    const { err } = await streamOne({ ...l.opts, ...(greeting ? { greeting } : {}) });
    expect(err).toBeNull();
    // The refused login (none when turned away before it), then the one accepted.
    expect(l.count()).toBe(count);
  });

  it("imapflow's session closed before its greeting on every try: four tries, then a connection error", async () => {
    const l = logins({});
    const { err, ms } = await streamOne({ ...l.opts, greeting: (n) => (n >= 4 ? { line: 'close' } : undefined) });
    expect(err).toBeInstanceOf(PopsyncError);
    expect((err as PopsyncError).kind).toBe('connection');
    expect((err as PopsyncError).message).toMatch(/ClosedAfterConnectText|closed the connection before/);
    // Pauses of 0.2, 0.4 and 0.8 s between the four tries; no login after the streaming one's.
    expect(ms).toBeGreaterThanOrEqual(1400);
    expect(l.count()).toBe(3);
  });

  // The server's limit is NO [UNAVAILABLE] (login 2): a NO worded otherwise after a logout is the
  // credentials (a password changed meanwhile), tried once, never four times (0.2 + 0.4 + 0.8 s).
  const wrongPassword: Reply = { kind: 'no', text: '[AUTHENTICATIONFAILED] Authentication failed.' };
  it.each([
    ["imapflow's LOGIN again", 4, wrongPassword],
    ["imapflow's LOGIN again, a NO without a code", 4, { kind: 'no', text: 'Login failed.' } as Reply],
    ["the streaming connection's LOGIN", 3, wrongPassword],
  ])('%s refused as a wrong password: auth at once, one try, no login after it', async (_name, refused, reply) => {
    const l = logins({ [refused]: reply, [refused + 1]: reply });
    const { err } = await streamOne(l.opts);
    expect(err).toBeInstanceOf(PopsyncError);
    expect((err as PopsyncError).kind).toBe('auth');
    expect((err as PopsyncError).message).toMatch(/rejected the login for alice/);
    expect(l.count()).toBe(refused);
  });

  // A BYE with a code that names the credentials is no limit turning the connection away.
  const byeCredentials: Reply = { kind: 'bye', text: '[AUTHENTICATIONFAILED] Invalid credentials' };
  it.each([
    ["imapflow's LOGIN again", 4],
    ["the streaming connection's LOGIN", 3],
  ])('%s answered BYE [AUTHENTICATIONFAILED]: auth at once, one try', async (_name, refused) => {
    const l = logins({ [refused]: byeCredentials, [refused + 1]: byeCredentials });
    const { err } = await streamOne(l.opts);
    expect(err).toBeInstanceOf(PopsyncError);
    expect((err as PopsyncError).kind).toBe('auth');
    expect((err as PopsyncError).message).toMatch(
      /rejected the login for alice: BYE \[AUTHENTICATIONFAILED\] Invalid credentials$/,
    );
    expect(l.count()).toBe(refused);
  });

  it('a server that words its limit as a failed login: that same NO after a logout is still tried again', async () => {
    let n = 0;
    const limit: Reply = { kind: 'no', text: '[AUTHENTICATIONFAILED] Too many connections' };
    const { err } = await streamOne({
      // 2: the APPEND connection, refused for the limit; 4: imapflow's again, the streaming one still counted.
      onCommand: (c) => (c.name === 'LOGIN' && [2, 4].includes(++n) ? limit : undefined),
    });
    expect(err).toBeNull();
    expect(n).toBe(5);
  });

  // The limit worded as refused credentials (the APPEND connection's login, imapflow's session
  // open): after a logout nothing of ours is logged in, and the same NO may be the password
  // changed meanwhile. One more try after 1.4 s, then exit 3: two failed logins, not 4 + 4.
  it.each([
    ['[AUTHENTICATIONFAILED] Too many connections', /NO \[AUTHENTICATIONFAILED\] Too many connections$/],
    ['Too many connections', /NO Too many connections$/],
  ])('a limit worded NO %s, refused again after a logout: one try more, then auth', async (text, said) => {
    let n = 0;
    const limit: Reply = { kind: 'no', text };
    const { err, ms } = await streamOne({ onCommand: (c) => (c.name === 'LOGIN' && ++n >= 2 ? limit : undefined) });
    expect(err).toBeInstanceOf(PopsyncError);
    expect((err as PopsyncError).kind).toBe('auth');
    expect((err as PopsyncError).message).toMatch(said);
    expect((err as PopsyncError).context.hint).toMatch(/words its limit on connections the same way/);
    // 1 imapflow's, 2 the APPEND connection's (the limit), 3 and 4 the streaming connection's.
    expect(n).toBe(4);
    expect(ms).toBeGreaterThanOrEqual(1400);
  });

  it('a limit worded NO [AUTHENTICATIONFAILED] after a close before the greeting: still one try more', async () => {
    // The streaming connection's first try closed before its greeting (connection 3, the server
    // still counting the session just logged out), its second refused with the limit's own NO:
    // that NO's first, so one try more 1.4 s later, not "rejected the login" (exit 3) at once.
    let n = 0;
    const limit: Reply = { kind: 'no', text: '[AUTHENTICATIONFAILED] Too many connections' };
    const { err, ms } = await streamOne({
      greeting: (c) => (c === 3 ? { line: 'close' } : undefined),
      // 2: the APPEND connection, refused for the limit; 3: the streaming connection's second try.
      onCommand: (c) => (c.name === 'LOGIN' && [2, 3].includes(++n) ? limit : undefined),
    });
    expect(err).toBeNull();
    // 4: the streaming connection's third try, 5: imapflow's session again.
    expect(n).toBe(5);
    // The pause before the try after the limit's NO was the whole 1.4 s.
    expect(ms).toBeGreaterThanOrEqual(1400);
  });

  it("imapflow's LOGIN again answered NO [LIMIT] (the limit worded otherwise before): tried again", async () => {
    const l = logins({ 4: { kind: 'no', text: '[LIMIT] Too many sessions' } });
    const { err } = await streamOne(l.opts);
    expect(err).toBeNull();
    expect(l.count()).toBe(5);
  });

  it("imapflow's LOGIN again refused once (the server counts the streaming one): tried again", async () => {
    const l = logins({ 4: { kind: 'no', text: '[UNAVAILABLE] Maximum number of connections' } });
    const { err } = await streamOne(l.opts);
    expect(err).toBeNull();
    // 4 refused, 5 accepted.
    expect(l.count()).toBe(5);
  });
});
