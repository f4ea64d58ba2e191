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
 * Cost: one streamed scan of the header blocks (UID, RFC822.SIZE, BODY.PEEK[HEADER]) of the
 * messages below the folder's UIDNEXT at first sight, once per run, kept as a small index
 * (Message-ID and header fingerprint); bodies, streamed one at a time, only of candidates with
 * the Message-ID (or the lack of one) and the header fingerprint of a message being copied.
 */
import { PopsyncError } from '../errors.js';
import type { DestinationMessage, ImapSink } from '../imap/types.js';
import type { Adopted, BeginAppend } from '../journal/types.js';
import { messageIdOf, parseHeaders } from '../mapping/headers.js';
import type { OpenFolder, RunContext } from './context.js';
import { headerComplete, headerFingerprint, matchCopies } from './reconcile.js';
import { folderProbe } from './reconciler.js';

interface FolderIndex {
  key: string;
  candidates: DestinationMessage[];
  /** Header fingerprint per UID, from the same scan. */
  headers: Map<number, string>;
}

/** Per run: the pre-existing mail of each folder being adopted, scanned once. */
const indexes = new WeakMap<RunContext, Map<string, FolderIndex>>();

/**
 * One streamed header scan of the folder's mail below `below`: per message its UID, size,
 * Message-ID and header fingerprint, nothing else kept (about 200 bytes a message), so a folder
 * of any size costs one header block of memory at a time plus that index.
 */
async function indexOf(
  ctx: RunContext,
  sink: ImapSink,
  folder: string,
  status: OpenFolder,
  below: number,
): Promise<FolderIndex> {
  let perRun = indexes.get(ctx);
  if (!perRun) {
    perRun = new Map();
    indexes.set(ctx, perRun);
  }
  const key = `${status.uidValidity}:${below}`;
  let idx = perRun.get(folder);
  if (!idx || idx.key !== key) {
    const candidates: DestinationMessage[] = [];
    const headers = new Map<number, string>();
    const seen = await ctx.on(
      'imap',
      sink.scanHeaders(folder, { since: 1 }, (m) => {
        if (m.uid >= below) return;
        candidates.push({ uid: m.uid, size: m.size, messageId: messageIdOf(parseHeaders(m.header)) });
        headers.set(m.uid, headerFingerprint(m.header));
      }),
    );
    if (seen === null || seen.uidValidity !== status.uidValidity) {
      // Deleted or recreated since it was opened: the next pass opens it afresh.
      throw new PopsyncError('connection', `destination folder "${folder}" changed while popsync was reading it`, {
        folder,
      });
    }
    ctx.o.logger.info(
      { folder, messages: candidates.length },
      'destination folder holds mail this journal did not copy; searching it for copies before appending',
    );
    idx = { key, candidates, headers };
    perRun.set(folder, idx);
  }
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
    {
      ...folderProbe(ctx, sink, folder),
      headerFingerprints: async (uids) => new Map(uids.map((u) => [u, idx.headers.get(u)!] as const)),
    },
  );
  const records: Adopted[] = [];
  for (const [i, m] of matches.entries()) {
    if (!('uid' in m) || m.uid === null) continue;
    records.push({ ...items[i]!.begin, destUidValidity: status.uidValidity, destUid: m.uid });
    adopted.set(m.key, m.uid);
    logger.info(
      { uidl: m.key, folder, uid: m.uid, matchedBy: m.by },
      'copy already in the destination; adopted, not copied again',
    );
  }
  journal.adopt(account, records);
  return adopted;
}
