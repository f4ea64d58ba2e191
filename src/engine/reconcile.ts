/**
 * Which destination message is our copy: the matching rules of reconciliation, UID learning and
 * adoption, with no sockets (the destination is reached through `Probe`).
 *
 * A copy is recognised by content: the exact sha256, else the normalised fingerprint
 * (fingerprint.ts), which survives what servers do to stored mail (Dovecot turns bare LF into
 * CRLF and NUL into 0x80, Courier strips bare CR, Cyrus munges 8-bit header bytes, servers add
 * a final newline). Size is only a hint: those rewrites change it, so a candidate is excluded
 * only when it is larger than any rewrite of the message could make it.
 *
 * Cost is bounded by narrowing before any body is fetched: only UIDs at or above the UIDNEXT
 * saved before the APPEND (or, when adopting, below the UIDNEXT the folder had when the journal
 * first saw it), then the Message-ID (from ENVELOPE, or from the header scan when adopting),
 * then, where the caller knows the wanted header, the header fingerprint (BODY.PEEK[HEADER]).
 * Bodies are streamed, never held whole, and only for the candidates that remain, read in UID
 * order in rounds of one batched FETCH (growing to 1,000 bodies or 16 MB), and indexed by
 * digest: work and memory grow with rows plus candidates, never with their product, also when
 * thousands of rows share one Message-ID (automated notices) or have none.
 *
 * Each destination UID is claimed by at most one row, and UIDs already claimed are never
 * candidates: identical messages in a source are legal and each must arrive, so a copy can be
 * counted once only. Content-equal candidates are interchangeable, so taking the lowest
 * eligible UID is not a guess. Where the rules cannot decide (several different candidates
 * share the Message-ID and none has the content, or an old row without a fingerprint has a
 * plausible candidate), the answer is 'undecided' and the caller stops: copying again on a
 * guess would duplicate, settling on a guess could lose a message.
 */
import type { DestinationMessage } from '../imap/types.js';
import { Fingerprinter } from './fingerprint.js';

/** What a copy looks like by content. */
export interface Digest {
  sha256: string;
  fingerprint: string;
}

/**
 * The fingerprint of a header block alone (a message's, or a BODY[HEADER] answer): the same
 * rules, so a rewritten copy's header matches its original's.
 */
export function headerFingerprint(message: Buffer): string {
  return new Fingerprinter().update(message.subarray(0, headerEnd(message) ?? message.length)).digest();
}

/** Whether `m` holds its whole header block (the empty line that ends it). */
export function headerComplete(m: Buffer): boolean {
  return headerEnd(m) !== null;
}

/** After the first empty line (LF [CR...] LF, bare CRs ignored as the fingerprint does); null: none. */
function headerEnd(m: Buffer): number | null {
  let lf = false;
  for (let i = 0; i < m.length; i++) {
    const c = m[i]!;
    if (c === 0x0d || c === 0x00 || c === 0x80) continue;
    if (c === 0x0a) {
      if (lf) return i + 1;
      lf = true;
    } else lf = false;
  }
  return null;
}

/**
 * A Message-ID for comparison: the <...> part, without bytes a server may have rewritten (the
 * same header rules as the fingerprint: 8-bit bytes, 'X', NUL, CR).
 */
export function messageIdKey(id: string | null): string | null {
  if (id === null) return null;
  const m = /<[^<>\s]+>/.exec(id);
  // biome-ignore lint/suspicious/noControlCharactersInRegex: NUL and 8-bit bytes are what servers rewrite
  const key = (m ? m[0] : id.trim()).replace(/[^\x01-\x7f]|[X\r]/g, '');
  return key === '' ? null : key;
}

/** A message whose copy is looked for. */
export interface Wanted {
  /** The journal key (UIDL). */
  key: string;
  sha256: string | null;
  /** Null on rows journaled before fingerprints existed. */
  fingerprint: string | null;
  messageId: string | null;
  size: number;
  /** Lowest UID the copy can have (the UIDNEXT saved before its APPEND); 1 when unknown. */
  floor: number;
  /** The header fingerprint, when the message itself is at hand (adoption). */
  headerFingerprint?: string | null;
  /**
   * An APPEND of it may have been sent (an interrupted copy), so a lone candidate with its
   * Message-ID above the saved UIDNEXT may be its copy rewritten beyond the known rules (settled,
   * and logged loudly). Never for adoption or UID learning: a copy of another message with the
   * same Message-ID (the same mail delivered to two accounts) must not stand in for this one.
   */
  messageIdFallback: boolean;
}

export type Match =
  | { key: string; uid: number; by: 'sha256' | 'fingerprint' | 'message-id' }
  | { key: string; uid: null }
  | { key: string; undecided: string };

/** The destination, as matching needs it; implementations cache and count what they fetch. */
export interface Probe {
  /** `size` is the listed RFC822.SIZE (for batching the fetch). */
  digest(uid: number, size: number): Promise<Digest>;
  /** Header fingerprints of these UIDs; absent: narrowing by header is skipped. */
  headerFingerprints?(uids: readonly number[]): Promise<Map<number, string>>;
  /**
   * The digests of these candidates, fetched together so that `digest` then answers from what
   * was read; absent: each is fetched when asked for.
   */
  prefetch?(candidates: readonly DestinationMessage[]): Promise<void>;
}

/**
 * A rewrite never more than doubles a message (every byte a bare LF turned into CRLF) plus a
 * final CRLF; a larger candidate cannot be its copy.
 */
function sizePlausible(c: DestinationMessage, w: Wanted): boolean {
  return c.size <= 2 * w.size + 2;
}

/** Bodies read in the first round: a row needs at least one, so at least the rows' count is read. */
const FIRST_ROUND = 100;
/** Each later round reads twice the last, up to this count and about this many listed bytes. */
const MOST_PER_ROUND = 1_000;
const ROUND_BYTES = 16 * 1024 * 1024;

/**
 * Candidates sorted by UID, with a skip past the claimed ones: the claimed set only grows, so a
 * claimed entry is stepped over once and never looked at again (thousands of identical copies
 * handed out one by one cost each a step, not a walk from the first).
 */
class Run {
  readonly items: DestinationMessage[] = [];
  private readonly uids: number[] = [];
  /** skip[i] > i: every entry from i to skip[i] - 1 is claimed. skip[i] === i: not known to be. */
  private readonly skip: number[] = [];

  push(c: DestinationMessage, uid: number): void {
    this.items.push(c);
    this.uids.push(uid);
    this.skip.push(this.skip.length);
  }

  /** Up to `limit` unclaimed entries from UID `floor` up that `ok` accepts, lowest UID first. */
  take(floor: number, claimed: ReadonlySet<number>, ok: (c: DestinationMessage) => boolean, limit: number) {
    const out: Array<{ c: DestinationMessage; uid: number }> = [];
    let lo = 0;
    let hi = this.uids.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.uids[mid]! < floor) lo = mid + 1;
      else hi = mid;
    }
    for (let i = this.unclaimed(lo, claimed); i < this.uids.length && out.length < limit; ) {
      if (ok(this.items[i]!)) out.push({ c: this.items[i]!, uid: this.uids[i]! });
      i = this.unclaimed(i + 1, claimed);
    }
    return out;
  }

  /** The first index at or after `from` whose UID is not claimed (or the end). */
  private unclaimed(from: number, claimed: ReadonlySet<number>): number {
    let at = from;
    while (at < this.uids.length) {
      if (this.skip[at] !== at) at = this.skip[at]!;
      else if (claimed.has(this.uids[at]!)) {
        this.skip[at] = at + 1;
        at++;
      } else break;
    }
    // Path compression: the next look from any index passed here lands at once.
    for (let i = from; i < at; ) {
      const next = this.skip[i]!;
      this.skip[i] = at;
      i = next;
    }
    return at;
  }
}

/** What the undecided rows of one Message-ID (or all rows, for candidates without one) could use. */
class Need {
  rows = 0;
  floor = Number.POSITIVE_INFINITY;
  size = 0;
  /** Rows that take any header; the others' header fingerprints, counted. */
  anyHeader = 0;
  readonly headers = new Map<string, number>();

  add(w: Wanted, header: string | null): void {
    this.rows++;
    this.floor = Math.min(this.floor, w.floor);
    this.size = Math.max(this.size, w.size);
    if (header === null) this.anyHeader++;
    else this.headers.set(header, (this.headers.get(header) ?? 0) + 1);
  }

  /** A row was decided; floor and size stay as they were (reading a body too many is harmless). */
  drop(header: string | null): void {
    this.rows--;
    if (header === null) this.anyHeader--;
    else {
      const n = this.headers.get(header)! - 1;
      if (n === 0) this.headers.delete(header);
      else this.headers.set(header, n);
    }
  }

  /** Whether some undecided row could take `c`, as far as its listing says. */
  mayTake(c: DestinationMessage, uid: number): boolean {
    return this.rows > 0 && uid >= this.floor && c.size <= 2 * this.size + 2;
  }

  /** ...and its header fingerprint (undefined: not known, the body decides). */
  mayTakeHeader(header: string | undefined): boolean {
    return this.anyHeader > 0 || header === undefined || this.headers.has(header);
  }
}

function entry<K, V>(map: Map<K, V>, key: K, make: () => V): V {
  let v = map.get(key);
  if (v === undefined) {
    v = make();
    map.set(key, v);
  }
  return v;
}

/** Per sha256 (0) and per fingerprint (1), keyed by the digest strings themselves (no new strings). */
type ByDigest<T> = [Map<string, T>, Map<string, T>];
const byDigest = <T>(): ByDigest<T> => [new Map(), new Map()];

/**
 * Finds the copies of `wanted` among `candidates` (minus `claimed`, which it extends with every
 * UID it hands out). Content matches first for all rows (in floor order, lowest UID first), then
 * the Message-ID fallback for the rows left, so a fallback never takes a candidate that is
 * another row's copy by content.
 *
 * Each row gets what one body at a time, row after row, would give it: the lowest unclaimed
 * candidate from its floor up with its content. Bodies are read in UID order in rounds of one
 * batched FETCH, only of candidates some undecided row could take, and indexed by digest, so a
 * row finds its copy by a lookup: cost grows with rows plus candidates, never with their product
 * (10,000 interrupted notices sharing one Message-ID compared each row with every candidate).
 * After a round every candidate below the last one read is known, so a row whose content is
 * among them has its lowest copy there; the rows a round can settle are the ones wanting a digest
 * it read, taken in floor order. Rounds stop when every row is settled or nothing is left.
 */
export async function matchCopies(
  wanted: readonly Wanted[],
  candidates: readonly DestinationMessage[],
  claimed: Set<number>,
  probe: Probe,
): Promise<Match[]> {
  // UIDs read once each (a listing's objects may be anything with the fields).
  const sorted = candidates.map((c) => ({ c, uid: c.uid, id: messageIdKey(c.messageId) }));
  sorted.sort((a, b) => a.uid - b.uid);
  const listed = new Map<string | null, Run>();
  for (const [i, x] of sorted.entries()) {
    if (i > 0 && sorted[i - 1]!.uid === x.uid) continue;
    entry(listed, x.id, () => new Run()).push(x.c, x.uid);
  }
  const order = [...wanted].sort((a, b) => a.floor - b.floor);
  const result = new Map<string, Match>();
  await matchByContent(order, sorted, claimed, probe, result);

  const plausible = (w: Wanted) => (c: DestinationMessage) => sizePlausible(c, w);
  for (const w of order) {
    if (result.has(w.key)) continue;
    const id = messageIdKey(w.messageId);
    // A row without a Message-ID looks at candidates without one; a row with one, at its own.
    const sameId = (limit: number) => listed.get(id)?.take(w.floor, claimed, plausible(w), limit) ?? [];
    if (w.fingerprint === null && sameId(1).length > 0) {
      result.set(w.key, {
        key: w.key,
        undecided:
          `it was journaled before popsync kept content fingerprints, and ` +
          `${id === null ? 'a message without a Message-ID' : `a message with its Message-ID ${id}`} arrived ` +
          `in the destination after it; popsync cannot tell whether that is its copy rewritten by the server`,
      });
      continue;
    }
    // Enough to say how many, within reason: the message names ten at most.
    const same = w.messageIdFallback && id !== null ? sameId(11) : [];
    if (same.length === 0) {
      result.set(w.key, { key: w.key, uid: null });
      continue;
    }
    if (same.length > 1) {
      const many = same.length > 10;
      result.set(w.key, {
        key: w.key,
        undecided:
          `${many ? 'more than 10' : same.length} messages with its Message-ID ${id} (UIDs ` +
          `${same
            .slice(0, 10)
            .map((x) => x.uid)
            .join(', ')}${many ? ', ...' : ''}) arrived in the destination after its APPEND, none with ` +
          `its content; popsync cannot tell which, if any, is its copy`,
      });
      continue;
    }
    claimed.add(same[0]!.uid);
    result.set(w.key, { key: w.key, uid: same[0]!.uid, by: 'message-id' });
  }
  return wanted.map((w) => result.get(w.key)!);
}

/** The content half of matchCopies: settles into `result` every row whose copy is found by content. */
async function matchByContent(
  order: readonly Wanted[],
  sorted: ReadonlyArray<{ c: DestinationMessage; uid: number; id: string | null }>,
  claimed: Set<number>,
  probe: Probe,
  result: Map<string, Match>,
): Promise<void> {
  const headerOf = (w: Wanted): string | null =>
    probe.headerFingerprints && w.headerFingerprint ? w.headerFingerprint : null;
  // Candidates with a Message-ID serve the rows with it; those without one serve every row.
  const needs = new Map<string, Need>();
  const anyRow = new Need();
  /** Rows (by their index in `order`) wanting each sha256 and fingerprint. */
  const wanting = byDigest<number[]>();
  const want = (kind: 0 | 1, value: string, i: number) => {
    const list = wanting[kind].get(value);
    if (list) list.push(i);
    else wanting[kind].set(value, [i]);
  };
  const ids = order.map((w) => messageIdKey(w.messageId));
  let undecided = 0;
  for (const [i, w] of order.entries()) {
    if (w.sha256 === null && w.fingerprint === null) continue;
    undecided++;
    const id = ids[i]!;
    if (id !== null) {
      entry(needs, id, () => new Need()).add(w, headerOf(w));
    }
    anyRow.add(w, headerOf(w));
    if (w.sha256 !== null) want(0, w.sha256, i);
    if (w.fingerprint !== null) want(1, w.fingerprint, i);
  }
  const needOf = (id: string | null): Need | undefined => (id === null ? anyRow : needs.get(id));
  const headers = new Map<number, string>();
  /** The bodies read, per Message-ID of their listing (null: none), by digest. */
  const known = new Map<string | null, ByDigest<Run>>();
  const digests = new Map<number, Digest>();
  const settled = new Set<number>();

  /** Row i's lowest unclaimed copy among the bodies read, or null. */
  const lookup = (i: number): { uid: number; by: 'sha256' | 'fingerprint' } | null => {
    const w = order[i]!;
    const header = headerOf(w);
    const ok = (c: DestinationMessage): boolean => {
      if (!sizePlausible(c, w)) return false;
      const h = header === null ? undefined : headers.get(c.uid);
      return h === undefined || h === header;
    };
    let best: number | null = null;
    for (const id of ids[i] === null ? [null] : [ids[i]!, null])
      for (const [kind, value] of [
        [0, w.sha256],
        [1, w.fingerprint],
      ] as const) {
        if (value === null) continue;
        const [first] = known.get(id)?.[kind].get(value)?.take(w.floor, claimed, ok, 1) ?? [];
        if (first && (best === null || first.uid < best)) best = first.uid;
      }
    if (best === null) return null;
    return { uid: best, by: w.sha256 !== null && digests.get(best)!.sha256 === w.sha256 ? 'sha256' : 'fingerprint' };
  };

  let next = 0;
  for (let round = 0; undecided > 0 && next < sorted.length; round++) {
    const most = Math.min(MOST_PER_ROUND, Math.max(undecided, FIRST_ROUND << Math.min(round, 4)));
    const batch: DestinationMessage[] = [];
    let bytes = 0;
    while (batch.length < most && bytes < ROUND_BYTES && next < sorted.length) {
      // The listing narrows first; header fingerprints, where rows have them, in one call a chunk.
      const chunk: number[] = [];
      for (let j = next; j < sorted.length && chunk.length < most - batch.length; j++) {
        const x = sorted[j]!;
        if (!claimed.has(x.uid) && (j === 0 || sorted[j - 1]!.uid !== x.uid) && needOf(x.id)?.mayTake(x.c, x.uid))
          chunk.push(j);
        next = j + 1;
      }
      if (chunk.length === 0) break;
      if (probe.headerFingerprints) {
        // Only where every row that could take the candidate has a header to narrow by.
        const missing = chunk
          .filter((j) => needOf(sorted[j]!.id)!.anyHeader === 0 && !headers.has(sorted[j]!.uid))
          .map((j) => sorted[j]!.uid);
        if (missing.length > 0) for (const [uid, h] of await probe.headerFingerprints(missing)) headers.set(uid, h);
      }
      for (const [k, j] of chunk.entries()) {
        const x = sorted[j]!;
        if (!needOf(x.id)!.mayTakeHeader(headers.get(x.uid))) continue;
        batch.push(x.c);
        bytes += x.c.size;
        if (bytes >= ROUND_BYTES) {
          // The rest of the chunk waits for the next round.
          if (k + 1 < chunk.length) next = chunk[k + 1]!;
          break;
        }
      }
    }
    if (batch.length === 0) break;
    if (probe.prefetch) await probe.prefetch(batch);
    const touched = [new Set<string>(), new Set<string>()] as const;
    for (const c of batch) {
      const uid = c.uid;
      const d = await probe.digest(uid, c.size);
      digests.set(uid, d);
      if (d.sha256 === '') continue; // expunged meanwhile: nobody's copy
      const id = messageIdKey(c.messageId);
      const buckets = entry(known, id, () => byDigest<Run>());
      for (const [kind, value] of [
        [0, d.sha256],
        [1, d.fingerprint],
      ] as const) {
        entry(buckets[kind], value, () => new Run()).push(c, uid);
        touched[kind].add(value);
      }
    }
    // The rows this round can settle, in floor order: those wanting a digest it read.
    const rows: number[] = [];
    for (const kind of [0, 1] as const)
      for (const value of touched[kind]) {
        const list = wanting[kind].get(value);
        if (!list) continue;
        const left = list.filter((i) => !settled.has(i));
        wanting[kind].set(value, left);
        for (const i of left) rows.push(i);
      }
    rows.sort((a, b) => a - b);
    for (const [k, i] of rows.entries()) {
      if (k > 0 && rows[k - 1] === i) continue;
      if (settled.has(i)) continue;
      const found = lookup(i);
      if (!found) continue;
      const w = order[i]!;
      claimed.add(found.uid);
      settled.add(i);
      result.set(w.key, { key: w.key, ...found });
      undecided--;
      if (ids[i] !== null) needs.get(ids[i]!)!.drop(headerOf(w));
      anyRow.drop(headerOf(w));
    }
  }
}
