/**
 * Settles journal rows left 'appending' by a run that died (or lost its connection) between
 * committing its intent and recording the server's answer. Dovecot stores an APPEND even when
 * the client vanishes before the tagged OK, so "not recorded" does not mean "not copied".
 *
 * isync finds such copies by a token header it stamps into each message; we promise byte-exact
 * copies, so we match by content instead: a candidate is a destination message with UID at or
 * above the UIDNEXT saved before the APPEND, of the same size, and the same sha256 (or, when the
 * server rewrites bytes, the same Message-ID). Each destination UID settles at most one row, and
 * UIDs already owned by 'done' rows are never candidates: identical messages in a source are
 * legal and each must arrive.
 */
import { createHash } from 'node:crypto';
import type { DestinationMessage } from '../imap/types.js';
import type { JournalRow } from '../journal/types.js';

export interface ReconcileDecision {
  uidl: string;
  /** The destination UID holding this row's copy, or null: not there, copy it again. */
  uid: number | null;
  matchedBy: 'sha256' | 'message-id' | null;
}

export interface ReconcileSource {
  listSince(sinceUid: number): Promise<DestinationMessage[]>;
  fetchBody(uid: number): Promise<Buffer>;
}

export function sha256Hex(body: Buffer): string {
  return createHash('sha256').update(body).digest('hex');
}

/** Rows of one folder and one UIDVALIDITY (the caller checks UIDVALIDITY first). */
export async function reconcileFolder(rows: JournalRow[], claimed: ReadonlySet<number>, dest: ReconcileSource): Promise<ReconcileDecision[]> {
  if (rows.length === 0) return [];
  const sorted = [...rows].sort((a, b) => (a.destUidNext ?? 0) - (b.destUidNext ?? 0));
  const floor = Math.max(1, Math.min(...sorted.map((r) => r.destUidNext ?? 1)));
  const candidates = (await dest.listSince(floor)).filter((c) => !claimed.has(c.uid)).sort((a, b) => a.uid - b.uid);
  const taken = new Set<number>();
  const hashes = new Map<number, string>();
  const hashOf = async (uid: number): Promise<string> => {
    let h = hashes.get(uid);
    if (h === undefined) {
      h = sha256Hex(await dest.fetchBody(uid));
      hashes.set(uid, h);
    }
    return h;
  };

  const decisions: ReconcileDecision[] = [];
  for (const row of sorted) {
    const eligible = candidates.filter((c) => !taken.has(c.uid) && c.uid >= (row.destUidNext ?? 1));
    let found: DestinationMessage | undefined;
    let matchedBy: ReconcileDecision['matchedBy'] = null;
    for (const c of eligible) {
      if (c.size === row.size && row.sha256 !== null && (await hashOf(c.uid)) === row.sha256) {
        found = c;
        matchedBy = 'sha256';
        break;
      }
    }
    if (!found && row.messageId !== null) {
      found = eligible.find((c) => c.size === row.size && c.messageId === row.messageId);
      if (found) matchedBy = 'message-id';
    }
    if (found) taken.add(found.uid);
    decisions.push({ uidl: row.uidl, uid: found?.uid ?? null, matchedBy });
  }
  return decisions;
}
