import { describe, expect, it } from 'vitest';
import { ReadAhead, RetrBody } from '../../src/pop3/retr-body.js';
import { seeded } from '../support/seeded.js';

/** Reads a body to its end as the receiver does. */
async function readAll(body: RetrBody): Promise<string[]> {
  const out: string[] = [];
  for (let c = body.read(); ; c = body.read()) {
    const chunk = c instanceof Promise ? await c : c;
    if (chunk === null) return out;
    out.push(chunk.toString());
  }
}

const b = (s: string): Buffer => Buffer.from(s);

describe('RetrBody (a RETR reply between the connection and its reader)', () => {
  it('returns queued chunks at once, waits for later ones, and ends with null', async () => {
    const body = new RetrBody(() => undefined);
    body.push(b('a'));
    body.push(b('b'));
    expect(body.read()).toEqual(b('a'));
    const later = readAll(body);
    setTimeout(() => {
      body.push(b('c'));
      setTimeout(() => body.end(), 5);
    }, 5);
    expect(await later).toEqual(['b', 'c']);
    expect(body.read()).toBeNull();
  });

  it("fails with the reply's error, also when it comes while waiting, before any chunk still queued", async () => {
    const body = new RetrBody(() => undefined);
    body.push(b('a'));
    const read = readAll(body);
    setTimeout(() => body.fail(new Error('link dropped')), 5);
    await expect(read).rejects.toThrow('link dropped');
    const queued = new RetrBody(() => undefined);
    queued.push(b('never read'));
    queued.fail(new Error('-ERR gone'));
    await expect(queued.read()).rejects.toThrow('-ERR gone');
  });

  it('stops the producer at its chunk bound and resumes it once the reader made room', () => {
    let resumed = 0;
    const body = new RetrBody(() => resumed++, 3);
    expect(body.push(b('1'))).toBe(true);
    expect(body.push(b('2'))).toBe(true);
    expect(body.push(b('3'))).toBe(false);
    // A socket read already under way may still deliver: it is queued, and the answer stays false.
    expect(body.push(b('4'))).toBe(false);
    expect(body.read()).toEqual(b('1'));
    expect(resumed).toBe(0);
    expect(body.read()).toEqual(b('2'));
    expect(resumed).toBe(1);
    expect(body.read()).toEqual(b('3'));
    expect(resumed).toBe(1);
    expect(body.queued).toBe(1);
  });

  it('hands a chunk straight to a waiting reader, queueing nothing', async () => {
    const body = new RetrBody(() => undefined, 1);
    const waiting = body.read();
    expect(body.push(b('x'))).toBe(true);
    expect(body.queued).toBe(0);
    expect(await waiting).toEqual(b('x'));
  });

  it('given up, it drops what is queued and what still arrives, resumes the socket, and reads fail', async () => {
    let resumed = 0;
    const body = new RetrBody(() => resumed++, 2);
    body.push(b('1'));
    expect(body.push(b('2'))).toBe(false);
    const waiting = new RetrBody(() => undefined);
    const read = waiting.read();
    body.destroy();
    waiting.destroy();
    expect(resumed).toBe(1);
    expect(body.destroyed).toBe(true);
    expect(body.queued).toBe(0);
    // The rest of the reply is still read off the socket, to stay in step.
    expect(body.push(b('3'))).toBe(true);
    expect(body.queued).toBe(0);
    body.end();
    await expect(body.read()).rejects.toThrow('given up');
    await expect(read).rejects.toThrow('given up');
  });

  it('is async iterable; a loop left early gives the body up', async () => {
    const body = new RetrBody(() => undefined);
    body.push(b('a'));
    body.push(b('b'));
    body.end();
    const got: string[] = [];
    for await (const c of body) got.push(c.toString());
    expect(got).toEqual(['a', 'b']);
    const cut = new RetrBody(() => undefined);
    cut.push(b('a'));
    for await (const _ of cut) break;
    expect(cut.destroyed).toBe(true);
  });

  it("a loop left early on a reply that has ended gives back its queued bytes to the session's bound", async () => {
    let resumed = 0;
    const ahead = new ReadAhead(() => resumed++, 4);
    const body = new RetrBody(() => undefined, 16, ahead);
    body.push(b('abc'));
    expect(body.push(b('def'))).toBe(false);
    body.end();
    for await (const _ of body) break;
    // Left queued, 'def' would hold the socket paused for good.
    expect(body.queued).toBe(0);
    expect(resumed).toBe(1);
  });

  it('hands out what was pushed, in order, and stops and resumes as a plain queue would (seeded steps)', async () => {
    // The body against a queue written out plainly: a first chunk held apart from those behind it
    // must not change the order chunks are read in, how many count as queued (push()'s answer,
    // the room() call), nor what failing or giving up drops.
    const next = seeded(23);
    for (let round = 0; round < 2000; round++) {
      const max = 1 + next(4);
      let rooms = 0;
      const body = new RetrBody(() => rooms++, max);
      const q: string[] = [];
      let full = false;
      let ended = false;
      let failed = false;
      let gaveUp = false;
      let expectedRooms = 0;
      const drop = (): void => {
        q.length = 0;
        if (full) expectedRooms++;
        full = false;
      };
      let waiting: Promise<Buffer | null> | null = null;
      const steps: string[] = [];
      for (let step = 0, n = 0; step < 30; step++) {
        const op = next(12);
        const what = `round ${round}: ${steps.join(' ')}`;
        if (op < 5) {
          const chunk = `c${n++}`;
          steps.push(`push ${chunk}`);
          let want = true;
          if (waiting !== null) {
            const w = waiting;
            waiting = null;
            expect(body.push(b(chunk)), what).toBe(true);
            expect((await w)?.toString(), what).toBe(chunk);
            continue;
          }
          if (!gaveUp && !failed) {
            q.push(chunk);
            if (q.length >= max) {
              full = true;
              want = false;
            }
          }
          expect(body.push(b(chunk)), what).toBe(want);
        } else if (op < 10) {
          if (waiting !== null) continue;
          steps.push('read');
          const got = body.read();
          if (failed) {
            await expect(got, what).rejects.toThrow('boom');
          } else if (q.length > 0) {
            expect((got as Buffer).toString(), what).toBe(q.shift());
            if (full && q.length < max) {
              full = false;
              expectedRooms++;
            }
          } else if (ended) {
            expect(got, what).toBeNull();
          } else if (gaveUp) {
            await expect(got, what).rejects.toThrow();
          } else {
            expect(got, what).toBeInstanceOf(Promise);
            waiting = got as Promise<Buffer | null>;
          }
        } else if (op === 10) {
          steps.push('end');
          if (!gaveUp && !failed) ended = true;
          body.end();
          if (waiting !== null && ended) {
            expect(await waiting, what).toBeNull();
            waiting = null;
          }
        } else {
          const fail = next(2) === 0;
          steps.push(fail ? 'fail' : 'destroy');
          if (fail && !gaveUp && !failed && !ended) {
            failed = true;
            drop();
          }
          if (!fail && !gaveUp) {
            gaveUp = true;
            drop();
          }
          if (fail) body.fail(new Error('boom'));
          else body.destroy();
          if (waiting !== null && (failed || gaveUp)) {
            await expect(waiting, what).rejects.toThrow();
            waiting = null;
          }
        }
        expect(body.queued, what).toBe(q.length);
        expect(rooms, what).toBe(expectedRooms);
      }
    }
  });
});
