/**
 * Reconciliation records the copies it finds in a folder as one journal step (engine/reconciler.ts):
 * a journal.confirm per row was a committed transaction each (~0.3 s of a 5,000-row reconcile).
 * A real journal, a destination folder stubbed in memory holding some of the interrupted copies;
 * steps are counted by the crash hook's steps file, which counts exactly the committed write transactions.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, expect, it } from 'vitest';
import type { RunContext } from '../../src/engine/context.js';
import { Fingerprinter } from '../../src/engine/fingerprint.js';
import { reconcilePending } from '../../src/engine/reconciler.js';
import type { DestinationMessage, ImapSink } from '../../src/imap/types.js';
import { configureCrashHook } from '../../src/journal/crash-hook.js';
import { Journal } from '../../src/journal/journal.js';

const A = 'alice';
const V = 7n;
let dir: string;
let journal: Journal;
let stepsFile: string;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'popsync-reconciler-'));
  journal = Journal.open(join(dir, 'journal.db'), { source: 'alice@pop.example.net:995' });
  stepsFile = join(dir, 'steps');
  configureCrashHook({ killAt: null, stepsFile });
});

afterEach(() => {
  configureCrashHook({ killAt: null, stepsFile: null });
  journal.close();
  rmSync(dir, { recursive: true, force: true });
});

const steps = (): number => Number(readFileSync(stepsFile, 'utf8'));
const body = (i: number): Buffer => Buffer.from(`Message-ID: <m${i}@x>\r\nSubject: ${i}\r\n\r\nbody ${i}\r\n`);

it('confirms the copies found in a folder in one transaction, not one per row; the rest stay appending', async () => {
  const count = 300;
  const fingerprint = (b: Buffer) => {
    const f = new Fingerprinter();
    f.update(b);
    return f.digest();
  };
  journal.recordFolder(A, 'INBOX', V, { uidNext: 1, messages: 0 });
  journal.beginAppend(
    A,
    Array.from({ length: count }, (_, i) => ({
      uidl: `u${i}`,
      size: body(i).length,
      sha256: createHash('sha256').update(body(i)).digest('hex'),
      fingerprint: fingerprint(body(i)),
      messageId: `<m${i}@x>`,
      folder: 'INBOX',
      destUidValidity: V,
      destUidNext: 1,
    })),
  );
  // Every copy but each tenth arrived, in order, at UIDs from 1.
  const stored = new Map<number, Buffer>();
  const held: DestinationMessage[] = [];
  const uidOf = new Map<string, number>();
  for (let i = 0; i < count; i++) {
    if (i % 10 === 9) continue;
    const uid = held.length + 1;
    stored.set(uid, body(i));
    held.push({ uid, size: body(i).length, messageId: `<m${i}@x>` });
    uidOf.set(`u${i}`, uid);
  }
  const sink = {
    ensureFolder: async (path: string) => ({ path, uidValidity: V, uidNext: held.length + 1, messages: held.length }),
    listSince: async (_p: string, since: number) => held.filter((m) => m.uid >= since),
    readBodies: async (
      _p: string,
      uids: ReadonlyArray<{ uid: number }>,
      r: { chunk(uid: number, b: Buffer): void; end(uid: number): void },
    ) => {
      for (const { uid } of uids) {
        const b = stored.get(uid);
        if (!b) continue;
        r.chunk(uid, b);
        r.end(uid);
      }
    },
    scanHeaders: async () => null,
  } as unknown as ImapSink;
  const result = { reconciled: 0 };
  const ctx = {
    o: { account: A, journal, logger: { info: () => undefined, warn: () => undefined } },
    rec: { result, detailed: false, warn: () => undefined },
    folders: new Map(),
    listing: [],
    settledThisPass: 0,
    on: <T>(_side: string, p: Promise<T>) => p,
  } as unknown as RunContext;

  const before = steps();
  await reconcilePending(ctx, sink, undefined);
  // Opening the folder records it (one step), the copies found are the other.
  expect(steps() - before).toBeLessThanOrEqual(2);
  expect(result.reconciled).toBe(uidOf.size);
  expect(ctx.settledThisPass).toBe(uidOf.size);
  for (let i = 0; i < count; i++) {
    const row = journal.get(A, `u${i}`)!;
    const uid = uidOf.get(`u${i}`);
    if (uid === undefined) expect([row.state, row.destUid]).toEqual(['appending', null]);
    else expect([row.state, row.destUid, row.destUidValidity]).toEqual(['done', uid, V]);
  }
});
