import { describe, expect, it } from 'vitest';
import { inFlight } from '../../src/engine/in-flight.js';

/** A command answered a macrotask after it was sent, counting how many await replies at once. */
function server(fail?: number) {
  const s = { waiting: 0, most: 0, sent: [] as number[] };
  const send = (n: number): Promise<number> => {
    s.sent.push(n);
    s.most = Math.max(s.most, ++s.waiting);
    return new Promise((resolve, reject) =>
      setImmediate(() => {
        s.waiting--;
        if (n === fail) reject(new Error(`command ${n} failed`));
        else resolve(n * 10);
      }),
    );
  };
  return { s, send };
}

describe('commands in flight', () => {
  it('answers in order with at most the limit awaiting replies, the next sent as each reply comes', async () => {
    const { s, send } = server();
    const items = Array.from({ length: 1000 }, (_, i) => i + 1);
    const out = await inFlight(items, 64, send);
    expect(out).toEqual(items.map((n) => n * 10));
    expect(s.most).toBe(64);
    expect(s.sent).toEqual(items);
  });

  it('runs what goes behind right after the last command is sent, before its reply', async () => {
    const { s, send } = server();
    let behind = -1;
    await inFlight([1, 2, 3, 4, 5], 2, send, () => {
      behind = s.waiting;
      expect(s.sent).toEqual([1, 2, 3, 4, 5]);
    });
    expect(behind).toBeGreaterThan(0);
    let empty = false;
    expect(
      await inFlight([], 2, send, () => {
        empty = true;
      }),
    ).toEqual([]);
    expect(empty).toBe(true);
  });

  it('stops sending at the first failure, and what goes behind is not run', async () => {
    const { s, send } = server(3);
    let behind = false;
    const sending = inFlight([1, 2, 3, 4, 5, 6, 7, 8], 2, send, () => {
      behind = true;
    });
    await expect(sending).rejects.toThrow('command 3 failed');
    // 1 and 2 at once, then 3 and 4 as they were answered; nothing after 3 failed.
    await new Promise((r) => setImmediate(r));
    expect(s.sent.length).toBeLessThanOrEqual(5);
    expect(behind).toBe(false);
  });
});
