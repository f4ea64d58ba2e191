import { describe, expect, it } from 'vitest';
import { ReadAhead, RetrBody } from '../../src/pop3/retr-body.js';

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
});
