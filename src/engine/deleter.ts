/**
 * Removing copied messages from the source, the one irreversible step, so every check comes
 * first: the deletion policy (deletion.ts) -> the message under this number still has the
 * headers that were copied (TOP n 0) -> optionally the copy is still in the destination ->
 * rows 'deleting' (committed) -> DELE -> QUIT -> rows 'deleted' only once QUIT said +OK, since
 * POP3 removes nothing before its UPDATE state.
 */
import { isPopsyncError } from '../errors.js';
import type { Pop3Session } from '../pop3/types.js';
import type { RunContext } from './context.js';
import { planDeletion, type DeletionCandidate, type DeletionPolicy } from './deletion.js';
import { openFolder } from './folders.js';
import { topHash } from './inventory.js';

/** Ends the source session: deleting what the policy allows first, when there is a policy. */
export async function finishSource(ctx: RunContext, source: Pop3Session, policy: DeletionPolicy | null): Promise<void> {
  if (policy) {
    const done = await deleteFromSource(ctx, source, policy);
    if (done) return;
  }
  // Nothing was deleted, so QUIT only ends the session politely.
  await source.quit().catch((e: unknown) => ctx.o.logger.debug({ err: String(e) }, 'QUIT failed'));
}

/** True when it sent DELEs and its QUIT ended the session; false when there was nothing to delete. */
async function deleteFromSource(ctx: RunContext, source: Pop3Session, policy: DeletionPolicy): Promise<boolean> {
  const { journal, account } = ctx.o;
  const { result } = ctx.rec;
  const plan = planDeletion(ctx.listing, journal.rowsByUidl(account), policy, ctx.now());
  result.deletionWaiting = plan.waiting;
  result.deletionRefused = plan.refused;
  let due = plan.delete;
  if (due.length > 0) {
    due = await sameMessages(ctx, source, due);
    if (policy.verify) due = await copiesPresent(ctx, due);
  }
  if (due.length === 0) return false;
  journal.markDeleting(account, due.map((c) => c.uidl));
  const ok = await ctx.on('pop3', Promise.all(due.map((c) => source.dele(c.n).then(
    () => true,
    (e: unknown) => {
      if (!isPopsyncError(e) || e.kind !== 'server') throw e;
      ctx.rec.warn(`UIDL ${c.uidl}: the POP3 server refused to delete it: ${e.message}`);
      return false;
    },
  ))));
  // Rejects on anything but +OK; the rows stay 'deleting' and the next run settles them.
  await ctx.on('pop3', source.quit());
  journal.settleDeleting(account, { deleted: due.filter((_, i) => ok[i]).map((c) => c.uidl), kept: due.filter((_, i) => !ok[i]).map((c) => c.uidl) });
  result.deleted! += ok.filter(Boolean).length;
  return true;
}

/** Just before DELE: the message under this number still has the headers that were copied. */
async function sameMessages(ctx: RunContext, source: Pop3Session, due: DeletionCandidate[]): Promise<DeletionCandidate[]> {
  const hashes = await ctx.on('pop3', Promise.all(due.map((c) => (c.row.headerHash === null ? Promise.resolve(null) : topHash(source, c.n)))));
  return due.filter((c, i) => {
    if (c.row.headerHash === null || hashes[i] === c.row.headerHash) return true;
    ctx.rec.warn(`UIDL ${c.uidl}: not deleted from the source: its headers differ from the copy's (the server may have reused the UIDL)`);
    return false;
  });
}

/** --verify-before-delete: the copy is still in the destination, same UID and size. */
async function copiesPresent(ctx: RunContext, due: DeletionCandidate[]): Promise<DeletionCandidate[]> {
  const sink = await ctx.connectSink();
  const present = new Map<string, Map<number, number>>();
  for (const folder of new Set(due.map((c) => c.row.folder).filter((f): f is string => f !== null))) {
    const status = await openFolder(ctx, sink, folder);
    const rows = due.filter((c) => c.row.folder === folder && c.row.destUidValidity === status.uidValidity && c.row.destUid !== null);
    if (rows.length === 0) continue;
    const since = Math.min(...rows.map((c) => c.row.destUid!));
    const list = await ctx.on('imap', sink.listSince(folder, since));
    present.set(folder, new Map(list.map((m) => [m.uid, m.size])));
  }
  return due.filter((c) => {
    const size = c.row.folder === null || c.row.destUid === null ? undefined : present.get(c.row.folder)?.get(c.row.destUid);
    if (size === c.row.size) return true;
    ctx.rec.warn(
      c.row.destUid === null
        ? `UIDL ${c.uidl}: not deleted from the source: the destination gave its copy no UID, so it cannot be verified`
        : `UIDL ${c.uidl}: not deleted from the source: its copy (UID ${c.row.destUid} in ${c.row.folder ?? '?'}) is ${size === undefined ? 'missing from' : 'a different size in'} the destination`,
    );
    return false;
  });
}
