/**
 * The run's account of itself: the RunResult the CLI prints, the failures by message, the
 * warnings, and (only for `--report`) one MessageDetail per listed message. Every other part of
 * the engine reports here instead of touching the result object, so a status is counted once.
 */
import type { JournalRow, Provenance } from '../journal/types.js';
import type { Logger } from '../log.js';
import type { EngineOptions } from './options.js';
import { invalidReasonText, type ListedMessage, type Plan, sizeRuleReason } from './plan.js';
import type { CopyProblem, MessageDetail, MessageFailure, ProgressListener, RunResult } from './types.js';

/** A message on its way to a folder, as the copier holds it; enough to describe it in a report. */
export interface RoutedItem {
  m: ListedMessage;
  begin: { folder: string; messageId: string | null; provenance?: Provenance | null };
  shown?: { subject: string | null; from: string | null };
}

export class RunRecorder {
  readonly result: RunResult;
  private readonly failures = new Map<string, MessageFailure>();
  /** Per listed message, by UIDL ('#n' for unidentifiable ones); null unless `detail`. */
  private readonly details: Map<string, MessageDetail> | null;
  private readonly logger: Logger;
  private readonly account: string;

  constructor(
    o: EngineOptions,
    startedAt: Date,
    private readonly emit: ProgressListener,
  ) {
    this.logger = o.logger;
    this.account = o.account;
    this.details = o.detail ? new Map() : null;
    this.result = emptyRunResult(o.command, o.sourceDisplay ?? o.account, o.destination, startedAt.toISOString());
  }

  /** Whether per-message detail is kept (`--report`): callers skip work only a report needs. */
  get detailed(): boolean {
    return this.details !== null;
  }

  hasFailed(key: string): boolean {
    return this.failures.has(key);
  }

  record(key: string, d: MessageDetail, overwrite = true): void {
    if (this.details && (overwrite || !this.details.has(key))) this.details.set(key, d);
  }

  /**
   * What the first pass's plan says about the listing, counted once per run: later passes (after
   * a reconnect) plan again from the journal, but the listing and what it held are this run's.
   * `tooBig` are over the destination's upload limit (its reason says which); they fail now, by
   * name, without being downloaded.
   */
  recordPlan(p: {
    listing: readonly ListedMessage[];
    plan: Plan;
    copy: readonly Plan['copy'][number][];
    over: readonly ListedMessage[];
    limit: number | null;
    tooBig: { messages: readonly ListedMessage[]; reason: string } | null;
  }): void {
    const { result } = this;
    // Skipped messages are listed again every run: counting them as new would make every
    // sync "see new mail" and trip the windowed-source check.
    result.newMessages = p.copy.filter((m) => !m.retry).length;
    result.skippedByRule = p.over.length;
    if (p.limit !== null) {
      for (const m of p.over) this.record(m.uidl, this.bare(m, 'skipped-by-rule', sizeRuleReason(p.limit), null));
    }
    if (p.tooBig !== null) for (const m of p.tooBig.messages) this.fail(m, null, p.tooBig.reason, null);
    result.listed = p.listing.length;
    result.listedBytes = p.listing.reduce((a, m) => a + m.size, 0);
    result.alreadyCopied = p.plan.skip.length;
    for (const m of p.plan.invalid) this.failUnidentified(m, invalidReasonText(m));
  }

  /** A message that could not be copied. */
  fail(m: ListedMessage, folder: string | null, reason: string, serverResponse: string | null): void {
    this.failures.set(m.uidl, { uidl: m.uidl, n: m.n, size: m.size, folder, reason, serverResponse });
    this.emit({ type: 'message', uidl: m.uidl, bytes: m.size, outcome: 'failed' });
    // Before routing (RETR refused); a routed failure overwrites this with where it was going.
    if (this.details) this.record(m.uidl, this.bare(m, 'failed', reason, serverResponse));
  }

  /** A listed message with no usable identity: keyed by its number, never copied. */
  failUnidentified(m: ListedMessage, reason: string): void {
    this.failures.set(`#${m.n}`, { uidl: m.uidl, n: m.n, size: m.size, folder: null, reason, serverResponse: null });
    this.record(`#${m.n}`, this.bare(m, 'failed', reason, null));
  }

  /** A detail row for a message that was never routed. */
  bare(
    m: ListedMessage,
    outcome: MessageDetail['outcome'],
    reason: string | null,
    serverResponse: string | null,
  ): MessageDetail {
    return {
      n: m.n,
      uidl: m.uidl,
      size: m.size,
      outcome,
      folder: null,
      provenance: null,
      subject: null,
      from: null,
      messageId: null,
      reason,
      serverResponse,
    };
  }

  /**
   * The detail row of a routed message, under its UIDL. Built only for a report: a row per
   * copied message was garbage the copy path made for nothing on every run without one.
   */
  recordRouted(
    it: RoutedItem,
    outcome: MessageDetail['outcome'],
    reason: string | null,
    serverResponse: string | null,
  ): void {
    if (!this.details) return;
    this.details.set(it.m.uidl, {
      n: it.m.n,
      uidl: it.m.uidl,
      size: it.m.size,
      outcome,
      folder: it.begin.folder,
      provenance: it.begin.provenance ?? null,
      subject: it.shown?.subject ?? null,
      from: it.shown?.from ?? null,
      messageId: it.begin.messageId,
      reason,
      serverResponse,
    });
  }

  /** A copy found missing or changed: reported with the result, and the run exits 1. */
  copyProblem(p: CopyProblem): void {
    this.result.copyProblems.push(p);
    this.logger.warn({ account: this.account, uidl: p.uidl }, `copy ${p.problem}: ${p.detail}`);
  }

  warn(text: string): void {
    this.result.warnings.push(text);
    this.logger.warn({ account: this.account }, text);
  }

  /** Copies the bookkeeping into the result once the run is over. */
  finish(durationMs: number): RunResult {
    this.result.failed = [...this.failures.values()];
    this.result.durationMs = durationMs;
    if (this.details) this.result.messages = [...this.details.values()].sort((a, b) => a.n - b.n);
    return this.result;
  }
}

/**
 * A run's result before anything happened: every count zero, every list empty, so each part of
 * the engine adds to a field that is always there and no reader has to guess a default.
 */
export function emptyRunResult(
  command: RunResult['command'],
  source: string,
  destination: string,
  startedAt: string,
): RunResult {
  return {
    command,
    source,
    destination,
    listed: 0,
    listedBytes: 0,
    copied: 0,
    copiedBytes: 0,
    alreadyCopied: 0,
    reconciled: 0,
    adopted: 0,
    failed: [],
    reconnects: 0,
    startedAt,
    durationMs: 0,
    newMessages: 0,
    identity: 'uidl',
    recognised: 0,
    reusedUidls: [],
    deleted: 0,
    deletionWaiting: 0,
    deletionRefused: null,
    copyProblems: [],
    warnings: [],
    skippedByRule: 0,
    oneImapConnection: null,
  };
}

/** What the journal says about an earlier copy, for its detail row. */
export function fromRow(row: JournalRow | undefined): Pick<MessageDetail, 'folder' | 'provenance' | 'messageId'> {
  if (!row) return { folder: null, provenance: null, messageId: null };
  return { folder: row.folder, provenance: row.provenance, messageId: row.messageId };
}
