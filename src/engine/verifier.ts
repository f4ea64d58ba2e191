/**
 * The I/O half of checking copies (the decisions are pure, in verify.ts): batched header FETCHes
 * and streamed body FETCHes against one destination folder at a time. Used just before DELE
 * (deleter.ts, through checkCopies) and by the `popsync verify` audit (auditCopies). Reads
 * only: no folder is created, no flag is changed (BODY.PEEK), the journal is not written.
 */
import type { ImapSink } from '../imap/types.js';
import {
  auditReport,
  duplicateCandidates,
  judgeContent,
  judgeLook,
  locateUidless,
  lookOf,
  StoredDigester,
  type AuditReport,
  type CopyRecord,
  type FolderSeen,
  type StoredContent,
  type StoredLook,
  type Verdict,
} from './verify.js';

export type Depth = 'look' | 'content';

/** The copies of one folder as the destination showed them. */
interface FolderCopies {
  folder: string;
  seen: FolderSeen;
  /** uidl -> verdict, for every row given. */
  verdicts: Map<string, Verdict>;
  /** audit only: stored messages no row owns that hold the same message as a row (uid -> uidl). */
  duplicates: Map<number, string>;
}

function byFolder(rows: readonly CopyRecord[]): Map<string | null, CopyRecord[]> {
  const out = new Map<string | null, CopyRecord[]>();
  for (const r of rows) {
    const list = out.get(r.folder) ?? [];
    out.set(r.folder, list);
    list.push(r);
  }
  return out;
}

/** sha256 and shape of each stored message, streamed (never a whole large message in memory). */
async function digestStored(
  sink: ImapSink,
  folder: string,
  items: ReadonlyArray<{ uid: number; size: number }>,
): Promise<Map<number, StoredContent>> {
  const out = new Map<number, StoredContent>();
  if (items.length === 0) return out;
  const open = new Map<number, StoredDigester>();
  await sink.readBodies(folder, items, {
    chunk(uid, bytes) {
      let d = open.get(uid);
      if (!d) {
        d = new StoredDigester();
        open.set(uid, d);
      }
      d.update(bytes);
    },
    end(uid) {
      out.set(uid, (open.get(uid) ?? new StoredDigester()).digest(uid));
      open.delete(uid);
    },
  });
  return out;
}

/**
 * Checks the copies `rows` record, folder by folder: at depth 'look' by UID, size and header
 * digest, at depth 'content' by the sha256 of the stored bytes. `claimed(folder, uidValidity)`
 * gives the UIDs other rows own there (so a UID-less row never takes another row's copy).
 * Copies that differ at 'look' depth are digested anyway, to say how they differ.
 */
export async function checkCopies(
  sink: ImapSink,
  rows: readonly CopyRecord[],
  depth: Depth,
  claimed: (folder: string, uidValidity: bigint) => ReadonlySet<number>,
): Promise<Map<string, Verdict>> {
  const out = new Map<string, Verdict>();
  for (const [folder, list] of byFolder(rows)) {
    if (folder === null) {
      for (const r of list) out.set(r.uidl, judgeLook(r, null, undefined));
      continue;
    }
    const result = await inspectFolder(sink, folder, list, depth, claimed, false);
    for (const [uidl, v] of result.verdicts) out.set(uidl, v);
  }
  return out;
}

/**
 * One folder: a header scan (of the rows' UIDs, or with `everything` of the whole folder, which
 * the audit needs to find duplicates), then content where asked or where the look differs.
 */
async function inspectFolder(
  sink: ImapSink,
  folder: string,
  rows: readonly CopyRecord[],
  depth: Depth,
  claimed: (folder: string, uidValidity: bigint) => ReadonlySet<number>,
  everything: boolean,
): Promise<FolderCopies> {
  const looks = new Map<number, StoredLook>();
  const uidless = rows.filter((r) => r.destUid === null);
  const floor = uidless.length === 0 ? null : Math.max(1, Math.min(...uidless.map((r) => r.destUidNext ?? 1)));
  const collect = (m: { uid: number; size: number; header: Buffer }) =>
    looks.set(m.uid, lookOf(m.uid, m.size, m.header));
  let seen: FolderSeen;
  if (everything || floor !== null) {
    seen = await sink.scanHeaders(
      folder,
      { since: everything ? 1 : Math.min(floor!, ...rows.map((r) => r.destUid ?? Infinity)) },
      collect,
    );
  } else {
    seen = await sink.scanHeaders(folder, { uids: rows.map((r) => r.destUid!) }, collect);
  }

  // A copy without a UID is the unclaimed stored message that matches it, if any.
  const owned = seen === null ? new Set<number>() : new Set([...claimed(folder, seen.uidValidity)]);
  for (const r of rows)
    if (r.destUid !== null && (r.destUidValidity === null || r.destUidValidity === seen?.uidValidity))
      owned.add(r.destUid);
  const located = locateUidless(uidless, [...looks.values()], owned);
  const placed = rows.map((r) =>
    r.destUid === null && located.has(r.uidl)
      ? { ...r, destUid: located.get(r.uidl)!, destUidValidity: seen?.uidValidity ?? null }
      : r,
  );
  for (const uid of located.values()) owned.add(uid);

  const verdicts = new Map<string, Verdict>();
  const needContent: CopyRecord[] = [];
  for (const r of placed) {
    const v = judgeLook(r, seen, r.destUid === null ? undefined : looks.get(r.destUid));
    verdicts.set(r.uidl, v);
    if (v.status === 'differs' || (depth === 'content' && v.status === 'same')) needContent.push(r);
  }
  const candidates = everything ? duplicateCandidates(placed, [...looks.values()], owned) : new Map<number, string>();
  const wanted = [...needContent.map((r) => r.destUid!), ...candidates.keys()];
  const contents = await digestStored(
    sink,
    folder,
    wanted.map((uid) => ({ uid, size: looks.get(uid)?.size ?? 0 })),
  );
  for (const r of needContent) {
    const look = looks.get(r.destUid!);
    verdicts.set(
      r.uidl,
      judgeContent(
        r,
        seen,
        contents.get(r.destUid!),
        look !== undefined && r.headerHash !== null && look.headerHash === r.headerHash,
      ),
    );
  }

  // A second stored message holding exactly the bytes of a row's copy.
  const duplicates = new Map<number, string>();
  const rowOf = new Map(placed.map((r) => [r.uidl, r]));
  for (const [uid, uidl] of candidates) {
    const c = contents.get(uid);
    const r = rowOf.get(uidl);
    if (
      c &&
      r &&
      ((r.sha256 !== null && c.sha256 === r.sha256) || (r.fingerprint != null && c.fingerprint === r.fingerprint))
    )
      duplicates.set(uid, uidl);
  }
  return { folder, seen, verdicts, duplicates };
}

/**
 * `popsync verify` for one account: every copy the journal records, folder by folder, by the
 * sha256 of its stored bytes, and every other stored message of those folders whose headers
 * match a copy checked for being a second copy. Reads the whole of each copy once.
 */
export async function auditCopies(sink: ImapSink, rows: readonly CopyRecord[]): Promise<AuditReport> {
  const copies = rows.filter((r) => r.state === 'done' || r.state === 'deleting' || r.state === 'deleted');
  const verdicts = new Map<string, Verdict>();
  const duplicates: Array<{ folder: string; uid: number; uidl: string }> = [];
  for (const [folder, list] of byFolder(copies)) {
    if (folder === null) {
      for (const r of list) verdicts.set(r.uidl, judgeLook(r, null, undefined));
      continue;
    }
    // Every recorded copy in the folder is owned, whichever of them is being checked.
    const owned = (_: string, uidValidity: bigint) =>
      new Set(list.filter((r) => r.destUid !== null && r.destUidValidity === uidValidity).map((r) => r.destUid!));
    const result = await inspectFolder(sink, folder, list, 'content', owned, true);
    for (const [uidl, v] of result.verdicts) verdicts.set(uidl, v);
    for (const [uid, uidl] of result.duplicates) duplicates.push({ folder, uid, uidl });
  }
  return auditReport(copies, verdicts, duplicates);
}
