/**
 * Which journal row a listed POP3 message is. The UIDL is the primary key, but servers break
 * it in three ways, and each is handled here as a pure function of the listing, the journal and
 * the header hashes of the few messages worth a `TOP n 0`:
 *
 * 1. UIDL reuse: a known UIDL now names a different message (some servers recycle UIDLs after
 *    a message is deleted). A LIST size that differs from the one journaled is the cheap hint;
 *    then the header hash decides. A different message gets the UIDL, and the old row is moved
 *    aside under `<uidl> reused <time>`: a space cannot occur in a real UIDL (RFC 1939: 0x21 to
 *    0x7E), so the renamed key never collides, and the old row keeps its copy and history (its
 *    destination UID stays claimed, `status` still counts it).
 * 2. A changed UIDL scheme (server upgrade or move): unknown UIDLs whose header hash and LIST
 *    size equal those of a copied row that is no longer listed are that row under a new name;
 *    the row is re-keyed, nothing is copied again.
 * 3. No UIDL at all (UIDL answers -ERR): the header hash and LIST size are the identity, with an
 *    occurrence number telling exact duplicates apart: `header:<sha256>:<size>#<k>`. Rows
 *    copied under UIDLs before are recognised under these keys as in 2.
 * 4. One UIDL for several messages (popa3d derives UIDLs from content, so identical messages
 *    share one): those messages alone are keyed as in 3, the others keep their UIDLs. A row
 *    copied under that UIDL while it was still unique joins their group, so its copy is claimed
 *    by one of them; when the UIDL is unique again, case 2 gives the surviving row its UIDL back.
 * 5. A UIDL popsync itself deleted ('deleted') listed again: the server reused it for a new
 *    message (the deleted one is gone), so the old row is moved aside as in 1. Should copied
 *    rows be missing, the message is still checked against them as in 2. One exception, asked
 *    with TOP: the headers and LIST size of the message copied. Its row was recorded 'deleted'
 *    because a listing no longer showed it after an unconfirmed deletion, by a server that
 *    lists only part of the mailbox (WildDuck: the newest 250); it was never removed. It is
 *    that copied message, not copied again, and kept on the source ('deleted' is final).
 *
 * The header hash follows Dovecot's pop3-migration: sha256 of the header block with volatile
 * fields removed, the ones that POP servers and local delivery agents add or rewrite.
 */
import { hash } from 'node:crypto';
import type { JournalIndexRow } from '../journal/types.js';
import { type HeaderField, headerText } from '../mapping/headers.js';
import { markKeysListedOnce, type ListedMessage } from './plan.js';
import { matchRenumbered, type PoolEntry } from './renumbered.js';

const VOLATILE_HEADERS: ReadonlySet<string> = new Set([
  'status',
  'x-status',
  'x-uid',
  'x-uidl',
  'x-keywords',
  'x-imap',
  'x-imapbase',
  'content-length',
  'return-path',
  'lines',
]);

/**
 * The canonical line of one unfolded field: `name:value` with the name trimmed and lower-cased
 * and the value's end trimmed, or the whole field trimmed at its end when it has no name; ''
 * for a volatile field. Within latin1, trim() and toLowerCase() change exactly the bytes the
 * rule names (white space 0x09-0x0d, 0x20, 0xa0; A-Z and 0xc0-0xde but 0xd7).
 */
function canonicalField(field: string): string {
  const colon = field.indexOf(':');
  if (colon <= 0) return `${field.trimEnd()}\n`;
  const name = field.slice(0, colon).trim().toLowerCase();
  if (VOLATILE_HEADERS.has(name)) return '';
  return `${name}:${field.slice(colon + 1).trimEnd()}\n`;
}

/**
 * sha256 (hex) of the header block of `message` (a whole message or a TOP n 0 answer) with
 * volatile fields removed. Fields are unfolded and line ends normalised, so a server that
 * refolds or turns CRLF into LF does not change the identity; names compare case-insensitively.
 */
export function headerHash(message: Buffer): string {
  return headerHashOf(headerText(message));
}

/**
 * headerHash() of a header block already read as text (mapping/headers.ts headerText), so that
 * the copy reads each message's block once for its routing and its hash. With `fields`, the
 * block's fields as headerFields() reads them are pushed there in the same pass: the copy needs
 * both of every message, and two passes cut out each line, and each name lower-cased, twice.
 * Every message of a copy passes here, mostly in code not yet optimised: a field is cut out of
 * the block's one string by native string search and slicing, and its canonical line joined to
 * the others, where building the text byte by byte in a buffer took a dozen calls per field
 * into Buffer's methods.
 *
 * Two groupings run side by side: the hash's, where a line starting with white space continues
 * whatever line came before it, and headerFields()', where it continues the last field (a line
 * that is not a field, an mbox "From " line, is skipped there). A one-line group's canonical
 * line is made from the bounds found for the field; a folded one's from its unfolded text.
 */
export function headerHashOf(block: string, fields: HeaderField[] | null = null): string {
  let canonical = '';
  // The hash's group: where its first line starts and ends, the field that line is (its name,
  // colon and the end of its value), and its unfolded text once a line continued it.
  let start = -1;
  let end = 0;
  let name: string | null = null;
  let colon = 0;
  let valueEnd = 0;
  let folded: string | null = null;
  let last: HeaderField | null = null;
  for (let pos = 0; pos < block.length; ) {
    const lf = block.indexOf('\n', pos);
    let lineEnd = lf < 0 ? block.length : lf;
    const next = lf < 0 ? block.length : lf + 1;
    if (lf >= 0 && lineEnd > pos && block.charCodeAt(lineEnd - 1) === 0x0d) lineEnd--;
    if (lineEnd === pos) break;
    const first = block.charCodeAt(pos);
    const indented = first === 0x20 || first === 0x09;
    const continues = indented && start >= 0;
    if (continues) folded = (folded ?? block.slice(start, end)) + block.slice(pos, lineEnd);
    else {
      if (start >= 0) canonical += groupLine(block, start, end, name, colon, valueEnd, folded);
      start = pos;
      end = lineEnd;
      name = null;
      folded = null;
    }
    if (fields !== null && indented && last !== null) {
      last.value += ' ' + block.slice(pos, lineEnd).trim();
    } else if (!continues || fields !== null) {
      const at = block.indexOf(':', pos);
      // Not a field (mbox "From " line, junk): skipped by headerFields, hashed whole.
      if (at > pos && at < lineEnd) {
        const lower = block.slice(pos, at).trim().toLowerCase();
        // The value's bounds found before it is cut out: trimming a cut-out copied it again.
        let to = lineEnd;
        while (to > at + 1 && isTrimmed(block.charCodeAt(to - 1))) to--;
        if (!continues) {
          name = lower;
          colon = at;
          valueEnd = to;
        }
        if (fields !== null) {
          let from = at + 1;
          while (from < to && isTrimmed(block.charCodeAt(from))) from++;
          last = { name: lower, value: block.slice(from, to) };
          fields.push(last);
        }
      }
    }
    pos = next;
  }
  if (start >= 0) canonical += groupLine(block, start, end, name, colon, valueEnd, folded);
  // The canonical text is latin1 as the block was: each char one byte again. hash() reads a
  // string as UTF-8, which is those bytes when all are ASCII, as in nearly every header block:
  // a Buffer made of it was most of the cost of hashing it.
  return hash('sha256', NON_ASCII.test(canonical) ? Buffer.from(canonical, 'latin1') : canonical, 'hex');
}

/**
 * The canonical line of one group of lines: canonicalField() of its unfolded text, made from
 * the bounds already found when it is one line (`name` null: not a field).
 */
function groupLine(
  block: string,
  start: number,
  end: number,
  name: string | null,
  colon: number,
  valueEnd: number,
  folded: string | null,
): string {
  if (folded !== null) return canonicalField(folded);
  if (name === null) return canonicalField(block.slice(start, end));
  if (VOLATILE_HEADERS.has(name)) return '';
  return `${name}:${block.slice(colon + 1, valueEnd)}\n`;
}

/** What String.prototype.trim() removes, within latin1. */
function isTrimmed(c: number): boolean {
  return (c >= 0x09 && c <= 0x0d) || c === 0x20 || c === 0xa0;
}

/** A char past ASCII: one the two encodings write differently. */
const NON_ASCII = /[\x80-\uffff]/;

const COPIED = new Set(['done', 'deleting', 'deleted']);

const isMovedAside = (key: string): boolean => key.includes(' ');

function headerKey(hash: string, listSize: number, occurrence: number): string {
  return `header:${hash}:${listSize}#${occurrence}`;
}

/** Copied rows whose key the listing does not hold (deleted ones are gone from the server). */
function orphans(listed: ReadonlySet<string>, rows: ReadonlyMap<string, JournalIndexRow>): JournalIndexRow[] {
  return [...rows.values()].filter(
    (r) => (r.state === 'done' || r.state === 'deleting') && r.headerHash !== null && !listed.has(r.uidl),
  );
}

/**
 * Message numbers that need `TOP n 0` before the listing can be trusted. With a UIDL: known
 * UIDLs whose LIST size changed or whose row is 'deleting' (an interrupted deletion may have
 * removed its message) or 'deleted' (case 5), and unknown UIDLs only while some copied row has
 * gone missing (otherwise no row could be theirs). Without UIDL: every message.
 */
export function needsHeaders(
  listing: readonly ListedMessage[],
  rows: ReadonlyMap<string, JournalIndexRow>,
  uidlSupported: boolean,
): number[] {
  if (!uidlSupported) return listing.map((m) => m.n);
  const { listed, shared } = uidlSets(listing);
  // No rows (a first run): no UIDL is known, no copied row can be missing, and only a UIDL listed
  // twice needs its messages' headers.
  if (rows.size === 0 && shared.size === 0) return [];
  const anyOrphan = rows.size > 0 && orphans(listed, rows).length > 0;
  const out: number[] = [];
  // Indexed loops over the listing, here and below: run once per pass, they stay unoptimised,
  // where a for-of is an iterator result object per message (10,000 before the first RETR).
  for (let i = 0; i < listing.length; i++) {
    const m = listing[i]!;
    const row = rows.get(m.uidl);
    if (shared.has(m.uidl)) {
      out.push(m.n);
    } else if (row === undefined) {
      if (anyOrphan) out.push(m.n);
    } else if (
      row.state === 'deleted' ||
      row.state === 'deleting' ||
      (COPIED.has(row.state) && row.listSize !== null && row.listSize !== m.size)
    ) {
      out.push(m.n);
    }
  }
  return out;
}

/** uidlSets' answer per listing: needsHeaders and identify ask it of the same listing, one after the other. */
const uidlSetsOf = new WeakMap<readonly ListedMessage[], { listed: Set<string>; shared: Set<string> }>();

/**
 * Every UIDL the listing holds, and those it gives to more than one message ('' is no UIDL, not
 * a shared one): one pass, one set of every UIDL (10,000 of them before every run's first RETR),
 * once per listing. Neither caller changes the sets.
 */
function uidlSets(listing: readonly ListedMessage[]): { listed: Set<string>; shared: Set<string> } {
  let sets = uidlSetsOf.get(listing);
  if (sets === undefined) {
    sets = listedUidls(listing);
    uidlSetsOf.set(listing, sets);
  }
  return sets;
}

function listedUidls(listing: readonly ListedMessage[]): { listed: Set<string>; shared: Set<string> } {
  const listed = new Set<string>();
  const shared = new Set<string>();
  for (let i = 0; i < listing.length; i++) {
    const m = listing[i]!;
    if (listed.has(m.uidl)) {
      if (m.uidl !== '') shared.add(m.uidl);
    } else listed.add(m.uidl);
  }
  return { listed, shared };
}

export interface Identification {
  /** The listing with each message's journal key in `uidl`. */
  listing: ListedMessage[];
  /** Applied in order, in one journal step. */
  rekeys: Array<{ from: string; to: string }>;
  /** Messages recognised under a new UIDL (scheme change): not copied again. */
  recognised: number;
  /** UIDLs now naming a different message than the one copied under them. */
  reused: string[];
  /** UIDLs recorded 'deleted' whose message is listed again, the one copied (case 5): kept, not copied. */
  reappeared: string[];
  /** Rows whose list_size is missing or outdated, or whose vanished mark is to be cleared. */
  listSizes: Array<{ uidl: string; listSize: number }>;
  /** Copied rows missing from the listing for the first time, not deleted by popsync. */
  vanished: string[];
}

/**
 * `hashes` holds the header hash of every message `needsHeaders` asked for (a message whose
 * TOP failed is simply absent: it is then trusted by UIDL, or, without UIDL, left unidentified
 * with an empty key, which the planner reports and never copies).
 */
export function identify(
  listing: readonly ListedMessage[],
  rows: ReadonlyMap<string, JournalIndexRow>,
  hashes: ReadonlyMap<number, string>,
  o: { uidlSupported: boolean; now: Date },
): Identification {
  const out: Identification = {
    listing: [],
    rekeys: [],
    recognised: 0,
    reused: [],
    reappeared: [],
    listSizes: [],
    vanished: [],
  };
  if (!o.uidlSupported) return identifyByHeaders(listing, rows, hashes, out);

  const uidls = uidlSets(listing);
  const { shared } = uidls;
  // No rows (a first run) and no UIDL listed twice: nothing below can match, rekey, move aside or
  // miss anything, and each message's key is its UIDL. Its loops were ~5 ms at 10,000 messages.
  if (rows.size === 0 && shared.size === 0) {
    out.listing = listing.slice();
    markKeysListedOnce(out.listing);
    return out;
  }
  const byHeaders = shared.size === 0 ? null : keySharedByHeaders(listing, shared, rows, hashes);
  if (byHeaders) out.rekeys.push(...byHeaders.adopted);
  const keyOf = (m: ListedMessage): string => byHeaders?.keys.get(m.n) ?? m.uidl;
  const listed = byHeaders === null ? uidls.listed : new Set(listing.map(keyOf));
  const pool: PoolEntry[] = orphans(listed, rows).map((r) => ({ key: r.uidl, hash: r.headerHash!, size: r.listSize }));
  const stamp = o.now.toISOString();
  for (let i = 0; i < listing.length; i++) {
    const m = listing[i]!;
    if (shared.has(m.uidl)) continue;
    const row = rows.get(m.uidl);
    const hash = hashes.get(m.n);
    if (row !== undefined && row.state === 'deleted') {
      if (hash !== undefined && row.headerHash === hash && row.listSize === m.size) {
        // The message copied, recorded deleted after a listing hid it (case 5): kept, not copied.
        out.reappeared.push(m.uidl);
      } else {
        // Deleted by popsync means gone from the server: this is a new message under a reused UIDL.
        out.rekeys.push({ from: m.uidl, to: `${m.uidl} reused ${stamp}` });
        out.reused.push(m.uidl);
      }
    } else if (
      row !== undefined &&
      COPIED.has(row.state) &&
      (row.state === 'deleting' || (row.listSize !== null && row.listSize !== m.size)) &&
      hash !== undefined
    ) {
      // A 'deleting' row is asked whatever its size: its deletion may have happened (a QUIT whose
      // +OK never came), and a UIDL then given to new mail of the same size would settle the row
      // back to 'done' on the UIDL alone, the new message counted as copied and never copied.
      if (row.headerHash !== null && row.headerHash !== hash) {
        const aside = `${m.uidl} reused ${stamp}`;
        out.rekeys.push({ from: m.uidl, to: aside });
        out.reused.push(m.uidl);
        // The moved row may be the message a new UIDL names now (UIDLs shuffled).
        pool.push({ key: aside, hash: row.headerHash, size: row.listSize });
      } else if (row.listSize === null || row.listSize !== m.size || row.vanishedAt !== null) {
        out.listSizes.push({ uidl: m.uidl, listSize: m.size });
      }
    } else if (row !== undefined && (row.listSize === null || row.vanishedAt !== null)) {
      out.listSizes.push({ uidl: m.uidl, listSize: m.size });
    }
  }
  // Only a copied row no longer listed can be recognised under a new UIDL: without one, no pass.
  const movedAside = new Set(out.reused);
  if (pool.length > 0) {
    const recognised = matchRenumbered(pool, listing, (m) =>
      shared.has(m.uidl) || (rows.has(m.uidl) && !movedAside.has(m.uidl)) ? undefined : hashes.get(m.n),
    );
    for (const r of recognised) out.rekeys.push(r);
    out.recognised += recognised.length;
  }
  // The listing's own objects where the key is the UIDL: nothing changes them (a copy of each
  // was a tenth of the planning's time at 10,000).
  out.listing = listing.map((m) => {
    if (!shared.has(m.uidl)) return m;
    const key = keyOf(m);
    if (key !== m.uidl) return { ...m, uidl: key };
    return {
      ...m,
      uidl: '',
      fault:
        `the POP3 server listed its UIDL ${m.uidl} for more than one message and refused TOP, so ` +
        `popsync cannot tell them apart`,
    };
  });
  // No UIDL shared: each key is its message's UIDL, listed once.
  if (shared.size === 0) markKeysListedOnce(out.listing);
  const adopted = new Set(out.rekeys.map((r) => r.from));
  for (const r of rows.values()) {
    if (
      r.state === 'done' &&
      r.vanishedAt === null &&
      !listed.has(r.uidl) &&
      !adopted.has(r.uidl) &&
      !isMovedAside(r.uidl)
    )
      out.vanished.push(r.uidl);
  }
  return out;
}

/**
 * Header keys for the messages listed under a shared UIDL (case 4), and the rows copied under
 * such a UIDL before it was shared, moved into their header group so one message claims them.
 */
function keySharedByHeaders(
  listing: readonly ListedMessage[],
  shared: ReadonlySet<string>,
  rows: ReadonlyMap<string, JournalIndexRow>,
  hashes: ReadonlyMap<number, string>,
): { keys: Map<number, string>; adopted: Array<{ from: string; to: string }> } {
  const groups = headerGroups(rows);
  const adopted: Array<{ from: string; to: string }> = [];
  for (const u of shared) {
    const r = rows.get(u);
    if (r === undefined || r.state === 'deleted' || r.headerHash === null || r.listSize === null) continue;
    const g = group(groups, `header:${r.headerHash}:${r.listSize}`);
    const key = headerKey(r.headerHash, r.listSize, ++g.max);
    adopted.push({ from: u, to: key });
    g.live.push(key);
  }
  const keys = new Map<number, string>();
  for (const m of listing) {
    const hash = hashes.get(m.n);
    if (!shared.has(m.uidl) || hash === undefined) continue;
    const g = group(groups, `header:${hash}:${m.size}`);
    keys.set(m.n, g.live.shift() ?? headerKey(hash, m.size, ++g.max));
  }
  return { keys, adopted };
}

type HeaderGroups = Map<string, { live: string[]; max: number }>;

/** Per (hash, size): the live header-keyed rows in occurrence order, and the highest occurrence ever used. */
function headerGroups(rows: ReadonlyMap<string, JournalIndexRow>): HeaderGroups {
  const groups: HeaderGroups = new Map();
  for (const r of rows.values()) {
    const m = /^(header:[0-9a-f]{64}:\d+)#(\d+)$/.exec(r.uidl);
    if (!m) continue;
    const g = group(groups, m[1]!);
    g.max = Math.max(g.max, Number(m[2]));
    if (r.state !== 'deleted') g.live.push(r.uidl);
  }
  for (const g of groups.values()) g.live.sort((a, b) => Number(a.split('#')[1]) - Number(b.split('#')[1]));
  return groups;
}

function group(groups: HeaderGroups, prefix: string): { live: string[]; max: number } {
  let g = groups.get(prefix);
  if (!g) {
    g = { live: [], max: 0 };
    groups.set(prefix, g);
  }
  return g;
}

function identifyByHeaders(
  listing: readonly ListedMessage[],
  rows: ReadonlyMap<string, JournalIndexRow>,
  hashes: ReadonlyMap<number, string>,
  out: Identification,
): Identification {
  const groups = headerGroups(rows);
  const used = new Set<string>();
  for (const m of listing) {
    const hash = hashes.get(m.n);
    if (hash === undefined) {
      out.listing.push({ ...m, uidl: '' });
      continue;
    }
    const g = group(groups, `header:${hash}:${m.size}`);
    let key = g.live.shift();
    if (key === undefined) key = headerKey(hash, m.size, ++g.max);
    used.add(key);
    out.listing.push({ ...m, uidl: key });
  }
  // Rows copied under a UIDL, by a run whose server still answered UIDL (or will again), are case
  // 2 under header keys: a message with a key no row has, whose header hash and size are such a
  // row's, is that row. Unmatched, a row an interrupted deletion left 'deleting' was recorded
  // 'deleted' as no longer listed, and its message copied again.
  const pool: PoolEntry[] = orphans(used, rows).map((r) => ({ key: r.uidl, hash: r.headerHash!, size: r.listSize }));
  if (pool.length > 0) {
    const recognised = matchRenumbered(pool, out.listing, (m) =>
      m.uidl === '' || rows.has(m.uidl) ? undefined : hashes.get(m.n),
    );
    out.rekeys.push(...recognised);
    out.recognised += recognised.length;
  }
  const adopted = new Set(out.rekeys.map((r) => r.from));
  for (const r of rows.values()) {
    if (
      r.state === 'done' &&
      r.vanishedAt === null &&
      r.uidl.startsWith('header:') &&
      !used.has(r.uidl) &&
      !adopted.has(r.uidl)
    )
      out.vanished.push(r.uidl);
  }
  return out;
}

/** The rows as they would be after `rekeys`, for callers that must not write (plan). */
export function withRekeys<R extends { uidl: string }>(
  rows: ReadonlyMap<string, R>,
  rekeys: ReadonlyArray<{ from: string; to: string }>,
): Map<string, R> {
  const out = new Map(rows);
  for (const { from, to } of rekeys) {
    const r = out.get(from);
    if (r === undefined) continue;
    out.delete(from);
    out.set(to, { ...r, uidl: to });
  }
  return out;
}
