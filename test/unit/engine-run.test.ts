/**
 * Engine behaviour over in-memory source and destination (no sockets): what it decides when
 * a connection drops between APPEND and its answer, when a message is refused, when the
 * source has identical messages. The same paths run against real Dovecot in test/e2e.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { PopsyncError } from '../../src/errors.js';
import { HELD_MESSAGE_FLOOR } from '../../src/engine/receive-ahead.js';
import { SlabPool } from '../../src/engine/slabs.js';
import { previewRun } from '../../src/engine/preview.js';
import { runEngine, type EngineOptions } from '../../src/engine/run.js';
import { bodySize, isFileBody, memoryChunks } from '../../src/imap/body.js';
import type { AppendOutcome, AppendRequest, DestinationMessage, FolderStatus, ImapSink } from '../../src/imap/types.js';
import { Journal } from '../../src/journal/journal.js';
import { silentLogger } from '../../src/log.js';
import { headerBlockEnd, messageIdOf, parseHeaders } from '../../src/mapping/headers.js';
import { compileRouting, engineRouter } from '../../src/mapping/rules.js';
import { RetrBody } from '../../src/pop3/retr-body.js';
import type { Pop3Session } from '../../src/pop3/types.js';
import { buildPlanReport } from '../../src/report/plan-report.js';

const msg = (i: number, extra = '') =>
  Buffer.from(`Message-ID: <m${i}@test>\r\nSubject: ${i}\r\n\r\nbody ${i}${extra}\r\n`);

class MemorySource {
  /** When set, the order in which RETRs were issued, interleaved with the destination's events. */
  events: string[] | null = null;
  failRetrOnce = new Map<number, 'drop' | 'refuse'>();
  /** Messages whose every RETR drops the connection. */
  alwaysDrop = new Set<number>();
  /** What LIST claims for message n (default: its real size). */
  listSize: ((n: number, real: number) => number) | null = null;
  retrCount = 0;
  /** RETRs written and not yet answered, and the most there were at once (pipelining). */
  private retrsInFlight = 0;
  maxRetrsInFlight = 0;
  /** RETRs per message number. */
  retrs = new Map<number, number>();
  /** false: UIDL answers -ERR (a server without UIDL). */
  uidlSupported = true;
  /** Messages whose TOP answers -ERR (RETR still serves them). */
  refuseTop: (body: Buffer) => boolean = () => false;
  constructor(public messages: Array<{ uidl: string; body: Buffer }>) {}
  session(): Pop3Session {
    const dead = { v: false };
    const check = () => {
      if (dead.v) throw new PopsyncError('connection', 'connection closed');
    };
    const retr = async (n: number): Promise<Buffer> => {
      check();
      this.retrCount++;
      this.retrs.set(n, (this.retrs.get(n) ?? 0) + 1);
      this.events?.push(`retr ${n}`);
      if (this.alwaysDrop.has(n)) {
        dead.v = true;
        throw new PopsyncError('connection', 'POP3 server closed the connection');
      }
      const f = this.failRetrOnce.get(n);
      if (f) {
        this.failRetrOnce.delete(n);
        if (f === 'drop') {
          dead.v = true;
          throw new PopsyncError('connection', 'connection lost during RETR');
        }
        throw new PopsyncError('server', 'no such message', { serverResponse: '-ERR no such message' });
      }
      return this.messages[n - 1]!.body;
    };
    return {
      greeting: '+OK',
      capabilities: new Map(),
      pipelining: false,
      stat: async () => ({ count: this.messages.length, size: 0 }),
      list: async () => {
        check();
        return this.messages.map((m, i) => ({
          n: i + 1,
          size: this.listSize ? this.listSize(i + 1, m.body.length) : m.body.length,
        }));
      },
      uidl: async () => {
        check();
        if (!this.uidlSupported) throw new PopsyncError('server', 'UIDL refused', { serverResponse: '-ERR' });
        return this.messages.map((m, i) => ({ n: i + 1, uidl: m.uidl }));
      },
      // The whole message: the header hash reads only the header block, as from a real TOP n 0.
      top: async (n: number) => {
        check();
        const body = this.messages[n - 1]!.body;
        if (this.refuseTop(body)) throw new PopsyncError('server', 'TOP refused', { serverResponse: '-ERR' });
        return body;
      },
      retr,
      // The engine reads bodies as streams; these carry exactly what retr() would answer, a tick
      // later (a socket's bytes never come in the microtask that asked for them): several tests
      // script a destination that answers before the next batch is received.
      retrStream: (n: number) => {
        const out = new RetrBody(() => undefined);
        this.maxRetrsInFlight = Math.max(this.maxRetrsInFlight, ++this.retrsInFlight);
        retr(n).then(
          (b) => {
            this.retrsInFlight--;
            process.nextTick(() => {
              out.push(b);
              out.end();
            });
          },
          (e: Error) => {
            this.retrsInFlight--;
            out.fail(e);
          },
        );
        return out;
      },
      dele: async () => undefined,
      rset: async () => undefined,
      noop: async () => undefined,
      quit: async () => undefined,
      leave: () => undefined,
      destroy: () => {
        dead.v = true;
      },
    };
  }
}

class MemoryDestination {
  folders = new Map<
    string,
    { uidValidity: bigint; next: number; msgs: Array<{ uid: number; body: Buffer; flags: string[] }> }
  >();
  /** Store the Nth append (1-based, counted across the destination's life) and then drop before answering. */
  dropAfterStoring = new Set<number>();
  /** Drop before storing the Nth append: its intent is journaled, it was never sent. */
  dropBeforeStoring = new Set<number>();
  refuse = new Set<number>();
  appends = 0;
  /** false: a server without UIDPLUS (APPEND answers no UID). */
  uidplus = true;
  /** What the server does to a message when storing it (Dovecot: bare LF -> CRLF, NUL -> 0x80). */
  rewrite: (body: Buffer) => Buffer = (b) => b;
  bodyFetches = 0;
  /** readBodies calls: each is a round trip on a real server, however many bodies it reads. */
  bodyReads = 0;
  /** Courier: an empty folder gets a new UIDVALIDITY at every look, and at the APPEND that fills it. */
  flappingWhileEmpty = false;
  events: string[] | null = null;
  /** Per appendBatch call, the sizes of its messages and whether each came as a file. */
  batches: Array<Array<{ size: number; file: boolean }>> = [];

  sink(): ImapSink {
    let dead = false;
    const check = () => {
      if (dead) throw new PopsyncError('connection', 'IMAP connection closed');
    };
    const folder = (path: string) => {
      const f = this.folders.get(path);
      if (!f) throw new Error(`no folder ${path}`);
      return f;
    };
    const status = (path: string): FolderStatus => {
      const f = folder(path);
      if (this.flappingWhileEmpty && f.msgs.length === 0) f.uidValidity++;
      return { path, uidValidity: f.uidValidity, uidNext: f.next };
    };
    return {
      capabilities: new Set(this.uidplus ? ['UIDPLUS'] : []),
      ensureFolder: async (path) => {
        check();
        if (!this.folders.has(path)) this.folders.set(path, { uidValidity: 777n, next: 1, msgs: [] });
        return status(path);
      },
      status: async (path) => {
        check();
        if (!this.folders.has(path)) throw new PopsyncError('server', `IMAP folder "${path}" does not exist`);
        return status(path);
      },
      appendBatch: async (path, items: AppendRequest[], onOutcome) => {
        this.events?.push('append start');
        this.batches.push(
          items.map((it) => ({
            size: bodySize(it.body),
            file: isFileBody(it.body),
          })),
        );
        // A real server takes time: long enough for the engine to be fetching the next batch.
        if (this.events) await new Promise((r) => setTimeout(r, 10));
        const out: AppendOutcome[] = [];
        for (const [i, it] of items.entries()) {
          check();
          const k = ++this.appends;
          if (this.dropBeforeStoring.has(k)) {
            dead = true;
            throw new PopsyncError('connection', 'IMAP connection lost before the APPEND was sent');
          }
          let o: AppendOutcome;
          if (this.refuse.has(k)) {
            o = {
              ok: false,
              error: new PopsyncError('message', 'message too large', {
                serverResponse: 'NO [LIMIT] Mail size is too large',
              }),
            };
          } else {
            const f = folder(path);
            if (this.flappingWhileEmpty && f.msgs.length === 0) f.uidValidity++;
            const uid = f.next++;
            f.msgs.push({
              uid,
              body: this.rewrite(
                isFileBody(it.body)
                  ? readFileSync(it.body.file)
                  : Buffer.concat(memoryChunks(it.body), bodySize(it.body)),
              ),
              flags: it.flags,
            });
            if (this.dropAfterStoring.has(k)) {
              dead = true;
              throw new PopsyncError('connection', 'IMAP connection lost before the tagged OK');
            }
            o = this.uidplus
              ? { ok: true, uid, uidValidity: f.uidValidity }
              : { ok: true, uid: null, uidValidity: null };
          }
          out.push(o);
          onOutcome?.(i, o);
        }
        this.events?.push('append end');
        return out;
      },
      listSince: async (path, since, below = Infinity): Promise<DestinationMessage[]> => {
        check();
        return folder(path)
          .msgs.filter((m) => m.uid >= since && m.uid < below)
          .map((m) => ({ uid: m.uid, size: m.body.length, messageId: messageIdOf(parseHeaders(m.body)) }));
      },
      fetchBody: async (path, uid) => {
        check();
        this.bodyFetches++;
        return folder(path).msgs.find((m) => m.uid === uid)!.body;
      },
      scanHeaders: async (path, which, each) => {
        check();
        const f = this.folders.get(path);
        if (!f) return null;
        for (const m of f.msgs) {
          if ('uids' in which ? !which.uids.includes(m.uid) : m.uid < which.since) continue;
          each({ uid: m.uid, size: m.body.length, header: m.body.subarray(0, headerBlockEnd(m.body)) });
        }
        return { uidValidity: f.uidValidity };
      },
      readBodies: async (path, uids, reader) => {
        check();
        this.bodyReads++;
        for (const { uid } of uids) {
          const m = folder(path).msgs.find((x) => x.uid === uid);
          if (!m) continue;
          this.bodyFetches++;
          reader.chunk(uid, m.body);
          reader.end(uid);
        }
      },
      close: async () => {
        dead = true;
      },
    };
  }

  bodies(path = 'INBOX'): string[] {
    return (this.folders.get(path)?.msgs ?? []).map((m) => m.body.toString());
  }
}

let dir: string;
let journal: Journal;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'popsync-engine-'));
  journal = Journal.open(join(dir, 'j.sqlite'), { source: 'alice@pop.test:110' });
});
afterEach(() => {
  journal.close();
  rmSync(dir, { recursive: true, force: true });
});

function options(src: MemorySource, dst: MemoryDestination, extra: Partial<EngineOptions> = {}): EngineOptions {
  return {
    command: 'migrate',
    account: 'alice@pop.test:110',
    destination: 'alice@imap.test:143',
    journal,
    openSource: async () => src.session(),
    openSink: async () => dst.sink(),
    // The production router with no rules: what `--folder INBOX` resolves to.
    route: engineRouter(compileRouting({ rules: [], defaultFolder: 'INBOX', flags: [], seen: [], arrivalDate: true })),
    logger: silentLogger,
    batchMessages: 3,
    retry: { maxAttempts: 3, baseDelayMs: 1, maxDelayMs: 1 },
    sleep: async () => undefined,
    ...extra,
  };
}

describe('engine', () => {
  it('copies every message once and a second run copies nothing', async () => {
    const src = new MemorySource([1, 2, 3, 4, 5].map((i) => ({ uidl: `u${i}`, body: msg(i) })));
    const dst = new MemoryDestination();
    const r1 = await runEngine(options(src, dst));
    expect(r1.copied).toBe(5);
    expect(dst.bodies()).toEqual([1, 2, 3, 4, 5].map((i) => msg(i).toString()));
    const retrBefore = src.retrCount;
    const r2 = await runEngine(options(src, dst));
    expect(r2.copied).toBe(0);
    expect(r2.alreadyCopied).toBe(5);
    expect(src.retrCount).toBe(retrBefore); // no RETR for known messages
    expect(dst.bodies()).toHaveLength(5);
  });

  it('announces the source before the destination: they connect side by side, the source awaited first', async () => {
    const src = new MemorySource([1, 2].map((i) => ({ uidl: `u${i}`, body: msg(i) })));
    const dst = new MemoryDestination();
    const phases: string[] = [];
    await runEngine(
      options(src, dst, { progress: (e) => (e.type === 'phase' ? phases.push(`${e.phase} ${e.detail ?? ''}`) : 0) }),
    );
    expect(phases.slice(0, 3)).toEqual([
      'connect-source alice@pop.test:110',
      'connect-destination alice@imap.test:143',
      'listing ',
    ]);
  });

  it("reads the journal's rows while the source is still answering the listing (a sync with nothing new)", async () => {
    const src = new MemorySource([1, 2, 3].map((i) => ({ uidl: `u${i}`, body: msg(i) })));
    const dst = new MemoryDestination();
    await runEngine(options(src, dst));
    const events: string[] = [];
    const read = journal.indexByUidl;
    Object.assign(journal, {
      indexByUidl: (account: string) => {
        events.push('rows read');
        return read(account);
      },
    });
    const session = src.session.bind(src);
    src.session = () => {
      const s = session();
      return {
        ...s,
        uidl: async () => {
          events.push('UIDL asked');
          // A server's listing takes a while (Dovecot: ~50 ms for 20,000 before the first byte).
          await new Promise((resolve) => setTimeout(resolve, 20));
          events.push('UIDL answered');
          return s.uidl();
        },
      };
    };
    const r = await runEngine(options(src, dst, { command: 'sync', lazyDestination: true }));
    expect(r.alreadyCopied).toBe(3);
    expect(events).toEqual(['UIDL asked', 'rows read', 'UIDL answered']);
  });

  it('a failed early read of the rows is read again; a journal that cannot be read is a journal error', async () => {
    const src = new MemorySource([1, 2].map((i) => ({ uidl: `u${i}`, body: msg(i) })));
    const dst = new MemoryDestination();
    await runEngine(options(src, dst));
    const read = journal.indexByUidl;
    let failures = 1;
    Object.assign(journal, {
      indexByUidl: (account: string) => {
        if (failures-- > 0)
          throw new PopsyncError('journal', 'journal j.sqlite: disk I/O error while reading messages');
        return read(account);
      },
    });
    expect((await runEngine(options(src, dst))).alreadyCopied).toBe(2);
    failures = 2;
    let opened = 0;
    const counting = {
      ...options(src, dst),
      openSource: async () => {
        opened++;
        return src.session();
      },
    };
    await expect(runEngine(counting)).rejects.toMatchObject({ kind: 'journal' });
    expect(opened).toBe(1);
  });

  it('finds a copy the server stored before the connection dropped, instead of appending it again', async () => {
    const src = new MemorySource([1, 2, 3, 4].map((i) => ({ uidl: `u${i}`, body: msg(i) })));
    const dst = new MemoryDestination();
    dst.dropAfterStoring.add(2);
    const r = await runEngine(options(src, dst));
    expect(r.reconnects).toBe(1);
    expect(r.reconciled).toBe(1);
    expect(r.copied).toBe(3);
    expect(dst.bodies()).toEqual([1, 2, 3, 4].map((i) => msg(i).toString()));
    expect(journal.counts('alice@pop.test:110')).toEqual({ done: 4, appending: 0, failed: 0 });
  });

  it('delivers identical source messages twice even when one copy is settled by reconciliation', async () => {
    const same = msg(9);
    const src = new MemorySource([
      { uidl: 'a', body: same },
      { uidl: 'b', body: same },
      { uidl: 'c', body: same },
    ]);
    const dst = new MemoryDestination();
    dst.dropAfterStoring.add(2);
    await runEngine(options(src, dst));
    expect(dst.bodies()).toEqual([same.toString(), same.toString(), same.toString()]);
    await runEngine(options(src, dst));
    expect(dst.bodies()).toHaveLength(3);
  });

  it('reports a refused message with the server text, copies the rest, and retries it next run', async () => {
    const src = new MemorySource([1, 2, 3].map((i) => ({ uidl: `u${i}`, body: msg(i) })));
    const dst = new MemoryDestination();
    dst.refuse.add(2);
    const r = await runEngine(options(src, dst));
    expect(r.copied).toBe(2);
    expect(r.failed).toEqual([
      expect.objectContaining({
        uidl: 'u2',
        n: 2,
        folder: 'INBOX',
        serverResponse: 'NO [LIMIT] Mail size is too large',
      }),
    ]);
    expect(journal.get('alice@pop.test:110', 'u2')?.state).toBe('failed');
    const r2 = await runEngine(options(src, dst));
    expect(r2.copied).toBe(1);
    expect(r2.failed).toEqual([]);
    expect(dst.bodies()).toHaveLength(3);
  });

  it('fails one message on a RETR -ERR and goes on', async () => {
    const src = new MemorySource([1, 2, 3].map((i) => ({ uidl: `u${i}`, body: msg(i) })));
    src.failRetrOnce.set(2, 'refuse');
    const r = await runEngine(options(src, new MemoryDestination()));
    expect(r.copied).toBe(2);
    expect(r.failed.map((f) => [f.uidl, f.serverResponse])).toEqual([['u2', '-ERR no such message']]);
  });

  it('reconnects after a POP3 drop mid-batch and still copies everything once', async () => {
    const src = new MemorySource([1, 2, 3, 4, 5, 6, 7].map((i) => ({ uidl: `u${i}`, body: msg(i) })));
    src.failRetrOnce.set(5, 'drop');
    const dst = new MemoryDestination();
    const r = await runEngine(options(src, dst));
    expect(r.reconnects).toBe(1);
    expect(dst.bodies()).toEqual([1, 2, 3, 4, 5, 6, 7].map((i) => msg(i).toString()));
  });

  it('gives up with a connection error after the retry budget', async () => {
    const src = new MemorySource([{ uidl: 'u1', body: msg(1) }]);
    const dst = new MemoryDestination();
    for (let k = 1; k <= 10; k++) dst.dropAfterStoring.add(k);
    // Every pass stores the message and drops, but reconciliation then settles it: progress, so no give-up.
    const r = await runEngine(options(src, dst));
    expect(dst.bodies()).toHaveLength(1);
    expect(r.reconciled).toBe(1);

    const src2 = new MemorySource([{ uidl: 'u1', body: msg(1) }]);
    const failing = {
      ...options(src2, dst),
      openSource: async () => Promise.reject(new PopsyncError('connection', 'connect ECONNREFUSED')),
    };
    await expect(runEngine(failing)).rejects.toMatchObject({ kind: 'connection' });
  });

  it(
    'reports a first connection that never worked at once, on either side, and retries only links that ' + 'had worked',
    async () => {
      const refused = () => Promise.reject(new PopsyncError('connection', 'connect ECONNREFUSED 127.0.0.1:1'));
      let opens = 0;
      const src = new MemorySource([{ uidl: 'u1', body: msg(1) }]);
      const dst = new MemoryDestination();
      const noSource = {
        ...options(src, dst),
        openSource: () => {
          opens++;
          return refused();
        },
      };
      await expect(runEngine(noSource)).rejects.toMatchObject({ kind: 'connection' });
      expect(opens).toBe(1);

      opens = 0;
      const noSink = {
        ...options(src, dst),
        openSink: () => {
          opens++;
          return refused();
        },
      };
      await expect(runEngine(noSink)).rejects.toMatchObject({ kind: 'connection' });
      expect(opens).toBe(1);
      expect(dst.bodies()).toHaveLength(0);

      // The same refusal after the destination had answered once is a lost link: reconnect.
      opens = 0;
      const flaky = { ...options(src, dst), openSink: async () => (++opens === 2 ? refused() : dst.sink()) };
      dst.dropAfterStoring.add(1);
      const r = await runEngine(flaky);
      expect(opens).toBe(3);
      expect(r.reconnects).toBe(2);
      expect(dst.bodies()).toHaveLength(1);
    },
  );

  it(
    'stops with a server fault (exit 4 class) when the destination hands out a UID that already holds an ' +
      'earlier copy',
    async () => {
      const src = new MemorySource([1, 2].map((i) => ({ uidl: `u${i}`, body: msg(i) })));
      const dst = new MemoryDestination();
      await runEngine(options(src, dst));
      // The server forgets its UIDs (a restored or broken store): the next APPEND gets UID 1 again.
      dst.folders.get('INBOX')!.next = 1;
      src.messages.push({ uidl: 'u3', body: msg(3) });
      const err = await runEngine(options(src, dst)).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(PopsyncError);
      expect(err).toMatchObject({
        kind: 'protocol',
        message: expect.stringMatching(
          /gave UID 1 in "INBOX" to a new message, but that UID already holds the copy of UIDL u1/,
        ),
      });
      expect(journal.get('alice@pop.test:110', 'u1')).toMatchObject({ state: 'done', destUid: 1 });
    },
  );

  it('fetches the next batch while the current one is being appended, and still copies in order', async () => {
    const src = new MemorySource([1, 2, 3, 4, 5, 6].map((i) => ({ uidl: `u${i}`, body: msg(i) })));
    const dst = new MemoryDestination();
    const events: string[] = [];
    src.events = events;
    dst.events = events;
    await runEngine(options(src, dst, { batchMessages: 2 }));
    // Batch 2 (messages 3, 4) is requested before batch 1's APPENDs finish.
    expect(events.indexOf('retr 3')).toBeLessThan(events.indexOf('append end'));
    expect(events.indexOf('retr 5')).toBeLessThan(events.lastIndexOf('append start'));
    expect(dst.bodies()).toEqual([1, 2, 3, 4, 5, 6].map((i) => msg(i).toString()));
  });

  it('asks for the one destination folder before receiving starts: its STATUS goes with the first batch', async () => {
    const src = new MemorySource([1, 2, 3, 4].map((i) => ({ uidl: `u${i}`, body: msg(i) })));
    const dst = new MemoryDestination();
    const events: string[] = [];
    src.events = events;
    dst.events = events;
    const sink = dst.sink();
    const ensure = sink.ensureFolder;
    sink.ensureFolder = (path) => {
      events.push(`folder ${path}`);
      return ensure(path);
    };
    await runEngine(options(src, dst, { batchMessages: 2, openSink: async () => sink, onlyFolder: () => 'INBOX' }));
    expect(events.filter((e) => e.startsWith('folder'))).toEqual(['folder INBOX']);
    expect(events.indexOf('folder INBOX')).toBeLessThan(events.indexOf('retr 1'));
    expect(dst.bodies()).toEqual([1, 2, 3, 4].map((i) => msg(i).toString()));
  });

  it('receives further batches while the APPEND window is full, within the byte bound', async () => {
    const src = new MemorySource(Array.from({ length: 12 }, (_, i) => ({ uidl: `u${i + 1}`, body: msg(i + 1) })));
    const dst = new MemoryDestination();
    const events: string[] = [];
    src.events = events;
    dst.events = events;
    await runEngine(options(src, dst, { batchMessages: 2 }));
    // Six batches of a few bytes: all received (and so all RETRs written) while the first two
    // are appended; one batch ahead of the window, the last RETR came after the first reply.
    expect(events.indexOf('retr 12')).toBeGreaterThan(-1);
    expect(events.indexOf('retr 12')).toBeLessThan(events.indexOf('append end'));
    expect(events.slice(0, events.indexOf('append end')).filter((e) => e === 'append start')).toHaveLength(2);
    expect(dst.bodies()).toEqual(Array.from({ length: 12 }, (_, i) => msg(i + 1).toString()));
  });

  /** Records each intent step ('intent u5': the batch starting at u5) among the servers' events. */
  function traceIntents(events: string[], onIntent: (first: string) => void = () => undefined): void {
    const begin = journal.beginAppend;
    (journal as { beginAppend: typeof begin }).beginAppend = (account, rows) => {
      events.push(`intent ${rows[0]!.uidl}`);
      begin(account, rows);
      onIntent(rows[0]!.uidl);
    };
  }

  it("journals the next batch's intent while the window is full, and writes it once a reply frees it", async () => {
    const src = new MemorySource(Array.from({ length: 8 }, (_, i) => ({ uidl: `u${i + 1}`, body: msg(i + 1) })));
    const dst = new MemoryDestination();
    const events: string[] = [];
    src.events = events;
    dst.events = events;
    traceIntents(events);
    await runEngine(options(src, dst, { batchMessages: 2 }));
    // Batches 1 and 2 fill the window; batch 3 is routed and journaled before batch 1's reply,
    // and its APPEND written only after it.
    const firstReply = events.indexOf('append end');
    expect(events.indexOf('intent u5')).toBeGreaterThan(-1);
    expect(events.indexOf('intent u5')).toBeLessThan(firstReply);
    expect(events.slice(0, firstReply).filter((e) => e === 'append start')).toHaveLength(2);
    expect(events.slice(0, firstReply).filter((e) => e.startsWith('intent'))).toHaveLength(3);
    expect(dst.bodies()).toEqual(Array.from({ length: 8 }, (_, i) => msg(i + 1).toString()));
  });

  it("never gives a failed batch's memory back for reuse: a write of it may still be queued", async () => {
    // Every slab given back is overwritten at once, as if the next batch had reused it (the e2e
    // slab-reuse test does the same): a body read after its memory was given back shows it.
    const give = SlabPool.prototype.give;
    SlabPool.prototype.give = function (this: SlabPool, slabs: readonly Buffer[]) {
      for (const s of slabs) s.fill(0x21);
      give.call(this, slabs);
    };
    try {
      const src = new MemorySource([1, 2, 3, 4].map((i) => ({ uidl: `u${i}`, body: msg(i) })));
      const dst = new MemoryDestination();
      const sink = dst.sink();
      const append = sink.appendBatch;
      // Each batch's bytes as handed over: for batch 2, what a socket still holding them would
      // send after its failure.
      const handed: Buffer[][] = [];
      sink.appendBatch = async (path, items, onOutcome) => {
        handed.push(items.flatMap((it) => [...memoryChunks(it.body as Parameters<typeof memoryChunks>[0])]));
        if (handed.length !== 2) return append(path, items, onOutcome);
        await new Promise((r) => setTimeout(r, 5));
        throw new PopsyncError('protocol', 'the server broke the protocol');
      };
      await expect(
        runEngine(options(src, dst, { batchMessages: 1, openSink: async () => sink })),
      ).rejects.toMatchObject({ kind: 'protocol' });
      expect(Buffer.concat(handed[1]!).toString()).toBe(msg(2).toString());
      // Batch 1, answered whole, was given back and overwritten: the hook does see what is given back.
      expect(Buffer.concat(handed[0]!).toString()).toMatch(/^!+$/);
    } finally {
      SlabPool.prototype.give = give;
    }
  });

  it('writes nothing after a batch failed, even with room in the window and the next batch received', async () => {
    const src = new MemorySource([1, 2, 3].map((i) => ({ uidl: `u${i}`, body: msg(i) })));
    // Message 3 (the third batch) arrives only once the first batch is answered: it is not
    // prepared behind the full window but received while the window has room.
    let letThrough: () => void = () => undefined;
    const gate = new Promise<void>((r) => {
      letThrough = r;
    });
    const session = src.session();
    const retrStream = session.retrStream;
    session.retrStream = (n) => {
      if (n !== 3) return retrStream(n);
      const out = new RetrBody(() => undefined);
      void gate.then(() => {
        out.push(msg(3));
        out.end();
      });
      return out;
    };
    const dst = new MemoryDestination();
    const sink = dst.sink();
    const append = sink.appendBatch;
    const events: string[] = [];
    const later = (ms: number) => new Promise((r) => setTimeout(r, ms));
    sink.appendBatch = async (path, items, onOutcome) => {
      const k = events.filter((e) => e.startsWith('append')).length + 1;
      events.push(`append ${k}`);
      if (k === 1) {
        await later(5);
        // Stored without a UID (UIDPLUS, yet no APPENDUID): retiring it waits for the window.
        return append(path, items, (i, o) => onOutcome?.(i, o.ok ? { ok: true, uid: null, uidValidity: null } : o));
      }
      if (k === 2) {
        await later(10);
        letThrough();
        await later(20);
        events.push('batch 2 failed');
        throw new PopsyncError('protocol', 'the server broke the protocol');
      }
      return append(path, items, onOutcome);
    };
    await expect(
      runEngine(options(src, dst, { batchMessages: 1, openSource: async () => session, openSink: async () => sink })),
    ).rejects.toMatchObject({ kind: 'protocol' });
    // The failure ends the pass: the third batch, received meanwhile, is never written.
    expect(events).toEqual(['append 1', 'append 2', 'batch 2 failed']);
    expect(journal.get('alice@pop.test:110', 'u3')).toBeUndefined();
  });

  it('an interrupt withdraws the intents of a batch prepared with the window full; a rerun copies it', async () => {
    const src = new MemorySource(Array.from({ length: 8 }, (_, i) => ({ uidl: `u${i + 1}`, body: msg(i + 1) })));
    const dst = new MemoryDestination();
    const events: string[] = [];
    dst.events = events;
    const stop = new AbortController();
    traceIntents(events, (first) => {
      if (first === 'u5') stop.abort();
    });
    await expect(runEngine(options(src, dst, { signal: stop.signal, batchMessages: 2 }))).rejects.toMatchObject({
      kind: 'interrupted',
    });
    // The two batches being stored finished; the prepared one was never written, and its
    // intents were taken back: nothing is left for the next run to look for.
    expect(events.filter((e) => e === 'append start')).toHaveLength(2);
    expect(dst.bodies()).toEqual([1, 2, 3, 4].map((i) => msg(i).toString()));
    expect(journal.get('alice@pop.test:110', 'u5')).toBeUndefined();
    expect(journal.get('alice@pop.test:110', 'u6')).toBeUndefined();
    expect(journal.counts('alice@pop.test:110')).toEqual({ done: 4, appending: 0, failed: 0 });
    const phases: string[] = [];
    const r = await runEngine({
      ...options(src, dst, { batchMessages: 2 }),
      progress: (e) => {
        if (e.type === 'phase') phases.push(e.phase);
      },
    });
    expect(phases).not.toContain('reconciling');
    expect(r).toMatchObject({ copied: 4, reconciled: 0, failed: [] });
    expect(dst.bodies()).toEqual(Array.from({ length: 8 }, (_, i) => msg(i + 1).toString()));
  });

  it('an interrupt sends a retried message of a batch prepared but never written back to failed', async () => {
    const src = new MemorySource(Array.from({ length: 8 }, (_, i) => ({ uidl: `u${i + 1}`, body: msg(i + 1) })));
    const dst = new MemoryDestination();
    // The first run: the destination refuses everything.
    for (let k = 1; k <= 8; k++) dst.refuse.add(k);
    const first = await runEngine(options(src, dst, { batchMessages: 2 }));
    expect(first.failed).toHaveLength(8);
    dst.refuse.clear();
    const events: string[] = [];
    dst.events = events;
    const stop = new AbortController();
    traceIntents(events, (uidl) => {
      if (uidl === 'u5') stop.abort();
    });
    await expect(runEngine(options(src, dst, { signal: stop.signal, batchMessages: 2 }))).rejects.toMatchObject({
      kind: 'interrupted',
    });
    expect(dst.bodies()).toEqual([1, 2, 3, 4].map((i) => msg(i).toString()));
    // As before the intent: refused once, with the server's words.
    for (const u of ['u5', 'u6'])
      expect(journal.get('alice@pop.test:110', u)).toMatchObject({
        state: 'failed',
        attempts: 1,
        lastError: 'message too large',
      });
    expect(journal.counts('alice@pop.test:110')).toEqual({ done: 4, appending: 0, failed: 4 });
    const r = await runEngine(options(src, dst, { batchMessages: 2 }));
    expect(r).toMatchObject({ copied: 4, reconciled: 0, failed: [] });
    expect(dst.bodies()).toEqual(Array.from({ length: 8 }, (_, i) => msg(i + 1).toString()));
  });

  it('a drop withdraws a prepared batch too: the next pass copies it as new, and every message once', async () => {
    const src = new MemorySource(Array.from({ length: 8 }, (_, i) => ({ uidl: `u${i + 1}`, body: msg(i + 1) })));
    const dst = new MemoryDestination();
    const events: string[] = [];
    dst.events = events;
    traceIntents(events);
    // Stored, then the link drops before the tagged OK, while batch 3 (u5, u6) is prepared.
    dst.dropAfterStoring.add(1);
    const r = await runEngine(options(src, dst, { batchMessages: 2 }));
    expect(r.reconnects).toBe(1);
    expect(events.indexOf('intent u5')).toBeLessThan(events.indexOf('append end'));
    expect(dst.bodies()).toEqual(Array.from({ length: 8 }, (_, i) => msg(i + 1).toString()));
    // Its first intent was taken back, so the one that copied it is its first attempt; the batch
    // that was written (u3) is its second, after reconciliation found no copy.
    expect(journal.get('alice@pop.test:110', 'u5')).toMatchObject({ state: 'done', attempts: 1 });
    expect(journal.get('alice@pop.test:110', 'u3')).toMatchObject({ state: 'done', attempts: 2 });
  });

  it("a prepared batch's folder that fails to open withdraws the intents of its folders journaled before", async () => {
    const src = new MemorySource(Array.from({ length: 8 }, (_, i) => ({ uidl: `u${i + 1}`, body: msg(i + 1) })));
    const dst = new MemoryDestination();
    const events: string[] = [];
    dst.events = events;
    traceIntents(events);
    const inbox = engineRouter(
      compileRouting({ rules: [], defaultFolder: 'INBOX', flags: [], seen: [], arrivalDate: true }),
    );
    // Batch 3 (u5, u6), prepared behind the full window: u5's intent is journaled in INBOX, then
    // folder B, first seen for u6, is lost with the link.
    const route: EngineOptions['route'] = (m) => ({ ...inbox(m), folder: m.uidl === 'u6' ? 'B' : 'INBOX' });
    let dropped = false;
    const openSink = async (): Promise<ImapSink> => {
      const sink = dst.sink();
      const ensure = sink.ensureFolder;
      sink.ensureFolder = async (path) => {
        if (path !== 'B' || dropped) return ensure(path);
        dropped = true;
        throw new PopsyncError('connection', 'IMAP connection lost');
      };
      return sink;
    };
    const r = await runEngine(options(src, dst, { batchMessages: 2, route, openSink }));
    expect(r).toMatchObject({ copied: 8, reconnects: 1, reconciled: 0 });
    expect(events.indexOf('intent u5')).toBeLessThan(events.indexOf('append end'));
    // Never written: taken back, so the copy of the next pass is its first attempt, found by no search.
    expect(journal.get('alice@pop.test:110', 'u5')).toMatchObject({ state: 'done', attempts: 1 });
    expect(dst.bodies('INBOX')).toHaveLength(7);
    expect(dst.bodies('B')).toEqual([msg(6).toString()]);
  });

  it('keeps the messages of a batch that arrived before a drop: they are stored, not fetched again', async () => {
    const src = new MemorySource([1, 2, 3, 4, 5, 6, 7, 8].map((i) => ({ uidl: `u${i}`, body: msg(i) })));
    src.failRetrOnce.set(6, 'drop');
    const dst = new MemoryDestination();
    const r = await runEngine(options(src, dst, { batchMessages: 10 }));
    expect(r.reconnects).toBe(1);
    // One batch of eight; the five that arrived before the drop were stored before reconnecting.
    expect([1, 2, 3, 4, 5].map((n) => src.retrs.get(n))).toEqual([1, 1, 1, 1, 1]);
    expect(dst.bodies()).toEqual([1, 2, 3, 4, 5, 6, 7, 8].map((i) => msg(i).toString()));
  });

  it(
    'sets aside a message whose every RETR drops the connection, copies the rest, and tries it again ' + 'next run',
    async () => {
      const src = new MemorySource([1, 2, 3, 4, 5, 6].map((i) => ({ uidl: `u${i}`, body: msg(i) })));
      src.alwaysDrop.add(3);
      const dst = new MemoryDestination();
      const r = await runEngine(options(src, dst, { retry: { maxAttempts: 5, baseDelayMs: 1, maxDelayMs: 1 } }));
      expect(r.copied).toBe(5);
      expect(r.failed).toEqual([
        expect.objectContaining({
          uidl: 'u3',
          n: 3,
          reason: expect.stringContaining(
            'set aside: receiving it from the POP3 server failed 3 times ' +
              '(last: POP3 server closed the connection); it stays on the server',
          ),
        }),
      ]);
      expect(src.retrs.get(3)).toBe(3);
      expect(dst.bodies()).toEqual([1, 2, 4, 5, 6].map((i) => msg(i).toString()));
      // Never journaled (it never arrived), so nothing marks it: the next run simply tries again.
      expect(journal.get('alice@pop.test:110', 'u3')).toBeUndefined();
      src.alwaysDrop.clear();
      const r2 = await runEngine(options(src, dst));
      expect(r2).toMatchObject({ copied: 1, failed: [] });
      expect(dst.bodies()).toHaveLength(6);
    },
  );

  it('sets a message aside within a small reconnect budget instead of giving up the run', async () => {
    const src = new MemorySource([1, 2, 3].map((i) => ({ uidl: `u${i}`, body: msg(i) })));
    src.alwaysDrop.add(1);
    const dst = new MemoryDestination();
    const r = await runEngine(options(src, dst, { retry: { maxAttempts: 1, baseDelayMs: 1, maxDelayMs: 1 } }));
    expect(r.failed.map((f) => f.uidl)).toEqual(['u1']);
    expect(dst.bodies()).toEqual([2, 3].map((i) => msg(i).toString()));
  });

  it('bounds a batch by the bytes that arrived, not by the LIST sizes the server claimed', async () => {
    const big = (i: number) => Buffer.concat([msg(i), Buffer.alloc(300 * 1024, 'x'), Buffer.from('\r\n')]);
    const src = new MemorySource(Array.from({ length: 12 }, (_, i) => ({ uidl: `u${i + 1}`, body: big(i + 1) })));
    // Every message claims a third of its size: within what a RETR may carry, but a lie.
    src.listSize = (_n, real) => Math.ceil(real / 3);
    const dst = new MemoryDestination();
    const r = await runEngine(options(src, dst, { batchMessages: 50, batchBytes: 1024 * 1024 }));
    expect(r).toMatchObject({ copied: 12, failed: [] });
    const held = dst.batches.map((b) => b.reduce((a, m) => a + m.size, 0));
    // Closed once the cap is reached: at most one message past it.
    expect(Math.max(...held)).toBeLessThan(1024 * 1024 + 310 * 1024);
    expect(dst.batches.length).toBeGreaterThanOrEqual(3);
  });

  it('closes a batch of tiny messages at the cap, each counted at the floor, whatever its count', async () => {
    // 200 messages of ~50 bytes, a cap of 64 KiB: 32 at HELD_MESSAGE_FLOOR each. Counted on
    // their bytes alone, one batch took all 200 (--batch-messages 1000), and three such batches
    // (always allowed, receive-ahead.ts) held a mailbox of tiny messages by the hundred thousand.
    const src = new MemorySource(Array.from({ length: 200 }, (_, i) => ({ uidl: `u${i + 1}`, body: msg(i + 1) })));
    const dst = new MemoryDestination();
    const r = await runEngine(options(src, dst, { batchMessages: 1000, batchBytes: 32 * HELD_MESSAGE_FLOOR }));
    expect(r).toMatchObject({ copied: 200, failed: [] });
    expect(dst.batches.map((b) => b.length)).toEqual([32, 32, 32, 32, 32, 32, 8]);
    expect(dst.bodies()).toEqual(Array.from({ length: 200 }, (_, i) => msg(i + 1).toString()));
  });

  it('receives ahead of the login no more tiny messages than a batch holds at the floor', async () => {
    const src = new MemorySource(Array.from({ length: 200 }, (_, i) => ({ uidl: `u${i + 1}`, body: msg(i + 1) })));
    const dst = new MemoryDestination();
    let beforeLogin = -1;
    const openSink = async (): Promise<ImapSink> => {
      await new Promise((r) => setTimeout(r, 20));
      beforeLogin = src.retrCount;
      return dst.sink();
    };
    const r = await runEngine(
      options(src, dst, { batchMessages: 1000, batchBytes: 32 * HELD_MESSAGE_FLOOR, openSink }),
    );
    expect(r).toMatchObject({ copied: 200, failed: [] });
    // The head start is one batch: 32 messages of this cap, not the 200 whose LIST sizes fit it.
    expect(beforeLogin).toBeGreaterThan(0);
    expect(beforeLogin).toBeLessThanOrEqual(32);
  });

  it(
    'sets aside at once a message whose RETR carries more than its LIST size allows, and copies ' + 'the rest',
    async () => {
      const src = new MemorySource(
        [1, 2, 3].map((i) => ({
          uidl: `u${i}`,
          body: i === 2 ? Buffer.concat([msg(2), Buffer.alloc(400 * 1024, 'y')]) : msg(i),
        })),
      );
      src.listSize = (n, real) => (n === 2 ? 10 : real);
      const dst = new MemoryDestination();
      const r = await runEngine(options(src, dst));
      expect(r.copied).toBe(2);
      expect(r.failed).toEqual([
        expect.objectContaining({
          uidl: 'u2',
          reason: expect.stringMatching(/more than 131092 bytes for message 2, which LIST said was 10 bytes/),
        }),
      ]);
      expect(src.retrs.get(2)).toBe(1);
      expect(dst.bodies()).toEqual([msg(1).toString(), msg(3).toString()]);
    },
  );

  it('counts spooled messages towards the batch cap, so temp files stay within two batches', async () => {
    const big = (i: number) => Buffer.concat([msg(i), Buffer.alloc(1536 * 1024, 'q'), Buffer.from('\r\n')]);
    const src = new MemorySource([1, 2, 3, 4].map((i) => ({ uidl: `u${i}`, body: big(i) })));
    // Listed at 1 MB: within the room the first leaves, so LIST does not close the batch before
    // the second, which spills past that room.
    src.listSize = () => 1024 * 1024;
    const dst = new MemoryDestination();
    const r = await runEngine(
      options(src, dst, { batchMessages: 50, batchBytes: 3 * 1024 * 1024, spillBytes: 64 * 1024, spoolDir: dir }),
    );
    expect(r).toMatchObject({ copied: 4, failed: [] });
    // The first of each batch fits in the cap's room and stays in memory; the second is past
    // the room left and spills, holding only its head in memory, yet counts with its full size.
    expect(dst.batches.map((b) => b.map((m) => m.file))).toEqual([
      [false, true],
      [false, true],
    ]);
  });

  it('holds a message past the spill threshold in memory while its batch has room, or the next one has', async () => {
    const sized = (i: number, kb: number) => Buffer.concat([msg(i), Buffer.alloc(kb * 1024, 'r'), Buffer.from('\r\n')]);
    // A cap of 1 MB and a threshold of 64 KB. 300, 500 and 40 KB fit the room; 900 KB does not,
    // but would fit an empty batch: the batch closes before it. The last is listed at 60 KB
    // (within the room 900 KB leaves) and spills past that room on arrival.
    const bodies = [sized(1, 300), sized(2, 500), sized(3, 40), sized(4, 900), sized(5, 200)];
    const src = new MemorySource(bodies.map((body, i) => ({ uidl: `u${i + 1}`, body })));
    src.listSize = (n, real) => (n === 5 ? 60_000 : real);
    const dst = new MemoryDestination();
    const spoolDir = join(dir, 'room');
    mkdirSync(spoolDir);
    const r = await runEngine(
      options(src, dst, { batchMessages: 50, batchBytes: 1024 * 1024, spillBytes: 64 * 1024, spoolDir }),
    );
    expect(r).toMatchObject({ copied: 5, failed: [] });
    expect(dst.batches.map((b) => b.map((m) => m.file))).toEqual([
      [false, false, false],
      [false, true],
    ]);
    expect(dst.bodies()).toEqual(bodies.map((b) => b.toString()));
    expect(readdirSync(spoolDir)).toEqual([]);
  });

  it(
    'sends a message past the spill threshold from a private temp file, byte-exact, and removes ' + 'the file',
    async () => {
      const spoolDir = join(dir, 'tmp');
      mkdirSync(spoolDir);
      const large = Buffer.concat([msg(1), Buffer.alloc(200 * 1024, 'z'), Buffer.from('\0end\r\n')]);
      const src = new MemorySource([
        { uidl: 'u1', body: large },
        { uidl: 'u2', body: msg(2) },
      ]);
      const dst = new MemoryDestination();
      // A cap no larger than the threshold: a message past it never fits the room left (Receiver.spillAt).
      const r = await runEngine(options(src, dst, { spillBytes: 64 * 1024, batchBytes: 64 * 1024, spoolDir }));
      expect(r.copied).toBe(2);
      expect(dst.batches.flat()).toEqual([
        { size: large.length, file: true },
        { size: msg(2).length, file: false },
      ]);
      expect(dst.folders.get('INBOX')!.msgs[0]!.body.equals(large)).toBe(true);
      expect(journal.get('alice@pop.test:110', 'u1')).toMatchObject({
        size: large.length,
        sha256: createHash('sha256').update(large).digest('hex'),
      });
      expect(readdirSync(spoolDir)).toEqual([]);
    },
  );

  it('identifies messages listed under one UIDL by their headers (popa3d), copying each once', async () => {
    const same = msg(1);
    const src = new MemorySource([
      { uidl: 'dup', body: same },
      { uidl: 'dup', body: same },
      { uidl: 'dup', body: msg(2) },
      { uidl: 'ok', body: msg(3) },
    ]);
    const dst = new MemoryDestination();
    const r = await runEngine(options(src, dst));
    expect(r.failed).toEqual([]);
    expect(r.copied).toBe(4);
    expect(journal.get('alice@pop.test:110', 'ok')?.state).toBe('done');
    const again = await runEngine(options(src, dst));
    expect(again).toMatchObject({ copied: 0, alreadyCopied: 4, failed: [] });
    expect(dst.bodies()).toHaveLength(4);
  });

  it(
    'settles an interrupted copy by content when the folder changed UIDVALIDITY under it (the copy ' + 'survived)',
    async () => {
      const src = new MemorySource([1, 2].map((i) => ({ uidl: `u${i}`, body: msg(i) })));
      const dst = new MemoryDestination();
      dst.dropAfterStoring.add(1);
      await expect(runEngine(options(src, dst, { retry: { maxAttempts: 0 } }))).rejects.toMatchObject({
        kind: 'connection',
      });
      // Same mail, new UIDVALIDITY and new UIDs (a server that renumbered, or a restore).
      const inbox = dst.folders.get('INBOX')!;
      inbox.uidValidity = 778n;
      inbox.msgs = inbox.msgs.map((m) => ({ ...m, uid: m.uid + 50 }));
      inbox.next = 60;
      const r = await runEngine(options(src, dst));
      expect(r).toMatchObject({ reconciled: 1, copied: 1 });
      // No copy was confirmed under 777, so nothing of the journal's is lost track of: no warning.
      expect(r.warnings).toEqual([]);
      expect(dst.bodies()).toEqual([msg(1), msg(2)].map(String));
      expect(journal.get('alice@pop.test:110', 'u1')).toMatchObject({
        state: 'done',
        destUidValidity: 778n,
        destUid: 51,
      });
    },
  );

  it(
    "Courier's empty INBOX: a UIDVALIDITY that changes every time it is looked at, until the first APPEND, " +
      'is taken',
    async () => {
      const src = new MemorySource([1, 2, 3, 4, 5].map((i) => ({ uidl: `u${i}`, body: msg(i) })));
      const dst = new MemoryDestination();
      dst.flappingWhileEmpty = true;
      const r = await runEngine(options(src, dst, { batchMessages: 2 }));
      expect(r).toMatchObject({ copied: 5, warnings: [] });
      expect(dst.bodies()).toHaveLength(5);
      const v = dst.folders.get('INBOX')!.uidValidity;
      expect(['u1', 'u2', 'u5'].map((u) => journal.get('alice@pop.test:110', u)!.destUidValidity)).toEqual([v, v, v]);
      expect(await runEngine(options(src, dst))).toMatchObject({ copied: 0, alreadyCopied: 5 });
    },
  );

  it(
    'copies again when the folder was deleted and recreated empty under an interrupted copy, and goes on ' +
      'with new mail',
    async () => {
      const src = new MemorySource([1, 2].map((i) => ({ uidl: `u${i}`, body: msg(i) })));
      const dst = new MemoryDestination();
      dst.dropAfterStoring.add(2);
      await expect(runEngine(options(src, dst, { retry: { maxAttempts: 0 } }))).rejects.toMatchObject({
        kind: 'connection',
      });
      dst.folders.set('INBOX', { uidValidity: 900n, next: 1, msgs: [] });
      const r = await runEngine(options(src, dst));
      // u1 was confirmed before: it stays done (its history), u2 was in flight: copied again.
      expect(r).toMatchObject({ reconciled: 0, copied: 1, alreadyCopied: 1 });
      expect(dst.bodies()).toEqual([msg(2)].map(String));
      src.messages.push({ uidl: 'u3', body: msg(3) });
      const r2 = await runEngine(options(src, dst));
      expect(r2).toMatchObject({ copied: 1, warnings: [] });
      expect(dst.bodies()).toEqual([msg(2), msg(3)].map(String));
    },
  );

  it('recognises by its content a copied message renumbered under a new UIDL whose TOP is refused', async () => {
    const src = new MemorySource([1, 2].map((i) => ({ uidl: `u${i}`, body: msg(i) })));
    const dst = new MemoryDestination();
    expect(await runEngine(options(src, dst))).toMatchObject({ copied: 2 });
    // A server move: new UIDLs for all, and message 1's headers cannot be read (TOP refused).
    for (const m of src.messages) m.uidl = `new-${m.uidl}`;
    src.refuseTop = (b) => b.equals(msg(1));
    src.messages.push({ uidl: 'u3', body: msg(3) });
    const r = await runEngine(options(src, dst));
    // 2 by its headers, 1 by its content once downloaded: only the new message is copied.
    expect(r).toMatchObject({ copied: 1, recognised: 2 });
    expect(dst.bodies()).toEqual([1, 2, 3].map((i) => msg(i).toString()));
    expect(journal.get('alice@pop.test:110', 'new-u1')).toMatchObject({ state: 'done' });
  });

  it('skips messages over skip_larger_than on their LIST size, without RETR, a failure or a journal row', async () => {
    const src = new MemorySource(
      [msg(1), msg(2, 'x'.repeat(500)), msg(3)].map((body, i) => ({ uidl: `u${i + 1}`, body })),
    );
    const dst = new MemoryDestination();
    const r = await runEngine(options(src, dst, { skipLargerThan: 200 }));
    expect(r).toMatchObject({ copied: 2, skippedByRule: 1, failed: [], newMessages: 2 });
    expect(r.messages).toBeUndefined();
    expect(src.retrCount).toBe(2);
    expect(journal.get('alice@pop.test:110', 'u2')).toBeUndefined();
    // Raising the limit copies it: nothing was recorded that would have to be undone.
    const r2 = await runEngine(options(src, dst, { skipLargerThan: null }));
    expect(r2).toMatchObject({ copied: 1, alreadyCopied: 2, skippedByRule: 0 });
  });

  it('with detail, keeps one row per listed message: copied, already copied, failed, skipped', async () => {
    const src = new MemorySource(
      [msg(1), msg(2), msg(3), msg(4, 'x'.repeat(500))].map((body, i) => ({ uidl: `u${i + 1}`, body })),
    );
    const dst = new MemoryDestination();
    await runEngine(options(new MemorySource([src.messages[0]!]), dst));
    dst.refuse.add(3);
    const r = await runEngine(options(src, dst, { detail: true, skipLargerThan: 200 }));
    expect(r.messages!.map((m) => [m.n, m.uidl, m.outcome])).toEqual([
      [1, 'u1', 'already-copied'],
      [2, 'u2', 'copied'],
      [3, 'u3', 'failed'],
      [4, 'u4', 'skipped-by-rule'],
    ]);
    expect(r.messages![0]).toMatchObject({
      folder: 'INBOX',
      messageId: '<m1@test>',
      provenance: { dateSource: expect.any(String) },
    });
    expect(r.messages![1]).toMatchObject({ folder: 'INBOX', subject: '2', messageId: '<m2@test>', reason: null });
    expect(r.messages![2]).toMatchObject({
      folder: 'INBOX',
      reason: expect.any(String),
      serverResponse: expect.any(String),
    });
    expect(r.messages![3]).toMatchObject({ folder: null, reason: 'over the size rule (200 bytes)' });
  });
});

describe('windowed-source check across an interrupted run', () => {
  it('a resumed migration of a round-numbered mailbox does not look like a window when no mail arrived', async () => {
    const src = new MemorySource(Array.from({ length: 100 }, (_, i) => ({ uidl: `u${i + 1}`, body: msg(i + 1) })));
    const dst = new MemoryDestination();
    const stop = new AbortController();
    const base = dst.sink.bind(dst);
    // Interrupted once the first batch is stored, as SIGINT would.
    dst.sink = () => {
      const s = base();
      return {
        ...s,
        appendBatch: async (...a: Parameters<ImapSink['appendBatch']>) => {
          const outcomes = await s.appendBatch(...a);
          stop.abort();
          return outcomes;
        },
      };
    };
    await expect(runEngine(options(src, dst, { signal: stop.signal, batchMessages: 10 }))).rejects.toMatchObject({
      kind: 'interrupted',
    });
    dst.sink = base;
    const resumed = await runEngine(options(src, dst, { batchMessages: 10 }));
    expect(resumed.copied).toBeGreaterThan(0);
    expect(resumed.warnings).toEqual([]);
    expect(dst.bodies()).toHaveLength(100);
  });
});

/** Dovecot's rewrites on APPEND: every bare LF becomes CRLF, NUL becomes 0x80. */
const dovecotRewrite = (b: Buffer): Buffer =>
  Buffer.from(b.toString('latin1').replace(/\r?\n/g, '\r\n').replace(/\0/g, '\x80'), 'latin1');
/** A message as a non-Dovecot POP3 server may serve it: bare LF line ends, a NUL, maybe no Message-ID. */
const lfMsg = (i: number, withId = true): Buffer =>
  Buffer.from(`${withId ? `Message-ID: <lf${i}@test>\n` : ''}Subject: lf ${i}\n\nbody\0 ${i}\nline two\n`, 'latin1');

describe('engine: exactly once on servers that rewrite, lack UIDPLUS, or were written by another journal', () => {
  const A = 'alice@pop.test:110';

  for (const withId of [true, false]) {
    it(
      `recognises its interrupted copy after the server rewrote line ends and NUL ` +
        `(${withId ? 'with' : 'without'} Message-ID)`,
      async () => {
        const src = new MemorySource([1, 2, 3, 4].map((i) => ({ uidl: `u${i}`, body: lfMsg(i, withId) })));
        const dst = new MemoryDestination();
        dst.rewrite = dovecotRewrite;
        dst.dropAfterStoring.add(2);
        const r = await runEngine(options(src, dst));
        expect(r).toMatchObject({ reconnects: 1, reconciled: 1, copied: 3 });
        expect(dst.bodies()).toHaveLength(4);
        expect(journal.counts(A)).toEqual({ done: 4, appending: 0, failed: 0 });
      },
    );
  }

  it('no UIDPLUS: the copies of a batch cut short by a POP3 drop get their UIDs before the pass ends', async () => {
    const src = new MemorySource([1, 2, 3, 4, 5, 6].map((i) => ({ uidl: `u${i}`, body: msg(i) })));
    // Batch 1 is u1 and u2 with the drop: they are stored, then the pass ends as POP3's failure.
    src.failRetrOnce.set(3, 'drop');
    const dst = new MemoryDestination();
    dst.uidplus = false;
    const r = await runEngine(options(src, dst, { batchMessages: 4 }));
    expect(r).toMatchObject({ copied: 6, reconnects: 1 });
    expect(['u1', 'u2', 'u3', 'u4', 'u5', 'u6'].map((u) => journal.get(A, u)!.destUid)).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it('no UIDPLUS: of identical messages a (copied) and b (intended, never sent), b is still copied', async () => {
    const same = msg(7);
    const src = new MemorySource([
      { uidl: 'a', body: same },
      { uidl: 'b', body: same },
    ]);
    const dst = new MemoryDestination();
    dst.uidplus = false;
    dst.dropBeforeStoring.add(2);
    await runEngine(options(src, dst));
    expect(dst.bodies()).toEqual([same.toString(), same.toString()]);
    // Both copies are accounted for by UID, learned by content.
    expect(journal.get(A, 'a')).toMatchObject({ state: 'done', destUid: 1 });
    expect(journal.get(A, 'b')).toMatchObject({ state: 'done', destUid: 2 });
  });

  it("no UIDPLUS: learns each copy's UID right after its batch, identical messages each their own", async () => {
    const same = msg(8);
    const src = new MemorySource([msg(1), same, same, msg(2), same].map((body, i) => ({ uidl: `u${i + 1}`, body })));
    const dst = new MemoryDestination();
    dst.uidplus = false;
    dst.rewrite = dovecotRewrite;
    const r = await runEngine(options(src, dst, { batchMessages: 2 }));
    expect(r.copied).toBe(5);
    const uids = ['u1', 'u2', 'u3', 'u4', 'u5'].map((u) => journal.get(A, u)!.destUid);
    expect(uids).toEqual([1, 2, 3, 4, 5]);
  });

  it('no UIDPLUS: one batch outstanding, the next written only once the last one is answered', async () => {
    // Its copies' UIDs are found by content from its floor: a later batch's copies must not be
    // there yet, nor its floor taken before them (copier.ts: a window of one, nothing prepared ahead).
    const same = msg(8);
    const src = new MemorySource([msg(1), same, same, msg(2), same].map((body, i) => ({ uidl: `u${i + 1}`, body })));
    const dst = new MemoryDestination();
    dst.uidplus = false;
    const events: string[] = [];
    dst.events = events;
    const begin = journal.beginAppend;
    (journal as { beginAppend: typeof begin }).beginAppend = (account, rows) => {
      events.push(`intent ${rows[0]!.uidl}`);
      begin(account, rows);
    };
    const r = await runEngine(options(src, dst, { batchMessages: 1 }));
    expect(r.copied).toBe(5);
    expect(events).toEqual(
      ['u1', 'u2', 'u3', 'u4', 'u5'].flatMap((u) => [`intent ${u}`, 'append start', 'append end']),
    );
    expect(['u1', 'u2', 'u3', 'u4', 'u5'].map((u) => journal.get(A, u)!.destUid)).toEqual([1, 2, 3, 4, 5]);
  });

  it('stops, instead of guessing, when several messages share the Message-ID and none has the content', async () => {
    const src = new MemorySource([{ uidl: 'u1', body: msg(1) }]);
    const dst = new MemoryDestination();
    dst.dropAfterStoring.add(1);
    // The server changed the copy beyond recognition, and another message with its Message-ID arrived.
    dst.rewrite = (b) => Buffer.concat([Buffer.from('X-Added: by the server\r\n'), b]);
    await expect(runEngine(options(src, dst, { retry: { maxAttempts: 0 } }))).rejects.toMatchObject({
      kind: 'connection',
    });
    dst.folders
      .get('INBOX')!
      .msgs.push({ uid: 2, body: Buffer.from('Message-ID: <m1@test>\r\nSubject: other\r\n\r\nother\r\n'), flags: [] });
    dst.folders.get('INBOX')!.next = 3;
    const e = await runEngine(options(src, dst)).catch((x: unknown) => x);
    expect(e).toMatchObject({ kind: 'undecidable', context: { uidl: 'u1', folder: 'INBOX' } });
    expect((e as PopsyncError).context.hint).toMatch(/forget-folder/);
    expect((e as PopsyncError).context.hint).not.toMatch(/new journal/);
    expect(dst.bodies()).toHaveLength(2);
  });

  it(
    'a row journaled before fingerprints: the source is read again, so a rewritten copy is still ' + 'recognised',
    async () => {
      const src = new MemorySource([1, 2, 3].map((i) => ({ uidl: `u${i}`, body: lfMsg(i, i !== 2) })));
      const dst = new MemoryDestination();
      dst.rewrite = dovecotRewrite;
      dst.dropAfterStoring.add(2);
      await expect(runEngine(options(src, dst, { retry: { maxAttempts: 0 } }))).rejects.toMatchObject({
        kind: 'connection',
      });
      // What a popsync before schema v5 left behind: no fingerprint on the interrupted row.
      const raw = new Database(journal.path);
      expect(raw.prepare(`UPDATE messages SET fingerprint = NULL WHERE state = 'appending'`).run().changes).toBe(2);
      raw.close();
      const r = await runEngine(options(src, dst));
      expect(r).toMatchObject({ reconciled: 1, copied: 1 });
      expect(dst.bodies()).toHaveLength(3);
    },
  );

  it('rows journaled before fingerprints: their messages read again pipelined, their copies in one read', async () => {
    const count = 6;
    const src = new MemorySource(Array.from({ length: count }, (_, i) => ({ uidl: `u${i + 1}`, body: lfMsg(i + 1) })));
    const dst = new MemoryDestination();
    dst.rewrite = dovecotRewrite;
    expect((await runEngine(options(src, dst))).copied).toBe(count);
    // Every copy stored, none confirmed, by a popsync before schema v5 (no fingerprints).
    const raw = new Database(journal.path);
    raw.prepare(`UPDATE messages SET state = 'appending', dest_uid = NULL, fingerprint = NULL`).run();
    raw.close();
    const fresh = new MemorySource(src.messages);
    const reads = dst.bodyReads;
    expect(await runEngine(options(fresh, dst))).toMatchObject({ reconciled: count, copied: 0 });
    expect(dst.bodies()).toHaveLength(count);
    // One at a time, each was a round trip on either side.
    expect(fresh.maxRetrsInFlight).toBe(count);
    expect(dst.bodyReads - reads).toBe(1);
  });

  it('settles on a lone Message-ID match, loudly, when the content differs beyond the known rewrites', async () => {
    const src = new MemorySource([{ uidl: 'u1', body: msg(1) }]);
    const dst = new MemoryDestination();
    dst.dropAfterStoring.add(1);
    dst.rewrite = (b) => Buffer.concat([Buffer.from('X-Added: by the server\r\n'), b]);
    const r = await runEngine(options(src, dst));
    expect(r).toMatchObject({ reconciled: 1, copied: 0 });
    expect(r.warnings.join('\n')).toMatch(/UIDL u1: .*recognised by Message-ID only \(UID 1\)/);
    expect(dst.bodies()).toHaveLength(1);
  });

  it('a second (or lost) journal adopts the copies already in the destination: 0 copied again', async () => {
    const same = lfMsg(5, false);
    const bodies = [lfMsg(1), lfMsg(2, false), same, same, msg(3)];
    const src = new MemorySource(bodies.map((body, i) => ({ uidl: `u${i + 1}`, body })));
    const dst = new MemoryDestination();
    dst.rewrite = dovecotRewrite;
    expect((await runEngine(options(src, dst))).copied).toBe(5);
    // Other mail in the folder, with and without Message-IDs: never read beyond its header.
    const inbox = dst.folders.get('INBOX')!;
    for (let i = 0; i < 30; i++)
      inbox.msgs.push({
        uid: inbox.next++,
        body: Buffer.from(`${i % 2 ? `Message-ID: <other${i}@test>\r\n` : ''}Subject: other ${i}\r\n\r\nbody\r\n`),
        flags: [],
      });
    const other = Journal.open(join(dir, 'second.sqlite'), { source: A });
    try {
      const fetchesBefore = dst.bodyFetches;
      const r = await runEngine({ ...options(src, dst), journal: other });
      expect(r).toMatchObject({ copied: 0, adopted: 5 });
      expect(dst.bodies()).toHaveLength(35);
      // Bodies fetched only for candidates that passed the Message-ID/header narrowing.
      expect(dst.bodyFetches - fetchesBefore).toBeLessThanOrEqual(5 + 1);
      expect(other.counts(A)).toEqual({ done: 5, appending: 0, failed: 0 });
      // Identical messages claimed one copy each.
      expect(new Set(['u3', 'u4'].map((u) => other.get(A, u)!.destUid)).size).toBe(2);
      // A completed run ends the search: new mail is copied without looking.
      src.messages.push({ uidl: 'u6', body: msg(6) });
      expect(await runEngine({ ...options(src, dst), journal: other })).toMatchObject({ copied: 1, adopted: 0 });
    } finally {
      other.close();
    }
  });

  it('adoption copies what is missing: one of three identical messages and a message never copied', async () => {
    const same = msg(9);
    const dst = new MemoryDestination();
    await runEngine(
      options(
        new MemorySource([
          { uidl: 'x1', body: same },
          { uidl: 'x2', body: msg(1) },
        ]),
        dst,
      ),
    );
    const other = Journal.open(join(dir, 'second.sqlite'), { source: A });
    try {
      const src = new MemorySource([same, same, msg(1), same, msg(2)].map((body, i) => ({ uidl: `u${i + 1}`, body })));
      const r = await runEngine({ ...options(src, dst), journal: other });
      expect(r).toMatchObject({ adopted: 2, copied: 3 });
      expect(dst.bodies().filter((b) => b === same.toString())).toHaveLength(3);
      expect(dst.bodies()).toHaveLength(5);
    } finally {
      other.close();
    }
  });

  it('adoption never takes a copy by Message-ID alone (the same mail delivered to another account)', async () => {
    const dst = new MemoryDestination();
    const theirs = Buffer.from('Message-ID: <list@test>\r\nDelivered-To: bob@test\r\nSubject: s\r\n\r\nhi\r\n');
    const ours = Buffer.from('Message-ID: <list@test>\r\nDelivered-To: alice@test\r\nSubject: s\r\n\r\nhi\r\n');
    dst.folders.set('INBOX', { uidValidity: 5n, next: 2, msgs: [{ uid: 1, body: theirs, flags: [] }] });
    const r = await runEngine(options(new MemorySource([{ uidl: 'u1', body: ours }]), dst));
    expect(r).toMatchObject({ adopted: 0, copied: 1 });
    expect(dst.bodies()).toEqual([theirs.toString(), ours.toString()]);
  });

  it('adoption survives a crash mid-run: the next run keeps searching until one completes', async () => {
    const dst = new MemoryDestination();
    const bodies = [1, 2, 3, 4, 5, 6].map((i) => msg(i));
    await runEngine(options(new MemorySource(bodies.map((body, i) => ({ uidl: `u${i + 1}`, body }))), dst));
    const other = Journal.open(join(dir, 'second.sqlite'), { source: A });
    try {
      const src = new MemorySource(bodies.map((body, i) => ({ uidl: `u${i + 1}`, body })));
      src.failRetrOnce.set(5, 'drop');
      // The first attempt dies on RETR of #5, after adopting the first batch(es), no retries.
      await expect(
        runEngine({ ...options(src, dst, { retry: { maxAttempts: 0 } }), journal: other }),
      ).rejects.toMatchObject({ kind: 'connection' });
      const first = other.counts(A).done;
      expect(first).toBeGreaterThan(0);
      expect(first).toBeLessThan(6);
      const r = await runEngine({ ...options(src, dst), journal: other });
      expect(r).toMatchObject({ copied: 0, adopted: 6 - first });
      expect(dst.bodies()).toHaveLength(6);
    } finally {
      other.close();
    }
  });
});

describe('engine: upload limits (daily budget, APPENDLIMIT, throttling, --max-rate)', () => {
  const A = 'alice@pop.test:110';
  const H = 3600_000;
  /** A message of exactly `size` bytes. */
  const sized = (i: number, size: number) => {
    const head = msg(i);
    return Buffer.concat([head, Buffer.alloc(size - head.length, 'x')]);
  };
  const limits = (l: Partial<NonNullable<EngineOptions['limits']>>): NonNullable<EngineOptions['limits']> => ({
    maxRate: null,
    dailyBudget: null,
    appendLimit: null,
    provider: null,
    ...l,
  });

  it('stops at the daily budget with a temporary error saying when to go on, and goes on a day later', async () => {
    let clock = Date.parse('2026-11-29T10:00:00Z');
    const now = () => new Date(clock);
    const j = Journal.open(join(dir, 'budget.sqlite'), { source: A }, { now });
    try {
      const src = new MemorySource([1, 2, 3, 4, 5].map((i) => ({ uidl: `u${i}`, body: sized(i, 400) })));
      const dst = new MemoryDestination();
      const o = {
        ...options(src, dst),
        journal: j,
        now,
        limits: limits({ dailyBudget: { bytes: 1000, basis: 'the daily budget' } }),
      };
      const first = runEngine(o);
      await expect(first).rejects.toMatchObject({ kind: 'temporary' });
      const e = (await first.catch((x: unknown) => x)) as PopsyncError;
      expect(e.message).toMatch(
        /the daily budget is reached: 800 bytes uploaded in the last 24 hours, of 1000 bytes; 3 messages \(1.2 KiB\)/,
      );
      expect(e.context.hint).toMatch(/run again after 2026-11-30T10:00:00.000Z .*this run copied 2 messages/);
      expect(dst.bodies()).toHaveLength(2);
      // Nothing over the budget was even fetched.
      expect(src.retrCount).toBe(2);

      clock += 12 * H; // still inside the window: nothing moves, and the destination is left alone
      let opened = 0;
      await expect(
        runEngine({
          ...o,
          lazyDestination: true,
          openSink: async () => {
            opened++;
            return dst.sink();
          },
        }),
      ).rejects.toMatchObject({ kind: 'temporary' });
      expect(opened).toBe(0);
      expect(dst.bodies()).toHaveLength(2);

      clock += 12 * H + 1; // the first two copies are more than 24 hours old
      await expect(runEngine(o)).rejects.toMatchObject({ kind: 'temporary' });
      expect(dst.bodies()).toHaveLength(4);
      clock += 24 * H + 1;
      const last = await runEngine(o);
      expect(last).toMatchObject({ copied: 1, alreadyCopied: 4, failed: [] });
      expect(dst.bodies()).toEqual([1, 2, 3, 4, 5].map((i) => sized(i, 400).toString()));
    } finally {
      j.close();
    }
  });

  it('fails a message larger than the whole daily budget by name, not held for a day that never comes', async () => {
    const src = new MemorySource(
      [sized(1, 1500), sized(2, 400), sized(3, 1500)].map((body, i) => ({ uidl: `u${i + 1}`, body })),
    );
    const dst = new MemoryDestination();
    const r = await runEngine(
      options(src, dst, { limits: limits({ dailyBudget: { bytes: 1000, basis: 'the daily budget' } }) }),
    );
    expect(r).toMatchObject({ copied: 1 });
    expect(r.failed.map((f) => f.uidl)).toEqual(['u1', 'u3']);
    expect(r.failed[0]!.reason).toMatch(/larger than the daily budget \(1000 bytes\) allows in a day: not downloaded/);
    expect(src.retrs.get(1)).toBeUndefined();
    // Only messages too large: the same, with nothing copied (it was exit 75, "run again after" now).
    const big = new MemorySource([sized(1, 1500)].map((body) => ({ uidl: 'v1', body })));
    const only = await runEngine(
      options(big, new MemoryDestination(), {
        limits: limits({ dailyBudget: { bytes: 1000, basis: 'the daily budget' } }),
      }),
    );
    expect(only).toMatchObject({ copied: 0 });
    expect(only.failed.map((f) => f.uidl)).toEqual(['v1']);
  });

  it('fails a message larger than the APPENDLIMIT (or the provider limit) by name, before downloading it', async () => {
    const src = new MemorySource(
      [sized(1, 300), sized(2, 900), sized(3, 300)].map((body, i) => ({ uidl: `u${i + 1}`, body })),
    );
    const dst = new MemoryDestination();
    const plain = dst.sink.bind(dst);
    dst.sink = () => ({ ...plain(), capabilities: new Set(['UIDPLUS', 'APPENDLIMIT=500']) });
    const r = await runEngine(options(src, dst, { limits: limits({ appendLimit: 10_000, provider: 'Gmail' }) }));
    expect(r).toMatchObject({ copied: 2, newMessages: 2 });
    expect(r.failed).toEqual([
      expect.objectContaining({
        uidl: 'u2',
        reason: expect.stringMatching(
          /larger than the destination accepts \(its APPENDLIMIT is 500 bytes\): not downloaded/,
        ),
      }),
    ]);
    expect(src.retrs.get(2)).toBeUndefined();
    expect(journal.get(A, 'u2')).toBeUndefined();

    // No APPENDLIMIT advertised: the provider's published limit is used instead.
    const src2 = new MemorySource([sized(1, 300), sized(2, 900)].map((body, i) => ({ uidl: `v${i + 1}`, body })));
    const r2 = await runEngine(
      options(src2, new MemoryDestination(), { limits: limits({ appendLimit: 500, provider: 'Gmail' }) }),
    );
    expect(r2.failed[0]!.reason).toMatch(/larger than Gmail accepts \(500 bytes per message\)/);
    expect(src2.retrs.get(2)).toBeUndefined();
  });

  /** A destination that answers the first `times` APPENDs with a throttling refusal, storing nothing. */
  function throttling(dst: MemoryDestination, times: number, askMs: number): string[] {
    const seen: string[] = [];
    const plain = dst.sink.bind(dst);
    let left = times;
    dst.sink = () => {
      const s = plain();
      return {
        ...s,
        appendBatch: async (path, items, onOutcome) => {
          if (left > 0) {
            left--;
            seen.push('throttled');
            throw new PopsyncError('temporary', 'IMAP server is throttling APPEND', {
              serverResponse: `NO Request is throttled. Suggested Backoff Time: ${askMs} milliseconds`,
              retryAfterMs: askMs,
            });
          }
          return s.appendBatch(path, items, onOutcome);
        },
      };
    };
    return seen;
  }

  it('waits as long as a throttling server asks, using no reconnect attempts, and copies all once', async () => {
    const src = new MemorySource([1, 2, 3, 4, 5].map((i) => ({ uidl: `u${i}`, body: msg(i) })));
    const dst = new MemoryDestination();
    const seen = throttling(dst, 4, 2500);
    const slept: number[] = [];
    const r = await runEngine(
      options(src, dst, {
        retry: { maxAttempts: 1, baseDelayMs: 1, maxDelayMs: 1 },
        sleep: async (ms) => void slept.push(ms),
      }),
    );
    // Every RETR goes ahead at once (retr-ahead.ts), so both batches (3 and 2 messages) are in
    // and written before this server's refusal of the first is read: each pass meets two
    // refusals, and pauses once for them.
    expect(seen).toHaveLength(4);
    expect(slept).toEqual([2500, 2500]);
    expect(r.copied).toBe(5);
    expect(r.warnings).toContainEqual(
      expect.stringMatching(/asked for pauses 2 times \(throttling\); popsync waited 5 s/),
    );
    expect(dst.bodies()).toEqual([1, 2, 3, 4, 5].map((i) => msg(i).toString()));
  });

  it('stops with exit-75 kind and the time to come back when the server asks for too long a pause', async () => {
    const src = new MemorySource([1, 2].map((i) => ({ uidl: `u${i}`, body: msg(i) })));
    const dst = new MemoryDestination();
    throttling(dst, 1, 3_600_000);
    const slept: number[] = [];
    const run = runEngine(options(src, dst, { sleep: async (ms) => void slept.push(ms) }));
    await expect(run).rejects.toMatchObject({
      kind: 'temporary',
      context: {
        hint: expect.stringMatching(
          /a pause of 3600 s, more than the 300 s popsync waits at once; run again after \d{4}-/,
        ),
      },
    });
    expect(slept).toEqual([]);
    // The refused batch is still 'appending' in the journal; the next run settles and copies it once.
    const r = await runEngine(options(src, dst));
    expect(r.copied + r.reconciled).toBe(2);
    expect(dst.bodies()).toHaveLength(2);
  });

  it('--max-rate spaces the batches so the upload keeps to the rate', async () => {
    const src = new MemorySource([1, 2, 3, 4, 5, 6].map((i) => ({ uidl: `u${i}`, body: sized(i, 1000) })));
    const dst = new MemoryDestination();
    let clock = Date.parse('2026-11-29T10:00:00Z');
    const start = clock;
    const sentAt = recordUploads(dst, () => clock - start);
    const r = await runEngine(
      options(src, dst, {
        batchMessages: 1,
        now: () => new Date(clock),
        sleep: async (ms) => {
          clock += ms;
        },
        limits: limits({ maxRate: 1000 }),
      }),
    );
    expect(r.copied).toBe(6);
    // 1000 bytes a second with one second of burst: two at once, then one a second.
    expect(sentAt).toEqual([0, 0, 1000, 2000, 3000, 4000]);
  });

  it('--max-rate: a batch prepared and withdrawn (never written) gives its allowance back', async () => {
    const src = new MemorySource([1, 2, 3, 4, 5].map((i) => ({ uidl: `u${i}`, body: sized(i, 1000) })));
    const dst = new MemoryDestination();
    // Replies take a moment, so the third batch is prepared (paced, its intent journaled) behind
    // a full window; the first batch's connection drops, so it is withdrawn.
    dst.events = [];
    dst.dropAfterStoring.add(1);
    let clock = Date.parse('2026-11-29T10:00:00Z');
    const start = clock;
    const sentAt = recordUploads(dst, () => clock - start);
    const r = await runEngine(
      options(src, dst, {
        batchMessages: 1,
        now: () => new Date(clock),
        sleep: async (ms) => {
          clock += ms;
        },
        limits: limits({ maxRate: 1000 }),
      }),
    );
    expect(r).toMatchObject({ copied: 4, reconciled: 1, reconnects: 1 });
    // Message 3 was received for the withdrawn batch, and again in the pass after the drop.
    expect(src.retrs.get(3)).toBe(2);
    // Six uploads (u2 twice: the drop came before its reply). The last starts when the 5,000 bytes
    // before it were due at 1,000 a second after the one-second burst; the withdrawn batch still
    // charged made it 5,000 ms.
    expect(sentAt).toHaveLength(6);
    expect(sentAt.at(-1)).toBe(4000);
  });
});

/** When (by `elapsed`) each batch was handed to the destination, in order. */
function recordUploads(dst: MemoryDestination, elapsed: () => number): number[] {
  const sentAt: number[] = [];
  const plain = dst.sink.bind(dst);
  dst.sink = () => {
    const s = plain();
    return {
      ...s,
      appendBatch: (p, items, on) => {
        sentAt.push(elapsed());
        return s.appendBatch(p, items, on);
      },
    };
  };
  return sentAt;
}

/**
 * The dry run (engine/preview.ts) against the run it predicts, over the same in-memory servers
 * and journal: per message, what the plan says (through the same report builder `plan` uses)
 * is what the run then does. The e2e twin is test/e2e/plan-predicts.test.ts.
 */
describe('the dry run predicts the run, message by message', () => {
  const ROUTING = {
    rules: [
      {
        name: 'big',
        match: {
          headers: [
            { header: 'subject' as const, patterns: [{ kind: 'glob' as const, source: 'b*', caseSensitive: false }] },
          ],
        },
        folder: 'Big',
        flags: [],
      },
    ],
    defaultFolder: 'INBOX',
    flags: [],
    seen: [],
    arrivalDate: true,
    skipLargerThan: 400,
  };
  const AT = new Date('2026-11-29T10:00:00Z');

  /** What a run's detail row should say of a planned message: [uidl, outcome, folder or null]. */
  function predicted(m: { uidl: string; status: string; folder: string; reason: string | null }): unknown[] {
    if (m.status === 'new' || m.status === 'retry') return [m.uidl, 'copied', m.folder === '' ? null : m.folder];
    if (m.status === 'already-copied') return [m.uidl, 'already-copied', m.folder];
    return [m.uidl, /^over the size rule/.test(m.reason ?? '') ? 'skipped-by-rule' : 'failed', null];
  }

  async function planThenRun(src: MemorySource, dst: MemoryDestination): Promise<string[]> {
    const route = engineRouter(compileRouting(ROUTING), { now: () => AT });
    const rows = Journal.peek(join(dir, 'j.sqlite'), { source: 'alice@pop.test:110' }, 'alice@pop.test:110');
    const p = await previewRun({
      rows: rows ?? new Map(),
      openSource: async () => src.session(),
      openSink: async () => dst.sink(),
      route,
      logger: silentLogger,
      now: AT,
    });
    const plan = buildPlanReport({
      source: 's',
      destination: 'd',
      generatedAt: AT,
      ...p,
      appendLimit: null,
      skipLargerThan: ROUTING.skipLargerThan,
      rate: null,
    });
    const r = await runEngine(
      options(src, dst, { route, skipLargerThan: ROUTING.skipLargerThan, detail: true, now: () => AT }),
    );
    const done = (r.messages ?? []).map((m) => {
      const routed = predicted(plan.messages.find((x) => x.n === m.n)!)[2] !== null;
      return [
        m.uidl,
        m.outcome,
        m.outcome === 'copied' || m.outcome === 'already-copied' ? (routed ? m.folder : null) : null,
      ];
    });
    expect(done).toEqual(plan.messages.map(predicted));
    return plan.messages.map((m) => m.status);
  }

  it('on a server with UIDLs: new, big, refused TOP, then a renumbering with a reused UIDL', async () => {
    const src = new MemorySource([
      { uidl: 'a', body: msg(1) },
      { uidl: 'b', body: Buffer.from('Subject: big one\r\n\r\nsmall body\r\n') },
      { uidl: 'c', body: msg(3, 'x'.repeat(500)) },
      { uidl: 'd', body: msg(4, ' no-top') },
    ]);
    src.refuseTop = (b) => b.includes('no-top');
    const dst = new MemoryDestination();
    expect(await planThenRun(src, dst)).toEqual(['new', 'new', 'would-fail', 'new']);
    // A server move: new UIDLs for all (recognised by their headers, so TOP works again now).
    for (const m of src.messages) m.uidl = `new-${m.uidl}`;
    src.refuseTop = () => false;
    src.messages.push({ uidl: 'a', body: msg(5, ' under an old UIDL') }, { uidl: 'e', body: msg(6) });
    expect(await planThenRun(src, dst)).toEqual([
      'already-copied',
      'already-copied',
      'would-fail',
      'already-copied',
      'new',
      'new',
    ]);
  });

  it('on a server without UIDL: identity by headers, identical messages, a refused TOP', async () => {
    const src = new MemorySource([
      { uidl: '', body: msg(1) },
      { uidl: '', body: msg(1) },
      { uidl: '', body: msg(2) },
    ]);
    src.uidlSupported = false;
    src.refuseTop = (b) => b.includes('no-top');
    const dst = new MemoryDestination();
    expect(await planThenRun(src, dst)).toEqual(['new', 'new', 'new']);
    // Numbers shift, new mail arrives, and one whose TOP is refused: without UIDL it has no identity.
    src.messages.splice(0, 1);
    src.messages.push({ uidl: '', body: msg(8) }, { uidl: '', body: msg(7, ' no-top') });
    expect(await planThenRun(src, dst)).toEqual(['already-copied', 'already-copied', 'new', 'would-fail']);
    expect(dst.folders.get('INBOX')?.msgs).toHaveLength(4);
  });
});
