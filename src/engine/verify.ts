/**
 * Is the copy the journal records still in the destination, and still the message that was
 * copied? Pure decisions, shared by the check before every deletion (deleter.ts) and by the
 * `popsync verify` audit (verifier.ts does the I/O for both). No sockets here: the I/O shell
 * hands in what the server showed, and these functions say what it means.
 *
 * Two depths of looking:
 * - a look: UID, RFC822.SIZE and a digest of the stored header block, from one batched FETCH
 *   (cheap: a few hundred bytes a message). Same size and same header digest: the copy is there.
 * - content: the stored bytes streamed through sha256 (StoredDigester). Only identical bytes
 *   are "same"; anything else is described by what a server is known to do to mail, so the
 *   user learns which setting to look at (likelyRewrites).
 *
 * "missing" is a proof, not a guess: the folder still has the copy's UIDVALIDITY and a FETCH of
 * the copy's UID returned nothing. UIDs are never reused under one UIDVALIDITY, so that copy is
 * gone for good; only then may a deleted copy be copied again (Journal.markCopyMissing).
 * Everything popsync cannot prove (no UID recorded, folder recreated or gone) is "unknown".
 */
import { createHash, type Hash } from 'node:crypto';
import type { JournalRow } from '../journal/types.js';
import { Fingerprinter } from './fingerprint.js';
import { headerHash } from './identity.js';

/**
 * The fields of a journal row that describe its copy. `fingerprint` (engine/fingerprint.ts) is
 * recorded by newer journals; without it a rewritten copy cannot be told from another message.
 */
export type CopyRecord = Pick<
  JournalRow,
  | 'uidl'
  | 'state'
  | 'folder'
  | 'destUidValidity'
  | 'destUidNext'
  | 'destUid'
  | 'size'
  | 'sha256'
  | 'headerHash'
  | 'messageId'
> & {
  fingerprint?: string | null;
};

/** One stored message as the batched header FETCH showed it. */
export interface StoredLook {
  uid: number;
  size: number;
  /** identity.ts headerHash of the stored header block. */
  headerHash: string;
}

/** What a folder looked like when its messages were looked at; null: the folder does not exist. */
export type FolderSeen = { uidValidity: bigint } | null;

/** Byte counts of a stored message that tell which rewrite a server applied. */
export interface ByteShape {
  crlf: number;
  bareLf: number;
  bareCr: number;
  nul: number;
  /** 0x80 bytes: Dovecot stores NUL as 0x80. */
  x80: number;
  /** Bytes >= 0x80 in the header block: Cyrus munge8bit leaves none. */
  header8bit: number;
  endsWithNewline: boolean;
}

/** The digest of one stored message's bytes. */
export interface StoredContent {
  uid: number;
  size: number;
  sha256: string;
  /** Normalised content fingerprint (engine/fingerprint.ts). */
  fingerprint: string;
  shape: ByteShape;
}

/**
 * same: the bytes copied. rewritten: other bytes, but the normalised fingerprint says it is the
 * copied message as this server keeps it. differs: not recognisably the message copied.
 */
type CopyStatus = 'same' | 'rewritten' | 'missing' | 'differs' | 'unknown';

/** Where a copy was looked for and found absent, present or changed. */
interface Located {
  folder: string;
  uid: number;
  /** The folder's UIDVALIDITY when it was looked at. */
  uidValidity: bigint;
}

interface Judged {
  /** For humans: why it is not 'same', and for 'differs' the likely server setting. */
  detail: string | null;
  /** rewritten/differs: the rewrites the stored bytes suggest (likelyRewrites); empty otherwise. */
  likely: string[];
  /**
   * rewritten only in line ends (CRLF for bare LF, a final newline): nothing of the message was
   * lost, so its original may be deleted. Munged headers, NUL or stripped bytes are not.
   */
  lossless: boolean;
}

/**
 * A 'missing' verdict always says exactly where the copy was looked for: that is the proof
 * Journal.markCopyMissing requires before a confirmed copy is copied again. The others may
 * have been judged without a place to look ('unknown': no UID, no such folder).
 */
export type Verdict =
  | ({ status: 'missing' } & Located & Judged)
  | ({
      status: Exclude<CopyStatus, 'missing'>;
      /** Where the copy was looked for; uid null when the journal has none. */
      folder: string | null;
      uid: number | null;
      /** The folder's UIDVALIDITY when it was looked at (null: not looked at, or no such folder). */
      uidValidity: bigint | null;
    } & Judged);

const CR = 0x0d;
const LF = 0x0a;

/**
 * sha256, size and ByteShape of a message fed in pieces, with the same result however the
 * bytes are split: stored copies are streamed, never held whole.
 */
export class StoredDigester {
  private readonly hash: Hash = createHash('sha256');
  private readonly fingerprint = new Fingerprinter();
  private size = 0;
  private prev = -1;
  private inHeader = true;
  /** The last byte (CR skipped) was LF: an empty line ends the header. */
  private lineStart = true;
  private readonly shape: ByteShape = {
    crlf: 0,
    bareLf: 0,
    bareCr: 0,
    nul: 0,
    x80: 0,
    header8bit: 0,
    endsWithNewline: false,
  };

  update(chunk: Uint8Array): this {
    this.hash.update(chunk);
    this.fingerprint.update(chunk);
    this.size += chunk.length;
    const s = this.shape;
    for (let i = 0; i < chunk.length; i++) {
      const c = chunk[i]!;
      if (this.prev === CR && c !== LF) s.bareCr++;
      if (c === LF) {
        if (this.prev === CR) s.crlf++;
        else s.bareLf++;
        if (this.inHeader && this.lineStart) this.inHeader = false;
        this.lineStart = true;
      } else if (c !== CR) {
        this.lineStart = false;
        if (c === 0) s.nul++;
        if (c === 0x80) s.x80++;
        if (c >= 0x80 && this.inHeader) s.header8bit++;
      }
      this.prev = c;
    }
    return this;
  }

  digest(uid: number): StoredContent {
    if (this.prev === CR) this.shape.bareCr++;
    this.shape.endsWithNewline = this.prev === LF;
    return {
      uid,
      size: this.size,
      sha256: this.hash.digest('hex'),
      fingerprint: this.fingerprint.digest(),
      shape: { ...this.shape },
    };
  }
}

/** The look of a stored message from its header block (scanHeaders). */
export function lookOf(uid: number, size: number, header: Buffer): StoredLook {
  return { uid, size, headerHash: headerHash(header) };
}

function where(row: CopyRecord): string {
  return `UID ${row.destUid ?? '?'} in ${row.folder ?? '?'}`;
}

/**
 * The checks every verdict starts with: is there a copy popsync can look up at all? Either the
 * verdict that it cannot, or where to look.
 */
function locate(row: CopyRecord, folder: FolderSeen): { verdict: Verdict } | { at: Located } {
  const base = {
    folder: row.folder,
    uid: row.destUid,
    uidValidity: folder?.uidValidity ?? null,
    likely: [],
    lossless: false,
  };
  if (row.folder === null || row.destUid === null || row.destUidValidity === null) {
    return {
      verdict: {
        ...base,
        status: 'unknown',
        detail: 'the destination gave its copy no UID, and no stored message matches it',
      },
    };
  }
  // Re-copying on a guess could duplicate; forget-folder makes the next run search the folder.
  const remedy =
    `\`popsync journal forget-folder --folder ${row.folder}\` lets the next run adopt the ` +
    `copies still there and copy the rest`;
  if (folder === null)
    return {
      verdict: {
        ...base,
        status: 'unknown',
        detail: `folder ${row.folder} no longer exists in the destination (${remedy})`,
      },
    };
  if (folder.uidValidity !== row.destUidValidity) {
    return {
      verdict: {
        ...base,
        status: 'unknown',
        detail:
          `folder ${row.folder} was recreated since the copy (UIDVALIDITY ${row.destUidValidity} is now ` +
          `${folder.uidValidity}), so its UIDs name other messages (${remedy})`,
      },
    };
  }
  return { at: { folder: row.folder, uid: row.destUid, uidValidity: folder.uidValidity } };
}

/**
 * The cheap check: the copy's UID is there with the size and header digest that were copied.
 * 'differs' here only means "look at the content" (judgeContent says how it differs).
 */
export function judgeLook(row: CopyRecord, folder: FolderSeen, look: StoredLook | undefined): Verdict {
  const place = locate(row, folder);
  if ('verdict' in place) return place.verdict;
  const base = { ...place.at, likely: [], lossless: false };
  if (look === undefined)
    return { ...base, status: 'missing', detail: `its copy (${where(row)}) is no longer in the destination` };
  if (look.size !== row.size)
    return { ...base, status: 'differs', detail: `its copy (${where(row)}) has ${look.size} bytes, not ${row.size}` };
  if (row.headerHash !== null && look.headerHash !== row.headerHash)
    return {
      ...base,
      status: 'differs',
      detail: `the headers of its copy (${where(row)}) differ from the message copied`,
    };
  return { ...base, status: 'same', detail: null };
}

/**
 * The content check: only the exact bytes that were copied are 'same'. `headersSame`: whether
 * the stored header digest equals the copied one (from the look), which rules header rewrites out.
 */
export function judgeContent(
  row: CopyRecord,
  folder: FolderSeen,
  stored: StoredContent | undefined,
  headersSame?: boolean,
): Verdict {
  const place = locate(row, folder);
  if ('verdict' in place) return place.verdict;
  const base = { ...place.at, lossless: false };
  if (stored === undefined)
    return {
      ...base,
      status: 'missing',
      detail: `its copy (${where(row)}) is no longer in the destination`,
      likely: [],
    };
  if (row.sha256 !== null && stored.sha256 === row.sha256) return { ...base, status: 'same', detail: null, likely: [] };
  const likely = likelyRewrites(row.size, stored, headersSame);
  const sizes = stored.size === row.size ? `same size, ${row.size} bytes` : `${stored.size} bytes, not ${row.size}`;
  if (row.fingerprint != null && stored.fingerprint === row.fingerprint) {
    // Only line ends can have changed when the headers hash alike (line ends and folding aside),
    // the server added no 0x80 or NUL, and nothing was removed.
    const lossless =
      headersSame === true &&
      stored.size >= row.size &&
      stored.shape.x80 === 0 &&
      stored.shape.nul === 0 &&
      stored.shape.bareLf === 0;
    return {
      ...base,
      status: 'rewritten',
      detail: `its copy (${where(row)}) was rewritten by the server (${sizes}): ${likely.join('; ')}`,
      likely,
      lossless,
    };
  }
  return {
    ...base,
    status: 'differs',
    detail: `its copy (${where(row)}) is not the message copied (${sizes}); likely: ${likely.join('; ')}`,
    likely,
  };
}

/**
 * What a server probably did, from the stored bytes and the size of what was copied. These are
 * the rewrites servers are known to apply when they store mail; each names where to look.
 */
export function likelyRewrites(
  copiedSize: number,
  stored: Pick<StoredContent, 'size' | 'shape'>,
  headersSame?: boolean,
): string[] {
  const { shape } = stored;
  const grew = stored.size - copiedSize;
  const out: string[] = [];
  if (grew > 0 && shape.bareLf === 0 && shape.crlf >= grew) {
    out.push(
      grew <= 2 && shape.endsWithNewline && shape.crlf > grew
        ? 'a final newline was added, or bare LF line ends stored as CRLF'
        : 'bare LF line ends stored as CRLF (Dovecot and most IMAP servers convert them; the source served bare LF)',
    );
  }
  if (grew < 0 && shape.bareCr === 0)
    out.push('bytes removed: bare CR stripped (Courier) or NUL bytes dropped by the server');
  if (grew === 0 && shape.x80 > 0) out.push('NUL bytes stored as 0x80 (Dovecot)');
  if (grew === 0 && shape.x80 === 0 && shape.header8bit === 0 && headersSame !== true)
    out.push("8-bit header bytes replaced by 'X' (Cyrus munge8bit, the Debian default; set munge8bit: no)");
  if (out.length === 0)
    out.push('the content was changed after the copy (a server-side filter, virus scanner or another mail client)');
  return out;
}

/**
 * Rows whose copy has no UID (a server without UIDPLUS): the stored message at or above the
 * UIDNEXT saved before its APPEND, of the same size and header digest, not claimed by any other
 * row. Each stored message goes to at most one row, in UID order, as reconcile does.
 */
export function locateUidless(
  rows: readonly CopyRecord[],
  looks: readonly StoredLook[],
  claimed: ReadonlySet<number>,
): Map<string, number> {
  const taken = new Set<number>();
  const found = new Map<string, number>();
  const sorted = [...looks].sort((a, b) => a.uid - b.uid);
  for (const row of [...rows].sort((a, b) => (a.destUidNext ?? 0) - (b.destUidNext ?? 0))) {
    const hit = sorted.find(
      (l) =>
        !claimed.has(l.uid) &&
        !taken.has(l.uid) &&
        l.uid >= (row.destUidNext ?? 1) &&
        l.size === row.size &&
        row.headerHash !== null &&
        l.headerHash === row.headerHash,
    );
    if (hit) {
      taken.add(hit.uid);
      found.set(row.uidl, hit.uid);
    }
  }
  return found;
}

/**
 * Stored messages no row owns whose header digest equals a row's: candidates for a second copy
 * of that row (the content check decides). uid -> the row's UIDL.
 */
export function duplicateCandidates(
  rows: readonly CopyRecord[],
  looks: readonly StoredLook[],
  claimed: ReadonlySet<number>,
): Map<number, string> {
  const byHeader = new Map<string, string>();
  for (const r of rows) if (r.headerHash !== null && !byHeader.has(r.headerHash)) byHeader.set(r.headerHash, r.uidl);
  const out = new Map<number, string>();
  for (const l of looks) {
    if (claimed.has(l.uid)) continue;
    const uidl = byHeader.get(l.headerHash);
    if (uidl !== undefined) out.set(l.uid, uidl);
  }
  return out;
}

/** One thing `popsync verify` found, by UIDL. */
export interface AuditFinding {
  uidl: string;
  folder: string | null;
  /** The stored message concerned: the copy, or for 'duplicated' the extra one. */
  uid: number | null;
  status: Exclude<CopyStatus, 'same'> | 'duplicated';
  detail: string;
  likely: string[];
  /** Whether the original is still on the POP3 server (its row is not 'deleted'). */
  originalOnSource: boolean;
}

export interface AuditReport {
  /** Copies the journal records (done, deleting or deleted). */
  checked: number;
  /** Of those, stored exactly as copied. */
  same: number;
  findings: AuditFinding[];
}

/**
 * The audit's verdicts and duplicates folded into what `verify` reports: every copy that is
 * not byte for byte what was copied, and every extra copy, in folder and UIDL order.
 */
export function auditReport(
  rows: readonly CopyRecord[],
  verdicts: ReadonlyMap<string, Verdict>,
  duplicates: ReadonlyArray<{ folder: string; uid: number; uidl: string }>,
): AuditReport {
  const findings: AuditFinding[] = [];
  let same = 0;
  const byUidl = new Map(rows.map((r) => [r.uidl, r]));
  for (const r of rows) {
    const v = verdicts.get(r.uidl);
    if (v?.status === 'same') {
      same++;
      continue;
    }
    const onSource = r.state !== 'deleted';
    const status = v?.status ?? 'unknown';
    let detail = v?.detail ?? 'not looked at';
    if (status === 'missing')
      detail += onSource
        ? '; the original is still on the source'
        : '; its original was deleted from the source, so this message is now in neither place';
    findings.push({
      uidl: r.uidl,
      folder: v?.folder ?? r.folder,
      uid: v?.uid ?? r.destUid,
      status: status as AuditFinding['status'],
      detail,
      likely: v?.likely ?? [],
      originalOnSource: onSource,
    });
  }
  for (const d of duplicates) {
    const r = byUidl.get(d.uidl);
    findings.push({
      uidl: d.uidl,
      folder: d.folder,
      uid: d.uid,
      status: 'duplicated',
      detail:
        `UID ${d.uid} in ${d.folder} is a second copy of it (the copy popsync made is UID ` +
        `${verdicts.get(d.uidl)?.uid ?? r?.destUid ?? '?'})`,
      likely: [],
      originalOnSource: r?.state !== 'deleted',
    });
  }
  findings.sort(
    (a, b) =>
      (a.folder ?? '').localeCompare(b.folder ?? '') || a.uidl.localeCompare(b.uidl) || (a.uid ?? 0) - (b.uid ?? 0),
  );
  return { checked: rows.length, same, findings };
}
