/**
 * What a deletion keeps awaiting replies (engine/deleter.ts, in-flight.ts): at most
 * DELETE_IN_FLIGHT TOPs and then DELEs, whatever the mailbox, instead of one of each for every
 * message due, all queued at once; QUIT still goes right behind the last DELE, before its reply.
 * Over an in-memory source that answers a command a macrotask after it was sent, as a socket
 * would; the destination's check is stubbed (every copy present).
 */
import { describe, expect, it, vi } from 'vitest';
import type { RunContext } from '../../src/engine/context.js';
import { DELETE_IN_FLIGHT, finishSource } from '../../src/engine/deleter.js';
import type { Pop3Session } from '../../src/pop3/types.js';
import { copiedRows, head } from '../support/copied-rows.js';

vi.mock('../../src/engine/verifier.js', () => ({
  checkCopies: async (_sink: unknown, rows: ReadonlyArray<{ uidl: string; folder: string; destUid: number }>) =>
    new Map(rows.map((r) => [r.uidl, { status: 'same', folder: r.folder, uid: r.destUid, uidValidity: 1n }])),
}));

describe('sync --delete on a large mailbox', () => {
  it(`keeps at most ${DELETE_IN_FLIGHT} TOPs and DELEs awaiting replies, and QUIT behind the last DELE`, async () => {
    const count = 3000;
    const listing = Array.from({ length: count }, (_, i) => ({ n: i + 1, uidl: `u${i + 1}`, size: 100 }));
    const rows = copiedRows(listing);
    const waiting = { TOP: 0, DELE: 0 };
    const most = { TOP: 0, DELE: 0 };
    const order: string[] = [];
    // Answered a macrotask later, as a reply read from a socket.
    const reply = <T>(verb: 'TOP' | 'DELE', value: T): Promise<T> => {
      most[verb] = Math.max(most[verb], ++waiting[verb]);
      return new Promise((resolve) =>
        setImmediate(() => {
          waiting[verb]--;
          resolve(value);
        }),
      );
    };
    const source = {
      top: (n: number) => reply('TOP', head(n)),
      dele: (n: number) => {
        order.push(`DELE ${n}`);
        return reply('DELE', undefined);
      },
      quit: async () => {
        order.push(`QUIT with ${waiting.DELE} DELEs unanswered`);
      },
      leave: () => undefined,
    } as unknown as Pop3Session;
    const deleted: string[] = [];
    const result = { deleted: 0, deletionWaiting: 0, deletionRefused: null };
    const ctx = {
      o: {
        account: 'a',
        journal: {
          rowsByUidl: () => rows,
          markDeleting: () => undefined,
          settleDeleting: (_a: string, s: { deleted: string[] }) => void deleted.push(...s.deleted),
          doneUidsIn: () => new Set(),
        },
      },
      rec: { result, warn: () => undefined, copyProblem: () => undefined },
      listing,
      now: () => new Date('2030-01-05T00:00:00Z'),
      on: <T>(_side: string, p: Promise<T>) => p,
      connectSink: async () => ({}),
    } as unknown as RunContext;

    await finishSource(ctx, source, { afterDays: 0, maxDelete: null, force: false, verify: false });

    expect(result.deleted).toBe(count);
    expect(deleted).toHaveLength(count);
    expect(most.TOP).toBeLessThanOrEqual(DELETE_IN_FLIGHT);
    expect(most.DELE).toBeLessThanOrEqual(DELETE_IN_FLIGHT);
    // Still pipelined: a full window at once, not a few at a time.
    expect(most.TOP).toBe(DELETE_IN_FLIGHT);
    expect(most.DELE).toBe(DELETE_IN_FLIGHT);
    // QUIT went right behind the last DELE, before the replies to the DELEs before it.
    expect(order.at(-2)).toBe(`DELE ${count}`);
    expect(order.at(-1)).toMatch(/^QUIT with [1-9]\d* DELEs unanswered$/);
  });
});
