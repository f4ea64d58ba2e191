/**
 * Adoption: before appending into a folder that held mail this journal did not put there (the
 * journal is new, was lost, is a second one under another name, or another tool made a
 * partial run; or the folder was recreated), look for each message's copy among that mail and
 * record the copy as done instead of appending it again. imapsync does the same by headers.
 *
 * Recognition is by content only (sha256 or fingerprint, reconcile.ts), never by Message-ID
 * alone: the same mail delivered to two accounts has one Message-ID and different headers, and
 * taking one for the other's copy would leave a message uncopied (and later deleted).
 *
 * Cost: one listing (UID, size, ENVELOPE) of the messages below the folder's UIDNEXT at first
 * sight, once per run; headers (BODY.PEEK[HEADER]) only of candidates with the Message-ID (or
 * the lack of one) of a message being copied; bodies, one at a time, only of candidates whose
 * header fingerprint matches.
 */
import type { DestinationMessage, ImapSink } from '../imap/types.js';
import type { Adopted, BeginAppend } from '../journal/types.js';
import type { OpenFolder, RunContext } from './context.js';
import { headerComplete, headerFingerprint, matchCopies, type Probe } from './reconcile.js';
import { folderProbe } from './reconciler.js';

interface FolderIndex {
  key: string;
  candidates: DestinationMessage[];
  probe: Probe;
}

/** Per run: the pre-existing mail of each folder being adopted, listed once. */
const indexes = new WeakMap<RunContext, Map<string, FolderIndex>>();

async function indexOf(ctx: RunContext, sink: ImapSink, folder: string, status: OpenFolder, below: number): Promise<FolderIndex> {
  let perRun = indexes.get(ctx);
  if (!perRun) indexes.set(ctx, (perRun = new Map()));
  const key = `${status.uidValidity}:${below}`;
  let idx = perRun.get(folder);
  if (!idx || idx.key !== key) {
    const candidates = await ctx.on('imap', sink.listSince(folder, 1, below));
    ctx.o.logger.info({ folder, messages: candidates.length }, 'destination folder holds mail this journal did not copy; searching it for copies before appending');
    idx = { key, candidates, probe: folderProbe(ctx, sink, folder) };
    perRun.set(folder, idx);
  }
  // The probe belongs to one connection; after a reconnect the sink is another.
  idx.probe = folderProbe(ctx, sink, folder);
  return idx;
}

/**
 * Finds copies of `items` (all routed to `folder`) made before this journal knew the folder,
 * records them as done, and returns the UIDLs adopted; the caller appends only the others.
 */
export async function adoptExisting(
  ctx: RunContext,
  sink: ImapSink,
  folder: string,
  status: OpenFolder,
  items: ReadonlyArray<{ begin: BeginAppend; head: Buffer }>,
): Promise<Map<string, number>> {
  const adopted = new Map<string, number>();
  if (status.adoptBelow === null || items.length === 0) return adopted;
  const { journal, account, logger } = ctx.o;
  const idx = await indexOf(ctx, sink, folder, status, status.adoptBelow);
  if (idx.candidates.length === 0) return adopted;
  const matches = await matchCopies(
    items.map(({ begin, head }) => ({
      key: begin.uidl,
      sha256: begin.sha256,
      fingerprint: begin.fingerprint ?? null,
      messageId: begin.messageId,
      size: begin.size,
      floor: 1,
      // Only a whole header block narrows: a head cut short would match nothing.
      headerFingerprint: headerComplete(head) ? headerFingerprint(head) : null,
      messageIdFallback: false,
    })),
    idx.candidates,
    journal.doneUidsIn(account, folder, status.uidValidity),
    idx.probe,
  );
  const records: Adopted[] = [];
  for (const [i, m] of matches.entries()) {
    if (!('uid' in m) || m.uid === null) continue;
    records.push({ ...items[i]!.begin, destUidValidity: status.uidValidity, destUid: m.uid });
    adopted.set(m.key, m.uid);
    logger.info({ uidl: m.key, folder, uid: m.uid, matchedBy: m.by }, 'copy already in the destination; adopted, not copied again');
  }
  journal.adopt(account, records);
  return adopted;
}
