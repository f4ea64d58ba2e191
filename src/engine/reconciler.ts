/**
 * The I/O half of reconciliation (the matching rules are pure, in reconcile.ts):
 *
 * - Rows an earlier attempt left 'appending' are looked up in their destination folder and
 *   settled: 'done' with the UID found, or left to be copied again. A row whose folder changed
 *   UIDVALIDITY since (recreated folder, Courier's fresh INBOX) is looked for by content in the
 *   whole folder (isync's re-approval); only when that cannot decide does the run stop.
 * - Before that, copies recorded 'done' without a UID (a server without UIDPLUS, or a crash
 *   before the UID was learned) claim their destination message by content, so an identical
 *   'appending' row can never settle on a copy that is already counted (issue: of identical
 *   messages a, copied, and b, intended but never sent, b was taken for copied).
 * - learnUids: right after a batch the server stored without saying where, the same search
 *   above the UIDNEXT saved before it (isync does this with a header search).
 */
import { createHash, type Hash } from 'node:crypto';
import { DEFAULT_BATCH_MESSAGES } from '../defaults.js';
import { PopsyncError } from '../errors.js';
import type { DestinationMessage, ImapSink } from '../imap/types.js';
import type { AppendSettlement, JournalRow } from '../journal/types.js';
import type { RetrBody } from '../pop3/index.js';
import type { Pop3Session } from '../pop3/types.js';
import type { OpenFolder, RunContext } from './context.js';
import { openFolder } from './folders.js';
import { Fingerprinter } from './fingerprint.js';
import {
  headerFingerprint,
  matchCopies,
  messageIdKey,
  type Digest,
  type Match,
  type Probe,
  type Wanted,
} from './reconcile.js';
import { fromRow } from './recorder.js';

/** Nothing: a candidate expunged by someone else since it was listed matches no row. */
const GONE: Digest = { sha256: '', fingerprint: '' };

/**
 * The destination folder as matching sees it: each body streamed through sha256 and the
 * fingerprint once (never whole in memory), headers in one batched FETCH.
 */
export function folderProbe(ctx: RunContext, sink: ImapSink, folder: string): Probe {
  const digests = new Map<number, Digest>();
  /** Reads these bodies in one readBodies (batched FETCHes), each hashed as it arrives. */
  const read = async (list: ReadonlyArray<{ uid: number; size: number }>): Promise<void> => {
    if (list.length === 0) return;
    const open = new Map<number, { sha: Hash; fp: Fingerprinter }>();
    const hashing = (uid: number) => {
      let h = open.get(uid);
      if (!h) {
        h = { sha: createHash('sha256'), fp: new Fingerprinter() };
        open.set(uid, h);
      }
      return h;
    };
    await ctx.on(
      'imap',
      sink.readBodies(folder, list, {
        chunk: (uid, bytes) => {
          const h = hashing(uid);
          h.sha.update(bytes);
          h.fp.update(bytes);
        },
        end: (uid) => {
          const h = hashing(uid);
          open.delete(uid);
          digests.set(uid, { sha256: h.sha.digest('hex'), fingerprint: h.fp.digest() });
        },
      }),
    );
    for (const { uid } of list) if (!digests.has(uid)) digests.set(uid, GONE);
  };
  return {
    digest: async (uid, size) => {
      if (!digests.has(uid)) await read([{ uid, size }]);
      return digests.get(uid)!;
    },
    prefetch: (candidates) => read(candidates.filter((c) => !digests.has(c.uid))),
    headerFingerprints: async (uids) => {
      const out = new Map<number, string>();
      await ctx.on(
        'imap',
        sink.scanHeaders(folder, { uids }, (m) => out.set(m.uid, headerFingerprint(m.header))),
      );
      return out;
    },
  };
}

/** The lowest of the rows' floors, at least 1 (a loop: spreading 100,000 rows into Math.min overflows the stack). */
function lowestFloor(rows: readonly JournalRow[], floorOf: (r: JournalRow) => number): number {
  let floor = Number.POSITIVE_INFINITY;
  for (const r of rows) floor = Math.min(floor, floorOf(r));
  return Math.max(1, floor);
}

function wantedOf(row: JournalRow, floor: number, messageIdFallback: boolean): Wanted {
  return {
    key: row.uidl,
    sha256: row.sha256,
    fingerprint: row.fingerprint ?? null,
    messageId: row.messageId,
    size: row.size,
    floor,
    messageIdFallback,
  };
}

function undecidable(ctx: RunContext, folder: string, m: Extract<Match, { undecided: string }>): PopsyncError {
  return new PopsyncError(
    'undecidable',
    `popsync cannot tell whether message ${m.key} is already in destination folder "${folder}": ${m.undecided}`,
    {
      account: ctx.o.account,
      uidl: m.key,
      folder,
      hint:
        `look in "${folder}" for this message. If its copy is there, nothing needs copying; if not, or ` +
        `to let popsync search the folder afresh, run \`popsync journal forget-folder --folder '${folder}'\` ` +
        `with this account's journal options: the next run adopts every copy it recognises there and copies ` +
        `only what is missing`,
    },
  );
}

/**
 * Copies journaled done without a UID claim the destination message holding their content.
 * Returns the rows that found none (their copy was removed, or rewritten beyond recognition):
 * they claim nothing, and 'appending' rows that could be them are not settled on a guess.
 */
async function claimUidless(
  ctx: RunContext,
  sink: ImapSink,
  folder: string,
  status: OpenFolder,
  probe: Probe,
): Promise<JournalRow[]> {
  const { journal, account, logger } = ctx.o;
  const rows = journal.copiesWithoutUid(account, folder, status.uidValidity);
  if (rows.length === 0) return [];
  const floor = lowestFloor(rows, (r) => r.destUidNext ?? 1);
  const candidates = await ctx.on('imap', sink.listSince(folder, floor));
  const matches = await matchCopies(
    rows.map((r) => wantedOf(r, r.destUidNext ?? 1, false)),
    candidates,
    journal.doneUidsIn(account, folder, status.uidValidity),
    probe,
  );
  const found: Array<{ uidl: string; destUid: number }> = [];
  for (const m of matches) if ('uid' in m && m.uid !== null) found.push({ uidl: m.key, destUid: m.uid });
  journal.learnUids(account, found);
  const learnt = new Set(found.map((f) => f.uidl));
  const unresolved = rows.filter((r) => !learnt.has(r.uidl));
  if (unresolved.length > 0)
    logger.warn(
      { folder, uidls: unresolved.map((r) => r.uidl) },
      'copies recorded without a UID were not found in the destination by content',
    );
  return unresolved;
}

/**
 * RETRs of such rows written ahead of the one being read. One at a time was a round trip per
 * row (150 rows: 150 waits at 30 ms); a window of them goes in a few writes. Each reply is
 * hashed as it arrives and dropped, so what the window holds is commands and their streams, never
 * bodies; a batch's worth, as engine/receiver.ts writes ahead.
 */
const REREAD_AHEAD = DEFAULT_BATCH_MESSAGES;

/** The digests of message `n` as the source serves it now, streamed (never held whole). */
function sourceDigest(source: Pop3Session, n: number): { stream: RetrBody; digest: Promise<Digest> } {
  const stream = source.retrStream(n);
  const digest = (async (): Promise<Digest> => {
    const sha = createHash('sha256');
    const fp = new Fingerprinter();
    for await (const chunk of stream) {
      sha.update(chunk);
      fp.update(chunk);
    }
    return { sha256: sha.digest('hex'), fingerprint: fp.digest() };
  })();
  // Read in turn below; a reply failing before its turn must not be an unhandled rejection.
  digest.catch(() => undefined);
  return { stream, digest };
}

/**
 * Rows journaled by a popsync from before fingerprints carry only the sha256 of what was sent;
 * a server that rewrote the copy defeats it. The message is still on the source (it was never
 * confirmed, so never deleted): read it again, and when it is the same bytes, its fingerprint
 * is the one the copy must have. Rows not listed stay without one.
 */
async function withSourceFingerprints(
  ctx: RunContext,
  source: Pop3Session | undefined,
  rows: JournalRow[],
): Promise<JournalRow[]> {
  if (!source) return rows;
  const listed = new Map(ctx.listing.map((x) => [x.uidl, x] as const));
  const out = [...rows];
  const todo: Array<{ i: number; n: number }> = [];
  for (const [i, r] of rows.entries()) {
    const m = r.fingerprint == null && r.sha256 !== null ? listed.get(r.uidl) : undefined;
    if (m) todo.push({ i, n: m.n });
  }
  const ahead: Array<{ i: number; stream: RetrBody; digest: Promise<Digest> }> = [];
  let next = 0;
  try {
    for (;;) {
      // Topped up once a quarter was read, so the RETRs leave in a few writes, not one each.
      if (ahead.length <= (REREAD_AHEAD * 3) / 4)
        while (ahead.length < REREAD_AHEAD && next < todo.length) {
          const { i, n } = todo[next++]!;
          ahead.push({ i, ...sourceDigest(source, n) });
        }
      const x = ahead.shift();
      if (!x) break;
      const d = await ctx.on('pop3', x.digest);
      const r = rows[x.i]!;
      const same = d.sha256 === r.sha256;
      if (same) out[x.i] = { ...r, fingerprint: d.fingerprint };
      else
        ctx.o.logger.info(
          { uidl: r.uidl },
          'the source now serves other bytes under this UIDL; its interrupted copy is matched by sha256 only',
        );
    }
  } finally {
    // After a failure: the replies still coming are read and dropped, as engine/receiver.ts does.
    for (const x of ahead) x.stream.destroy();
  }
  return out;
}

export async function reconcilePending(ctx: RunContext, sink: ImapSink, source?: Pop3Session): Promise<void> {
  const { journal, account, logger } = ctx.o;
  const pending = await withSourceFingerprints(ctx, source, journal.rowsInState(account, 'appending'));
  const byFolder = new Map<string, JournalRow[]>();
  for (const r of pending) {
    if (r.folder === null) continue;
    const list = byFolder.get(r.folder) ?? [];
    byFolder.set(r.folder, list);
    list.push(r);
  }
  for (const [folder, rows] of byFolder) {
    // Accepts a changed UIDVALIDITY (folders.ts); rows begun under the old one are 'stale'.
    const status = await openFolder(ctx, sink, folder);
    const probe = folderProbe(ctx, sink, folder);
    const unresolved = await claimUidless(ctx, sink, folder, status, probe);
    // A stale row's saved UIDNEXT means nothing in the recreated folder: search all of it.
    const floorOf = (r: JournalRow) => (r.destUidValidity === status.uidValidity ? (r.destUidNext ?? 1) : 1);
    const floor = lowestFloor(rows, floorOf);
    const candidates: DestinationMessage[] = await ctx.on('imap', sink.listSince(folder, floor));
    const claimed = journal.doneUidsIn(account, folder, status.uidValidity);
    const matches = await matchCopies(
      rows.map((r) => wantedOf(r, floorOf(r), true)),
      candidates,
      claimed,
      probe,
    );
    const rowOf = new Map(rows.map((r) => [r.uidl, r] as const));
    // Per Message-ID, the unresolved row with the lowest saved UIDNEXT: the one any rival check finds first.
    const rivals = new Map<string | null, JournalRow>();
    for (const u of unresolved) {
      const id = messageIdKey(u.messageId);
      const held = rivals.get(id);
      if (!held || (u.destUidNext ?? 1) < (held.destUidNext ?? 1)) rivals.set(id, u);
    }
    for (const m of matches) {
      if ('undecided' in m) throw undecidable(ctx, folder, m);
      if (m.uid === null) continue;
      // A copy recorded without a UID and not found could be this very message: do not guess.
      const row = rowOf.get(m.key)!;
      const candidate = rivals.get(messageIdKey(row.messageId));
      const rival = candidate && (candidate.destUidNext ?? 1) <= m.uid ? candidate : undefined;
      if (rival) {
        throw undecidable(ctx, folder, {
          key: m.key,
          undecided:
            `UID ${m.uid} looks like its copy, but message ${rival.uidl}, recorded as copied ` +
            `without a UID, may own it and was not recognised by content`,
        });
      }
    }
    // The folder's copies found, confirmed in one step (journal.confirm's checks, all or none)
    // before anything below reports them or anything later (the next folder, adoption,
    // deletion) reads their rows. One transaction each was ~0.3 s of a 5,000-row reconcile.
    const found: AppendSettlement[] = [];
    for (const m of matches)
      if ('uid' in m && m.uid !== null)
        found.push({ uidl: m.key, ok: true, destUidValidity: status.uidValidity, destUid: m.uid });
    journal.settleAppends(account, found);
    const listed = ctx.rec.detailed ? new Map(ctx.listing.map((x) => [x.uidl, x] as const)) : null;
    for (const m of matches) {
      const row = rowOf.get(m.key)!;
      if (!('uid' in m) || m.uid === null) {
        logger.info({ uidl: m.key, folder }, 'interrupted copy not found in destination; copying again');
        continue;
      }
      status.floor = Math.max(status.floor, m.uid + 1);
      ctx.rec.result.reconciled++;
      if (m.by === 'message-id') {
        ctx.rec.warn(
          `UIDL ${m.key}: its interrupted copy in "${folder}" was recognised by Message-ID only (UID ` +
            `${m.uid}): its content differs from what was sent beyond the rewrites popsync knows; check that message`,
        );
      }
      const entry = listed?.get(m.key);
      if (entry) ctx.rec.record(m.key, { ...ctx.rec.bare(entry, 'copied', null, null), ...fromRow(row) });
      ctx.settledThisPass++;
      logger.info({ uidl: m.key, folder, uid: m.uid, matchedBy: m.by }, 'interrupted copy found in destination');
    }
  }
}

/**
 * After a batch the server stored without APPENDUID: finds each copy by content among the
 * UIDs at or above the folder's UIDNEXT saved before the batch, and records its UID. A copy not
 * found stays without one (claimUidless tries again before any later reconciliation).
 */
export async function learnUids(
  ctx: RunContext,
  sink: ImapSink,
  folder: string,
  status: OpenFolder,
  floor: number,
  rows: readonly JournalRow[],
): Promise<void> {
  if (rows.length === 0) return;
  const { journal, account, logger } = ctx.o;
  const candidates = await ctx.on('imap', sink.listSince(folder, floor));
  const matches = await matchCopies(
    rows.map((r) => wantedOf(r, floor, false)),
    candidates,
    journal.doneUidsIn(account, folder, status.uidValidity),
    folderProbe(ctx, sink, folder),
  );
  const found: Array<{ uidl: string; destUid: number }> = [];
  for (const m of matches) if ('uid' in m && m.uid !== null) found.push({ uidl: m.key, destUid: m.uid });
  journal.learnUids(account, found);
  for (const f of found) status.floor = Math.max(status.floor, f.destUid + 1);
  const learnt = new Set(found.map((f) => f.uidl));
  const missing = rows.filter((r) => !learnt.has(r.uidl));
  if (missing.length > 0)
    logger.warn(
      { folder, uidls: missing.map((r) => r.uidl) },
      'the server accepted these copies without naming their UID, and they were not found by content',
    );
}
