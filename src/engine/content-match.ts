/**
 * The last chance to recognise a message before it is appended: by its downloaded content.
 *
 * identity.ts ties a listed message to its journal row by UIDL, or, when the UIDL is new and
 * copied rows have gone missing from the listing (the server renumbered its UIDLs), by header
 * hash from `TOP n 0`. A server that also refuses TOP for that message leaves it untied, and
 * without this step the run would copy it a second time. Here its body, now downloaded, is
 * compared with those same rows: copied ('done' or 'deleting'), not under a listed key.
 *
 * Only such rows may be claimed: a row still listed belongs to the message listed under it,
 * and a 'deleted' row's message is gone from the server, so an equal message is a new one.
 * Each row is claimed once, so identical twins are counted, not collapsed: two copied twins
 * renumbered claim one row each, and a third identical message arriving with them finds none
 * left and is copied. Exact sha256 is tried before the normalised fingerprint (fingerprint.ts),
 * which also recognises a message the new server serves with other line ends.
 */
import type { RowState } from '../journal/types.js';

/** What a copied row offers to be recognised by. */
interface ContentRow {
  uidl: string;
  sha256: string | null;
  fingerprint?: string | null;
  folder: string | null;
}

/** Copied rows the listing does not hold under their key: the ones a downloaded message may be. */
export function unlistedCopies<R extends { uidl: string; state: RowState }>(
  listedKeys: ReadonlySet<string>,
  rows: Iterable<R>,
): R[] {
  const out: R[] = [];
  for (const r of rows) if ((r.state === 'done' || r.state === 'deleting') && !listedKeys.has(r.uidl)) out.push(r);
  return out;
}

/**
 * Unlisted copied rows, each claimable once, indexed by sha256 and by fingerprint: a server that
 * renumbered 10,000 UIDLs and refused TOP sends 10,000 such messages, and a scan of the pool for
 * each was 50 million comparisons.
 */
export class ContentPool {
  /** Rows with each sha256 / fingerprint, in the order given (the first unclaimed one is taken). */
  private readonly bySha = new Map<string, Queue>();
  private readonly byFingerprint = new Map<string, Queue>();
  private readonly claimed = new Set<ContentRow>();
  private left: number;

  constructor(rows: readonly ContentRow[]) {
    this.left = rows.length;
    for (const r of rows) {
      if (r.sha256 !== null) queue(this.bySha, r.sha256).rows.push(r);
      if (r.fingerprint != null) queue(this.byFingerprint, r.fingerprint).rows.push(r);
    }
  }

  get size(): number {
    return this.left;
  }

  /** The row this content is the copy of (taken out of the pool), or null. */
  claim(content: { sha256: string; fingerprint: string }): ContentRow | null {
    const row = this.first(this.bySha, content.sha256) ?? this.first(this.byFingerprint, content.fingerprint);
    if (row === null) return null;
    this.claimed.add(row);
    this.left--;
    return row;
  }

  /** The first unclaimed row under `key`, dropping the claimed ones ahead of it for good. */
  private first(index: Map<string, Queue>, key: string): ContentRow | null {
    const q = index.get(key);
    if (!q) return null;
    while (q.head < q.rows.length && this.claimed.has(q.rows[q.head]!)) q.head++;
    return q.rows[q.head] ?? null;
  }
}

/** Rows in the order given; those before `head` are claimed. */
interface Queue {
  rows: ContentRow[];
  head: number;
}

function queue(index: Map<string, Queue>, key: string): Queue {
  let q = index.get(key);
  if (!q) {
    q = { rows: [], head: 0 };
    index.set(key, q);
  }
  return q;
}
