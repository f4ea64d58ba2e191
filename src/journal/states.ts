/**
 * The legal life of a journal row, as a pure function with no SQLite in sight, so the rules can
 * be read in one place, tested on their own, and reused by anything that replays or checks a
 * journal. Journal calls it inside every write transaction: a transition the diagram in types.ts
 * does not allow is a bug in popsync, so it stops the run (kind 'internal') instead of writing a
 * row whose meaning nobody can trust afterwards.
 *
 * Why each edge exists:
 * - none -> appending:      intent is recorded before the APPEND is sent (isync's idea).
 * - none -> done,
 *   failed -> done:         adoption: the copy was found in the destination before popsync
 *                           appended it (a lost or second journal, another tool's partial run;
 *                           engine/reconcile.ts); nothing is sent, so no intent precedes it.
 * - appending -> appending: reconcile looked in the destination and found no copy; copy again.
 * - appending -> done:      the server accepted the APPEND, or reconcile found the copy.
 * - appending -> failed:    the destination refused this one message; the run goes on.
 * - appending -> (no row),
 *   appending -> failed:    withdrawn (Journal.withdrawAppend): the run stopped before any byte of
 *                           the APPEND was handed to the connection, so the destination cannot
 *                           hold this intent's copy. A row the intent created goes (the message
 *                           is new again); a retried one goes back to 'failed', to be copied again.
 * - failed -> appending:    a later run retries a failed message.
 * - done -> deleting:       the intent to DELE is committed before DELE is sent.
 * - done -> failed:         the copy was proven absent (Journal.markCopyMissing): its folder
 *                           still has the UIDVALIDITY of the copy and a FETCH of its UID found
 *                           nothing. UIDs are never reused under one UIDVALIDITY, so that copy
 *                           is gone for good and copying again cannot duplicate it. (A server
 *                           that answered OK to APPEND without storing looks exactly like this.)
 * - deleting -> deleted:    QUIT answered +OK, so the server really removed it (POP3 removes
 *                           nothing before the UPDATE state).
 * - deleting -> done:       the session ended without that +OK (drop, kill, -ERR on DELE) and
 *                           the message is still listed: nothing was removed, it may be
 *                           deleted again later.
 * Nothing goes back to 'appending' once a copy exists (done, deleting, deleted): copying it
 * again would make a duplicate, which is the one thing popsync promises never to do; the one way
 * back is done -> failed, only on that proof. 'deleted' is final.
 */
import { PopsyncError } from '../errors.js';
import type { RowState } from './types.js';

/** `null` is "no row": before the first intent, or after a withdrawn one. */
export type FromState = RowState | null;

const LEGAL: ReadonlyMap<FromState, ReadonlySet<FromState>> = new Map<FromState, ReadonlySet<FromState>>([
  [null, new Set<RowState>(['appending', 'done'])],
  ['appending', new Set<FromState>(['appending', 'done', 'failed', null])],
  ['failed', new Set<RowState>(['appending', 'done'])],
  ['done', new Set<RowState>(['deleting', 'failed'])],
  ['deleting', new Set<RowState>(['deleted', 'done'])],
  ['deleted', new Set<RowState>()],
]);

export function isLegalTransition(from: FromState, to: FromState): boolean {
  return LEGAL.get(from)?.has(to) ?? false;
}

/** The states of an existing row from which `to` is legal ("no row" left out), for a write's WHERE clause. */
export function statesBefore(to: RowState): RowState[] {
  const out: RowState[] = [];
  for (const [from, tos] of LEGAL) if (from !== null && tos.has(to)) out.push(from);
  return out;
}

/** Throws PopsyncError('internal') naming the row and both states when the change is illegal. */
export function assertTransition(from: FromState, to: FromState, where: { account: string; uidl: string }): void {
  if (isLegalTransition(from, to)) return;
  throw new PopsyncError(
    'internal',
    `illegal journal transition ${from ?? '(no row)'} -> ${to ?? '(no row)'} for message ${where.uidl}`,
    {
      account: where.account,
      uidl: where.uidl,
      hint: 'this is a bug in popsync; the journal was left unchanged',
    },
  );
}
