/**
 * How much a POP3 server may send in reply to each command, and how slowly.
 *
 * A server we do not control must not make popsync buffer without bound or wait forever: an
 * endless CAPA once grew the process past 3 GB in a minute, and a trickle of one byte every
 * 3 s kept a run alive for good although `--timeout` (an idle limit) was 5 s. So every response
 * gets two budgets, both derived from what it can legitimately hold:
 *
 * - a byte ceiling: the decoded bytes of the reply (status lines, continuation lines and body)
 *   may not exceed it. Small fixed ceilings for status-only replies and CAPA; a bound per
 *   listed message for LIST and UIDL, whose count STAT gave first; for RETR and TOP, twice the
 *   LIST size plus a fixed slack (a server that counts LF line ends in LIST but sends CRLF can
 *   at most double a message, and servers add a few headers such as X-UIDL or Status on the fly).
 *   The engine's streaming receiver applies the same `messageCeiling` to what it reads;
 * - a pace: the reply may take `--timeout` plus one millisecond per byte at MIN_BYTES_PER_SECOND
 *   (i.e. each received byte buys a little time, a trickle buys almost none). `--timeout` stays
 *   the idle limit on its own timer.
 *
 * Pure (no sockets, no clocks of its own): connection.ts enforces these, and a streaming RETR
 * reuses the same ceilings.
 */

/** Status-only replies, CAPA, and a whole SASL exchange (its continuation lines included). */
export const SMALL_REPLY_MAX = 64 * 1024;

/**
 * One LIST or UIDL line: a message number, a space, a size or a UIDL (RFC 1939: at most 70
 * characters; we allow more for servers that exceed it), CRLF. Generous on purpose: it only
 * has to stop an endless listing, not judge a long one.
 */
const LISTING_LINE_MAX = 256;

/** More listed messages than this is not a mailbox but a broken or hostile server. */
export const MAX_LISTED_MESSAGES = 5_000_000;

/** What a RETR or TOP may carry beyond twice its LIST size: its status line, headers a POP server adds. */
export const RETR_SLACK = 128 * 1024;

/** The slowest average rate a reply may arrive at, once `--timeout` of grace is spent. */
export const MIN_BYTES_PER_SECOND = 1024;

/**
 * The cause attached to the error of a reply that broke its byte ceiling. Such a reply is the
 * fault of its command (for RETR: of that one message), not of the link, so a reader of message
 * bodies can set that message aside at once instead of fetching it again (isOverCeiling).
 */
export class ReplyOverCeiling extends Error {
  constructor(readonly ceiling: number) {
    super(`reply larger than its ceiling of ${ceiling} bytes`);
    this.name = 'ReplyOverCeiling';
  }
}

/** Whether `e` (a rejection from a POP3 command) is that command's reply breaking its ceiling. */
export function isOverCeiling(e: unknown): boolean {
  return e instanceof Error && e.cause instanceof ReplyOverCeiling;
}

/** LIST and UIDL (multi-line): their fixed status line plus one line per message STAT counted. */
export function listingCeiling(count: number): number {
  return SMALL_REPLY_MAX + count * LISTING_LINE_MAX;
}

/** RETR n, and TOP n k (which can never exceed the whole message), from the LIST size of n. */
export function messageCeiling(listSize: number): number {
  return 2 * listSize + RETR_SLACK;
}

/** For error messages: "64 KiB", "1.5 MiB", "812 bytes". */
export function formatBytes(n: number): string {
  if (n >= 1024 * 1024) return `${Number((n / (1024 * 1024)).toFixed(1))} MiB`;
  if (n >= 1024) return `${Number((n / 1024).toFixed(1))} KiB`;
  return `${n} bytes`;
}

/**
 * The budgets of one reply, from the moment its command's reply is the next one due. Times are
 * milliseconds from any monotonic clock the caller chooses.
 */
export class ReplyBudget {
  private bytes = 0;
  private pausedAt: number | null = null;
  private start: number;

  constructor(
    readonly ceiling: number,
    private readonly graceMs: number,
    now: number,
  ) {
    this.start = now;
  }

  get received(): number {
    return this.bytes;
  }

  /** Counts decoded bytes; false once the reply is larger than it can legitimately be. */
  add(n: number): boolean {
    this.bytes += n;
    return this.bytes <= this.ceiling;
  }

  /**
   * While the reader applies backpressure the server cannot send, so the clock stops: a slow
   * consumer is never blamed on the server.
   */
  pause(now: number): void {
    if (this.pausedAt === null) this.pausedAt = now;
  }

  resume(now: number): void {
    if (this.pausedAt === null) return;
    this.start += now - this.pausedAt;
    this.pausedAt = null;
  }

  /** Time spent waiting for this reply, pauses excluded. */
  elapsed(now: number): number {
    return (this.pausedAt ?? now) - this.start;
  }

  /** Milliseconds left before the reply is too slow (<= 0: it is); Infinity while paused. */
  msLeft(now: number): number {
    if (this.pausedAt !== null) return Infinity;
    return this.graceMs + (this.bytes * 1000) / MIN_BYTES_PER_SECOND - this.elapsed(now);
  }
}
