/**
 * The I/O half of reconciliation: rows an earlier attempt left 'appending' are looked up in
 * their destination folder (the matching rules are pure, in reconcile.ts) and settled, either
 * 'done' with the UID found, or left to be copied again.
 */
import { PopsyncError } from '../errors.js';
import type { ImapSink } from '../imap/types.js';
import type { JournalRow } from '../journal/types.js';
import type { RunContext } from './context.js';
import { openFolder } from './folders.js';
import { reconcileFolder } from './reconcile.js';
import { fromRow } from './recorder.js';

export async function reconcilePending(ctx: RunContext, sink: ImapSink): Promise<void> {
  const { journal, account, logger } = ctx.o;
  const pending = journal.rowsInState(account, 'appending');
  const byFolder = new Map<string, JournalRow[]>();
  for (const r of pending) {
    if (r.folder === null) continue;
    const list = byFolder.get(r.folder) ?? [];
    byFolder.set(r.folder, list);
    list.push(r);
  }
  for (const [folder, rows] of byFolder) {
    const status = await openFolder(ctx, sink, folder);
    const stale = rows.find((r) => r.destUidValidity !== null && r.destUidValidity !== status.uidValidity);
    if (stale) {
      throw new PopsyncError('uidvalidity', `destination folder "${folder}" was recreated (UIDVALIDITY ${stale.destUidValidity} is now ${status.uidValidity}); popsync cannot tell which copies survived`, {
        account,
        folder,
        uidl: stale.uidl,
        hint: 'check the destination folder by hand; to copy everything again into it, start with a new journal',
      });
    }
    const claimed = journal.doneUidsIn(account, folder, status.uidValidity);
    const decisions = await ctx.on('imap', reconcileFolder(rows, claimed, {
      listSince: (since) => sink.listSince(folder, since),
      fetchBody: (uid) => sink.fetchBody(folder, uid),
    }));
    for (const d of decisions) {
      if (d.uid === null) {
        logger.info({ uidl: d.uidl, folder }, 'interrupted copy not found in destination; copying again');
        continue;
      }
      journal.confirm(account, d.uidl, { destUidValidity: status.uidValidity, destUid: d.uid });
      status.floor = Math.max(status.floor, d.uid + 1);
      ctx.rec.result.reconciled++;
      if (ctx.rec.detailed) {
        const m = ctx.listing.find((x) => x.uidl === d.uidl);
        const row = rows.find((x) => x.uidl === d.uidl);
        if (m) ctx.rec.record(d.uidl, { ...ctx.rec.bare(m, 'copied', null, null), ...fromRow(row) });
      }
      ctx.settledThisPass++;
      logger.info({ uidl: d.uidl, folder, uid: d.uid, matchedBy: d.matchedBy }, 'interrupted copy found in destination');
    }
  }
}
