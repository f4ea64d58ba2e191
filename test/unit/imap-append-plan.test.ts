import { describe, expect, it } from 'vitest';
import {
  appendUids,
  LITERAL_MINUS_MAX,
  literalModeOf,
  MULTIAPPEND_LIMITS,
  nonSynchronizing,
  planUnits,
} from '../../src/imap/append-plan.js';

const mem = (size: number) => ({ size, inFile: false });

describe('literal forms (RFC 7888)', () => {
  it('takes LITERAL+ over LITERAL-, and synchronising literals without either', () => {
    expect(literalModeOf(new Set(['LITERAL+', 'LITERAL-']))).toBe('plus');
    expect(literalModeOf(new Set(['LITERAL-']))).toBe('minus');
    expect(literalModeOf(new Set(['IMAP4REV1']))).toBe('sync');
  });

  it('skips the wait under LITERAL- only up to 4,096 octets', () => {
    expect(nonSynchronizing('minus', LITERAL_MINUS_MAX)).toBe(true);
    expect(nonSynchronizing('minus', LITERAL_MINUS_MAX + 1)).toBe(false);
    expect(nonSynchronizing('plus', 200 * 1024 * 1024)).toBe(true);
    expect(nonSynchronizing('sync', 1)).toBe(false);
  });
});

describe('planUnits', () => {
  it('cuts a batch into MULTIAPPENDs of at most maxMessages', () => {
    const units = planUnits(
      Array.from({ length: 250 }, () => mem(100)),
      MULTIAPPEND_LIMITS,
    );
    expect(units.map((u) => u.length)).toEqual([100, 100, 50]);
    expect(units.flat()).toEqual(Array.from({ length: 250 }, (_, i) => i));
  });

  it('closes a command before it would pass maxBytes; a larger message goes alone', () => {
    const units = planUnits([mem(40), mem(40), mem(30), mem(500), mem(10)], { maxMessages: 10, maxBytes: 100 });
    expect(units).toEqual([[0, 1], [2], [3], [4]]);
  });

  it('sends spooled messages and skipped items in no MULTIAPPEND', () => {
    const units = planUnits([mem(1), { size: 9, inFile: true }, mem(1), null, mem(1)], MULTIAPPEND_LIMITS);
    expect(units).toEqual([[0], [1], [2, 4]]);
  });

  it('makes one command per message without MULTIAPPEND', () => {
    expect(planUnits([mem(1), mem(1), mem(1)], { maxMessages: 1, maxBytes: 0 })).toEqual([[0], [1], [2]]);
  });
});

describe('appendUids (RFC 4315 APPENDUID)', () => {
  it('gives each message of a MULTIAPPEND its UID, in order', () => {
    expect(appendUids('APPENDUID 38505 3955:3957', 3)).toEqual({ uidValidity: 38505n, uids: [3955, 3956, 3957] });
    expect(appendUids('APPENDUID 7 4,9:10,12', 4)).toEqual({ uidValidity: 7n, uids: [4, 9, 10, 12] });
    expect(appendUids('appenduid 1 5', 1)).toEqual({ uidValidity: 1n, uids: [5] });
    expect(appendUids('APPENDUID 1 9:5', 5)?.uids).toEqual([5, 6, 7, 8, 9]);
  });

  it('names no UID when the set does not fit the messages sent', () => {
    expect(appendUids('APPENDUID 1 5', 3)).toBeNull(); // one UID for three messages
    expect(appendUids('APPENDUID 1 5:9', 3)).toBeNull();
    expect(appendUids('APPENDUID 1 5,5,6', 3)).toBeNull();
    expect(appendUids('APPENDUID 1 9,5,6', 3)).toBeNull(); // not in ascending order
    expect(appendUids('APPENDUID 1 1:4294967295', 3)).toBeNull(); // never expanded
    expect(appendUids('APPENDUID 0 5', 1)).toBeNull();
    expect(appendUids('APPENDUID 1 x', 1)).toBeNull();
    expect(appendUids(undefined, 1)).toBeNull();
    expect(appendUids('TRYCREATE', 1)).toBeNull();
  });
});
