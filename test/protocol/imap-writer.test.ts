/**
 * ImapSink against the scripted fake server: the failure modes a real server only shows by
 * accident (a refusal mid-batch, a drop between literal and tagged reply, no UIDPLUS).
 */

import { afterEach, describe, expect, it } from 'vitest';
import { connectImap } from '../../src/imap/index.js';
import type { AppendOutcome, ImapSink } from '../../src/imap/index.js';
import { PopsyncError } from '../../src/errors.js';
import { startFakeImap, FAKE_PASSWORD, FAKE_USER, type FakeImap, type FakeImapOptions } from '../support/fake-imap.js';

const open: Array<{ fake: FakeImap; sink?: ImapSink }> = [];

afterEach(async () => {
  for (const o of open.splice(0)) {
    await o.sink?.close().catch(() => {});
    await o.fake.close();
  }
});

async function setup(opts: FakeImapOptions = {}, password = FAKE_PASSWORD): Promise<{ fake: FakeImap; sink: ImapSink }> {
  const fake = await startFakeImap({ mailboxes: ['Archive'], ...opts });
  const entry: { fake: FakeImap; sink?: ImapSink } = { fake };
  open.push(entry);
  entry.sink = await connectImap({ host: fake.host, port: fake.port, tls: 'none', user: FAKE_USER, password, timeoutMs: 5000 });
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
      onAppend: (a) => (a.n === 2 ? { kind: 'no', text: '[OVERQUOTA] Quota exceeded (mailbox for user is full)' } : undefined),
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
    expect(fake.mailboxes.get('Archive')!.messages.map((m) => m.body.toString())).toEqual([msg(1).toString(), msg(3).toString()]);
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
    for (const later of [sink.status('Archive'), sink.appendBatch('Archive', [{ body: msg(4), flags: [] }]), sink.listSince('Archive', 1)]) {
      expect((await rejection(later)).kind).toBe('connection');
    }
    await sink.close(); // tolerated on a dead session
  });

  it('gives up on a server that goes silent mid-APPEND after timeoutMs, as connection', async () => {
    const fake = await startFakeImap({ mailboxes: ['Archive'], onAppend: () => ({ kind: 'hang' }) });
    const entry: { fake: FakeImap; sink?: ImapSink } = { fake };
    open.push(entry);
    const sink = (entry.sink = await connectImap({ host: fake.host, port: fake.port, tls: 'none', user: FAKE_USER, password: FAKE_PASSWORD, timeoutMs: 800 }));
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
    const sink = (entry.sink = await connectImap({ host: fake.host, port: fake.port, tls: 'none', user: FAKE_USER, password: FAKE_PASSWORD, timeoutMs: 600 }));
    await new Promise((r) => setTimeout(r, 1500));
    expect((await sink.status('Archive')).uidNext).toBe(1);
    expect(fake.received.filter((l) => / NOOP$/.test(l)).length).toBeGreaterThan(0);
    expect(fake.connections).toBe(1);
  });

  it('gives uid null when the server has no UIDPLUS / sends no APPENDUID', async () => {
    const { sink } = await setup({ onAppend: () => ({ kind: 'ok', appendUid: false }) });
    expect(await sink.appendBatch('Archive', [{ body: msg(1), flags: [] }])).toEqual([{ ok: true, uid: null, uidValidity: null }]);

    const other = await setup({ capabilities: ['IMAP4rev1', 'LITERAL+'] });
    expect(other.sink.capabilities.has('UIDPLUS')).toBe(false);
    expect(await other.sink.appendBatch('Archive', [{ body: msg(1), flags: [] }])).toEqual([{ ok: true, uid: null, uidValidity: null }]);
  });

  it('maps a rejected login to auth, with the server text and without the password', async () => {
    const fake = await startFakeImap();
    open.push({ fake });
    const err = await rejection(
      connectImap({ host: fake.host, port: fake.port, tls: 'none', user: FAKE_USER, password: 'wrong-password', timeoutMs: 5000 }),
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
    const opts = { host: fake.host, port: fake.port, tls: 'none' as const, user: FAKE_USER, password: FAKE_PASSWORD, timeoutMs: 5000 };
    expect((await rejection(connectImap(opts))).kind).toBe('temporary');
    await fake.close();
    expect((await rejection(connectImap(opts))).kind).toBe('connection');
  });

  it('refuses to go on in cleartext when starttls is required but not offered', async () => {
    const fake = await startFakeImap();
    open.push({ fake });
    const err = await rejection(
      connectImap({ host: fake.host, port: fake.port, tls: 'starttls', user: FAKE_USER, password: FAKE_PASSWORD, timeoutMs: 5000 }),
    );
    expect(err.kind).toBe('tls');
    expect(fake.received.some((l) => / LOGIN /i.test(l))).toBe(false);
  });

  it('creates missing parents level by level and tolerates a bare NO for an existing folder', async () => {
    const { fake, sink } = await setup({
      // a server without RFC 5530 codes
      onCommand: (c) => (c.name === 'CREATE' && c.args[0] === 'Archive' ? { kind: 'no', text: 'Mailbox exists' } : undefined),
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
    const { fake, sink } = await setup();
    await sink.appendBatch('Archive', [1, 2, 3].map((n) => ({ body: msg(n), flags: [] })));
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
});
