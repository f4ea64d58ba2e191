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

/** Unlisted copied rows, each claimable once. */
export class ContentPool {
  private readonly rows: ContentRow[];

  constructor(rows: readonly ContentRow[]) {
    this.rows = [...rows];
  }

  get size(): number {
    return this.rows.length;
  }

  /** The row this content is the copy of (taken out of the pool), or null. */
  claim(content: { sha256: string; fingerprint: string }): ContentRow | null {
    let i = this.rows.findIndex((r) => r.sha256 === content.sha256);
    if (i < 0) i = this.rows.findIndex((r) => r.fingerprint != null && r.fingerprint === content.fingerprint);
    if (i < 0) return null;
    return this.rows.splice(i, 1)[0]!;
  }
}
