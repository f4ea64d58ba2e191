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
 * Bodies are streamed, never held whole, and only for the candidates that remain, read in rounds
 * of one batched FETCH: each round the next candidate every undecided row would look at.
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

/**
 * Finds the copies of `wanted` among `candidates` (minus `claimed`, which it extends with every
 * UID it hands out). Content matches first for all rows (in floor order, lowest UID first), then
 * the Message-ID fallback for the rows left, so a fallback never takes a candidate that is
 * another row's copy by content.
 */
export async function matchCopies(
  wanted: readonly Wanted[],
  candidates: readonly DestinationMessage[],
  claimed: Set<number>,
  probe: Probe,
): Promise<Match[]> {
  const sorted = [...candidates].sort((a, b) => a.uid - b.uid);
  const idOf = new Map(sorted.map((c) => [c.uid, messageIdKey(c.messageId)] as const));
  const order = [...wanted].sort((a, b) => a.floor - b.floor);
  const result = new Map<string, Match>();
  const headerCache = new Map<number, string>();

  /**
   * A copy keeps its Message-ID, so candidates with another one are out. One listed without
   * any stays in: the server may not have parsed it (the body decides).
   */
  const narrowed = (w: Wanted): DestinationMessage[] => {
    const id = messageIdKey(w.messageId);
    return sorted.filter(
      (c) =>
        !claimed.has(c.uid) &&
        c.uid >= w.floor &&
        (idOf.get(c.uid) === null || idOf.get(c.uid) === id) &&
        sizePlausible(c, w),
    );
  };
  const withSameId = (w: Wanted): DestinationMessage[] => {
    const id = messageIdKey(w.messageId);
    return id === null ? [] : narrowed(w).filter((c) => idOf.get(c.uid) === id);
  };

  const byHeader = async (w: Wanted, list: DestinationMessage[]): Promise<DestinationMessage[]> => {
    if (!w.headerFingerprint || !probe.headerFingerprints || list.length === 0) return list;
    const missing = list.map((c) => c.uid).filter((u) => !headerCache.has(u));
    if (missing.length > 0) for (const [uid, h] of await probe.headerFingerprints(missing)) headerCache.set(uid, h);
    // A UID the server did not answer for is kept: the body decides.
    return list.filter((c) => headerCache.get(c.uid) === undefined || headerCache.get(c.uid) === w.headerFingerprint);
  };

  const lists = new Map<Wanted, DestinationMessage[]>();
  for (const w of order) lists.set(w, await byHeader(w, narrowed(w)));
  const contentMatch = (w: Wanted, d: Digest): 'sha256' | 'fingerprint' | null =>
    w.sha256 !== null && d.sha256 === w.sha256
      ? 'sha256'
      : w.fingerprint !== null && d.fingerprint === w.fingerprint
        ? 'fingerprint'
        : null;
  await readAhead(order, lists, claimed, probe, contentMatch);

  for (const w of order) {
    let found: { uid: number; by: 'sha256' | 'fingerprint' } | null = null;
    for (const c of lists.get(w)!.filter((x) => !claimed.has(x.uid))) {
      const by = contentMatch(w, await probe.digest(c.uid, c.size));
      if (by) found = { uid: c.uid, by };
      if (found) break;
    }
    if (found) {
      claimed.add(found.uid);
      result.set(w.key, { key: w.key, ...found });
    }
  }

  for (const w of order) {
    if (result.has(w.key)) continue;
    const id = messageIdKey(w.messageId);
    const sameId = withSameId(w);
    if (w.fingerprint === null && (id === null ? narrowed(w).length > 0 : sameId.length > 0)) {
      result.set(w.key, {
        key: w.key,
        undecided:
          `it was journaled before popsync kept content fingerprints, and ` +
          `${id === null ? 'a message without a Message-ID' : `a message with its Message-ID ${id}`} arrived ` +
          `in the destination after it; popsync cannot tell whether that is its copy rewritten by the server`,
      });
      continue;
    }
    if (!w.messageIdFallback || sameId.length === 0) {
      result.set(w.key, { key: w.key, uid: null });
      continue;
    }
    if (sameId.length > 1) {
      result.set(w.key, {
        key: w.key,
        undecided:
          `${sameId.length} messages with its Message-ID ${id} (UIDs ` +
          `${sameId.map((c) => c.uid).join(', ')}) arrived in the destination after its APPEND, none with ` +
          `its content; popsync cannot tell which, if any, is its copy`,
      });
      continue;
    }
    claimed.add(sameId[0]!.uid);
    result.set(w.key, { key: w.key, uid: sameId[0]!.uid, by: 'message-id' });
  }
  return wanted.map((w) => result.get(w.key)!);
}

/**
 * Reads ahead, in rounds of one prefetch each, the bodies matchCopies' content loop will ask
 * for, so that loop then answers from what was read. One at a time was a round trip per body:
 * rows whose candidates share a Message-ID, or have none, all start at the same lowest UID,
 * so only that one was read ahead and every later row's own copy was a wait of its own (100
 * interrupted copies without a Message-ID: 100 waits).
 *
 * Each round walks the rows in the loop's order over what is known: a row takes its first
 * unclaimed candidate that matches by content, or, at the first one not read yet, asks for it
 * and is taken to claim it, so the rows after it ask for their next ones in the same round
 * (identical messages, or messages without a Message-ID, are thus read in one round when each
 * row's copy is where the loop will find it). A row that asks again (its body was another's)
 * asks for twice as many as the round before, so a row whose copy is not there reads its
 * candidates in a few rounds, not one round each. Every round reads at least one body not read
 * before, and only candidates of the rows, each once: never more than the loop reads when no
 * row has its copy. Which copy a row gets is decided by the loop alone; this only decides when
 * bodies are read.
 */
async function readAhead(
  order: readonly Wanted[],
  lists: ReadonlyMap<Wanted, DestinationMessage[]>,
  claimed: ReadonlySet<number>,
  probe: Probe,
  contentMatch: (w: Wanted, d: Digest) => string | null,
): Promise<void> {
  if (!probe.prefetch) return;
  const known = new Map<number, Digest>();
  /** Bodies a row may ask for in the next round. */
  const span = new Map<Wanted, number>();
  for (;;) {
    const taken = new Set(claimed);
    const asked = new Map<number, DestinationMessage>();
    for (const w of order) {
      const most = span.get(w) ?? 1;
      let asks = 0;
      for (const c of lists.get(w)!) {
        if (taken.has(c.uid)) continue;
        const d = known.get(c.uid);
        if (d === undefined) {
          asked.set(c.uid, c);
          taken.add(c.uid);
          if (++asks === most) break;
        } else if (contentMatch(w, d)) {
          taken.add(c.uid);
          break;
        }
      }
      if (asks > 0) span.set(w, most * 2);
    }
    if (asked.size === 0) return;
    const round = [...asked.values()];
    await probe.prefetch(round);
    for (const c of round) known.set(c.uid, await probe.digest(c.uid, c.size));
  }
}
