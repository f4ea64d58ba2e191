import { describe, expect, it } from 'vitest';
import { PopsyncError } from '../../src/errors.js';
import { assertTransition, isLegalTransition, type FromState } from '../../src/journal/states.js';

const FROM: FromState[] = [null, 'appending', 'done', 'failed', 'deleting', 'deleted'];
const TO: FromState[] = [null, 'appending', 'done', 'failed', 'deleting', 'deleted'];
const nextStates = (from: FromState): FromState[] => TO.filter((to) => isLegalTransition(from, to));

// The diagram in src/journal/types.ts, written out edge by edge.
const LEGAL = new Set([
  'null->appending',
  'null->done', // adoption: the copy was already in the destination
  'failed->appending',
  'failed->done', // adoption
  'appending->appending',
  'appending->done',
  'appending->failed',
  'appending->null', // withdrawn: its APPEND was never handed to the connection
  'done->deleting',
  'done->failed',
  'deleting->deleted',
  'deleting->done',
]);

describe('journal state transitions', () => {
  for (const from of FROM) {
    for (const to of TO) {
      const key = `${String(from)}->${String(to)}`;
      const legal = LEGAL.has(key);
      it(`${key} is ${legal ? 'legal' : 'illegal'}`, () => {
        expect(isLegalTransition(from, to)).toBe(legal);
        const where = { account: 'acct', uidl: 'U1' };
        if (legal) {
          expect(() => assertTransition(from, to, where)).not.toThrow();
        } else {
          let caught: unknown;
          try {
            assertTransition(from, to, where);
          } catch (e) {
            caught = e;
          }
          expect(caught).toBeInstanceOf(PopsyncError);
          const err = caught as PopsyncError;
          expect(err.kind).toBe('internal');
          expect(err.context.uidl).toBe('U1');
          expect(err.context.account).toBe('acct');
          expect(err.message).toContain(`-> ${to ?? '(no row)'}`);
        }
      });
    }
  }

  it('nothing with a copy goes back to appending (a second copy would be a duplicate)', () => {
    for (const s of ['done', 'deleting', 'deleted'] as const) expect(nextStates(s)).not.toContain('appending');
    expect(new Set(nextStates('done'))).toEqual(new Set(['deleting', 'failed']));
    expect(nextStates('deleted')).toEqual([]);
  });

  it('lists the successors of each state', () => {
    expect(nextStates(null)).toEqual(['appending', 'done']);
    expect(nextStates('failed')).toEqual(['appending', 'done']);
    expect(new Set(nextStates('appending'))).toEqual(new Set(['appending', 'done', 'failed', null]));
  });
});
