/**
 * The protocol tests' way to meet a scripted POP3 server: start fakes and sessions that are
 * closed after each test, and read a rejection as the PopsyncError it must be.
 */
import { afterEach, expect } from 'vitest';
import { PopsyncError } from '../../src/errors.js';
import { connectPop3 } from '../../src/pop3/index.js';
import type { Pop3Session } from '../../src/pop3/types.js';
import { startFakePop3, type FakePop3, type FakePop3Options } from './fake-pop3.js';

export interface Pop3Harness {
  fake(opts?: FakePop3Options): Promise<FakePop3>;
  connect(pop: FakePop3, extra?: Parameters<FakePop3['clientOptions']>[0]): Promise<Pop3Session>;
}

/** Call at the top of a test file: everything it starts is closed after each test. */
export function usePop3Harness(): Pop3Harness {
  const servers: FakePop3[] = [];
  const sessions: Pop3Session[] = [];
  afterEach(async () => {
    for (const s of sessions.splice(0)) s.destroy();
    await Promise.all(servers.splice(0).map((p) => p.close()));
  });
  return {
    async fake(opts = {}) {
      const pop = await startFakePop3(opts);
      servers.push(pop);
      return pop;
    },
    async connect(pop, extra = {}) {
      const s = await connectPop3(pop.clientOptions(extra));
      sessions.push(s);
      return s;
    },
  };
}

/** Awaits a rejection and returns it as a PopsyncError (fails the test otherwise). */
export async function failure(p: Promise<unknown>): Promise<PopsyncError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(PopsyncError);
    return e as PopsyncError;
  }
  throw new Error('expected a rejection');
}
