/**
 * The dry-run plan as data: what `popsync plan` computes (engine + mapping, no bodies fetched,
 * nothing written) and every renderer (table, json, csv, markdown, html) prints. Plain and
 * serialisable; renderers derive their charts from `messages`.
 *
 * The same shape reports what a real `migrate`/`sync` did (`--report FILE`), so a plan and the
 * run after it can be compared row by row with one tool: such a report carries `run`, and its
 * messages the statuses of things done (copied, failed, skipped-by-rule) besides
 * already-copied. Everything added for that is optional, so plans written before still read.
 */

/** Every way a PlanReport can be printed (report/plan-render.ts); here so option parsing needs no renderer. */
export const PLAN_FORMATS = ['table', 'json', 'csv', 'markdown', 'html'] as const;
export type PlanFormat = (typeof PLAN_FORMATS)[number];

export type PlanStatus =
  /** Would be copied by the next run. */
  | 'new'
  /** An earlier attempt failed or was interrupted; would be tried again. */
  | 'retry'
  /** The journal records it as copied. */
  | 'already-copied'
  /** Would not be copied: too big for the server, over a size rule, no usable UIDL... */
  | 'would-fail'
  /** Run report: copied by this run (or an interrupted earlier copy this run found and confirmed). */
  | 'copied'
  /** Run report: this run tried and the source or destination refused, or it could not be tracked. */
  | 'failed'
  /** Run report: not copied because a rule said so (skip_larger_than); not an error. */
  | 'skipped-by-rule';

export interface PlanMessage {
  /** POP3 message number in the session that planned. */
  n: number;
  uidl: string;
  size: number;
  /** Decoded (RFC 2047) for display; null when absent. */
  subject: string | null;
  from: string | null;
  messageId: string | null;
  folder: string;
  /** Name of the folder rule that matched, or null for the default. */
  folderRule: string | null;
  flags: string[];
  /** Which seen-policy step decided \Seen (e.g. 'status-header', 'older-than:30d', 'all'), or null. */
  seenSource: string | null;
  /** ISO INTERNALDATE the copy would get, or null (server's time). */
  internalDate: string | null;
  /** 'received' | 'date' | 'none' | 'copy-time' | 'clamped-future' | 'clamped-old' ... */
  dateSource: string;
  status: PlanStatus;
  /** Why it would fail, or why it is retried; null otherwise. */
  reason: string | null;
  /** Run report: the server's words, verbatim, when a server refused; absent in plans. */
  serverResponse?: string | null;
}

export interface PlanFolder {
  folder: string;
  /** Already exists on the destination (false: would be created). */
  exists: boolean;
  messages: number;
  bytes: number;
  new: number;
  newBytes: number;
  /** Of `new`, how many were tried before (0 in plans written before this field existed). */
  retry: number;
  alreadyCopied: number;
  wouldFail: number;
  /** Run report only. */
  copied?: number;
  failed?: number;
  skippedByRule?: number;
}

/** What makes a PlanReport the report of a real run. */
interface RunInfo {
  command: 'migrate' | 'sync';
  startedAt: string;
  durationMs: number;
  /** Bytes copied by this run (what the rate is measured on). */
  copiedBytes: number;
}

export interface PlanReport {
  version: 1;
  /** The account's name, in a batch's per-account reports (`--report-dir`). */
  name?: string;
  generatedAt: string;
  source: string;
  destination: string;
  totals: {
    messages: number;
    bytes: number;
    new: number;
    newBytes: number;
    retry: number;
    alreadyCopied: number;
    wouldFail: number;
    /** Run report only. */
    copied?: number;
    copiedBytes?: number;
    failed?: number;
    skippedByRule?: number;
  };
  folders: PlanFolder[];
  /** How many messages each seen-policy step decided; key 'none' when no policy applied. */
  seenSources: Record<string, number>;
  /** How many messages got their arrival date from each source. */
  dateSources: Record<string, number>;
  /** Time estimate for the new bytes; null when no rate is known. */
  estimate: { bytesPerSecond: number; seconds: number; basis: string } | null;
  /**
   * Under a daily upload budget (--daily-budget, a provider's): what it allows, what the last
   * 24 hours used of it, and how many days the new bytes need. Absent without a budget.
   */
  budget?: { bytesPerDay: number; usedToday: number; days: number; basis: string };
  messages: PlanMessage[];
  /** Present in the report of a real run (`migrate`/`sync --report`), absent in a plan. */
  run?: RunInfo;
}
