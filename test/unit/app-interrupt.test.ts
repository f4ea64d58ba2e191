import { describe, expect, it } from 'vitest';
import { abortableSleep, asInterrupted, interruptible } from '../../src/app/interrupt.js';
import { PopsyncError } from '../../src/errors.js';
import type { ImapSink } from '../../src/imap/types.js';
import type { Pop3Session } from '../../src/pop3/types.js';

const kindOf = (p: Promise<unknown>) =>
  p.then(
    () => 'resolved',
    (e: PopsyncError) => e.kind,
  );

describe('what an interrupt does to the waits of a run', () => {
  it('the backoff sleep ends at once, as an interruption, when the signal aborts', async () => {
    const c = new AbortController();
    const sleeping = kindOf(abortableSleep(c.signal)(3_600_000));
    c.abort();
    expect(await sleeping).toBe('interrupted');
    expect(await kindOf(abortableSleep(c.signal)(3_600_000))).toBe('interrupted');
    expect(await kindOf(abortableSleep(new AbortController().signal)(1))).toBe('resolved');
  });

  it('drops the open POP3 session, abandons a pending connect and closes what arrives late', async () => {
    const c = new AbortController();
    const destroyed: string[] = [];
    const session = (name: string) => ({ destroy: () => destroyed.push(name) }) as unknown as Pop3Session;
    let lateSink: (s: ImapSink) => void = () => {};
    let closed = 0;
    const cuts = interruptible(
      {
        openSource: async () => session('first'),
        openSink: () =>
          new Promise<ImapSink>((r) => {
            lateSink = r;
          }),
      },
      c.signal,
    );
    await cuts.openSource();
    const connecting = kindOf(cuts.openSink());
    c.abort();
    expect(destroyed).toEqual(['first']);
    expect(await connecting).toBe('interrupted');
    lateSink({ close: async () => void closed++ } as unknown as ImapSink);
    await new Promise((r) => setImmediate(r));
    expect(closed).toBe(1);
    expect(await kindOf(cuts.openSource())).toBe('interrupted');
    cuts.dispose();
  });

  it('after an interrupt, a lost connection is reported as the interruption; other errors keep their meaning', () => {
    const c = new AbortController();
    const lost = new PopsyncError('connection', 'POP3 connection closed by popsync');
    const auth = new PopsyncError('auth', 'login refused');
    expect(asInterrupted(lost, c.signal)).toBe(lost);
    c.abort();
    expect((asInterrupted(lost, c.signal) as PopsyncError).kind).toBe('interrupted');
    expect((asInterrupted(new PopsyncError('temporary', 'x'), c.signal) as PopsyncError).kind).toBe('interrupted');
    expect((asInterrupted(new PopsyncError('locked', 'held by pid 1'), c.signal) as PopsyncError).kind).toBe(
      'interrupted',
    );
    expect(asInterrupted(auth, c.signal)).toBe(auth);
  });
});
