import { describe, expect, it } from 'vitest';
import { createHostSlots } from '../../src/app/host-slots.js';

const tick = () => new Promise((r) => setImmediate(r));

describe('per-host slots', () => {
  it('lets at most N holders per host in, all hosts or none, and hands slots on', async () => {
    const slots = createHostSlots(2);
    const order: string[] = [];
    const take = (id: string, hosts: string[]) =>
      slots.acquire(hosts).then((release) => {
        order.push(id);
        return release;
      });
    const a = await take('a', ['pop3 p', 'imap i']);
    const b = await take('b', ['pop3 p', 'imap j']);
    const c = take('c', ['pop3 p', 'imap i']);
    const d = take('d', ['pop3 q', 'imap i']);
    await tick();
    expect(order).toEqual(['a', 'b', 'd']);
    expect(slots.inUse('pop3 p')).toBe(2);
    expect(slots.inUse('imap i')).toBe(2);
    b();
    b(); // a second release gives nothing back twice
    await tick();
    // c has pop3 p free now, but imap i is still held by a and d: c takes neither meanwhile.
    expect(order).toEqual(['a', 'b', 'd']);
    expect(slots.inUse('pop3 p')).toBe(1);
    a();
    const rc = await c;
    expect(order).toEqual(['a', 'b', 'd', 'c']);
    expect(slots.inUse('imap i')).toBe(2);
    rc();
    (await d)();
    expect(slots.inUse('pop3 p')).toBe(0);
    expect(slots.inUse('imap i')).toBe(0);
  });

  it('never exceeds the cap with many holders on two hosts', async () => {
    const slots = createHostSlots(3);
    let peak = 0;
    await Promise.all(
      Array.from({ length: 40 }, async (_, i) => {
        const release = await slots.acquire([`pop3 p${i % 2}`, 'imap i']);
        peak = Math.max(peak, slots.inUse('imap i'), slots.inUse('pop3 p0'), slots.inUse('pop3 p1'));
        await tick();
        release();
      }),
    );
    expect(peak).toBe(3);
    expect(slots.inUse('imap i')).toBe(0);
  });

  it('counts a host named twice once', async () => {
    const slots = createHostSlots(1);
    const r = await slots.acquire(['h', 'h']);
    expect(slots.inUse('h')).toBe(1);
    r();
    expect(() => createHostSlots(0)).toThrow(RangeError);
  });
});
