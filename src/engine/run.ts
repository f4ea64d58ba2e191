/**
 * The supervisor of one account's run, and the only place that joins the POP3 reader, the
 * journal and the IMAP writer. Each job it coordinates lives in its own module: inventory.ts
 * (listing and identification), reconciler.ts (settling interrupted copies), copier.ts (the
 * batches: receive the next while one is journaled and appended), deleter.ts (removing
 * confirmed copies from the source), and recorder.ts (the result, including what the first
 * plan found).
 *
 * A run is a loop of passes. Each pass connects what is not connected, lists the source,
 * settles rows an earlier attempt left 'appending', plans from the journal and copies. A
 * dropped connection ends the pass; the next pass starts from the journal exactly as a fresh
 * process after a kill would, so recovery from a drop and from a crash is one code path, and
 * the crash test exercises both.
 *
 * skip_larger_than is applied to the plan on LIST sizes, before any RETR (plan.ts). With
 * `detail`, the run also keeps one MessageDetail per listed message for `--report`; without
 * it, nothing per message outlives its batch.
 */
import type { ImapSink } from '../imap/types.js';
import type { JournalIndexRow } from '../journal/types.js';
import type { Pop3Session } from '../pop3/types.js';
import { isConnectMistake } from '../connect-hints.js';
import {
  DEFAULT_BATCH_BYTES,
  DEFAULT_BATCH_MESSAGES,
  DEFAULT_SET_ASIDE_AFTER,
  DEFAULT_SPILL_BYTES,
} from '../defaults.js';
import { PopsyncError, isPopsyncError } from '../errors.js';
import type { OpenFolder, RunContext, Side } from './context.js';
import { copyAll } from './copier.js';
import { finishSource } from './deleter.js';
import { HEAD_START_MAX_MESSAGE, HeadStart, headStartOf } from './head-start.js';
import { Inventory } from './inventory.js';
import { DEFAULT_RETRY, type EngineOptions, type RetryPolicy } from './options.js';
import {
  appendLimitOf,
  exactSize,
  planCopy,
  roughSize,
  splitBySizeRule,
  type ListedMessage,
  type Plan,
} from './plan.js';
import { DailyBudget, recentUploads } from './budget.js';
import { RateLimiter } from './rate.js';
import { ThrottleBudget } from './throttle.js';
import { reconcilePending } from './reconciler.js';
import { batchCount } from './receiver.js';
import { fromRow, RunRecorder } from './recorder.js';
import { Spool } from './spool.js';
import type { ProgressListener, RunResult } from './types.js';
import { windowWarnings } from './window.js';

export type { EngineOptions } from './options.js';

/**
 * Errors a reconnect can cure. Everything else (auth, TLS, journal, UIDVALIDITY) stops the
 * account, and so does a POP3 [LOGIN-DELAY]: the client already waited as long as it may
 * (pop3/client.ts), and each early login only restarts the server's clock.
 */
function retryable(e: unknown): e is PopsyncError {
  if (!isPopsyncError(e)) return false;
  if (e.kind === 'temporary') return e.context.responseCode !== 'LOGIN-DELAY';
  return e.kind === 'connection';
}

class Run implements RunContext {
  private source: Pop3Session | null = null;
  private sink: ImapSink | null = null;
  readonly folders = new Map<string, OpenFolder>();
  readonly rec: RunRecorder;
  listing: ListedMessage[] = [];
  settledThisPass = 0;
  readonly receiveFailures = new Map<string, number>();
  private readonly spool: Spool;
  private readonly retryPolicy: RetryPolicy;
  private firstPass = true;
  /** Which side the last failed await belonged to, for the reconnect message. */
  private failedSide: Side = 'pop3';
  /** Sides that had a working connection in this run: only those are worth reconnecting. */
  private readonly reached = new Set<Side>();
  private firstConnectFailed = false;
  private readonly inventory: Inventory;
  readonly now: () => Date;
  private readonly sleep: (ms: number) => Promise<void>;
  /** The server's requests to pause (throttling), within bounds (throttle.ts). */
  private readonly throttle: ThrottleBudget;
  private readonly rate: RateLimiter | null;
  /** The daily budget, read from the journal once, on the first pass; null without one. */
  private budget: DailyBudget | null = null;
  /** What the daily budget left for a later run in the latest pass: the run ends with exit 75. */
  private held: { messages: number; bytes: number; next: number } | null = null;

  constructor(readonly o: EngineOptions) {
    this.now = o.now ?? (() => new Date());
    this.sleep = o.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
    this.throttle = new ThrottleBudget(o.limits?.throttle);
    this.rate = o.limits?.maxRate ? new RateLimiter(o.limits.maxRate) : null;
    this.rec = new RunRecorder(o, this.now(), this.emit);
    this.inventory = new Inventory(this);
    this.spool = new Spool(o.spoolDir);
    this.retryPolicy = { ...DEFAULT_RETRY, ...o.retry };
  }

  readonly emit: ProgressListener = (e) => this.o.progress?.(e);

  async execute(): Promise<RunResult> {
    const started = Date.now();
    const policy = this.retryPolicy;
    const sleep = this.sleep;
    const { result } = this.rec;
    let attempt = 0;
    this.spool.sweep();
    const runId = this.o.journal.beginRun(this.o.account, this.o.command);
    const previousRuns = this.o.journal
      .recentRuns(this.o.account, 5)
      .filter((r) => r.id !== runId && r.finishedAt !== null);
    let error: unknown = null;
    try {
      for (;;) {
        this.settledThisPass = 0;
        try {
          await this.pass();
          break;
        } catch (e) {
          if (!retryable(e) || this.o.signal?.aborted) throw e;
          // A side never reached in this run is a mistake to report (wrong port or host), not a
          // link to wait for: backoff is for connections that had worked.
          if (this.firstConnectFailed) throw e;
          // Before dropping: an abandoned prefetch then fails on POP3 and would relabel it.
          const side = this.failedSide;
          await this.dropConnections();
          if (e.context.retryAfterMs !== undefined) {
            // The server said how long to stay away (throttling): that long, within bounds, and
            // not counted as a failed reconnect. Copies it refused are still 'appending' and
            // are settled by content on the next pass, as after any drop.
            const d = this.throttle.decide(e.context.retryAfterMs, this.now().getTime());
            if ('stop' in d)
              throw e.with({
                hint:
                  `${d.stop}; run again after ${new Date(d.resumeAt).toISOString()}: ` +
                  'popsync goes on where it stopped',
              });
            this.o.logger.warn({ err: e.message, delayMs: d.wait }, 'the server asked for a pause; waiting');
            this.emit({ type: 'reconnect', side, attempt: attempt + 1, delayMs: d.wait, reason: e.message });
            await sleep(d.wait);
            continue;
          }
          attempt = this.settledThisPass > 0 ? 1 : attempt + 1;
          if (attempt > policy.maxAttempts)
            throw e.with({
              hint:
                `gave up after ${policy.maxAttempts} reconnect attempt${policy.maxAttempts === 1 ? '' : 's'}; ` +
                'run again later to resume',
            });
          const delayMs = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (attempt - 1));
          result.reconnects++;
          this.o.logger.warn({ err: e.message, attempt, delayMs }, 'connection failed; reconnecting');
          this.emit({ type: 'reconnect', side, attempt, delayMs, reason: e.message });
          await sleep(delayMs);
        }
      }
      // Every listed message went through the copier: those whose copies existed before the
      // journal knew their folder were found then. Later mail cannot have such copies.
      if (result.failed.length === 0) this.o.journal.endAdoption(this.o.account);
      this.emit({ type: 'phase', phase: 'finishing' });
      await this.finish();
      if (this.throttle.times > 0)
        this.rec.warn(
          `the destination asked for pauses ${this.throttle.times} time${this.throttle.times === 1 ? '' : 's'} ` +
            `(throttling); popsync waited ${Math.round(this.throttle.waitedMs / 100) / 10} s in all`,
        );
      for (const w of windowWarnings({
        listed: result.listed,
        newCount: result.newMessages,
        vanished: this.inventory.vanished,
        previous: previousRuns,
      }))
        this.rec.warn(w);
      // After finish(): copies made before the budget ran out are deleted from the source as usual.
      if (this.held !== null) throw this.budgetReached(this.held);
    } catch (e) {
      error = e;
      throw e;
    } finally {
      await this.dropConnections();
      this.spool.dispose();
      this.rec.finish(Date.now() - started);
      this.recordRun(runId, error);
    }
    return result;
  }

  private recordRun(id: number, error: unknown): void {
    const r = this.rec.result;
    try {
      this.o.journal.finishRun(id, {
        listed: r.listed,
        newCount: r.newMessages,
        copied: r.copied + r.reconciled,
        adopted: r.adopted,
        copiedBytes: r.copiedBytes,
        durationMs: r.durationMs,
        failed: r.failed.length,
        deleted: r.deleted,
        result:
          error !== null
            ? this.stoppedByUser(error)
              ? 'interrupted'
              : 'error'
            : r.failed.length > 0 || r.deletionRefused !== null || r.copyProblems.length > 0
              ? 'partial'
              : 'ok',
        error: error === null ? r.deletionRefused : error instanceof Error ? error.message : String(error),
      });
    } catch (e) {
      // The run's own outcome matters more than its record.
      this.o.logger.warn({ err: String(e) }, 'could not record the run in the journal');
    }
  }

  /**
   * SIGTERM/SIGINT ended the run: said so, or a wait it cut short (a connect, a reply, the
   * backoff) failed as a lost connection. Asked for, so `status` must not call it an error.
   */
  private stoppedByUser(error: unknown): boolean {
    if (!isPopsyncError(error)) return false;
    if (error.kind === 'interrupted') return true;
    return this.o.signal?.aborted === true && (error.kind === 'connection' || error.kind === 'temporary');
  }

  private async pass(): Promise<void> {
    const { journal, account } = this.o;
    const { rec } = this;
    // The destination's connections open while the source is reached and listed, so neither
    // waits for the other's round trips (TCP, TLS, greeting, login: a second or more at 30 ms
    // RTT or on a busy server). A failure of the source is still the one reported. The source is
    // announced first: it is the one awaited first, and the order a user reads (from, then to).
    if (!this.source) this.emit({ type: 'phase', phase: 'connect-source', detail: this.o.sourceDisplay ?? account });
    const sinkOpening = this.o.lazyDestination ? null : this.connectSink();
    sinkOpening?.catch(() => undefined);
    let source: Pop3Session;
    let listing: Awaited<ReturnType<Inventory['list']>>;
    let read: Map<string, JournalIndexRow> | undefined;
    try {
      if (!this.source) this.source = await this.connect('pop3', this.o.openSource);
      source = this.source;
      this.emit({ type: 'phase', phase: 'listing' });
      const listed = this.on('pop3', this.inventory.list(source));
      listed.catch(() => undefined);
      read = await this.rowsWhileListing();
      listing = await listed;
    } catch (e) {
      // Settled first, so a connection it opened is there for dropConnections to close.
      await sinkOpening?.catch(() => undefined);
      this.failedSide = 'pop3';
      throw e;
    }
    // Identification reads the source and the journal only: it goes on while the destination
    // logs in. Everything that needs the destination awaits the same opening (never a second one),
    // and whatever ends the pass first waits for it to settle, so dropConnections finds it.
    const sinkNow = async (): Promise<ImapSink> => {
      await sinkOpening;
      return this.connectSink();
    };
    let early: HeadStart | null = null;
    let rows: Map<string, JournalIndexRow> | null;
    let current: ReadonlyMap<string, JournalIndexRow>;
    let plan: Plan;
    let wanted: Plan['copy'];
    let over: Plan['copy'];
    let cap: ReturnType<Run['uploadCap']> = null;
    const limit = this.o.skipLargerThan ?? null;
    try {
      // Reading every row costs ~15 µs each (a quarter second at 20,000): read again only when
      // identification, settling or reconciliation changed something.
      rows = await this.inventory.identify(source, listing, read);
      if (this.inventory.settleDeleting()) rows = null;

      if (journal.rowsInState(account, 'appending').length > 0) {
        this.emit({ type: 'phase', phase: 'reconciling' });
        await reconcilePending(this, await sinkNow(), source);
        rows = null;
      }

      current = rows ?? journal.indexByUidl(account);
      plan = planCopy(this.listing, current);
      ({ copy: wanted, over } = splitBySizeRule(plan.copy, limit));
      // Larger than the destination takes: failed now, by name, never downloaded. The server's
      // APPENDLIMIT needs the IMAP connection, which copying anything needs anyway; when the daily
      // budget lets nothing through, nothing is copied and the destination is left alone (a
      // `sync` every few minutes while the budget is spent would otherwise log in each time).
      const left = this.budgetLeft(current);
      // A message larger than the whole daily budget never fits: it goes on to be failed by the
      // size cap below (exit 1, named), not held for a day that never comes (exit 75 each run,
      // "run again after" now).
      const whole = this.o.limits?.dailyBudget?.bytes ?? Number.POSITIVE_INFINITY;
      const copying = wanted.some((m) => !rec.hasFailed(m.uidl) && (m.size <= left || m.size > whole));
      // While the destination is still logging in, the first messages are already received.
      if (copying && this.sink === null) early = this.headStart(source, wanted, left);
      // Awaited whether or not anything is copied; its failure is the run's, as it always was.
      await sinkOpening;
      if (copying) cap = this.uploadCap(await this.connectSink());
    } catch (e) {
      early?.abandon();
      await sinkOpening?.catch(() => undefined);
      throw e;
    }
    let copy = wanted;
    let tooBig: typeof wanted = [];
    if (cap !== null) ({ copy, over: tooBig } = splitBySizeRule(wanted, cap.bytes));
    if (this.firstPass) {
      this.firstPass = false;
      rec.recordPlan({
        listing,
        plan,
        copy,
        over,
        limit,
        tooBig: cap === null ? null : { messages: tooBig, reason: cap.reason },
      });
      if (over.length > 0)
        this.o.logger.info({ account, messages: over.length, limit }, 'not copied: over skip_larger_than');
      if (rec.detailed) {
        for (const m of plan.skip) {
          // Only a report wants the whole row (folder, flags, dates) of a message copied earlier.
          // Reconciled above (found in the destination this run) counts as copied, not already-copied.
          rec.record(
            m.uidl,
            { ...rec.bare(m, 'already-copied', null, null), ...fromRow(journal.get(account, m.uidl)) },
            false,
          );
        }
      }
      this.emit({
        type: 'plan',
        toCopy: copy.length,
        toCopyBytes: copy.reduce((a, m) => a + m.size, 0),
        alreadyCopied: plan.skip.length,
        newToJournal: plan.skip.length === 0 && Object.values(journal.counts(account)).every((n) => n === 0),
      });
    }
    // A message refused earlier in this run is not retried by a reconnect pass of the same run.
    const todo = this.withinBudget(
      copy.filter((m) => !rec.hasFailed(m.uidl)),
      current,
    );
    const from = early?.session(todo) ?? source;
    if (todo.length === 0) return;
    const sink = await this.connectSink();
    this.emit({ type: 'phase', phase: 'copying' });
    const batchBytes = this.o.batchBytes ?? DEFAULT_BATCH_BYTES;
    await copyAll(this, from, sink, todo, this.spool, {
      messages: this.o.batchMessages ?? DEFAULT_BATCH_MESSAGES,
      bytes: batchBytes,
      spillAt: Math.min(this.o.spillBytes ?? DEFAULT_SPILL_BYTES, batchBytes),
      // Within the reconnect budget, so a message is set aside before the run gives up on it.
      setAsideAfter: Math.max(
        1,
        Math.min(this.o.setAsideAfter ?? DEFAULT_SET_ASIDE_AFTER, this.retryPolicy.maxAttempts),
      ),
    });
  }

  /**
   * The journal's rows, read while the server works on the listing just asked for: nothing
   * writes them before identification, and the read (~45 ms of CPU at 20,000 rows, a sync with
   * nothing new over a large mailbox) then overlaps the wait for the listing's first byte (~50
   * ms for Dovecot's 20,000) instead of following it. Undefined if it failed: identification
   * reads again, and a journal error is reported from there, as before.
   */
  private async rowsWhileListing(): Promise<Map<string, JournalIndexRow> | undefined> {
    // STAT, LIST and UIDL go out when this turn of the event loop ends; the read must not hold them.
    await new Promise<void>((resolve) => setImmediate(resolve));
    try {
      return this.o.journal.indexByUidl(this.o.account);
    } catch {
      return undefined;
    }
  }

  /**
   * RETRs written while the destination logs in (head-start.ts): a prefix of what is to be copied
   * (in the order the copier will read it), within one batch; null when there is nothing to gain.
   */
  private headStart(source: Pop3Session, wanted: ListedMessage[], budget: number): HeadStart | null {
    const local = this.o.limits?.appendLimit ?? Number.POSITIVE_INFINITY;
    const messages = headStartOf(
      wanted.filter((m) => !this.rec.hasFailed(m.uidl)),
      {
        // What one batch can hold (receiver.ts): tiny messages count at the floor there.
        messages: batchCount({
          messages: this.o.batchMessages ?? DEFAULT_BATCH_MESSAGES,
          bytes: this.o.batchBytes ?? DEFAULT_BATCH_BYTES,
        }),
        bytes: this.o.batchBytes ?? DEFAULT_BATCH_BYTES,
        maxMessage: Math.min(HEAD_START_MAX_MESSAGE, local),
        budget,
      },
    );
    return messages.length === 0 ? null : new HeadStart(source, messages);
  }

  /**
   * The largest message worth downloading: the destination's APPENDLIMIT (else the provider's
   * published limit), and never more than a whole daily budget, which such a message would
   * wait for forever. With the reason a failure names; null when nothing limits it.
   */
  private uploadCap(sink: ImapSink): { bytes: number; reason: string } | null {
    const l = this.o.limits;
    const caps: Array<{ bytes: number; reason: string }> = [];
    const server = appendLimitOf(sink.capabilities);
    if (server !== null)
      caps.push({
        bytes: server,
        reason: `larger than the destination accepts (its APPENDLIMIT is ${exactSize(server)})`,
      });
    else if (l?.appendLimit != null)
      caps.push({
        bytes: l.appendLimit,
        reason: `larger than ${l.provider ?? 'the destination'} accepts (${exactSize(l.appendLimit)} per message)`,
      });
    if (l?.dailyBudget)
      caps.push({
        bytes: l.dailyBudget.bytes,
        reason: `larger than ${l.dailyBudget.basis} (${roughSize(l.dailyBudget.bytes)}) allows in a day`,
      });
    if (caps.length === 0) return null;
    const c = caps.reduce((a, b) => (b.bytes < a.bytes ? b : a));
    return {
      bytes: c.bytes,
      reason: `${c.reason}: not downloaded; copy it another way, or set skip_larger_than to skip it quietly`,
    };
  }

  /**
   * The messages of `todo` the daily budget lets go now, in server order (judged on LIST
   * sizes, before any download); what is left is noted for the exit-75 ending.
   */
  private withinBudget<T extends ListedMessage>(todo: T[], rows: ReadonlyMap<string, JournalIndexRow>): T[] {
    const budget = this.dailyBudget(rows);
    if (budget === null) return todo;
    const now = this.now();
    const n = budget.fittingPrefix(
      todo.map((m) => m.size),
      now.getTime(),
    );
    const rest = todo.slice(n);
    this.held =
      rest.length === 0
        ? null
        : { messages: rest.length, bytes: rest.reduce((a, m) => a + m.size, 0), next: rest[0]!.size };
    return n === todo.length ? todo : todo.slice(0, n);
  }

  /** The daily budget, read from the journal's rows on first use; null without one. */
  private dailyBudget(rows: ReadonlyMap<string, JournalIndexRow>): DailyBudget | null {
    const daily = this.o.limits?.dailyBudget;
    if (!daily) return null;
    this.budget ??= new DailyBudget(daily.bytes, recentUploads(rows.values(), this.now()));
    return this.budget;
  }

  /** Bytes the daily budget still allows now (Infinity without one). */
  private budgetLeft(rows: ReadonlyMap<string, JournalIndexRow>): number {
    return this.dailyBudget(rows)?.remaining(this.now().getTime()) ?? Number.POSITIVE_INFINITY;
  }

  private budgetReached(held: { messages: number; bytes: number; next: number }): PopsyncError {
    const daily = this.o.limits!.dailyBudget!;
    const now = this.now().getTime();
    const at = this.budget!.resumeAt(held.next, now) ?? now;
    const copied = this.rec.result.copied;
    const failed = this.rec.result.failed.length;
    return new PopsyncError(
      'temporary',
      `${daily.basis} is reached: ${roughSize(this.budget!.used(now))} uploaded in the last 24 hours, ` +
        `of ${roughSize(daily.bytes)}; ${held.messages} message${held.messages === 1 ? '' : 's'} ` +
        `(${roughSize(held.bytes)}) wait for it`,
      {
        account: this.o.account,
        hint:
          `run again after ${new Date(at).toISOString()} (when enough of today's copies are 24 hours old); ` +
          `this run copied ${copied} message${copied === 1 ? '' : 's'} and the next one goes on from there` +
          (failed > 0
            ? `; ${failed} message${failed === 1 ? '' : 's'} could not be copied: ` +
              'the run that finishes the copy lists them (exit 1)'
            : ''),
      },
    );
  }

  async pace(bytes: number): Promise<void> {
    if (this.rate === null) return;
    const wait = this.rate.reserve(bytes, this.now().getTime());
    if (wait > 0) await this.sleep(wait);
  }

  unpace(bytes: number): void {
    this.rate?.giveBack(bytes);
  }

  spent(bytes: number): void {
    this.budget?.spend(bytes, this.now().getTime());
  }

  async connectSink(): Promise<ImapSink> {
    if (!this.sink) {
      this.emit({ type: 'phase', phase: 'connect-destination', detail: this.o.destination });
      this.sink = await this.connect('imap', this.o.openSink);
      this.folders.clear();
      this.rec.result.oneImapConnection ??= this.sink.oneConnection ?? null;
    }
    return this.sink;
  }

  private async connect<T>(side: Side, open: () => Promise<T>): Promise<T> {
    try {
      const c = await this.on(side, open());
      this.reached.add(side);
      return c;
    } catch (e) {
      // Nothing listens there, the name does not resolve, or the port speaks the other TLS mode:
      // on a side that never connected in this run that is a typo no retry cures. (A link that
      // drops after the server answered, or a connect that times out, may be the network.)
      if (!this.reached.has(side) && isConnectMistake(e)) this.firstConnectFailed = true;
      throw e;
    }
  }

  on<T>(side: Side, p: Promise<T>): Promise<T> {
    return p.catch((e: unknown) => {
      this.failedSide = side;
      throw e;
    });
  }

  private async finish(): Promise<void> {
    const source = this.source;
    if (!source) return;
    await finishSource(this, source, this.o.deletion ?? null);
    // Ended by QUIT; on a failure it stays set, so dropConnections destroys the socket.
    this.source = null;
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

export function runEngine(options: EngineOptions): Promise<RunResult> {
  return new Run(options).execute();
}
