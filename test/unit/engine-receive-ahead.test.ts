import { describe, expect, it } from 'vitest';
import {
  HELD_BATCHES,
  HELD_MESSAGE_FLOOR,
  MAX_HELD_BATCHES,
  mayReceive,
  ReceiveAhead,
} from '../../src/engine/receive-ahead.js';
import type { ReceivedBatch } from '../../src/engine/receiver.js';
import { Arena, SlabPool } from '../../src/engine/slabs.js';

const MB = 1024 * 1024;
const CAP = 10 * MB;

/** A batch of `sizes` (wire bytes per message); `error` as a cut connection leaves it. */
function batch(sizes: number[], error: ReceivedBatch['error'] = null): ReceivedBatch {
  return {
    items: sizes.map((wireSize) => ({ body: { wireSize } })),
    error,
    arena: new Arena(new SlabPool(0)),
  } as unknown as ReceivedBatch;
}

/** A receiver handing out `batches` in order, then null; counts its calls. */
function scripted(batches: Array<ReceivedBatch | Error>) {
  const r = {
    calls: 0,
    batch(): Promise<ReceivedBatch | null> {
      const next = batches[r.calls++];
      if (next instanceof Error) return Promise.reject(next);
      return Promise.resolve(next ?? null);
    },
  };
  return r;
}

/** Lets every batch already resolvable arrive. */
const settle = (): Promise<void> => new Promise((r) => setImmediate(r));

describe('mayReceive (how far ahead of the APPEND window batches are received)', () => {
  it('always allows the batches the window and one being received take, whatever their size', () => {
    expect(HELD_BATCHES).toBe(3);
    expect(mayReceive(0, 0, CAP)).toBe(true);
    expect(mayReceive(2, 2 * CAP + 7 * MB, CAP)).toBe(true);
  });

  it('beyond them, only while a whole batch cap still fits in three caps of held bytes', () => {
    expect(mayReceive(3, 2 * CAP, CAP)).toBe(true);
    expect(mayReceive(3, 2 * CAP + 1, CAP)).toBe(false);
    expect(mayReceive(7, 11 * MB, CAP)).toBe(true);
    expect(mayReceive(3, 3 * CAP, CAP)).toBe(false);
  });

  it('and never past eight batches, however few bytes they hold', () => {
    expect(MAX_HELD_BATCHES).toBe(8);
    expect(mayReceive(MAX_HELD_BATCHES - 1, 7 * MB, CAP)).toBe(true);
    expect(mayReceive(MAX_HELD_BATCHES, 0, CAP)).toBe(false);
    expect(mayReceive(12, 11 * MB, CAP)).toBe(false);
  });
});

describe('ReceiveAhead', () => {
  it('receives batches ahead while the window is full, up to the byte bound', async () => {
    const r = scripted(Array.from({ length: 40 }, () => batch([3 * MB, MB])));
    const ahead = new ReceiveAhead(r, CAP);
    await settle();
    // Nothing taken yet: 6 batches of 4 MB held (20 MB + a cap fits in 30 MB; 24 MB does not).
    expect(r.calls).toBe(6);
    const first = ahead.take()!;
    ahead.release(first, true);
    await settle();
    expect(r.calls).toBe(7);
  });

  it('receives small batches ahead only up to eight held, the byte bound far off', async () => {
    const r = scripted(Array.from({ length: 40 }, () => batch([MB])));
    const ahead = new ReceiveAhead(r, CAP);
    await settle();
    // 8 MB held: 21 such batches fit the bytes, but receiving further than the window can use
    // only takes CPU from the server storing it.
    expect(r.calls).toBe(MAX_HELD_BATCHES);
    // Taken (being appended) is still held.
    const first = ahead.take()!;
    await settle();
    expect(r.calls).toBe(MAX_HELD_BATCHES);
    ahead.release(first, true);
    await settle();
    expect(r.calls).toBe(MAX_HELD_BATCHES + 1);
  });

  it('holds three batches at the byte cap, as one received behind a window of two did', async () => {
    const r = scripted(Array.from({ length: 10 }, () => batch([4 * MB, 4 * MB, 2 * MB])));
    const ahead = new ReceiveAhead(r, CAP);
    await settle();
    expect(r.calls).toBe(3);
    const a = ahead.take()!;
    ahead.take();
    await settle();
    // Taken is not released: a batch being appended still holds its bytes.
    expect(r.calls).toBe(3);
    ahead.release(a, true);
    await settle();
    expect(r.calls).toBe(4);
  });

  it('counts each tiny message held at the floor: batches of them do not fill the bound by the thousand', async () => {
    // 2,500 messages of 20 bytes a batch (--batch-messages 2500): 50,000 bytes each by their
    // bodies alone, so 600 batches (1.5 million messages and their objects) would fit in three caps.
    const r = scripted(Array.from({ length: 1_000 }, () => batch(Array<number>(2_500).fill(20))));
    const ahead = new ReceiveAhead(r, CAP);
    await settle();
    const perBatch = 2_500 * HELD_MESSAGE_FLOOR;
    expect(r.calls).toBe(Math.floor((2 * CAP) / perBatch) + 1);
    expect(r.calls).toBeLessThan(MAX_HELD_BATCHES);
    expect(r.calls * 2_500).toBeLessThanOrEqual((HELD_BATCHES * CAP) / HELD_MESSAGE_FLOOR);
    ahead.release(ahead.take()!, true);
    await settle();
    expect(r.calls).toBe(Math.floor((2 * CAP) / perBatch) + 2);
  });

  it("reuses a released batch's memory only when all its APPENDs were answered", async () => {
    const pool = new SlabPool(10);
    const withBody = (): ReceivedBatch => {
      const got = batch([MB]);
      got.arena = new Arena(pool);
      got.arena.copy(Buffer.alloc(1000), []);
      return got;
    };
    const ahead = new ReceiveAhead(scripted([withBody(), withBody()]), CAP);
    await settle();
    // A failed batch may still have a write queued on a socket: its slab is not handed out again.
    ahead.release(ahead.take()!, false);
    expect(pool.spare).toBe(0);
    ahead.release(ahead.take()!, true);
    expect(pool.spare).toBe(1);
  });

  it('hands batches out in order, then null once the receiver is done', async () => {
    const batches = [batch([1]), batch([2]), batch([3])];
    const ahead = new ReceiveAhead(scripted(batches), CAP);
    const got: ReceivedBatch[] = [];
    for (;;) {
      await ahead.arrival();
      const b = ahead.take();
      if (b === undefined) {
        expect(ahead.done).toBe(true);
        break;
      }
      got.push(b);
    }
    expect(got).toEqual(batches);
  });

  it('stops after a batch cut by a failure, or a receiver that threw, once the batches before are out', async () => {
    const cut = batch([1], { message: 'dropped' } as ReceivedBatch['error']);
    const r = scripted([batch([1]), cut, batch([1])]);
    const ahead = new ReceiveAhead(r, CAP);
    await settle();
    expect(r.calls).toBe(2);
    ahead.take();
    expect(ahead.take()).toBe(cut);
    expect(ahead.done).toBe(true);

    const broken = new ReceiveAhead(scripted([batch([1]), new Error('spool full')]), CAP);
    await settle();
    expect(broken.take()).toBeDefined();
    expect(broken.done).toBe(true);
    expect(() => broken.take()).toThrow('spool full');
  });

  it('stop() waits for the batch being received and returns those never taken', async () => {
    let finish: (b: ReceivedBatch) => void = () => undefined;
    const slow = batch([2]);
    const r = {
      calls: 0,
      batch(): Promise<ReceivedBatch | null> {
        r.calls++;
        if (r.calls === 1) return Promise.resolve(batch([1]));
        return new Promise((resolve) => {
          finish = resolve;
        });
      },
    };
    const ahead = new ReceiveAhead(r, CAP);
    await settle();
    const stopped = ahead.stop();
    finish(slow);
    const unstored = await stopped;
    expect(unstored.map((b) => b.items.length)).toEqual([1, 1]);
    expect(unstored[1]).toBe(slow);
    await settle();
    expect(r.calls).toBe(2);
  });
});
