import { describe, expect, it } from 'vitest';
import type { AccountJob } from '../../src/cli/account.js';
import { everyIntervals } from '../../src/cli/every.js';
import { PopsyncError } from '../../src/errors.js';

const job = (name: string, everyMs?: number): AccountJob => ({
  input: { name, pop: {}, imap: {}, timeoutSeconds: 60 },
  routing: { rules: [], defaultFolder: 'INBOX', flags: [], seen: [], arrivalDate: true },
  batchMessages: 50,
  batchBytes: 16 << 20,
  reconnectAttempts: 5,
  ...(everyMs !== undefined ? { everyMs } : {}),
});

describe('everyIntervals', () => {
  it('is a one-shot sync without --every or every:', () => {
    expect(everyIntervals({}, [job('a'), job('b')])).toBeNull();
  });

  it('--every applies to every account and beats the config', () => {
    expect(everyIntervals({ every: 60_000 }, [job('a', 300_000), job('b')])).toEqual([60_000, 60_000]);
  });

  it("takes each account's every: from the config", () => {
    expect(everyIntervals({}, [job('a', 300_000), job('b', 900_000)])).toEqual([300_000, 900_000]);
  });

  it('refuses a config where only some accounts have every:', () => {
    let e: unknown;
    try {
      everyIntervals({}, [job('a', 300_000), job('b'), job('c')]);
    } catch (x) {
      e = x;
    }
    expect(e).toBeInstanceOf(PopsyncError);
    expect((e as PopsyncError).kind).toBe('usage');
    expect((e as PopsyncError).message).toBe('every: is set for some accounts but not for b, c');
  });
});
