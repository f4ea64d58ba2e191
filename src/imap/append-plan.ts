/**
 * The decisions of our own APPEND connection (pipeline.ts), with no sockets, so they can be
 * tested alone: which literal form a message may travel in, how a batch is cut into commands,
 * and which UID an APPENDUID gives each message of a command.
 *
 * MULTIAPPEND (RFC 3502) stores every message of one command in one server transaction: on
 * Dovecot, single APPENDs of small mail cost about ten times the server CPU of MULTIAPPEND x100,
 * and the server's CPU is what bounds a copy of small mail. A MULTIAPPEND is atomic (all of its
 * messages are stored or none), which is what lets a refused command be retried message by
 * message, and what reconciliation by content relies on after a drop (each message is then
 * either present or absent, like a single APPEND's).
 */

/**
 * How literals may be sent: 'plus' (LITERAL+, RFC 7888) never waits for the server's '+';
 * 'minus' (LITERAL-, e.g. Gmail) may skip the wait up to LITERAL_MINUS_MAX octets only; 'sync'
 * waits for '+' before every literal.
 */
export type LiteralMode = 'plus' | 'minus' | 'sync';

/** RFC 7888 section 5: the largest non-synchronizing literal a LITERAL- server accepts. */
export const LITERAL_MINUS_MAX = 4096;

export function literalModeOf(capabilities: ReadonlySet<string>): LiteralMode {
  if (capabilities.has('LITERAL+')) return 'plus';
  if (capabilities.has('LITERAL-')) return 'minus';
  return 'sync';
}

/** Whether a literal of `size` octets may go without waiting for '+'. */
export function nonSynchronizing(mode: LiteralMode, size: number): boolean {
  return mode === 'plus' || (mode === 'minus' && size <= LITERAL_MINUS_MAX);
}

export interface UnitLimits {
  /** Messages per MULTIAPPEND; 1 sends single APPENDs (a server without MULTIAPPEND). */
  maxMessages: number;
  /** Literal octets per MULTIAPPEND: what a refused command re-sends is bounded by this. */
  maxBytes: number;
}

/**
 * Defaults: x100 was the fastest batch measured on Dovecot (issue 11: MULTIAPPEND x100 is 6.6x
 * plain APPEND on small mail); 4 MiB keeps a retried command cheap and several in flight
 * within the connection's in-flight bound.
 */
export const MULTIAPPEND_LIMITS: UnitLimits = { maxMessages: 100, maxBytes: 4 * 1024 * 1024 };

/** One message as the planner sees it; null for an item not sent (skipped with an outcome). */
export interface PlannedItem {
  size: number;
  /** Kept in a spool file because it is large: it always travels in a command of its own. */
  inFile: boolean;
}

/**
 * The batch cut into commands, in order: runs of consecutive messages, each at most
 * `maxMessages` and `maxBytes` (a message larger than maxBytes goes alone). Returns the item
 * indices of each command; skipped (null) items belong to none.
 */
export function planUnits(items: ReadonlyArray<PlannedItem | null>, limits: UnitLimits): number[][] {
  const units: number[][] = [];
  let cur: number[] = [];
  let curBytes = 0;
  const flush = (): void => {
    if (cur.length > 0) units.push(cur);
    cur = [];
    curBytes = 0;
  };
  // Indexed: entries() is a pair and an iterator result per message until this is optimised.
  for (let i = 0; i < items.length; i++) {
    const it = items[i]!;
    if (it === null) continue;
    if (it.inFile || limits.maxMessages <= 1) {
      flush();
      units.push([i]);
      continue;
    }
    if (cur.length >= limits.maxMessages || (cur.length > 0 && curBytes + it.size > limits.maxBytes)) flush();
    cur.push(i);
    curBytes += it.size;
  }
  flush();
  return units;
}

/**
 * The UIDs an `APPENDUID <uidvalidity> <uid-set>` response code gives the `count` messages of
 * one command, in the order they were sent (RFC 4315 section 3: the set lists them in that
 * order). Null when the code is absent, malformed or names another number of messages: those
 * copies are then stored without a known UID, which the engine learns by content, rather than
 * recorded under a UID that may be another message's.
 */
export function appendUids(code: string | undefined, count: number): { uidValidity: bigint; uids: number[] } | null {
  const m = /^APPENDUID ([1-9]\d*) ([\d:,]+)$/i.exec(code?.trim() ?? '');
  if (!m) return null;
  const uids: number[] = [];
  for (const part of m[2]!.split(',')) {
    const r = /^([1-9]\d*)(?::([1-9]\d*))?$/.exec(part);
    if (!r) return null;
    // "9:5" is the same set as "5:9" (RFC 3501 9, seq-range).
    const a = Number(r[1]);
    const b = r[2] === undefined ? a : Number(r[2]);
    const [lo, hi] = a <= b ? [a, b] : [b, a];
    // A range cannot hold more UIDs than the command had messages; stop before expanding more.
    if (hi - lo + 1 > count - uids.length) return null;
    for (let u = lo; u <= hi; u++) uids.push(u);
  }
  if (uids.length !== count || new Set(uids).size !== count) return null;
  for (let i = 1; i < uids.length; i++) if (uids[i]! <= uids[i - 1]!) return null;
  return { uidValidity: BigInt(m[1]!), uids };
}
