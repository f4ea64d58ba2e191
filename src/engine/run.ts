/**
 * The only place that joins the POP3 reader, the journal and the IMAP writer.
 *
 * A run is a loop of passes. Each pass connects what is not connected, lists the source,
 * settles rows an earlier attempt left 'appending' (reconcile.ts), plans from the journal and
 * copies. A dropped connection ends the pass; the next pass starts from the journal exactly as
 * a fresh process after a kill would, so recovery from a drop and from a crash is one code
 * path, and the crash test exercises both.
 *
 * Per batch the order is: RETR (pipelined) -> hash -> journal 'appending' with the folder's
 * UIDNEXT (committed) -> APPEND -> journal 'done' with the UID. Memory is bounded by one batch
 * (a byte cap, or one message larger than it), never by the mailbox.
 *
 * Before planning, listed messages are matched to journal rows beyond their UIDL
 * (identity.ts), and rows an aborted deletion left 'deleting' are settled by the listing. With
 * a deletion policy, the run ends with: identity check (TOP n 0 against the journaled header
 * hash) -> optional destination check -> rows 'deleting' (committed) -> DELE -> QUIT -> rows
 * 'deleted' only once QUIT said +OK, since POP3 removes nothing before its UPDATE state.
 *
 * skip_larger_than is applied to the plan on LIST sizes, before any RETR (plan.ts). With
 * `detail`, the run also keeps one MessageDetail per listed message for `--report`; without
 * it, nothing per message outlives its batch.
 */
import type { ImapSink, FolderStatus, AppendRequest } from '../imap/types.js';
import type { Journal } from '../journal/journal.js';
import type { BeginAppend, JournalIndexRow, JournalRow, Provenance } from '../journal/types.js';
import type { Logger } from '../log.js';
import type { Pop3Session } from '../pop3/types.js';
import { PopsyncError, isPopsyncError } from '../errors.js';
import { decodedHeader } from '../mapping/decode.js';
import { parseHeaders, messageIdOf, type HeaderField } from '../mapping/headers.js';
import { planDeletion, type DeletionCandidate, type DeletionPolicy } from './deletion.js';
import { headerHash, identify, needsHeaders } from './identity.js';
import { batchesOf, joinListing, planCopy, sizeRuleReason, splitBySizeRule, type ListedMessage } from './plan.js';
import { reconcileFolder, sha256Hex } from './reconcile.js';
import type { MessageDetail, MessageFailure, ProgressListener, RunResult } from './types.js';
import { windowWarnings } from './window.js';

export interface Routing {
  folder: string;
  flags: string[];
  internalDate: Date | null;
  /** Recorded in the journal with the copy; reports show it. */
  dateSource: string;
  seenSource: string | null;
  folderRule: string | null;
}

/** Decides where a message goes and how it looks there (mapping/). */
export type Router = (message: { body: Buffer; fields: HeaderField[]; uidl: string }) => Routing;

export interface RetryPolicy {
  /** Consecutive failed passes (no message settled in between) before giving up. */
  maxAttempts: number;
  baseDelayMs: number;
  maxDelayMs: number;
}

export interface EngineOptions {
  command: 'migrate' | 'sync';
  /** Journal key of the source mailbox: "user@host" (the port is transport, not identity). */
  account: string;
  /** How reports name the source, e.g. "user@host:port"; defaults to `account`. */
  sourceDisplay?: string;
  destination: string;
  journal: Journal;
  openSource: () => Promise<Pop3Session>;
  openSink: () => Promise<ImapSink>;
  route: Router;
  logger: Logger;
  progress?: ProgressListener;
  batchMessages?: number;
  batchBytes?: number;
  retry?: Partial<RetryPolicy>;
  signal?: AbortSignal;
  sleep?: (ms: number) => Promise<void>;
  /** Connect to IMAP only when there is something to do there (sync's cheap no-op run). */
  lazyDestination?: boolean;
  /**
   * false: a server that cannot be reached at all on the first attempt ends the run at once
   * (sync: cron tries again in a few minutes anyway). Drops after a connection existed are
   * always retried.
   */
  retryFirstConnect?: boolean;
  /** Remove copied messages from the source; absent: the source is never modified. */
  deletion?: DeletionPolicy | null;
  now?: () => Date;
  /** skip_larger_than: messages whose LIST size exceeds this are not fetched nor copied. */
  skipLargerThan?: number | null;
  /** Keep a MessageDetail per listed message in RunResult.messages (`--report`). */
  detail?: boolean;
}

const DEFAULT_RETRY: RetryPolicy = { maxAttempts: 5, baseDelayMs: 1000, maxDelayMs: 30_000 };

/** Errors a reconnect can cure. Everything else (auth, TLS, journal, UIDVALIDITY) stops the account. */
function retryable(e: unknown): e is PopsyncError {
  return isPopsyncError(e) && (e.kind === 'connection' || e.kind === 'temporary');
}

class Run {
  private source: Pop3Session | null = null;
  private sink: ImapSink | null = null;
  /** Per folder: its status, and the lowest UID a new copy can get (raised by each APPENDUID). */
  private folders = new Map<string, FolderStatus & { floor: number }>();
  private failures = new Map<string, MessageFailure>();
  private firstPass = true;
  /** Which side the last failed await belonged to, for the reconnect message. */
  private failedSide: 'pop3' | 'imap' = 'pop3';
  private settledThisPass = 0;
  private uidlSupported = true;
  private connectedOnce = false;
  /** This pass's listing, each message under its journal key. */
  private listing: ListedMessage[] = [];
  private vanished = 0;
  /** Per listed message, by UIDL ('#n' for unidentifiable ones); null unless `detail`. */
  private readonly details: Map<string, MessageDetail> | null;
  private readonly now: () => Date;
  readonly result: RunResult;

  constructor(private readonly o: EngineOptions) {
    this.result = {
      command: o.command,
      source: o.sourceDisplay ?? o.account,
      destination: o.destination,
      listed: 0,
      listedBytes: 0,
      copied: 0,
      copiedBytes: 0,
      alreadyCopied: 0,
      reconciled: 0,
      failed: [],
      reconnects: 0,
      startedAt: (o.now ?? (() => new Date()))().toISOString(),
      durationMs: 0,
      newMessages: 0,
      identity: 'uidl',
      recognised: 0,
      reusedUidls: [],
      deleted: 0,
      deletionWaiting: 0,
      deletionRefused: null,
      warnings: [],
    };
    this.now = o.now ?? (() => new Date());
    this.details = o.detail ? new Map() : null;
  }

  private record(key: string, d: MessageDetail, overwrite = true): void {
    if (this.details && (overwrite || !this.details.has(key))) this.details.set(key, d);
  }

  private emit: ProgressListener = (e) => this.o.progress?.(e);

  async execute(): Promise<RunResult> {
    const started = Date.now();
    const policy = { ...DEFAULT_RETRY, ...this.o.retry };
    const sleep = this.o.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
    let attempt = 0;
    const runId = this.o.journal.beginRun(this.o.account, this.o.command);
    const previousRuns = this.o.journal.recentRuns(this.o.account, 5).filter((r) => r.id !== runId && r.finishedAt !== null);
    let error: unknown = null;
    try {
      for (;;) {
        this.settledThisPass = 0;
        try {
          await this.pass();
          break;
        } catch (e) {
          if (!retryable(e) || this.o.signal?.aborted) throw e;
          if (!this.connectedOnce && this.o.retryFirstConnect === false) throw e;
          // Before dropping: an abandoned prefetch then fails on POP3 and would relabel it.
          const side = this.failedSide;
          await this.dropConnections();
          attempt = this.settledThisPass > 0 ? 1 : attempt + 1;
          if (attempt > policy.maxAttempts) throw e.with({ hint: `gave up after ${policy.maxAttempts} reconnect attempts; run again later to resume` });
          const delayMs = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (attempt - 1));
          this.result.reconnects++;
          this.o.logger.warn({ err: e.message, attempt, delayMs }, 'connection lost; reconnecting');
          this.emit({ type: 'reconnect', side, attempt, delayMs, reason: e.message });
          await sleep(delayMs);
        }
      }
      this.emit({ type: 'phase', phase: 'finishing' });
      await this.finish();
      for (const w of windowWarnings({ listed: this.result.listed, newCount: this.result.newMessages ?? 0, vanished: this.vanished, previous: previousRuns })) this.warn(w);
    } catch (e) {
      error = e;
      throw e;
    } finally {
      await this.dropConnections();
      this.result.failed = [...this.failures.values()];
      this.result.durationMs = Date.now() - started;
      if (this.details) this.result.messages = [...this.details.values()].sort((a, b) => a.n - b.n);
      this.recordRun(runId, error);
    }
    return this.result;
  }

  private recordRun(id: number, error: unknown): void {
    const r = this.result;
    try {
      this.o.journal.finishRun(id, {
        listed: r.listed,
        newCount: r.newMessages ?? null,
        copied: r.copied + r.reconciled,
        copiedBytes: r.copiedBytes,
        durationMs: r.durationMs,
        failed: r.failed.length,
        deleted: r.deleted ?? 0,
        result: error !== null ? 'error' : r.failed.length > 0 || r.deletionRefused ? 'partial' : 'ok',
        error: error === null ? (r.deletionRefused ?? null) : error instanceof Error ? error.message : String(error),
      });
    } catch (e) {
      // The run's own outcome matters more than its record.
      this.o.logger.warn({ err: String(e) }, 'could not record the run in the journal');
    }
  }

  private async pass(): Promise<void> {
    const { journal, account } = this.o;
    if (!this.source) {
      this.emit({ type: 'phase', phase: 'connect-source', detail: this.o.sourceDisplay ?? account });
      this.source = await this.on('pop3', this.o.openSource());
      this.connectedOnce = true;
    }
    const source = this.source;
    this.emit({ type: 'phase', phase: 'listing' });
    const listing = await this.on('pop3', this.list(source));
    if (!this.o.lazyDestination) await this.connectSink();
    // Reading every row costs ~15 µs each (a quarter second at 20,000): read again only when
    // identification, settling or reconciliation changed something.
    let rows: Map<string, JournalIndexRow> | null = await this.identify(source, listing);
    if (this.settleDeleting()) rows = null;

    if (journal.rowsInState(account, 'appending').length > 0) {
      this.emit({ type: 'phase', phase: 'reconciling' });
      await this.reconcile(await this.connectSink());
      rows = null;
    }

    const current = rows ?? journal.indexByUidl(account);
    const plan = planCopy(this.listing, current);
    const limit = this.o.skipLargerThan ?? null;
    const { copy, over } = splitBySizeRule(plan.copy, limit);
    if (this.firstPass) {
      this.firstPass = false;
      // Skipped messages are listed again every run: counting them as new would make every
      // sync "see new mail" and trip the windowed-source check.
      this.result.newMessages = copy.filter((m) => !m.retry).length;
      this.result.skippedByRule = over.length;
      if (over.length > 0) this.o.logger.info({ account, messages: over.length, limit }, 'not copied: over skip_larger_than');
      for (const m of over) this.record(m.uidl, this.bare(m, 'skipped-by-rule', sizeRuleReason(limit!), null));
      if (this.details) {
        for (const m of plan.skip) {
          // Only a report wants the whole row (folder, flags, dates) of a message copied earlier.
          const row = journal.get(account, m.uidl);
          // Reconciled above (found in the destination this run) counts as copied, not already-copied.
          this.record(m.uidl, { ...this.bare(m, 'already-copied', null, null), ...fromRow(row) }, false);
        }
      }
      this.result.listed = listing.length;
      this.result.listedBytes = listing.reduce((a, m) => a + m.size, 0);
      this.result.alreadyCopied = plan.skip.length;
      for (const m of plan.invalid) {
        const reason = m.reason === 'no-uidl' ? 'the server gave this message no UIDL' : `the server listed UIDL ${m.uidl} for more than one message`;
        this.failures.set(`#${m.n}`, { uidl: m.uidl, n: m.n, size: m.size, folder: null, reason, serverResponse: null });
        this.record(`#${m.n}`, this.bare(m, 'failed', reason, null));
      }
      this.emit({
        type: 'plan',
        toCopy: copy.length,
        toCopyBytes: copy.reduce((a, m) => a + m.size, 0),
        alreadyCopied: plan.skip.length,
      });
    }
    // A message refused earlier in this run is not retried by a reconnect pass of the same run.
    const todo = copy.filter((m) => !this.failures.has(m.uidl));
    if (todo.length === 0) return;
    const sink = await this.connectSink();
    this.emit({ type: 'phase', phase: 'copying' });
    // While one batch is appended, the next is already being fetched: POP3 and IMAP work at
    // once, and memory holds at most two batches. Fetching has no side effect on either server,
    // so a batch fetched but never stored (drop, interrupt) is simply fetched again later.
    const batches = batchesOf(todo, this.o.batchMessages ?? 50, this.o.batchBytes ?? 16 * 1024 * 1024);
    let next: Promise<Fetched> | null = batches[0] ? this.fetchBatch(source, batches[0]) : null;
    for (let i = 0; next !== null; i++) {
      const fetched: Promise<Fetched> = next;
      const following = batches[i + 1];
      next = following ? this.fetchBatch(source, following) : null;
      // Awaited in its turn; until then a rejection must not count as unhandled.
      next?.catch(() => undefined);
      if (this.o.signal?.aborted) throw new PopsyncError('interrupted', 'interrupted; the journal is consistent, run again to resume');
      await this.storeBatch(sink, await fetched);
    }
  }

  private async connectSink(): Promise<ImapSink> {
    if (!this.sink) {
      this.emit({ type: 'phase', phase: 'connect-destination', detail: this.o.destination });
      this.sink = await this.on('imap', this.o.openSink());
      this.folders.clear();
    }
    return this.sink;
  }

  /** LIST and UIDL together; a server without UIDL (-ERR) is not an error, it changes the identity. */
  private async list(source: Pop3Session): Promise<ListedMessage[]> {
    const [sizes, uidls] = await Promise.all([
      source.list(),
      source.uidl().catch((e: unknown) => {
        if (isPopsyncError(e) && e.kind === 'server') return null;
        throw e;
      }),
    ]);
    if (uidls !== null) return joinListing(sizes, uidls);
    if (this.uidlSupported) {
      this.uidlSupported = false;
      this.result.identity = 'header-hash';
      this.warn('the POP3 server does not support UIDL: messages are identified by a hash of their headers and their size (identical messages by their order), which costs a TOP per message on every run');
    }
    return sizes.map((m) => ({ n: m.n, size: m.size, uidl: '' }));
  }

  /**
   * Matches the listing to journal rows (identity.ts) and writes what that changes. Returns the
   * rows it read when it wrote nothing (still current), else null.
   */
  private async identify(source: Pop3Session, listing: ListedMessage[]): Promise<Map<string, JournalIndexRow> | null> {
    const { journal, account } = this.o;
    const rows = journal.indexByUidl(account);
    const need = needsHeaders(listing, rows, this.uidlSupported);
    const hashes = new Map<number, string>();
    if (need.length > 0) {
      const tops = await this.on('pop3', Promise.all(need.map((n) => this.topHash(source, n))));
      need.forEach((n, i) => {
        const h = tops[i];
        if (h !== null && h !== undefined) hashes.set(n, h);
      });
    }
    const id = identify(listing, rows, hashes, { uidlSupported: this.uidlSupported, now: this.now() });
    journal.rekey(account, id.rekeys);
    journal.setListSizes(account, id.listSizes);
    journal.markVanished(account, id.vanished);
    for (const uidl of id.reused) this.o.logger.warn({ account, uidl }, 'the server reused this UIDL for a different message; the old row was moved aside and the new message is copied');
    if (id.recognised > 0) this.o.logger.info({ account, recognised: id.recognised }, 'messages recognised under new UIDLs');
    this.result.recognised = (this.result.recognised ?? 0) + id.recognised;
    this.result.reusedUidls!.push(...id.reused);
    this.vanished += id.vanished.length;
    this.listing = id.listing;
    return id.rekeys.length + id.listSizes.length + id.vanished.length === 0 ? rows : null;
  }

  /** Header hash from TOP n 0; null when the server refuses TOP for this message. */
  private topHash(source: Pop3Session, n: number): Promise<string | null> {
    return source.top(n, 0).then(headerHash, (e: unknown) => {
      if (isPopsyncError(e) && e.kind === 'server') return null;
      throw e;
    });
  }

  /**
   * Rows an interrupted deletion left 'deleting': still listed means the server removed
   * nothing (no QUIT +OK), so they are 'done' again; gone means the QUIT did happen.
   */
  private settleDeleting(): boolean {
    const { journal, account } = this.o;
    const rows = journal.rowsInState(account, 'deleting');
    if (rows.length === 0) return false;
    const listed = new Set(this.listing.map((m) => m.uidl));
    const kept = rows.filter((r) => listed.has(r.uidl)).map((r) => r.uidl);
    const deleted = rows.filter((r) => !listed.has(r.uidl)).map((r) => r.uidl);
    journal.settleDeleting(account, { deleted, kept });
    this.result.deleted! += deleted.length;
    this.o.logger.info({ account, deleted: deleted.length, kept: kept.length }, 'settled an interrupted deletion');
    return true;
  }

  /** RETR of one batch, pipelined; a message the server refuses to send is failed and left out. */
  private fetchBatch(source: Pop3Session, batch: ListedMessage[]): Promise<Fetched> {
    return this.on('pop3', Promise.all(
      batch.map((m) =>
        source.retr(m.n).then(
          (body) => ({ m, body }),
          (e: unknown) => {
            // -ERR on one RETR fails that message only; a lost connection fails the pass.
            if (isPopsyncError(e) && e.kind === 'server') {
              this.fail(m, null, `the POP3 server refused to send it: ${e.message}`, e.context.serverResponse ?? null);
              return null;
            }
            throw e;
          },
        ),
      ),
    ));
  }

  /** Route, journal the intent, append, journal each outcome: one fetched batch. */
  private async storeBatch(sink: ImapSink, fetched: Fetched): Promise<void> {
    const { journal, account } = this.o;
    // Group by destination folder, keeping source order inside each group.
    const groups = new Map<string, Array<{ m: ListedMessage; begin: BeginAppend; req: AppendRequest; shown?: { subject: string | null; from: string | null } }>>();
    for (const f of fetched) {
      if (!f) continue;
      const fields = parseHeaders(f.body);
      const routing = this.o.route({ body: f.body, fields, uidl: f.m.uidl });
      const group = groups.get(routing.folder) ?? [];
      groups.set(routing.folder, group);
      group.push({
        m: f.m,
        ...(this.details ? { shown: { subject: decodedHeader(fields, 'subject'), from: decodedHeader(fields, 'from') } } : {}),
        begin: {
          uidl: f.m.uidl,
          size: f.body.length,
          sha256: sha256Hex(f.body),
          headerHash: headerHash(f.body),
          listSize: f.m.size,
          messageId: messageIdOf(fields),
          folder: routing.folder,
          destUidValidity: 0n, // set below, once the folder is open
          destUidNext: 0,
          provenance: {
            flags: routing.flags,
            internalDate: routing.internalDate?.toISOString() ?? null,
            dateSource: routing.dateSource,
            seenSource: routing.seenSource,
            folderRule: routing.folderRule,
          },
        },
        req: { body: f.body, flags: routing.flags, ...(routing.internalDate ? { internalDate: routing.internalDate } : {}) },
      });
    }

    for (const [folder, items] of groups) {
      const status = await this.openFolder(sink, folder);
      for (const it of items) {
        it.begin.destUidValidity = status.uidValidity;
        it.begin.destUidNext = status.floor;
      }
      journal.beginAppend(account, items.map((it) => it.begin));
      await this.on('imap', sink.appendBatch(
        folder,
        items.map((it) => it.req),
        (i, outcome) => {
          const it = items[i]!;
          if (outcome.ok) {
            journal.confirm(account, it.m.uidl, { destUidValidity: outcome.uidValidity ?? status.uidValidity, destUid: outcome.uid });
            if (outcome.uid !== null) status.floor = Math.max(status.floor, outcome.uid + 1);
            this.result.copied++;
            this.result.copiedBytes += it.begin.size;
            this.settledThisPass++;
            this.emit({ type: 'message', uidl: it.m.uidl, bytes: it.begin.size, outcome: 'copied' });
            this.record(it.m.uidl, this.routed(it, 'copied', null, null));
          } else {
            journal.fail(account, it.m.uidl, outcome.error.message);
            this.settledThisPass++;
            this.fail(it.m, folder, outcome.error.message, outcome.error.context.serverResponse ?? null);
            this.record(it.m.uidl, this.routed(it, 'failed', outcome.error.message, outcome.error.context.serverResponse ?? null));
          }
        },
      ));
    }
  }

  private on<T>(side: 'pop3' | 'imap', p: Promise<T>): Promise<T> {
    return p.catch((e: unknown) => {
      this.failedSide = side;
      throw e;
    });
  }

  private fail(m: ListedMessage, folder: string | null, reason: string, serverResponse: string | null): void {
    this.failures.set(m.uidl, { uidl: m.uidl, n: m.n, size: m.size, folder, reason, serverResponse });
    this.emit({ type: 'message', uidl: m.uidl, bytes: m.size, outcome: 'failed' });
    // Before routing (RETR refused); a routed failure overwrites this with where it was going.
    this.record(m.uidl, this.bare(m, 'failed', reason, serverResponse));
  }

  /** A detail row for a message that was never routed. */
  private bare(m: ListedMessage, outcome: MessageDetail['outcome'], reason: string | null, serverResponse: string | null): MessageDetail {
    return { n: m.n, uidl: m.uidl, size: m.size, outcome, folder: null, provenance: null, subject: null, from: null, messageId: null, reason, serverResponse };
  }

  private routed(
    it: { m: ListedMessage; begin: BeginAppend; shown?: { subject: string | null; from: string | null } },
    outcome: MessageDetail['outcome'],
    reason: string | null,
    serverResponse: string | null,
  ): MessageDetail {
    return {
      n: it.m.n, uidl: it.m.uidl, size: it.m.size, outcome, folder: it.begin.folder, provenance: it.begin.provenance ?? null,
      subject: it.shown?.subject ?? null, from: it.shown?.from ?? null, messageId: it.begin.messageId, reason, serverResponse,
    };
  }

  private async openFolder(sink: ImapSink, folder: string): Promise<FolderStatus & { floor: number }> {
    let st = this.folders.get(folder);
    if (!st) {
      const s = await this.on('imap', sink.ensureFolder(folder));
      // Throws 'uidvalidity' when the folder was recreated since the journal last saw it.
      this.o.journal.recordFolder(this.o.account, folder, s.uidValidity);
      st = { ...s, floor: s.uidNext };
      this.folders.set(folder, st);
    }
    return st;
  }

  private async reconcile(sink: ImapSink): Promise<void> {
    const { journal, account } = this.o;
    const pending = journal.rowsInState(account, 'appending');
    const byFolder = new Map<string, typeof pending>();
    for (const r of pending) {
      if (r.folder === null) continue;
      const list = byFolder.get(r.folder) ?? [];
      byFolder.set(r.folder, list);
      list.push(r);
    }
    for (const [folder, rows] of byFolder) {
      const status = await this.openFolder(sink, folder);
      const stale = rows.find((r) => r.destUidValidity !== null && r.destUidValidity !== status.uidValidity);
      if (stale) {
        throw new PopsyncError('uidvalidity', `destination folder "${folder}" was recreated (UIDVALIDITY ${stale.destUidValidity} is now ${status.uidValidity}); popsync cannot tell which copies survived`, {
          account,
          folder,
          uidl: stale.uidl,
          hint: 'check the destination folder by hand; to copy everything again into it, start with a new journal',
        });
      }
      const claimed = journal.doneUidsIn(account, folder, status.uidValidity);
      const decisions = await this.on('imap', reconcileFolder(rows, claimed, {
        listSince: (since) => sink.listSince(folder, since),
        fetchBody: (uid) => sink.fetchBody(folder, uid),
      }));
      for (const d of decisions) {
        if (d.uid === null) {
          this.o.logger.info({ uidl: d.uidl, folder }, 'interrupted copy not found in destination; copying again');
          continue;
        }
        journal.confirm(account, d.uidl, { destUidValidity: status.uidValidity, destUid: d.uid });
        status.floor = Math.max(status.floor, d.uid + 1);
        this.result.reconciled++;
        if (this.details) {
          const m = this.listing.find((x) => x.uidl === d.uidl);
          const row = rows.find((x) => x.uidl === d.uidl);
          if (m) this.record(d.uidl, { ...this.bare(m, 'copied', null, null), ...fromRow(row) });
        }
        this.settledThisPass++;
        this.o.logger.info({ uidl: d.uidl, folder, uid: d.uid, matchedBy: d.matchedBy }, 'interrupted copy found in destination');
      }
    }
  }

  private async finish(): Promise<void> {
    if (this.o.deletion && this.source) {
      await this.deleteFromSource(this.source, this.o.deletion);
      return;
    }
    // Nothing was deleted, so QUIT only ends the session politely.
    const source = this.source;
    this.source = null;
    if (source) await source.quit().catch((e: unknown) => this.o.logger.debug({ err: String(e) }, 'QUIT failed'));
  }

  private async deleteFromSource(source: Pop3Session, policy: DeletionPolicy): Promise<void> {
    const { journal, account } = this.o;
    const plan = planDeletion(this.listing, journal.rowsByUidl(account), policy, this.now());
    this.result.deletionWaiting = plan.waiting;
    this.result.deletionRefused = plan.refused;
    let due = plan.delete;
    if (due.length > 0) {
      due = await this.sameMessages(source, due);
      if (policy.verify) due = await this.copiesPresent(due);
    }
    if (due.length > 0) {
      journal.markDeleting(account, due.map((c) => c.uidl));
      const ok = await this.on('pop3', Promise.all(due.map((c) => source.dele(c.n).then(
        () => true,
        (e: unknown) => {
          if (!isPopsyncError(e) || e.kind !== 'server') throw e;
          this.warn(`UIDL ${c.uidl}: the POP3 server refused to delete it: ${e.message}`);
          return false;
        },
      ))));
      this.source = null;
      // Rejects on anything but +OK; the rows stay 'deleting' and the next run settles them.
      await this.on('pop3', source.quit());
      journal.settleDeleting(account, { deleted: due.filter((_, i) => ok[i]).map((c) => c.uidl), kept: due.filter((_, i) => !ok[i]).map((c) => c.uidl) });
      this.result.deleted! += ok.filter(Boolean).length;
      return;
    }
    this.source = null;
    await source.quit().catch((e: unknown) => this.o.logger.debug({ err: String(e) }, 'QUIT failed'));
  }

  /** Just before DELE: the message under this number still has the headers that were copied. */
  private async sameMessages(source: Pop3Session, due: DeletionCandidate[]): Promise<DeletionCandidate[]> {
    const hashes = await this.on('pop3', Promise.all(due.map((c) => (c.row.headerHash === null ? Promise.resolve(null) : this.topHash(source, c.n)))));
    return due.filter((c, i) => {
      if (c.row.headerHash === null || hashes[i] === c.row.headerHash) return true;
      this.warn(`UIDL ${c.uidl}: not deleted from the source: its headers differ from the copy's (the server may have reused the UIDL)`);
      return false;
    });
  }

  /** --verify-before-delete: the copy is still in the destination, same UID and size. */
  private async copiesPresent(due: DeletionCandidate[]): Promise<DeletionCandidate[]> {
    const sink = await this.connectSink();
    const present = new Map<string, Map<number, number>>();
    for (const folder of new Set(due.map((c) => c.row.folder).filter((f): f is string => f !== null))) {
      const status = await this.openFolder(sink, folder);
      const rows = due.filter((c) => c.row.folder === folder && c.row.destUidValidity === status.uidValidity && c.row.destUid !== null);
      if (rows.length === 0) continue;
      const since = Math.min(...rows.map((c) => c.row.destUid!));
      const list = await this.on('imap', sink.listSince(folder, since));
      present.set(folder, new Map(list.map((m) => [m.uid, m.size])));
    }
    return due.filter((c) => {
      const size = c.row.folder === null || c.row.destUid === null ? undefined : present.get(c.row.folder)?.get(c.row.destUid);
      if (size === c.row.size) return true;
      this.warn(
        c.row.destUid === null
          ? `UIDL ${c.uidl}: not deleted from the source: the destination gave its copy no UID, so it cannot be verified`
          : `UIDL ${c.uidl}: not deleted from the source: its copy (UID ${c.row.destUid} in ${c.row.folder ?? '?'}) is ${size === undefined ? 'missing from' : 'a different size in'} the destination`,
      );
      return false;
    });
  }

  private warn(text: string): void {
    this.result.warnings!.push(text);
    this.o.logger.warn({ account: this.o.account }, text);
  }

  private async dropConnections(): Promise<void> {
    if (this.source) {
      this.source.destroy();
      this.source = null;
    }
    if (this.sink) {
      const s = this.sink;
      this.sink = null;
      await s.close().catch(() => undefined);
    }
  }
}

/** What the journal says about an earlier copy, for its detail row. */
function fromRow(row: JournalRow | undefined): Pick<MessageDetail, 'folder' | 'provenance' | 'messageId'> {
  if (!row) return { folder: null, provenance: null, messageId: null };
  const provenance: Provenance | null = row.provenance;
  return { folder: row.folder, provenance, messageId: row.messageId };
}

/** One batch as RETR returned it; null where the server refused to send the message. */
type Fetched = Array<{ m: ListedMessage; body: Buffer } | null>;

export function runEngine(options: EngineOptions): Promise<RunResult> {
  return new Run(options).execute();
}
