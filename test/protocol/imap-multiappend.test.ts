/**
 * Our APPEND connection (pipeline.ts) against the scripted fake server where it offers
 * MULTIAPPEND (RFC 3502) or LITERAL- (RFC 7888): batching, APPENDUID sets, a refused batch
 * retried message by message, and literals that must wait for '+'.
 */
import net from 'node:net';
import { describe, expect, it, vi } from 'vitest';
import type { AppendOutcome, ImapSink } from '../../src/imap/index.js';
import { PopsyncError } from '../../src/errors.js';
import type { FakeImap, FakeImapOptions } from '../support/fake-imap.js';
import { fakeImapSinks } from '../support/fake-imap-sink.js';

const connect = fakeImapSinks();

function setup(opts: FakeImapOptions): Promise<{ fake: FakeImap; sink: ImapSink }> {
  return connect({ mailboxes: ['Archive'], ...opts });
}

function msg(n: number, pad = 0): Buffer {
  return Buffer.from(`Message-ID: <m${n}@test>\r\nSubject: test ${n}\r\n\r\nbody ${n}${'x'.repeat(pad)}\r\n`);
}

const stored = (fake: FakeImap, box = 'Archive') =>
  fake.mailboxes.get(box)!.messages.map((m) => ({ uid: m.uid, body: m.body.toString() }));

describe('MULTIAPPEND', () => {
  it('sends a batch in one command and maps the APPENDUID set back to the messages in order', async () => {
    const { fake, sink } = await setup({ capabilities: ['IMAP4rev1', 'UIDPLUS', 'LITERAL+', 'MULTIAPPEND'] });
    const seen: number[] = [];
    const outcomes = await sink.appendBatch(
      'Archive',
      [1, 2, 3, 4, 5].map((n) => ({ body: msg(n), flags: n === 2 ? ['\\Seen'] : [] })),
      (i) => seen.push(i),
    );
    expect(fake.multiAppends).toEqual([5]);
    expect(outcomes).toEqual([1, 2, 3, 4, 5].map((uid) => ({ ok: true, uid, uidValidity: 1001n })));
    expect(seen).toEqual([0, 1, 2, 3, 4]);
    expect(stored(fake).map((m) => m.body)).toEqual([1, 2, 3, 4, 5].map((n) => msg(n).toString()));
    expect(fake.mailboxes.get('Archive')!.messages[1]!.flags).toEqual(['\\Seen']);
    expect(sink.appendCounts).toMatchObject({ pipelined: 5, multiappend: 5, imapflow: 0 });
  });

  it('bounds each command by count: 250 messages go as 100 + 100 + 50', async () => {
    const { fake, sink } = await setup({ capabilities: ['IMAP4rev1', 'UIDPLUS', 'LITERAL+', 'MULTIAPPEND'] });
    const outcomes = await sink.appendBatch(
      'Archive',
      Array.from({ length: 250 }, (_, n) => ({ body: msg(n), flags: [] })),
    );
    expect(fake.multiAppends).toEqual([100, 100, 50]);
    expect(outcomes.map((o) => (o.ok ? o.uid : null))).toEqual(Array.from({ length: 250 }, (_, n) => n + 1));
  });

  it('writes a MULTIAPPEND of small messages in a few socket writes, not one per message', async () => {
    const { fake, sink } = await setup({ capabilities: ['IMAP4rev1', 'UIDPLUS', 'LITERAL+', 'MULTIAPPEND'] });
    // Writes on popsync's sockets to this server (the server's own sockets have it as local port).
    const writes = vi.spyOn(net.Socket.prototype as unknown as { _writeGeneric: () => void }, '_writeGeneric');
    try {
      const outcomes = await sink.appendBatch(
        'Archive',
        Array.from({ length: 80 }, (_, n) => ({ body: msg(n, 2000), flags: [] })),
      );
      expect(outcomes.every((o) => o.ok)).toBe(true);
      expect(fake.multiAppends).toEqual([80]);
      const ours = writes.mock.contexts.filter((c) => (c as net.Socket).remotePort === fake.port).length;
      // 80 messages of about 2 KB, corked up to 256 KiB: one write (two at most); 80 before.
      expect(ours).toBeLessThanOrEqual(3);
    } finally {
      writes.mockRestore();
    }
  });

  it('writes a batch of several MULTIAPPENDs, small and 100 KB messages, in one socket write', async () => {
    const { fake, sink } = await setup({ capabilities: ['IMAP4rev1', 'UIDPLUS', 'LITERAL+', 'MULTIAPPEND'] });
    const writes = vi.spyOn(net.Socket.prototype as unknown as { _writeGeneric: () => void }, '_writeGeneric');
    try {
      // 250 messages: three commands (100 + 100 + 50), 30 of them 100 KB (a body of several
      // 256 KiB pieces' worth in all, and each larger than a message the old path corked).
      const bodies = Array.from({ length: 250 }, (_, n) => msg(n, n % 9 === 0 ? 100_000 : 2000));
      const outcomes = await sink.appendBatch(
        'Archive',
        bodies.map((body) => ({ body, flags: [] })),
      );
      expect(outcomes.every((o) => o.ok)).toBe(true);
      expect(fake.multiAppends).toEqual([100, 100, 50]);
      expect(stored(fake).map((m) => m.body)).toEqual(bodies.map(String));
      const ours = writes.mock.contexts.filter((c) => (c as net.Socket).remotePort === fake.port).length;
      // Plain TCP takes a write of many buffers without copying them: all three commands in one
      // (each message's head, body and the CRLFs were their own writes or corked groups: 86 here).
      expect(ours).toBe(1);
    } finally {
      writes.mockRestore();
    }
  });

  it('retries a refused batch message by message, so only the bad message fails', async () => {
    const { fake, sink } = await setup({
      capabilities: ['IMAP4rev1', 'UIDPLUS', 'LITERAL+', 'MULTIAPPEND'],
      onAppend: (a) => (a.body.includes('body 3') ? { kind: 'no', text: '[LIMIT] Message too large' } : undefined),
    });
    const order: Array<[number, AppendOutcome]> = [];
    const outcomes = await sink.appendBatch(
      'Archive',
      [1, 2, 3, 4, 5].map((n) => ({ body: msg(n), flags: [] })),
      (i, o) => order.push([i, o]),
    );
    expect(fake.multiAppends).toEqual([5]);
    expect(outcomes.map((o) => o.ok)).toEqual([true, true, false, true, true]);
    const failed = outcomes[2]!;
    if (failed.ok) throw new Error('unreachable');
    expect(failed.error.context.serverResponse).toContain('Message too large');
    // Stored once each, in order, none from the refused MULTIAPPEND itself (atomic).
    expect(stored(fake).map((m) => m.body)).toEqual([1, 2, 4, 5].map((n) => msg(n).toString()));
    expect(outcomes.map((o) => (o.ok ? o.uid : null))).toEqual([1, 2, null, 3, 4]);
    // UIDs are reported in the order the server gave them.
    expect(order.map(([i]) => i)).toEqual([0, 1, 2, 3, 4]);
  });

  it('writes a second batch before the first is answered; a refused first goes again after it', async () => {
    // Replies are held until six messages were read: only a client that writes the second
    // batch without waiting for the first's reply gets any.
    const { fake, sink } = await setup({
      capabilities: ['IMAP4rev1', 'UIDPLUS', 'LITERAL+', 'MULTIAPPEND'],
      holdAppendReplies: 6,
      onAppend: (a) => (a.body.includes('body 3') ? { kind: 'no', text: '[LIMIT] Message too large' } : undefined),
    });
    const order: string[] = [];
    const first = sink.appendBatch(
      'Archive',
      [1, 2, 3].map((n) => ({ body: msg(n), flags: [] })),
      (i) => order.push(`a${i}`),
    );
    const second = sink.appendBatch(
      'Archive',
      [4, 5, 6].map((n) => ({ body: msg(n), flags: [] })),
      (i) => order.push(`b${i}`),
    );
    const [a, b] = await Promise.all([first, second]);
    expect(fake.multiAppends).toEqual([3, 3]);
    expect(b.map((o) => (o.ok ? o.uid : null))).toEqual([1, 2, 3]);
    // The refused MULTIAPPEND stored nothing; its messages went alone, after the second batch.
    expect(a.map((o) => (o.ok ? o.uid : null))).toEqual([4, 5, null]);
    expect(order).toEqual(['b0', 'b1', 'b2', 'a0', 'a1', 'a2']);
    expect(stored(fake).map((m) => m.body)).toEqual([4, 5, 6, 1, 2].map((n) => msg(n).toString()));
    expect(fake.connections).toBe(2);
  });

  it('a drop with two batches unanswered rejects both, with no outcome for either', async () => {
    const { fake, sink } = await setup({
      capabilities: ['IMAP4rev1', 'UIDPLUS', 'LITERAL+', 'MULTIAPPEND'],
      holdAppendReplies: 6,
      onAppend: (a) => (a.body.includes('body 6') ? { kind: 'drop' } : undefined),
    });
    const seen: number[] = [];
    const batch = (ns: number[]) =>
      sink
        .appendBatch(
          'Archive',
          ns.map((n) => ({ body: msg(n), flags: [] })),
          (i) => seen.push(i),
        )
        .catch((e: unknown) => e);
    const [a, b] = await Promise.all([batch([1, 2, 3]), batch([4, 5, 6])]);
    for (const e of [a, b]) {
      expect(e).toBeInstanceOf(PopsyncError);
      expect((e as PopsyncError).kind).toBe('connection');
    }
    // Both stored, neither reported: the engine settles all six by content.
    expect(seen).toEqual([]);
    expect(stored(fake)).toHaveLength(6);
    expect((await sink.status('Archive').catch((e: unknown) => e)) as PopsyncError).toMatchObject({
      kind: 'connection',
    });
  });

  it('records no UID when the APPENDUID set does not name each message', async () => {
    const { fake, sink } = await setup({
      capabilities: ['IMAP4rev1', 'UIDPLUS', 'LITERAL+', 'MULTIAPPEND'],
      onAppend: () => ({ kind: 'ok', appendUid: 7 }),
    });
    const outcomes = await sink.appendBatch(
      'Archive',
      [1, 2, 3].map((n) => ({ body: msg(n), flags: [] })),
    );
    expect(fake.multiAppends).toEqual([3]);
    expect(outcomes).toEqual([1, 2, 3].map(() => ({ ok: true, uid: null, uidValidity: null })));
  });

  it('loses the connection, not the outcome, when the server stores a batch and drops before replying', async () => {
    const { fake, sink } = await setup({
      capabilities: ['IMAP4rev1', 'UIDPLUS', 'LITERAL+', 'MULTIAPPEND'],
      onAppend: (a) => (a.n === 2 ? { kind: 'drop' } : undefined),
    });
    const seen: number[] = [];
    const err = await sink
      .appendBatch(
        'Archive',
        [1, 2, 3].map((n) => ({ body: msg(n), flags: [] })),
        (i) => seen.push(i),
      )
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PopsyncError);
    expect((err as PopsyncError).kind).toBe('connection');
    // All three are stored, none was reported: the engine settles them by content.
    expect(seen).toEqual([]);
    expect(stored(fake)).toHaveLength(3);
  });

  it('without LITERAL+ sends MULTIAPPEND with synchronising literals, and without UIDPLUS names no UID', async () => {
    const { fake, sink } = await setup({ capabilities: ['IMAP4rev1', 'MULTIAPPEND'] });
    const outcomes = await sink.appendBatch(
      'Archive',
      [1, 2, 3].map((n) => ({ body: msg(n), flags: [] })),
    );
    expect(fake.multiAppends).toEqual([3]);
    expect(fake.literals.map((l) => l.nonSync)).toEqual([false, false, false]);
    expect(outcomes).toEqual([1, 2, 3].map(() => ({ ok: true, uid: null, uidValidity: null })));
    expect(stored(fake).map((m) => m.body)).toEqual([1, 2, 3].map((n) => msg(n).toString()));
  });
});

describe('a literal refused in place of its +', () => {
  it('ends that command: the MULTIAPPEND stored nothing, and alone only the refused message fails', async () => {
    const { fake, sink } = await setup({
      capabilities: ['IMAP4rev1', 'UIDPLUS', 'MULTIAPPEND'],
      refuseLiteral: (size) => (size > 1000 ? '[LIMIT] Message too large' : undefined),
    });
    const items = [0, 2000, 0].map((pad, n) => ({ body: msg(n, pad), flags: [] }));
    const outcomes = await sink.appendBatch('Archive', items);
    expect(fake.multiAppends).toEqual([]); // the MULTIAPPEND never got past its 2nd literal
    expect(outcomes.map((o) => o.ok)).toEqual([true, false, true]);
    const failed = outcomes[1]!;
    if (failed.ok) throw new Error('unreachable');
    expect(failed.error.context.serverResponse).toContain('Message too large');
    expect(stored(fake).map((m) => m.body)).toEqual([items[0]!.body.toString(), items[2]!.body.toString()]);
    // The session goes on: the next batch is stored.
    const next = await sink.appendBatch('Archive', [{ body: msg(9), flags: [] }]);
    expect(next.map((o) => o.ok)).toEqual([true]);
  });
});

describe('LITERAL- (RFC 7888)', () => {
  it('pipelines literals up to 4,096 octets without waiting and waits for + beyond', async () => {
    const { fake, sink } = await setup({ capabilities: ['IMAP4rev1', 'UIDPLUS', 'LITERAL-'] });
    const items = [0, 5000, 10, 4096 - msg(4).length, 70_000].map((pad, n) => ({ body: msg(n, pad), flags: [] }));
    const outcomes = await sink.appendBatch('Archive', items);
    expect(outcomes.map((o) => (o.ok ? o.uid : null))).toEqual([1, 2, 3, 4, 5]);
    expect(fake.literals).toEqual(items.map((it) => ({ size: it.body.length, nonSync: it.body.length <= 4096 })));
    expect(items[3]!.body.length).toBe(4096);
    expect(stored(fake).map((m) => m.body)).toEqual(items.map((it) => it.body.toString()));
    expect(sink.appendCounts).toMatchObject({ pipelined: 5, imapflow: 0 });
  });

  it('combines LITERAL- with MULTIAPPEND', async () => {
    const { fake, sink } = await setup({ capabilities: ['IMAP4rev1', 'UIDPLUS', 'LITERAL-', 'MULTIAPPEND'] });
    const items = [0, 9000, 0].map((pad, n) => ({ body: msg(n, pad), flags: [] }));
    const outcomes = await sink.appendBatch('Archive', items);
    expect(fake.multiAppends).toEqual([3]);
    expect(fake.literals.map((l) => l.nonSync)).toEqual([true, false, true]);
    expect(outcomes.map((o) => (o.ok ? o.uid : null))).toEqual([1, 2, 3]);
    expect(stored(fake).map((m) => m.body)).toEqual(items.map((it) => it.body.toString()));
  });
});
