/**
 * popsync writes up to a batch of RETRs ahead (pop3/client.ts pipelines 512 commands), so a server
 * may answer all of them at once, with big bodies, faster than the destination takes them. The
 * engine runs in-process here with the real POP3 client against a scripted server that sends as
 * fast as its socket takes (test/support/flood-pop3.ts) and a destination that holds its first
 * APPEND until popsync has stopped reading. What popsync holds is counted in bytes, not RSS: the
 * bytes it took off its POP3 sockets (socket.bytesRead; watchSockets finds the sockets) less the
 * replies of the messages the destination has taken. That must stay
 * within the bound engine/receive-ahead.ts documents (HELD_BATCHES batch caps, plus the message
 * closing each) and what the client reads ahead of the engine (RETR_READ_AHEAD_BYTES), however
 * much the server has sent, and the run must finish: a server that reads no command while its
 * socket is full is never left waiting on popsync, nor popsync on it. The same holds over pop3s,
 * where the bound is the client's own (pop3/retr-body.ts ReadAhead) as much as over plain TCP.
 * Bytes off the socket cannot see a body that keeps more alive than its own bytes (a view of a
 * larger read): for a server that overstates sizes, the process's live Buffers after a full GC
 * are measured too.
 */
import { createHash } from 'node:crypto';
import diagnostics from 'node:diagnostics_channel';
import { createReadStream, mkdtempSync, rmSync } from 'node:fs';
import type net from 'node:net';
import tls from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { HELD_BATCHES } from '../../src/engine/receive-ahead.js';
import { SLAB_BYTES } from '../../src/engine/slabs.js';
import { DEFAULT_BATCH_BYTES, DEFAULT_SPILL_BYTES } from '../../src/defaults.js';
import { runEngine, type EngineOptions } from '../../src/engine/run.js';
import { isFileBody, memoryChunks } from '../../src/imap/body.js';
import type { AppendOutcome, FolderStatus, ImapSink } from '../../src/imap/types.js';
import { Journal } from '../../src/journal/journal.js';
import { silentLogger } from '../../src/log.js';
import { compileRouting, engineRouter } from '../../src/mapping/rules.js';
import { connectPop3, messageCeiling, RETR_READ_AHEAD_BYTES } from '../../src/pop3/index.js';
import { generateTestCertificate } from '../support/fake-pop3.js';
import { startFloodPop3, type FloodPop3 } from '../support/flood-pop3.js';

const KIB = 1024;
const MIB = 1024 * KIB;
/** One socket read: the decoder hands out what a read brought before the socket pauses. */
const SOCKET_READ = 64 * KIB;
/** Greeting, CAPA, login, STAT, LIST and UIDL of a few hundred messages. */
const LISTING_SLACK = 64 * KIB;

let dir: string;
let journal: Journal;
let pop: FloodPop3 | undefined;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'popsync-flood-'));
  journal = Journal.open(join(dir, 'j.sqlite'), { source: 'alice@flood.test' });
});
afterEach(async () => {
  journal.close();
  rmSync(dir, { recursive: true, force: true });
  await pop?.close();
  pop = undefined;
});

/**
 * Every POP3 socket popsync opens to `port`, as it is created. net.connect announces its sockets
 * on Node's 'net.client.socket' diagnostics channel; tls.connect announces none, so it is wrapped
 * while the test runs (net/connect.ts calls it through the module object). A TLS socket's
 * bytesRead counts the plaintext it decrypted and handed on (Node 20: a server's 1,000,000 bytes
 * read as 1,000,000), which is what popsync then holds; were it the ciphertext, it would only
 * count more than popsync holds, never less.
 */
function watchSockets(port: number): { sockets: net.Socket[]; read(): number; stop(): void } {
  const sockets: net.Socket[] = [];
  const onSocket = (m: unknown): void => {
    const socket = (m as { socket: net.Socket }).socket;
    socket.once('connect', () => {
      if (socket.remotePort === port) sockets.push(socket);
    });
  };
  diagnostics.subscribe('net.client.socket', onSocket);
  const tlsConnect = tls.connect;
  const spy = vi.spyOn(tls, 'connect').mockImplementation(((...args: Parameters<typeof tls.connect>) => {
    const socket = tlsConnect(...args);
    onSocket({ socket });
    return socket;
  }) as typeof tls.connect);
  return {
    sockets,
    read: () => sockets.reduce((n, s) => n + s.bytesRead, 0),
    stop: () => {
      diagnostics.unsubscribe('net.client.socket', onSocket);
      spy.mockRestore();
    },
  };
}

/**
 * An in-memory destination that keeps a digest per copy (never a body) and, while `gate` is
 * unresolved, holds its first APPEND: popsync then receives ahead as far as it lets itself.
 */
class GatedSink {
  readonly copies = new Map<string, string[]>();
  /** Wire bytes of the replies whose messages this destination has taken. */
  taken = 0;
  private next = 1;
  constructor(
    private readonly gate: Promise<void>,
    private readonly wireOf: (messageId: string) => number,
  ) {}

  sink(): ImapSink {
    const status = (path: string): FolderStatus => ({ path, uidValidity: 7n, uidNext: this.next, messages: 0 });
    return {
      capabilities: new Set(['UIDPLUS']),
      ensureFolder: async (path) => status(path),
      status: async (path) => status(path),
      appendBatch: async (_path, items, onOutcome) => {
        await this.gate;
        const out: AppendOutcome[] = [];
        for (const [i, it] of items.entries()) {
          const h = createHash('sha256');
          // The head's first bytes, whatever the chunks: over TLS the head may come in pieces.
          let head = '';
          const take = (c: Buffer): void => {
            if (head.length < 200) head += c.toString('latin1', 0, 200 - head.length);
            h.update(c);
          };
          if (isFileBody(it.body)) {
            for await (const c of createReadStream(it.body.file)) take(c as Buffer);
          } else {
            for (const c of memoryChunks(it.body)) take(c);
          }
          const id = /^Message-ID: (<[^>]*>)/.exec(head)?.[1] ?? '?';
          this.copies.set(id, [...(this.copies.get(id) ?? []), h.digest('hex')]);
          this.taken += this.wireOf(id);
          const o: AppendOutcome = { ok: true, uid: this.next++, uidValidity: 7n };
          out.push(o);
          onOutcome?.(i, o);
        }
        return out;
      },
      listSince: async () => [],
      fetchBody: async () => Buffer.alloc(0),
      scanHeaders: async (path) => ({ uidValidity: 7n, path }),
      readBodies: async () => undefined,
      close: async () => undefined,
    };
  }
}

function options(server: FloodPop3, sink: GatedSink, extra: Partial<EngineOptions> = {}): EngineOptions {
  return {
    command: 'migrate',
    account: 'alice@flood.test',
    destination: 'alice@imap.test',
    journal,
    openSource: () => connectPop3(server.clientOptions()),
    openSink: async () => sink.sink(),
    route: engineRouter(compileRouting({ rules: [], defaultFolder: 'INBOX', flags: [], seen: [], arrivalDate: true })),
    logger: silentLogger,
    retry: { maxAttempts: 5, baseDelayMs: 1, maxDelayMs: 1 },
    sleep: async () => undefined,
    ...extra,
  };
}

/**
 * Resolves once popsync has taken nothing more off its sockets for `quietPolls` looks in a row.
 * Only when the gate opens depends on it: opened early on a loaded machine, a test sees less
 * held than it could, never more.
 */
async function stoppedReading(read: () => number, quietPolls = 20): Promise<void> {
  let last = -1;
  for (let quiet = 0, polls = 0; quiet < quietPolls && polls < 2000; polls++) {
    await new Promise((r) => setTimeout(r, 50));
    const now = read();
    quiet = now === last ? quiet + 1 : 0;
    last = now;
  }
}

const COUNT = 600;
const SIZE = 480 * KIB;
const BATCH = 2 * MIB;
/** engine/receive-ahead.ts's HELD_BATCHES batch caps, each plus the message closing it; the client's read-ahead. */
const boundFor = (size: number): number =>
  HELD_BATCHES * (BATCH + size) + RETR_READ_AHEAD_BYTES + SOCKET_READ + LISTING_SLACK;
const BOUND = boundFor(SIZE);
/** Bytes of every RETR reply of the mailbox, once each. */
const allWire = (server: FloodPop3, count = COUNT): number =>
  Array.from({ length: count }, (_, i) => server.wireBytes(i + 1)).reduce((a, b) => a + b, 0);
const mib = (n: number): string => `${(n / MIB).toFixed(1)} MiB`;

/**
 * Runs the engine against `server` with its first APPEND held until popsync stopped reading;
 * `atGate` looks at the process then, before the gate opens.
 */
async function floodRun<T = undefined>(
  server: FloodPop3,
  extra: Partial<EngineOptions>,
  count = COUNT,
  atGate?: () => T,
) {
  const watch = watchSockets(server.port);
  let open: () => void = () => undefined;
  const gate = new Promise<void>((r) => {
    open = r;
  });
  const ids = new Map<string, number>();
  for (let n = 1; n <= count; n++) ids.set(server.messageId(n), n);
  const sink = new GatedSink(gate, (id) => server.wireBytes(ids.get(id) ?? 0));
  let peak = 0;
  const held = (): number => watch.read() - sink.taken;
  const sample = setInterval(() => {
    peak = Math.max(peak, held());
  }, 5);
  try {
    const run = runEngine(options(server, sink, { batchBytes: BATCH, ...extra }));
    run.catch(() => undefined);
    await stoppedReading(watch.read);
    const heldWhileGated = held();
    const gated = atGate?.();
    open();
    const result = await run;
    peak = Math.max(peak, held(), heldWhileGated);
    return { result, sink, heldWhileGated, gated, peak, read: watch.read(), sockets: watch.sockets.length };
  } finally {
    clearInterval(sample);
    watch.stop();
  }
}

describe('a POP3 server that answers every RETR written ahead at once, with big bodies', () => {
  for (const [name, batchMessages] of [
    ['a batch of 100 RETRs ahead (the default)', undefined],
    ['512 RETRs ahead (--batch-messages 1000: the pipelining window is the limit)', 1000],
  ] as const) {
    it(`${name}: popsync holds within its bound while the server sends 280 MB, each message copied once`, async () => {
      pop = await startFloodPop3({ count: COUNT, size: SIZE });
      const server = pop;
      const r = await floodRun(server, batchMessages === undefined ? {} : { batchMessages });
      console.log(
        `${name}: held while the destination waited ${mib(r.heldWhileGated)}, peak ${mib(r.peak)} (bound ` +
          `${mib(BOUND)}); popsync read ${mib(r.read)}; the server had ${server.mostQueued} commands queued at most ` +
          `and stopped reading ${server.stalls} times on a full socket`,
      );
      expect(r.result.failed).toEqual([]);
      expect(r.result.copied).toBe(COUNT);
      expect(r.result.reconnects).toBe(0);
      expect(r.read).toBeGreaterThanOrEqual(allWire(server));
      // The server blocked on its socket with commands unanswered, and popsync read on regardless.
      expect(server.stalls).toBeGreaterThan(0);
      // Hundreds of commands unanswered at once (most of a window: the head start and the
      // receiver's top-ups may split it).
      expect(server.mostQueued).toBeGreaterThanOrEqual((Math.min(batchMessages ?? 100, 512) * 3) / 4);
      expect(r.heldWhileGated).toBeLessThanOrEqual(BOUND);
      expect(r.peak).toBeLessThanOrEqual(BOUND);
      for (let n = 1; n <= COUNT; n++)
        expect(r.sink.copies.get(server.messageId(n)), `message ${n}`).toEqual([server.digest(n)]);
    });
  }

  it('a server that lists 1 KB and sends 50 MB, 512 RETRs ahead: popsync stops at the ceiling', async () => {
    // 15 arrives while the destination holds its first batches, 250 while it takes them.
    const liars = new Set([15, 250]);
    const LIE = 1024;
    pop = await startFloodPop3({
      count: COUNT,
      size: SIZE,
      listed: (n, real) => (liars.has(n) ? LIE : real),
      sent: (n, real) => (liars.has(n) ? 50 * MIB : real),
    });
    const server = pop;
    const r = await floodRun(server, { batchMessages: 1000 });
    const copiedWire = [...Array(COUNT).keys()]
      .map((i) => i + 1)
      .filter((n) => !liars.has(n))
      .reduce((a, n) => a + server.wireBytes(n), 0);
    // Each liar ends one connection: what was received on it and not yet stored is received again.
    const wasteBound = liars.size * (BOUND + messageCeiling(LIE));
    console.log(
      `liars: popsync read ${mib(r.read)} over ${r.sockets} connections, ${mib(r.read - copiedWire)} more than the ` +
        `messages it copied (bound ${mib(wasteBound)}); held while the destination waited ${mib(r.heldWhileGated)}`,
    );
    expect(r.result.copied).toBe(COUNT - liars.size);
    expect(r.result.failed.map((f) => f.uidl).sort()).toEqual(['flood-15', 'flood-250']);
    for (const f of r.result.failed) expect(f.reason).toMatch(/set aside: .*sent more than/);
    expect(r.sockets).toBe(liars.size + 1);
    expect(r.heldWhileGated).toBeLessThanOrEqual(BOUND);
    expect(r.read - copiedWire).toBeLessThanOrEqual(wasteBound);
    for (let n = 1; n <= COUNT; n++)
      expect(r.sink.copies.get(server.messageId(n)), `message ${n}`).toEqual(
        liars.has(n) ? undefined : [server.digest(n)],
      );
  });
});

describe('the same flood over pop3s (TLS from the first byte)', () => {
  // Lighter than the plain cases, and sized so that the session's read-ahead bound is what holds:
  // a body of RETR_STREAM_CHUNKS chunks or more pauses the socket by itself, and a TLS socket's
  // pieces can be as small as one record (16 KiB; 64 KiB read into arenas, net/read-arena.ts).
  // Bodies of 160 KiB end below that either way: without the bound popsync holds every reply
  // written ahead (all 50 MiB).
  const count = 320;
  const size = 160 * KIB;

  it('512 RETRs ahead of 320 messages of 160 KiB: popsync holds within its bound, each copied once', async () => {
    pop = await startFloodPop3({ count, size, tls: generateTestCertificate() });
    const server = pop;
    const r = await floodRun(server, { batchMessages: 1000 }, count);
    const bound = boundFor(size);
    console.log(
      `pop3s: held while the destination waited ${mib(r.heldWhileGated)}, peak ${mib(r.peak)} (bound ${mib(bound)}); ` +
        `popsync read ${mib(r.read)} of plaintext; the server had ${server.mostQueued} commands queued at most ` +
        `and stopped reading ${server.stalls} times on a full socket`,
    );
    expect(r.sockets).toBe(1);
    expect(r.result.failed).toEqual([]);
    expect(r.result.copied).toBe(count);
    expect(r.read).toBeGreaterThanOrEqual(allWire(server, count));
    expect(server.stalls).toBeGreaterThan(0);
    expect(server.mostQueued).toBeGreaterThanOrEqual((count * 3) / 4);
    expect(r.heldWhileGated).toBeLessThanOrEqual(bound);
    expect(r.peak).toBeLessThanOrEqual(bound);
    for (let n = 1; n <= count; n++)
      expect(r.sink.copies.get(server.messageId(n)), `message ${n}`).toEqual([server.digest(n)]);
  });
});

/** V8's full gc(), got at run time as engine/scavenge.ts gets its scavenge; the flag put back. */
function fullGc(): () => void {
  setFlagsFromString('--expose-gc');
  try {
    return runInNewContext('gc') as () => void;
  } finally {
    setFlagsFromString('--no-expose-gc');
  }
}

describe('a POP3 server that lists messages far larger than it sends them', () => {
  // A message listed past the spill threshold is collected from the socket's chunks, not copied
  // into slabs (engine/received.ts): one that then ends in memory must not keep those chunks, each
  // a view of a 64 KiB read arena (net/read-arena.ts) that also carried its neighbours, which were
  // copied into slabs and counted there. Every other message here is such a liar, and each pair
  // of messages is one read arena on the wire: kept as they arrived, each liar held a whole arena
  // for some 300 bytes counted, and popsync held its batches twice over.
  const count = 1600;
  const LIE = 50 * MIB;
  const liar = (n: number): boolean => n % 2 === 1;

  it('every other message listed at 50 MB, sent in 300 bytes: popsync holds what it received, once', async () => {
    pop = await startFloodPop3({
      count,
      size: 65_200,
      listed: (n, real) => (liar(n) ? LIE : real),
      sent: (n, real) => (liar(n) ? 300 : real),
    });
    const server = pop;
    const gc = fullGc();
    // Twice: V8 frees the memory of the ArrayBuffers a full GC found dead on a background thread
    // (its array buffer sweeper), and arrayBuffers counts them until then; the next GC finishes
    // that sweep first. Read after one, on a loaded machine it counted up to the last 8 MiB of
    // dead socket reads (engine/scavenge.ts) as alive: 31.3 or 28.6 MiB where the second GC
    // found 25.4 (3 of 8 runs beside three busy loops), so this failed without popsync holding
    // anything more.
    const liveBuffers = (): number => {
      gc();
      gc();
      return process.memoryUsage().arrayBuffers;
    };
    const before = liveBuffers();
    const r = await floodRun(server, { batchBytes: DEFAULT_BATCH_BYTES }, count, liveBuffers);
    // All the process's Buffers, those alive before included: whatever an earlier test left can
    // only make this fail, never pass.
    const held = r.gated!;
    // What popsync received and the destination has not taken, held once: plus the last slab of
    // each batch held, partly filled, and the read arena being filled.
    const slack = 16 * SLAB_BYTES;
    const bound = HELD_BATCHES * (DEFAULT_BATCH_BYTES + DEFAULT_SPILL_BYTES) + RETR_READ_AHEAD_BYTES + slack;
    console.log(
      `overstated sizes: Buffers alive while the destination waited ${mib(held)} (${mib(before)} before the ` +
        `run), received and not stored ` +
        `${mib(r.heldWhileGated)} (pairs of ${server.wireBytes(1) + server.wireBytes(2)} bytes on the wire); ` +
        `bound ${mib(bound)}`,
    );
    expect(r.result.failed).toEqual([]);
    expect(r.result.copied).toBe(count);
    expect(r.result.reconnects).toBe(0);
    expect(held).toBeLessThanOrEqual(r.heldWhileGated + slack);
    expect(held).toBeLessThanOrEqual(bound);
    for (let n = 1; n <= count; n++)
      expect(r.sink.copies.get(server.messageId(n)), `message ${n}`).toEqual([server.digest(n)]);
  });
});
