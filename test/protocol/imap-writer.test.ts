/**
 * ImapSink against the scripted fake server: the failure modes a real server only shows by
 * accident (a refusal mid-batch, a drop between literal and tagged reply, no UIDPLUS).
 */

import { afterEach, describe, expect, it, vi } from 'vitest';
import { connectImap } from '../../src/imap/index.js';
import type { AppendOutcome, ImapOptions, ImapSink } from '../../src/imap/index.js';
import type { Logger } from '../../src/log.js';
import { PopsyncError } from '../../src/errors.js';
import { startFakeImap, FAKE_PASSWORD, FAKE_USER, type FakeImap, type FakeImapOptions } from '../support/fake-imap.js';
import { fileBodies } from '../support/file-bodies.js';

const open: Array<{ fake: FakeImap; sink?: ImapSink }> = [];

afterEach(async () => {
  for (const o of open.splice(0)) {
    await o.sink?.close().catch(() => {});
    await o.fake.close();
  }
});

async function setup(
  opts: FakeImapOptions = {},
  password = FAKE_PASSWORD,
  extra: Partial<ImapOptions> = {},
): Promise<{ fake: FakeImap; sink: ImapSink }> {
  const fake = await startFakeImap({ mailboxes: ['Archive'], ...opts });
  const entry: { fake: FakeImap; sink?: ImapSink } = { fake };
  open.push(entry);
  entry.sink = await connectImap({
    host: fake.host,
    port: fake.port,
    tls: 'none',
    user: FAKE_USER,
    password,
    timeoutMs: 5000,
    ...extra,
  });
  return { fake, sink: entry.sink };
}

function msg(n: number): Buffer {
  return Buffer.from(`Message-ID: <m${n}@test>\r\nSubject: test ${n}\r\n\r\nbody ${n}\r\n`);
}

async function rejection(p: Promise<unknown>): Promise<PopsyncError> {
  const err = await p.then(
    () => {
      throw new Error('expected a rejection');
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(PopsyncError);
  return err as PopsyncError;
}

describe('ImapSink against the fake server', () => {
  it('reports a NO for one message as an ok:false outcome and appends the next', async () => {
    const { fake, sink } = await setup({
      onAppend: (a) =>
        a.n === 2 ? { kind: 'no', text: '[OVERQUOTA] Quota exceeded (mailbox for user is full)' } : undefined,
    });
    const seen: Array<[number, AppendOutcome]> = [];
    const outcomes = await sink.appendBatch(
      'Archive',
      [1, 2, 3].map((n) => ({ body: msg(n), flags: ['\\Seen'] })),
      (i, o) => seen.push([i, o]),
    );
    expect(outcomes.map((o) => o.ok)).toEqual([true, false, true]);
    expect(seen.map(([i]) => i)).toEqual([0, 1, 2]);
    const failed = outcomes[1]!;
    if (failed.ok) throw new Error('unreachable');
    expect(failed.error.kind).toBe('message');
    expect(failed.error.scope).toBe('message');
    expect(failed.error.context.responseCode).toBe('OVERQUOTA');
    expect(failed.error.context.serverResponse).toContain('Quota exceeded (mailbox for user is full)');
    expect(failed.error.context.folder).toBe('Archive');
    expect(outcomes[0]).toEqual({ ok: true, uid: 1, uidValidity: 1001n });
    expect(outcomes[2]).toEqual({ ok: true, uid: 2, uidValidity: 1001n });
    expect(fake.mailboxes.get('Archive')!.messages.map((m) => m.body.toString())).toEqual([
      msg(1).toString(),
      msg(3).toString(),
    ]);
    // the sink is still usable after a refusal
    expect((await sink.status('Archive')).uidNext).toBe(3);
  });

  it('throws connection when the server drops after the literal, and is dead afterwards', async () => {
    const { fake, sink } = await setup({ onAppend: (a) => (a.n === 2 ? { kind: 'drop' } : undefined) });
    const seen: number[] = [];
    const err = await rejection(
      sink.appendBatch(
        'Archive',
        [1, 2, 3].map((n) => ({ body: msg(n), flags: [] })),
        (i) => seen.push(i),
      ),
    );
    expect(err.kind).toBe('connection');
    expect(seen).toEqual([0]);
    // the duplicate window: the server kept message 2 although the client never heard so
    expect(fake.mailboxes.get('Archive')!.messages).toHaveLength(2);
    expect(fake.appends).toHaveLength(2);
    for (const later of [
      sink.status('Archive'),
      sink.appendBatch('Archive', [{ body: msg(4), flags: [] }]),
      sink.listSince('Archive', 1),
    ]) {
      expect((await rejection(later)).kind).toBe('connection');
    }
    await sink.close(); // tolerated on a dead session
  });

  it('gives up on a server that goes silent mid-APPEND after timeoutMs, as connection', async () => {
    const fake = await startFakeImap({ mailboxes: ['Archive'], onAppend: () => ({ kind: 'hang' }) });
    const entry: { fake: FakeImap; sink?: ImapSink } = { fake };
    open.push(entry);
    const sink = await connectImap({
      host: fake.host,
      port: fake.port,
      tls: 'none',
      user: FAKE_USER,
      password: FAKE_PASSWORD,
      timeoutMs: 800,
    });
    entry.sink = sink;
    const t0 = Date.now();
    const err = await rejection(sink.appendBatch('Archive', [{ body: msg(1), flags: [] }]));
    expect(err.kind).toBe('connection');
    expect(Date.now() - t0).toBeLessThan(5000);
    expect((await rejection(sink.status('Archive'))).kind).toBe('connection');
  });

  it('keeps an idle session alive past timeoutMs (the engine may be busy with POP3)', async () => {
    const fake = await startFakeImap({ mailboxes: ['Archive'] });
    const entry: { fake: FakeImap; sink?: ImapSink } = { fake };
    open.push(entry);
    const sink = await connectImap({
      host: fake.host,
      port: fake.port,
      tls: 'none',
      user: FAKE_USER,
      password: FAKE_PASSWORD,
      timeoutMs: 600,
    });
    entry.sink = sink;
    await new Promise((r) => setTimeout(r, 1500));
    expect((await sink.status('Archive')).uidNext).toBe(1);
    expect(fake.received.filter((l) => / NOOP$/.test(l)).length).toBeGreaterThan(0);
    expect(fake.connections).toBe(2); // imapflow's and the APPEND connection, neither reopened
  });

  it("keeps imapflow's session alive while pipelined batches run on the other connection", async () => {
    // Seen on Dovecot: 20,000 pipelined APPENDs kept the sink busy but left imapflow's own
    // session silent until its inactivity timer closed it.
    const fake = await startFakeImap({ mailboxes: ['Archive'] });
    const entry: { fake: FakeImap; sink?: ImapSink } = { fake };
    open.push(entry);
    const sink = await connectImap({
      host: fake.host,
      port: fake.port,
      tls: 'none',
      user: FAKE_USER,
      password: FAKE_PASSWORD,
      timeoutMs: 600,
    });
    entry.sink = sink;
    const until = Date.now() + 2000;
    let n = 0;
    while (Date.now() < until) {
      const out = await sink.appendBatch('Archive', [{ body: msg(++n), flags: [] }]);
      expect(out[0]?.ok).toBe(true);
      await new Promise((r) => setTimeout(r, 20));
    }
    expect((await sink.status('Archive')).uidNext).toBe(n + 1);
    expect(fake.received.filter((l) => / NOOP$/.test(l)).length).toBeGreaterThan(0);
    expect(fake.connections).toBe(2);
  });

  it('gives uid null when the server has no UIDPLUS / sends no APPENDUID', async () => {
    const { sink } = await setup({ onAppend: () => ({ kind: 'ok', appendUid: false }) });
    expect(await sink.appendBatch('Archive', [{ body: msg(1), flags: [] }])).toEqual([
      { ok: true, uid: null, uidValidity: null },
    ]);

    const other = await setup({ capabilities: ['IMAP4rev1', 'LITERAL+'] });
    expect(other.sink.capabilities.has('UIDPLUS')).toBe(false);
    expect(await other.sink.appendBatch('Archive', [{ body: msg(1), flags: [] }])).toEqual([
      { ok: true, uid: null, uidValidity: null },
    ]);
  });

  it('maps a rejected login to auth, with the server text and without the password', async () => {
    const fake = await startFakeImap();
    open.push({ fake });
    const err = await rejection(
      connectImap({
        host: fake.host,
        port: fake.port,
        tls: 'none',
        user: FAKE_USER,
        password: 'wrong-password',
        timeoutMs: 5000,
      }),
    );
    expect(err.kind).toBe('auth');
    expect(err.context.responseCode).toBe('AUTHENTICATIONFAILED');
    expect(err.context.serverResponse).toContain('Authentication failed');
    expect(JSON.stringify({ m: err.message, c: err.context })).not.toContain('wrong-password');
  });

  it('maps LOGIN NO [UNAVAILABLE] to temporary and a refused port to connection', async () => {
    const fake = await startFakeImap({
      onCommand: (c) => (c.name === 'LOGIN' ? { kind: 'no', text: '[UNAVAILABLE] Try again later' } : undefined),
    });
    open.push({ fake });
    const opts = {
      host: fake.host,
      port: fake.port,
      tls: 'none' as const,
      user: FAKE_USER,
      password: FAKE_PASSWORD,
      timeoutMs: 5000,
    };
    expect((await rejection(connectImap(opts))).kind).toBe('temporary');
    await fake.close();
    expect((await rejection(connectImap(opts))).kind).toBe('connection');
  });

  it('refuses to go on in cleartext when starttls is required but not offered', async () => {
    const fake = await startFakeImap();
    open.push({ fake });
    const err = await rejection(
      connectImap({
        host: fake.host,
        port: fake.port,
        tls: 'starttls',
        user: FAKE_USER,
        password: FAKE_PASSWORD,
        timeoutMs: 5000,
      }),
    );
    expect(err.kind).toBe('tls');
    expect(fake.received.some((l) => / LOGIN /i.test(l))).toBe(false);
  });

  it('creates missing parents level by level and tolerates a bare NO for an existing folder', async () => {
    const { fake, sink } = await setup({
      // a server without RFC 5530 codes
      onCommand: (c) =>
        c.name === 'CREATE' && c.args[0] === 'Archive' ? { kind: 'no', text: 'Mailbox exists' } : undefined,
    });
    const st = await sink.ensureFolder('Archive/2019/Q1');
    expect(st.path).toBe('Archive/2019/Q1');
    expect(st.uidNext).toBe(1);
    expect([...fake.mailboxes.keys()]).toEqual(['INBOX', 'Archive', 'Archive/2019', 'Archive/2019/Q1']);
    expect(fake.received.filter((l) => / CREATE /.test(l))).toHaveLength(3);
    // an existing folder costs one STATUS
    const before = fake.received.length;
    await sink.ensureFolder('Archive/2019/Q1');
    expect(fake.received.slice(before).map((l) => l.split(' ')[1])).toEqual(['STATUS']);
    // INBOX in any case
    expect((await sink.ensureFolder('inbox')).path).toBe('inbox');
    expect(fake.received.at(-1)).toMatch(/STATUS INBOX/);
  });

  it('fails a CREATE refused for real, and rejects empty folder levels', async () => {
    const { sink } = await setup({
      onCommand: (c) => (c.name === 'CREATE' ? { kind: 'no', text: '[NOPERM] Permission denied' } : undefined),
    });
    const err = await rejection(sink.ensureFolder('Nope'));
    expect(err.kind).toBe('server');
    expect(err.context.responseCode).toBe('NOPERM');
    expect((await rejection(sink.ensureFolder('a//b'))).kind).toBe('config');
  });

  it('listSince filters the extra row "N:*" returns, and fetchBody returns exact bytes without \\Seen', async () => {
    const { fake, sink } = await setup({}, FAKE_PASSWORD, { appendPath: 'imapflow' });
    await sink.appendBatch(
      'Archive',
      [1, 2, 3].map((n) => ({ body: msg(n), flags: [] })),
    );
    expect(await sink.listSince('Archive', 2)).toEqual([
      { uid: 2, size: msg(2).length, messageId: '<m2@test>' },
      { uid: 3, size: msg(3).length, messageId: '<m3@test>' },
    ]);
    // all UIDs are below 10, so the server answers 10:* with UID 3; we must not
    expect(await sink.listSince('Archive', 10)).toEqual([]);
    expect(fake.received.filter((l) => /UID FETCH 10:\*/.test(l))).toHaveLength(1);
    expect((await sink.fetchBody('Archive', 3)).equals(msg(3))).toBe(true);
    expect(fake.mailboxes.get('Archive')!.messages[2]!.flags).toEqual([]);
    expect(fake.received.some((l) => / SELECT /.test(l))).toBe(false); // EXAMINE only
    // appending to the open mailbox closes it first
    await sink.appendBatch('Archive', [{ body: msg(4), flags: [] }]);
    const tail = fake.received.slice(-2).map((l) => l.split(' ')[1]);
    expect(tail).toEqual(['CLOSE', 'APPEND']);
  });

  it(
    'scanHeaders: UID, size and header block of the UIDs asked for (or from a UID on), the UIDVALIDITY, ' +
      'null for no folder',
    async () => {
      const { fake, sink } = await setup();
      await sink.appendBatch(
        'Archive',
        [1, 2, 3, 4].map((n) => ({ body: msg(n), flags: [] })),
      );
      const got: Array<[number, number, string]> = [];
      const seen = await sink.scanHeaders('Archive', { uids: [4, 2, 9] }, (m) =>
        got.push([m.uid, m.size, m.header.toString()]),
      );
      expect(seen).toEqual({ uidValidity: BigInt(fake.mailboxes.get('Archive')!.uidValidity) });
      expect(got).toEqual(
        [2, 4].map((n) => [n, msg(n).length, `Message-ID: <m${n}@test>\r\nSubject: test ${n}\r\n\r\n`]),
      );
      // One FETCH for the whole set, headers peeked (no \Seen).
      expect(fake.received.filter((l) => / UID FETCH /.test(l))).toEqual([
        expect.stringMatching(/ UID FETCH 2,4,9 \(UID RFC822\.SIZE BODY\.PEEK\[HEADER\]\)$/),
      ]);
      // No STATUS before EXAMINE: whether a folder exists is asked only when EXAMINE fails.
      expect(fake.received.filter((l) => / STATUS /.test(l))).toEqual([]);
      got.length = 0;
      // 9:* is answered with the highest UID; it is not reported.
      await sink.scanHeaders('Archive', { since: 9 }, (m) => got.push([m.uid, m.size, '']));
      expect(got).toEqual([]);
      expect(await sink.scanHeaders('Nowhere', { since: 1 }, () => undefined)).toBeNull();
      expect(fake.mailboxes.has('Nowhere')).toBe(false);
    },
  );

  it(
    'readBodies streams exact bytes: small messages in one FETCH, a large one in 4 MiB pieces, \\Seen ' + 'untouched',
    async () => {
      const { fake, sink } = await setup();
      const big = Buffer.concat([
        Buffer.from('Subject: big\r\n\r\n'),
        Buffer.alloc(9 * 1024 * 1024 + 17, 0x61),
        Buffer.from('\r\n'),
      ]);
      await sink.appendBatch('Archive', [
        { body: msg(1), flags: [] },
        { body: big, flags: [] },
        { body: msg(3), flags: [] },
      ]);
      const pieces = new Map<number, Buffer[]>();
      const ended: number[] = [];
      await sink.readBodies(
        'Archive',
        [
          { uid: 1, size: msg(1).length },
          { uid: 2, size: big.length },
          { uid: 3, size: msg(3).length },
          { uid: 7, size: 10 },
        ],
        {
          chunk: (uid, b) => pieces.set(uid, [...(pieces.get(uid) ?? []), Buffer.from(b)]),
          end: (uid) => ended.push(uid),
        },
      );
      expect(ended.sort()).toEqual([1, 2, 3]);
      expect(Buffer.concat(pieces.get(1)!).equals(msg(1))).toBe(true);
      expect(Buffer.concat(pieces.get(3)!).equals(msg(3))).toBe(true);
      expect(pieces.get(2)!.length).toBe(3);
      expect(Buffer.concat(pieces.get(2)!).equals(big)).toBe(true);
      expect(fake.mailboxes.get('Archive')!.messages.every((m) => m.flags.length === 0)).toBe(true);
    },
  );
});

describe('closing the sink', () => {
  it('writes LOGOUT on both connections and waits for neither reply', async () => {
    // No socket timeout within the test's limit either.
    const { fake, sink } = await setup(
      { onCommand: (c) => (c.name === 'LOGOUT' ? { kind: 'hang' } : undefined) },
      FAKE_PASSWORD,
      { timeoutMs: 600_000 },
    );
    expect((await sink.status('Archive')).uidNext).toBe(1);
    // No timer may end the wait (imapflow's own logout() gives an unanswered LOGOUT 10 s): a
    // close() that waited for a reply would never return, and this test would fail by its limit.
    vi.useFakeTimers({ toFake: ['setTimeout', 'setInterval'] });
    try {
      await sink.close();
    } finally {
      vi.useRealTimers();
    }
    await vi.waitFor(() => expect(fake.received.filter((l) => / LOGOUT$/.test(l))).toHaveLength(2));
    expect(fake.connections).toBe(2);
  }, 20_000);
});

describe('pipelined APPEND (LITERAL+ and UIDPLUS) against the fake server', () => {
  const five = (): Array<{ body: Buffer; flags: string[]; internalDate: Date }> =>
    [1, 2, 3, 4, 5].map((n) => ({
      body: msg(n),
      flags: ['\\Seen', '$Migrated'],
      internalDate: new Date(Date.UTC(2019, 3, n, 8, 0, 0)),
    }));

  it("writes the next batch while the last one's few MB are unanswered", async () => {
    // Replies are held until the server has read both messages; a client that waited for the
    // first reply before writing the second gets them only from the fallback, and fails below.
    let release: () => void = () => undefined;
    const replies = new Promise<void>((r) => {
      release = r;
    });
    let releasedBy: string | null = null;
    const fallback = setTimeout(() => {
      releasedBy ??= 'the fallback';
      release();
    }, 15_000);
    const { sink } = await setup(
      {
        onAppend: (a) => {
          if (a.n === 2) {
            releasedBy ??= 'the second APPEND';
            release();
          }
          return { kind: 'ok', after: replies };
        },
      },
      FAKE_PASSWORD,
      { timeoutMs: 60_000 },
    );
    // 6 MB each, as the few MB-sized messages of a typical mailbox (in memory: under --batch-mb).
    const big = (n: number): Buffer => Buffer.concat([msg(n), Buffer.from(`${'x'.repeat(1022)}\r\n`.repeat(6 * 1024))]);
    const first = sink.appendBatch('Archive', [{ body: big(1), flags: [] }]);
    const second = sink.appendBatch('Archive', [{ body: big(2), flags: [] }]);
    const outcomes = (await Promise.all([first, second])).flat();
    clearTimeout(fallback);
    expect(releasedBy).toBe('the second APPEND');
    expect(outcomes.map((o) => o.ok && o.uid)).toEqual([1, 2]);
  });

  it('writes every APPEND before any reply and reports outcomes in order', async () => {
    // the server holds its replies until it has read all five APPENDs: a serial client would stall
    const { fake, sink } = await setup({ holdAppendReplies: 5 });
    const seen: number[] = [];
    const outcomes = await sink.appendBatch('Archive', five(), (i) => seen.push(i));
    expect(seen).toEqual([0, 1, 2, 3, 4]);
    expect(outcomes).toEqual([1, 2, 3, 4, 5].map((uid) => ({ ok: true, uid, uidValidity: 1001n })));
    expect(sink.appendCounts).toEqual({ pipelined: 5, imapflow: 0, streamed: 0, multiappend: 0 });
    expect(fake.received.filter((l) => / APPEND /.test(l)).every((l) => /\{\d+ bytes\}$/.test(l))).toBe(true);
    const stored = fake.mailboxes.get('Archive')!.messages;
    expect(stored.map((m) => m.body.toString())).toEqual([1, 2, 3, 4, 5].map((n) => msg(n).toString()));
    expect(stored[0]!.flags).toEqual(['\\Seen', '$Migrated']);
    expect(stored[0]!.internalDate).toBe(' 1-Apr-2019 08:00:00 +0000');
  });

  it('stores what the imapflow path stores (same command text apart from the literal marker)', async () => {
    const a = await setup({}, FAKE_PASSWORD, { appendPath: 'imapflow' });
    const b = await setup({}, FAKE_PASSWORD, { appendPath: 'pipelined' });
    await a.sink.appendBatch('Archive', five());
    await b.sink.appendBatch('Archive', five());
    const strip = (f: FakeImap): string[] =>
      f.received.filter((l) => / APPEND /.test(l)).map((l) => l.replace(/^\S+ /, ''));
    expect(strip(b.fake)).toEqual(strip(a.fake));
    expect(a.sink.appendCounts).toEqual({ pipelined: 0, imapflow: 5, streamed: 0, multiappend: 0 });
  });

  it('a NO for the 3rd of 5 is an ok:false outcome for it only', async () => {
    const { sink } = await setup({
      holdAppendReplies: 5,
      onAppend: (a) => (a.n === 3 ? { kind: 'no', text: '[OVERQUOTA] Quota exceeded' } : undefined),
    });
    const seen: number[] = [];
    const outcomes = await sink.appendBatch('Archive', five(), (i) => seen.push(i));
    expect(seen).toEqual([0, 1, 2, 3, 4]);
    expect(outcomes.map((o) => o.ok)).toEqual([true, true, false, true, true]);
    const failed = outcomes[2]!;
    if (failed.ok) throw new Error('unreachable');
    expect(failed.error.kind).toBe('message');
    expect(failed.error.context.responseCode).toBe('OVERQUOTA');
    expect(failed.error.context.serverResponse).toBe('NO [OVERQUOTA] Quota exceeded');
    expect(outcomes[3]).toEqual({ ok: true, uid: 3, uidValidity: 1001n });
    // still usable
    expect(await sink.appendBatch('Archive', [{ body: msg(6), flags: [] }])).toEqual([
      { ok: true, uid: 5, uidValidity: 1001n },
    ]);
  });

  it('a drop after the server stored the 3rd, before its OK: outcomes 1-2 only, then connection', async () => {
    const { fake, sink } = await setup({ onAppend: (a) => (a.n === 3 ? { kind: 'drop' } : undefined) });
    const seen: number[] = [];
    const err = await rejection(sink.appendBatch('Archive', five(), (i) => seen.push(i)));
    expect(err.kind).toBe('connection');
    expect(seen).toEqual([0, 1]);
    expect(fake.mailboxes.get('Archive')!.messages).toHaveLength(3);
    expect((await rejection(sink.status('Archive'))).kind).toBe('connection');
  });

  it('[TRYCREATE] throws server and [UNAVAILABLE] throws temporary, after the earlier outcomes', async () => {
    const { sink } = await setup({
      onAppend: (a) => (a.n === 2 ? { kind: 'no', text: '[UNAVAILABLE] Try later' } : undefined),
    });
    const seen: number[] = [];
    expect((await rejection(sink.appendBatch('Archive', five(), (i) => seen.push(i)))).kind).toBe('temporary');
    expect(seen).toEqual([0]);
    // the spent APPEND connection is replaced; the sink goes on
    expect((await rejection(sink.appendBatch('Missing', five()))).kind).toBe('server');
    expect((await sink.appendBatch('Archive', [{ body: msg(9), flags: [] }]))[0]!.ok).toBe(true);
  });

  it('falls back to imapflow without LITERAL+, and for NUL bytes without BINARY', async () => {
    const { sink } = await setup({ capabilities: ['IMAP4rev1', 'UIDPLUS'] });
    await sink.appendBatch('Archive', five());
    expect(sink.appendCounts).toEqual({ pipelined: 0, imapflow: 5, streamed: 0, multiappend: 0 });
    const other = await setup();
    await other.sink.appendBatch('Archive', [{ body: Buffer.from('Subject: x\r\n\r\na\0b\r\n'), flags: [] }]);
    expect(other.sink.appendCounts).toEqual({ pipelined: 0, imapflow: 1, streamed: 0, multiappend: 0 });
  });

  it('sends each message the flags of its own list when lists are shared between messages and batches', async () => {
    // The writer formats a list once and reuses it for every message given the same array
    // (routing shares one per run); a list with a flag IMAP cannot carry is logged per message.
    const dropped: unknown[] = [];
    const quiet = (): undefined => undefined;
    const logger: Logger = {
      debug: quiet,
      info: (o, m) => void (m === 'Dropped a flag IMAP cannot carry' && dropped.push(o)),
      warn: quiet,
      error: quiet,
      child: () => logger,
    };
    const { fake, sink } = await setup({}, FAKE_PASSWORD, { logger, appendPath: 'pipelined' });
    const seen = ['\\seen', '$Migrated'];
    const none: string[] = [];
    const bad = ['\\Flagged', 'a b'];
    const lists = [seen, none, seen, ['\\Answered'], bad, seen, bad, none];
    await sink.appendBatch(
      'Archive',
      lists.slice(0, 5).map((flags, i) => ({ body: msg(i + 1), flags })),
    );
    await sink.appendBatch(
      'Archive',
      lists.slice(5).map((flags, i) => ({ body: msg(i + 6), flags })),
    );
    const want = lists.map((l) => (l === seen ? ['\\Seen', '$Migrated'] : l === bad ? ['\\Flagged'] : l));
    expect(fake.mailboxes.get('Archive')!.messages.map((m) => m.flags)).toEqual(want);
    expect(sink.appendCounts).toEqual({ pipelined: 8, imapflow: 0, streamed: 0, multiappend: 0 });
    expect(dropped).toEqual([
      { folder: 'Archive', flag: 'a b' },
      { folder: 'Archive', flag: 'a b' },
    ]);
  });

  it('never logs the password, which travels as a quoted string', async () => {
    const password = 'p"w\\ s3cr3t-Xy';
    const lines: string[] = [];
    const logger: Logger = {
      debug: (o, m) =>
        void lines.push(
          JSON.stringify([o, m], (_k, v: unknown) =>
            typeof v === 'bigint' ? String(v) : v instanceof Error ? `${v.message} ${JSON.stringify(v)}` : v,
          ),
        ),
      info: (o, m) => logger.debug(o, m),
      warn: (o, m) => logger.debug(o, m),
      error: (o, m) => logger.debug(o, m),
      child: () => logger,
    };
    const { sink } = await setup(
      {
        users: { [FAKE_USER]: password },
        onAppend: (a) =>
          a.n === 2 ? { kind: 'bad', text: 'Invalid arguments' } : a.n === 4 ? { kind: 'drop' } : undefined,
      },
      password,
      { logger, appendPath: 'pipelined' },
    );
    await sink.appendBatch(
      'Archive',
      [1, 2, 3].map((n) => ({ body: msg(n), flags: [] })),
    );
    await rejection(sink.appendBatch('Archive', [{ body: msg(4), flags: [] }]));
    expect(lines.length).toBeGreaterThan(0);
    expect(lines.join('\n')).not.toContain('s3cr3t');
  });
});

describe('messages kept in a file (too large for memory) against the fake server', () => {
  const fileBody = fileBodies('popsync-filebody-');
  const large = (n: number): Buffer => Buffer.concat([msg(n), Buffer.alloc(600 * 1024, `${n}`), Buffer.from('\r\n')]);

  it('streams the literal from the file down the pipelined connection, byte-exact, with APPENDUID', async () => {
    const { fake, sink } = await setup();
    const outcomes = await sink.appendBatch('Archive', [
      { body: fileBody('a', large(1)), flags: ['\\Seen'] },
      { body: msg(2), flags: [] },
    ]);
    expect(outcomes).toEqual([
      { ok: true, uid: 1, uidValidity: 1001n },
      { ok: true, uid: 2, uidValidity: 1001n },
    ]);
    expect(sink.appendCounts).toEqual({ pipelined: 2, imapflow: 0, streamed: 0, multiappend: 0 });
    const stored = fake.mailboxes.get('Archive')!.messages;
    expect(stored[0]!.body.equals(large(1))).toBe(true);
    expect(stored[1]!.body.equals(msg(2))).toBe(true);
  });

  it('without LITERAL+ and UIDPLUS: a connection of its own, one synchronising literal at a time, no UID', async () => {
    const { fake, sink } = await setup({ capabilities: ['IMAP4rev1'] });
    const seen: number[] = [];
    const outcomes = await sink.appendBatch(
      'Archive',
      [
        { body: fileBody('a', large(1)), flags: ['\\Seen'], internalDate: new Date(Date.UTC(2019, 3, 1, 8)) },
        { body: msg(2), flags: [] },
        { body: fileBody('c', large(3)), flags: [] },
      ],
      (i) => seen.push(i),
    );
    expect(seen).toEqual([0, 1, 2]);
    expect(outcomes).toEqual([1, 2, 3].map(() => ({ ok: true, uid: null, uidValidity: null })));
    expect(sink.appendCounts).toEqual({ pipelined: 0, imapflow: 0, streamed: 3, multiappend: 0 });
    // Synchronising literals only: the fake answered '+' before each one was sent.
    const appends = fake.received.filter((l) => / APPEND /.test(l));
    expect(appends).toHaveLength(3);
    const stored = fake.mailboxes.get('Archive')!.messages;
    expect(stored.map((m) => m.body.equals([large(1), msg(2), large(3)][m.uid - 1]!))).toEqual([true, true, true]);
    expect(stored[0]!.flags).toEqual(['\\Seen']);
    expect(stored[0]!.internalDate).toBe(' 1-Apr-2019 08:00:00 +0000');
    // Batches of small messages still go through imapflow.
    await sink.appendBatch('Archive', [{ body: msg(4), flags: [] }]);
    expect(sink.appendCounts).toEqual({ pipelined: 0, imapflow: 1, streamed: 3, multiappend: 0 });
  });

  it('without LITERAL+: a NO for one streamed message fails it alone', async () => {
    const { sink } = await setup({
      capabilities: ['IMAP4rev1'],
      onAppend: (a) => (a.n === 1 ? { kind: 'no', text: '[LIMIT] Mail size is too large' } : undefined),
    });
    const outcomes = await sink.appendBatch('Archive', [
      { body: fileBody('a', large(1)), flags: [] },
      { body: fileBody('b', large(2)), flags: [] },
    ]);
    expect(outcomes.map((o) => o.ok)).toEqual([false, true]);
    const failed = outcomes[0]!;
    if (failed.ok) throw new Error('unreachable');
    expect(failed.error.context.serverResponse).toBe('NO [LIMIT] Mail size is too large');
  });

  it(
    'a drop while a streamed message is unanswered is a connection error, reported after the earlier ' + 'outcomes',
    async () => {
      const { sink } = await setup({
        capabilities: ['IMAP4rev1'],
        onAppend: (a) => (a.n === 2 ? { kind: 'drop' } : undefined),
      });
      const seen: number[] = [];
      const err = await rejection(
        sink.appendBatch(
          'Archive',
          [1, 2, 3].map((n) => ({ body: fileBody(String(n), large(n)), flags: [] })),
          (i) => seen.push(i),
        ),
      );
      expect(err.kind).toBe('connection');
      expect(seen).toEqual([0]);
    },
  );
});
