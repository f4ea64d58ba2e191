/**
 * The checks deleter.ts makes before its one irreversible step, over an in-memory source and a
 * stubbed destination check: a message is DELEd only when `TOP n 0` shows the headers that were
 * copied (a TOP the server refuses proves nothing, so that message stays) and its copy's verdict
 * says the whole message is in the destination; rows go 'deleted' only for DELEs answered +OK
 * behind a QUIT answered +OK.
 */
import { beforeEach, describe, expect, it, vi } from 'vitest';
import type { RunContext } from '../../src/engine/context.js';
import { finishSource } from '../../src/engine/deleter.js';
import type { Verdict } from '../../src/engine/verify.js';
import { PopsyncError } from '../../src/errors.js';
import type { Pop3Session } from '../../src/pop3/types.js';
import { copiedRows, head } from '../support/copied-rows.js';

/** uidl -> the destination's verdict; 'same' for any other. */
const verdicts = new Map<string, Partial<Verdict>>();
vi.mock('../../src/engine/verifier.js', () => ({
  checkCopies: async (_sink: unknown, rows: ReadonlyArray<{ uidl: string; folder: string; destUid: number }>) =>
    new Map(
      rows.map((r) => [
        r.uidl,
        { status: 'same', folder: r.folder, uid: r.destUid, uidValidity: 1n, ...verdicts.get(r.uidl) },
      ]),
    ),
}));

const COUNT = 6;

interface World {
  ctx: RunContext;
  source: Pop3Session;
  deles: number[];
  marked: string[];
  settled: Array<{ deleted: string[]; kept: string[] }>;
  missing: string[];
  warnings: string[];
  problems: string[];
  /** n -> what TOP n 0 answers: a header block, or 'refused' (-ERR). */
  tops: Map<number, Buffer | 'refused'>;
  refuseDele: Set<number>;
  quit: { fail: boolean };
}

function world(): World {
  const listing = Array.from({ length: COUNT }, (_, i) => ({ n: i + 1, uidl: `u${i + 1}`, size: 100 }));
  const rows = copiedRows(listing);
  const w: World = {
    deles: [],
    marked: [],
    settled: [],
    missing: [],
    warnings: [],
    problems: [],
    tops: new Map(),
    refuseDele: new Set(),
    quit: { fail: false },
  } as unknown as World;
  const refused = (what: string) => new PopsyncError('server', `-ERR ${what} refused`);
  w.source = {
    top: async (n: number) => {
      const t = w.tops.get(n) ?? head(n);
      if (t === 'refused') throw refused('TOP');
      return t;
    },
    dele: async (n: number) => {
      w.deles.push(n);
      if (w.refuseDele.has(n)) throw refused('DELE');
    },
    quit: async () => {
      if (w.quit.fail) throw new PopsyncError('temporary', 'POP3 server refused QUIT: -ERR [SYS/TEMP]');
    },
    leave: () => undefined,
  } as unknown as Pop3Session;
  w.ctx = {
    o: {
      account: 'a',
      journal: {
        rowsByUidl: () => rows,
        markDeleting: (_a: string, u: string[]) => void w.marked.push(...u),
        settleDeleting: (_a: string, s: { deleted: string[]; kept: string[] }) => void w.settled.push(s),
        markCopyMissing: (_a: string, u: string) => void w.missing.push(u),
        doneUidsIn: () => new Set(),
      },
    },
    rec: {
      result: { deleted: 0, deletionWaiting: 0, deletionRefused: null },
      warn: (m: string) => void w.warnings.push(m),
      copyProblem: (p: { uidl: string }) => void w.problems.push(p.uidl),
    },
    listing,
    now: () => new Date('2030-01-05T00:00:00Z'),
    on: <T>(_side: string, p: Promise<T>) => p,
    connectSink: async () => ({}),
  } as unknown as RunContext;
  return w;
}

const POLICY = { afterDays: 0, maxDelete: null, force: false, verify: false };

beforeEach(() => verdicts.clear());

describe('deleting from the source: what is checked before DELE', () => {
  it('keeps a message whose headers differ from the copy, and one whose TOP the server refuses', async () => {
    const w = world();
    w.tops.set(2, head(99));
    w.tops.set(4, 'refused');
    await finishSource(w.ctx, w.source, POLICY);
    expect(w.deles).toEqual([1, 3, 5, 6]);
    expect(w.marked).toEqual(['u1', 'u3', 'u5', 'u6']);
    expect(w.settled).toEqual([{ deleted: ['u1', 'u3', 'u5', 'u6'], kept: [] }]);
    expect(w.warnings).toHaveLength(2);
    expect(w.warnings[0]).toMatch(/^UIDL u2: not deleted from the source: its headers differ .*reused the UIDL/);
    // A refused TOP is said as such: nothing suggests a reused UIDL.
    expect(w.warnings[1]).toMatch(/^UIDL u4: not deleted from the source: the POP3 server refused TOP/);
    expect(w.warnings[1]).not.toMatch(/reused/);
  });

  it('deletes only originals whose copy holds the whole message; a copy proven missing is copied again', async () => {
    const w = world();
    verdicts.set('u1', { status: 'missing' });
    verdicts.set('u2', { status: 'differs' });
    verdicts.set('u3', { status: 'unknown' });
    verdicts.set('u4', { status: 'rewritten', lossless: false });
    verdicts.set('u5', { status: 'rewritten', lossless: true });
    await finishSource(w.ctx, w.source, POLICY);
    expect(w.deles).toEqual([5, 6]);
    expect(w.missing).toEqual(['u1']);
    expect(w.problems).toEqual(['u1', 'u2', 'u3', 'u4']);
  });

  it("a copy's verdict counts only for a message whose source still matches", async () => {
    const w = world();
    w.tops.set(1, head(99));
    verdicts.set('u1', { status: 'missing' });
    await finishSource(w.ctx, w.source, POLICY);
    expect(w.missing, "not this row's message: its copy is not re-queued").toEqual([]);
    expect(w.deles).toEqual([2, 3, 4, 5, 6]);
  });

  it('journals deleted only what the server confirmed: a refused DELE kept, a refused QUIT nothing', async () => {
    const w = world();
    w.refuseDele.add(3);
    await finishSource(w.ctx, w.source, POLICY);
    expect(w.settled).toEqual([{ deleted: ['u1', 'u2', 'u4', 'u5', 'u6'], kept: ['u3'] }]);

    const v = world();
    v.quit.fail = true;
    await expect(finishSource(v.ctx, v.source, POLICY)).rejects.toThrow(/refused QUIT/);
    expect(v.marked).toHaveLength(COUNT);
    expect(v.settled, "rows stay 'deleting' for the next run to settle from the listing").toEqual([]);
  });
});
