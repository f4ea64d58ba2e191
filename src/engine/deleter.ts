/**
 * Removing copied messages from the source, the one irreversible step, so every check comes
 * first: the run was not interrupted -> the deletion policy (deletion.ts) -> the message under
 * this number still has the headers that were copied (TOP n 0) -> its copy is in the
 * destination (always: one batched FETCH of UID, size and header digest; with
 * --verify-before-delete the stored bytes' sha256) -> not interrupted meanwhile -> rows
 * 'deleting' (committed) -> DELE -> QUIT -> rows 'deleted' only once QUIT said +OK, since POP3
 * removes nothing before its UPDATE state.
 *
 * A copy proven missing (verify.ts) goes back to be copied by the next run (done -> failed); a
 * copy that differs or cannot be looked up keeps its original on the source. Both are reported
 * as copy problems, and the run exits 1: a server that answers OK to APPEND without storing, or
 * rewrites what it stored, must never cost the original.
 */
import { PopsyncError, isPopsyncError } from '../errors.js';
import type { Pop3Session } from '../pop3/types.js';
import type { RunContext } from './context.js';
import { planDeletion, type DeletionCandidate, type DeletionPolicy } from './deletion.js';
import { inFlight } from './in-flight.js';
import { topHash } from './inventory.js';
import { checkCopies } from './verifier.js';
import type { Verdict } from './verify.js';

/**
 * TOPs, then DELEs, awaiting their replies at once (in-flight.ts): a fixed bound on what a
 * deletion queues, whatever the mailbox (it queued one of each per message due at once). The
 * POP3 pipeline window (pop3/client.ts), so none wait in the client's queue and each reply lets
 * the next command go: the server keeps a full window to work through, where the connection
 * refilled a quarter of it at a time.
 */
export const DELETE_IN_FLIGHT = 512;

/** Ends the source session: deleting what the policy allows first, when there is a policy. */
export async function finishSource(ctx: RunContext, source: Pop3Session, policy: DeletionPolicy | null): Promise<void> {
  if (policy) {
    const done = await deleteFromSource(ctx, source, policy);
    if (done) return;
  }
  source.leave();
}

/**
 * A SIGINT/SIGTERM that arrived after the last batch still stops the run before its one
 * irreversible step: the copies are confirmed, so the next run deletes what is due.
 */
async function stopIfInterrupted(ctx: RunContext, source: Pop3Session): Promise<void> {
  if (!ctx.o.signal?.aborted) return;
  // Nothing was deleted, so QUIT only ends the session politely.
  source.leave();
  throw new PopsyncError(
    'interrupted',
    'interrupted before deleting from the source: nothing was deleted; every copy made is recorded, run ' +
      'again to delete',
    {
      account: ctx.o.account,
    },
  );
}

/** True when it sent DELEs and its QUIT ended the session; false when there was nothing to delete. */
async function deleteFromSource(ctx: RunContext, source: Pop3Session, policy: DeletionPolicy): Promise<boolean> {
  const { journal, account } = ctx.o;
  const { result } = ctx.rec;
  await stopIfInterrupted(ctx, source);
  const plan = planDeletion(ctx.listing, journal.rowsByUidl(account), policy, ctx.now());
  result.deletionWaiting = plan.waiting;
  result.deletionRefused = plan.refused;
  let due = plan.delete;
  if (due.length > 0) {
    // The source's side (TOP) and the destination's (FETCH) are asked side by side, on their own
    // connections: their round trips overlap instead of following one another. A copy's verdict
    // is acted on only for a message whose source still matches (a reused UIDL is not this row's).
    const [same, copies] = await Promise.allSettled([
      sameMessages(ctx, source, due),
      copyVerdicts(ctx, due, policy.verify),
    ]);
    // As one after the other: a failure of the source's side is the one reported.
    if (same.status === 'rejected') return ctx.on('pop3', Promise.reject(same.reason));
    if (copies.status === 'rejected') return ctx.on('imap', Promise.reject(copies.reason));
    due = copiesPresent(ctx, same.value, copies.value);
  }
  if (due.length === 0) return false;
  await stopIfInterrupted(ctx, source);
  journal.markDeleting(
    account,
    due.map((c) => c.uidl),
  );
  // QUIT goes right behind the last DELE (with PIPELINING in the same write), not a round trip
  // after their replies: a refused DELE only leaves its message, whose row the reply below marks
  // kept, and whatever else stops the run leaves rows 'deleting' for the next run to settle from
  // the listing, as after a kill. Its +OK is still waited for: only then are the deletions real.
  let quit: Promise<void> | null = null;
  const deles = inFlight(
    due,
    DELETE_IN_FLIGHT,
    (c) =>
      source.dele(c.n).then(
        () => true,
        (e: unknown) => {
          if (!isPopsyncError(e) || e.kind !== 'server') throw e;
          ctx.rec.warn(`UIDL ${c.uidl}: the POP3 server refused to delete it: ${e.message}`);
          return false;
        },
      ),
    () => {
      quit = source.quit();
      quit.catch(() => undefined);
    },
  );
  const ok = await ctx.on('pop3', deles);
  // Rejects on anything but +OK; the rows stay 'deleting' and the next run settles them.
  await ctx.on('pop3', quit ?? source.quit());
  journal.settleDeleting(account, {
    deleted: due.filter((_, i) => ok[i]).map((c) => c.uidl),
    kept: due.filter((_, i) => !ok[i]).map((c) => c.uidl),
  });
  result.deleted += ok.filter(Boolean).length;
  return true;
}

/** Just before DELE: the message under this number still has the headers that were copied. */
async function sameMessages(
  ctx: RunContext,
  source: Pop3Session,
  due: DeletionCandidate[],
): Promise<DeletionCandidate[]> {
  const hashes = await ctx.on(
    'pop3',
    inFlight(due, DELETE_IN_FLIGHT, (c) => (c.row.headerHash === null ? Promise.resolve(null) : topHash(source, c.n))),
  );
  return due.filter((c, i) => {
    if (c.row.headerHash === null || hashes[i] === c.row.headerHash) return true;
    ctx.rec.warn(
      hashes[i] === null
        ? `UIDL ${c.uidl}: not deleted from the source: the POP3 server refused TOP ${c.n} 0, so popsync cannot ` +
            `check it is the message copied`
        : `UIDL ${c.uidl}: not deleted from the source: its headers differ from the copy's (the server may have ` +
            `reused the UIDL)`,
    );
    return false;
  });
}

/**
 * How each copy is found in the destination: by UID, size and header digest (one batched FETCH
 * per folder), or with `byContent` by the sha256 of the stored bytes. Only looks.
 */
async function copyVerdicts(
  ctx: RunContext,
  due: DeletionCandidate[],
  byContent: boolean,
): Promise<Map<string, Verdict>> {
  const { journal, account } = ctx.o;
  const sink = await ctx.connectSink();
  return ctx.on(
    'imap',
    checkCopies(
      sink,
      due.map((c) => c.row),
      byContent ? 'content' : 'look',
      (folder, v) => journal.doneUidsIn(account, folder, v),
    ),
  );
}

/** The messages whose copy is in the destination as copied; the others are recorded as problems. */
function copiesPresent(ctx: RunContext, due: DeletionCandidate[], verdicts: Map<string, Verdict>): DeletionCandidate[] {
  const { journal, account } = ctx.o;
  return due.filter((c) => {
    const v = verdicts.get(c.uidl);
    // A copy whose server only rewrote its line ends holds the whole message.
    if (v?.status === 'same' || (v?.status === 'rewritten' && v.lossless)) return true;
    if (v === undefined) return false;
    if (v.status === 'missing') {
      const detail =
        `${v.detail ?? 'its copy is missing'}; the original stays on the source and the next ` + `run copies it again`;
      // Only a copy proven gone goes back to be copied: the journal checks it is this row's copy.
      journal.markCopyMissing(
        account,
        c.uidl,
        { folder: v.folder, uidValidity: v.uidValidity, uid: v.uid },
        `copy missing from the destination: ${v.detail ?? ''}`,
      );
      ctx.rec.copyProblem({ uidl: c.uidl, folder: v.folder, uid: v.uid, problem: 'missing', detail });
    } else {
      const detail = `${v.detail ?? 'its copy could not be checked'}; not deleted from the source`;
      ctx.rec.copyProblem({
        uidl: c.uidl,
        folder: v.folder,
        uid: v.uid,
        problem: v.status === 'unknown' ? 'unknown' : 'differs',
        detail,
      });
    }
    return false;
  });
}
