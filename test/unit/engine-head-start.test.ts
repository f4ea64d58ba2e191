/**
 * Receiving ahead while the destination logs in (engine/head-start.ts): which messages go ahead,
 * and that the copier then reads exactly the streams already asked for, in order.
 */
import { describe, expect, it } from 'vitest';
import { HeadStart, headStartOf } from '../../src/engine/head-start.js';
import { RetrBody } from '../../src/pop3/retr-body.js';
import type { Pop3Session } from '../../src/pop3/types.js';

const listed = (sizes: number[]) => sizes.map((size, i) => ({ n: i + 1, size, uidl: `u${i + 1}` }));
const bounds = { messages: 3, bytes: 1000, maxMessage: 500, budget: Number.POSITIVE_INFINITY };

describe('headStartOf', () => {
  it('takes the longest prefix within one batch', () => {
    expect(headStartOf(listed([100, 100, 100, 100]), bounds).map((m) => m.n)).toEqual([1, 2, 3]);
    expect(headStartOf(listed([400, 400, 400]), bounds).map((m) => m.n)).toEqual([1, 2]);
    expect(headStartOf(listed([100, 100]), { ...bounds, budget: 150 }).map((m) => m.n)).toEqual([1]);
  });

  it('stops at the first message larger than may be received before the destination states its limit', () => {
    // Not past it either: the copier reads replies in order, so what went ahead must be a prefix.
    expect(headStartOf(listed([100, 600, 100]), bounds).map((m) => m.n)).toEqual([1]);
    expect(headStartOf(listed([600, 100]), bounds)).toEqual([]);
  });
});

/** A session that records RETRs and hands out streams the test can inspect. */
function recordingSession(): { session: Pop3Session; retrs: number[]; streams: Map<number, RetrBody> } {
  const retrs: number[] = [];
  const streams = new Map<number, RetrBody>();
  const no = (): never => {
    throw new Error('not used');
  };
  const session: Pop3Session = {
    greeting: '+OK',
    capabilities: new Map(),
    pipelining: true,
    stat: no,
    list: no,
    uidl: no,
    top: no,
    retr: no,
    retrStream: (n) => {
      retrs.push(n);
      const s = new RetrBody(() => undefined);
      streams.set(n, s);
      return s;
    },
    dele: no,
    rset: no,
    noop: no,
    quit: no,
    leave: no,
    destroy: () => undefined,
  };
  return { session, retrs, streams };
}

describe('HeadStart', () => {
  it('asks for its messages at once; the copy then gets those streams and asks only for the rest', () => {
    const { session, retrs, streams } = recordingSession();
    const all = listed([10, 10, 10, 10]);
    const early = new HeadStart(session, all.slice(0, 2));
    expect(retrs).toEqual([1, 2]);
    const from = early.session(all);
    expect(from.retrStream(1)).toBe(streams.get(1));
    expect(from.retrStream(2)).toBe(streams.get(2));
    from.retrStream(3);
    expect(retrs).toEqual([1, 2, 3]);
  });

  it('drops what the copy no longer holds (over the destination limit), keeping the rest in order', () => {
    const { session, retrs, streams } = recordingSession();
    const all = listed([10, 10, 10]);
    const early = new HeadStart(session, all);
    const from = early.session([all[0]!, all[2]!]);
    expect(streams.get(2)!.destroyed).toBe(true);
    expect(from.retrStream(1)).toBe(streams.get(1));
    expect(from.retrStream(3)).toBe(streams.get(3));
    expect(retrs).toEqual([1, 2, 3]);
    // Nothing left to copy: every stream is let go and the plain session is used.
    const again = recordingSession();
    const none = new HeadStart(again.session, all);
    expect(none.session([])).toBe(again.session);
    expect([...again.streams.values()].every((s) => s.destroyed)).toBe(true);
  });

  it('abandon() lets every stream go when the destination fails', () => {
    const { session, streams } = recordingSession();
    new HeadStart(session, listed([10, 10])).abandon();
    expect([...streams.values()].every((s) => s.destroyed)).toBe(true);
  });
});
