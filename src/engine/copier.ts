/**
 * Storing one received batch: route -> copies already in a folder this journal is adopting
 * are recorded, not appended (adopter.ts) -> journal 'appending' with the folder's UIDNEXT
 * (committed) -> APPEND -> journal 'done' with the UID, or 'failed' for a message the
 * destination refused -> for copies stored without a UID (no UIDPLUS), the UID found by
 * content (reconciler.ts learnUids). Receiving is receiver.ts's job; what arrives here is whole messages,
 * each in memory or in a spool file, with its size, sha256 and head already known, so nothing
 * here reads a body: routing and identity read only the head (mapping/headers.ts caps it). A
 * message refused by the destination fails alone; a lost connection rejects and ends the pass
 * (run.ts retries it from the journal).
 */
import { DEFAULT_APPEND_WINDOW } from '../defaults.js';
import { PopsyncError, isPopsyncError } from '../errors.js';
import type { AppendRequest, ImapSink } from '../imap/types.js';
import type { BeginAppend } from '../journal/types.js';
import { decodedHeader } from '../mapping/decode.js';
import { type HeaderField, headerText, messageIdOf } from '../mapping/headers.js';
import type { OpenFolder, RunContext } from './context.js';
import { adoptExisting } from './adopter.js';
import { ContentPool, unlistedCopies } from './content-match.js';
import { acceptUidValidity, openFolder, prepareFolder } from './folders.js';
import { headerHashOf } from './identity.js';
import type { Pop3Session } from '../pop3/types.js';
import type { ListedMessage } from './plan.js';
import { ReceiveAhead } from './receive-ahead.js';
import { type Received, type ReceivedBatch, Receiver, type ReceiveLimits } from './receiver.js';
import type { Spool } from './spool.js';
import { type OutcomeGroup, OutcomeJournal } from './outcomes.js';
import { learnUids } from './reconciler.js';
import type { RoutedItem } from './recorder.js';
import { delayTierUpForCopy } from '../tier-up.js';

type Item = RoutedItem & { begin: BeginAppend; req: AppendRequest; head: Buffer };

/**
 * Routes each received message and groups them by destination folder, in source order. The
 * objects are written out whole, with no spread of an optional part: an object literal with a
 * spread is built property by property at run time, and this is once per message copied. Loops
 * over messages here and in prepare() are indexed: a for-of is an iterator result object per
 * message for as long as the function runs unoptimised, which is most of a run.
 */
function route(ctx: RunContext, received: Received[]): Map<string, Item[]> {
  const groups = new Map<string, Item[]>();
  const detailed = ctx.rec.detailed;
  let last: Item[] | null = null;
  let lastFolder = '';
  for (let i = 0; i < received.length; i++) {
    const f = received[i]!;
    const { head } = f.body;
    // The header block read once, and in one pass, for the routing's fields and for the
    // identity hash alike.
    const fields: HeaderField[] = [];
    const headerHash = headerHashOf(headerText(head), fields);
    const routing = ctx.o.route({ size: f.body.size, fields, uidl: f.m.uidl });
    let group: Item[] | undefined = last !== null && routing.folder === lastFolder ? last : groups.get(routing.folder);
    if (group === undefined) {
      group = [];
      groups.set(routing.folder, group);
    }
    last = group;
    lastFolder = routing.folder;
    // Every request has the same properties, the date undefined when there is none: added
    // afterwards to those with one, it gave a run's requests two shapes.
    const req: AppendRequest = {
      body: f.body.bytes ?? { file: f.body.file!, size: f.body.wireSize, hasNul: f.body.hasNul },
      flags: routing.flags,
      internalDate: routing.internalDate ?? undefined,
    };
    const it: Item = {
      m: f.m,
      begin: {
        uidl: f.m.uidl,
        size: f.body.size,
        sha256: f.body.sha256,
        fingerprint: f.body.fingerprint,
        headerHash,
        listSize: f.m.size,
        messageId: messageIdOf(fields),
        folder: routing.folder,
        destUidValidity: 0n, // set once the folder is open
        destUidNext: 0,
        provenance: {
          flags: routing.flags,
          internalDate: routing.internalDate?.toISOString() ?? null,
          dateSource: routing.dateSource,
          seenSource: routing.seenSource,
          folderRule: routing.folderRule,
        },
      },
      head,
      req,
    };
    if (detailed) it.shown = { subject: decodedHeader(fields, 'subject'), from: decodedHeader(fields, 'from') };
    group.push(it);
  }
  return groups;
}

/** Folders the destination refused to create or open in a run, with its answer: asked once. */
const refusedFolders = new WeakMap<RunContext, Map<string, PopsyncError>>();

/**
 * The folder opened, or null when the server refuses it (a name too long, a character it does
 * not allow, no permission) or its name on the server cannot be sent at all (a line break in the
 * NAMESPACE prefix it announced: imap/errors.ts unsendableFolder): a folder name is the user's
 * rule, not the server's failure, so the messages routed there fail with the server's words
 * (exit 1, tried again next run, not journaled) and the other folders go on. Anything else (a
 * lost link) still ends the pass.
 */
async function openOrRefuse(
  ctx: RunContext,
  sink: ImapSink,
  folder: string,
  routed: Item[],
): Promise<OpenFolder | null> {
  let refusals = refusedFolders.get(ctx);
  let refused = refusals?.get(folder);
  if (refused === undefined) {
    try {
      return await openFolder(ctx, sink, folder);
    } catch (e) {
      if (!isPopsyncError(e) || e.kind !== 'server' || e.context.folder !== folder) throw e;
      refused = e;
      if (!refusals) {
        refusals = new Map();
        refusedFolders.set(ctx, refusals);
      }
      refusals.set(folder, e);
    }
  }
  const serverResponse = refused.context.serverResponse ?? null;
  for (const it of routed) {
    ctx.settledThisPass++;
    ctx.rec.fail(it.m, folder, refused.message, serverResponse);
    ctx.rec.recordRouted(it, 'failed', refused.message, serverResponse);
  }
  return null;
}

/** Per listing (a new pass lists again, after claims were written): the copied rows it lacks. */
const contentPools = new WeakMap<readonly unknown[], ContentPool>();

function contentPool(ctx: RunContext): ContentPool {
  let pool = contentPools.get(ctx.listing);
  if (!pool) {
    const { journal, account } = ctx.o;
    // Only a copied row can be claimed: with none (a first run) the set of every listed key
    // (10,000 before the first APPEND) would be built to find nothing.
    const copied = [...journal.indexByUidl(account).values()].filter(
      (r) => r.state === 'done' || r.state === 'deleting',
    );
    const unlisted = copied.length === 0 ? [] : unlistedCopies(new Set(ctx.listing.map((m) => m.uidl)), copied);
    pool = new ContentPool(unlisted.map((r) => journal.get(account, r.uidl)!));
    contentPools.set(ctx.listing, pool);
  }
  return pool;
}

/**
 * Messages identity could not tie to a row (a renumbered UIDL whose TOP was refused) that are,
 * by their downloaded content, the copy of a row no longer listed (content-match.ts): that row
 * takes their UIDL and they are not appended again. Returns the items left to append.
 */
function recogniseByContent(ctx: RunContext, routed: Item[]): Item[] {
  const pool = contentPool(ctx);
  if (pool.size === 0) return routed;
  const { journal, account } = ctx.o;
  const { rec } = ctx;
  return routed.filter((it) => {
    if (journal.get(account, it.m.uidl) !== undefined) return true;
    const row = pool.claim({ sha256: it.begin.sha256, fingerprint: it.begin.fingerprint ?? '' });
    if (row === null) return true;
    journal.rekey(account, [{ from: row.uidl, to: it.m.uidl }]);
    journal.setListSizes(account, [{ uidl: it.m.uidl, listSize: it.m.size }]);
    rec.result.recognised++;
    ctx.settledThisPass++;
    ctx.emit({ type: 'message', uidl: it.m.uidl, bytes: it.begin.size, outcome: 'recognised' });
    const reason =
      `recognised by its content as the message copied under UIDL ${row.uidl}, which the server no ` +
      'longer lists (it renumbered its UIDLs and refused TOP); not copied again';
    rec.recordRouted({ ...it, begin: { ...it.begin, folder: row.folder ?? '' } }, 'already-copied', reason, null);
    return false;
  });
}

/**
 * The APPEND's result once every outcome it reported is journaled. Reported outcomes are
 * journaled even when the APPEND then failed (a lost link): those copies are known.
 */
async function settled<T>(ctx: RunContext, append: Promise<T>, group: Pick<OutcomeGroup, 'close'>): Promise<T> {
  let value: T;
  try {
    value = await ctx.on('imap', append);
  } catch (e) {
    try {
      group.close();
    } catch {
      // The APPEND's own failure is the one to report; the rows left 'appending' are reconciled.
    }
    throw e;
  }
  group.close();
  return value;
}

/** Copies stored without a UID by one APPEND, for learnUids once the window is settled. */
interface Uidless {
  folder: string;
  status: OpenFolder;
  floor: number;
  uidls: string[];
}

/** The APPENDs of one received batch, handed over; settles once all their outcomes are journaled. */
type Handed = Promise<Uidless[]>;

/** Every promise settled first (none left running), then the first failure, or the values in order. */
async function allInOrder<T>(started: ReadonlyArray<Promise<T>>): Promise<T[]> {
  const results = await Promise.allSettled(started);
  const failed = results.find((r) => r.status === 'rejected');
  if (failed) throw failed.reason;
  return results.map((r) => (r as PromiseFulfilledResult<T>).value);
}

/** One folder's part of a received batch with its intent journaled (and fsynced): ready to APPEND. */
interface Prepared {
  folder: string;
  status: OpenFolder;
  /** The folder's UIDNEXT journaled with the intent: no copy of these can be below it. */
  floor: number;
  items: Item[];
}

/** Every APPEND of a batch handed over: settles once all their outcomes are journaled. */
function handed(started: ReadonlyArray<Promise<Uidless | null>>): Handed {
  const settled = allInOrder(started).then((all) => all.filter((u): u is Uidless => u !== null));
  settled.catch(() => undefined);
  return settled;
}

/**
 * Route, journal the intent, hand the APPEND over: one received batch, each folder's APPEND
 * written as soon as its intent is journaled. Returns once every folder's APPEND is handed
 * over, not when its replies are in: the caller keeps a window of these outstanding (copyAll).
 */
async function storeBatch(
  ctx: RunContext,
  sink: ImapSink,
  received: Received[],
  outcomes: OutcomeJournal,
): Promise<{ settled: Handed }> {
  const started: Array<Promise<Uidless | null>> = [];
  try {
    await prepare(ctx, sink, received, (p) => started.push(write(ctx, sink, p, outcomes)));
  } catch (e) {
    // A folder's APPEND already handed over must not outlive this failure unnoticed.
    await Promise.allSettled(started);
    throw e;
  }
  return { settled: handed(started) };
}

/**
 * Route, look for copies already there, journal the intent: everything before a batch's APPENDs,
 * handing each folder's part to `ready` once its intent is journaled.
 */
async function prepare(
  ctx: RunContext,
  sink: ImapSink,
  received: Received[],
  ready: (p: Prepared) => void,
): Promise<void> {
  const { journal, account } = ctx.o;
  const { rec } = ctx;
  for (const [folder, all] of route(ctx, received)) {
    const routed = recogniseByContent(ctx, all);
    if (routed.length === 0) continue;
    const status = await openOrRefuse(ctx, sink, folder, routed);
    if (status === null) continue;
    const floor = status.floor;
    for (let i = 0; i < routed.length; i++) {
      const it = routed[i]!;
      it.begin.destUidValidity = status.uidValidity;
      it.begin.destUidNext = floor;
    }
    const adopted = await adoptExisting(ctx, sink, folder, status, routed);
    for (let i = 0; adopted.size > 0 && i < routed.length; i++) {
      const it = routed[i]!;
      const uid = adopted.get(it.m.uidl);
      if (uid === undefined) continue;
      rec.result.adopted++;
      ctx.settledThisPass++;
      ctx.emit({ type: 'message', uidl: it.m.uidl, bytes: it.begin.size, outcome: 'adopted' });
      rec.recordRouted(
        it,
        'already-copied',
        `its copy was already in the destination (UID ${uid}); not copied again`,
        null,
      );
    }
    const items = adopted.size === 0 ? routed : routed.filter((it) => !adopted.has(it.m.uidl));
    if (items.length === 0) continue;
    // Indexed, as above: a callback per message for the sum and for the intents.
    const begins: BeginAppend[] = [];
    let bytes = 0;
    for (let i = 0; i < items.length; i++) {
      const begin = items[i]!.begin;
      begins.push(begin);
      bytes += begin.size;
    }
    // Before the intent is journaled: a run stopped while it waits leaves nothing to settle.
    await ctx.pace(bytes);
    journal.beginAppend(account, begins);
    ready({ folder, status, floor, items });
  }
}

/** Hands one prepared folder's APPEND over; settles once its outcomes are journaled. */
function write(ctx: RunContext, sink: ImapSink, p: Prepared, outcomes: OutcomeJournal): Promise<Uidless | null> {
  const { account } = ctx.o;
  const { rec } = ctx;
  const { folder, status, floor, items } = p;
  const uidless: string[] = [];
  const reused = (uid: number, owner: string, uidl: string): PopsyncError =>
    // Our journal is right about the older copy; the server handed its UID out again.
    new PopsyncError(
      'protocol',
      `IMAP server ${ctx.o.destination} gave UID ${uid} in "${folder}" to a new message, ` +
        `but that UID already holds the copy of UIDL ${owner}: the server reuses UIDs`,
      {
        account,
        folder,
        uidl,
        hint:
          'a fault of the destination server (its UIDs must never be reused within one ' +
          'UIDVALIDITY); nothing was recorded wrongly, and the next run settles this message by content',
      },
    );
  // The server's words for each refusal, by index; most batches have none.
  const refusals = new Map<number, string | null>();
  // The journal's owners are looked up when the group is written, in one read for the batch.
  // What follows each outcome's commit is one function for the batch, told the message's index.
  const group = outcomes.group(
    folder,
    (s, owner) => reused(s.destUid, owner, s.uidl),
    (s, i: number) => {
      const it = items[i]!;
      ctx.settledThisPass++;
      if (s.ok) {
        if (s.destUid === null) uidless.push(it.m.uidl);
        rec.result.copied++;
        rec.result.copiedBytes += it.begin.size;
        ctx.spent(it.begin.size);
        ctx.emit({ type: 'message', uidl: it.m.uidl, bytes: it.begin.size, outcome: 'copied' });
        rec.recordRouted(it, 'copied', null, null);
      } else {
        const serverResponse = refusals.get(i) ?? null;
        rec.fail(it.m, folder, s.error, serverResponse);
        rec.recordRouted(it, 'failed', s.error, serverResponse);
      }
    },
  );
  const appended = settled(
    ctx,
    sink.appendBatch(
      folder,
      items.map((it) => it.req),
      (i, outcome) => {
        const it = items[i]!;
        if (outcome.ok) {
          if (outcome.uidValidity !== null && outcome.uid !== null && outcome.uidValidity !== status.uidValidity) {
            // The folder's record changes: what is held was checked against the old one.
            outcomes.flushAll();
            acceptUidValidity(ctx, folder, status, outcome.uidValidity, outcome.uid);
          }
          const uidValidity = outcome.uidValidity ?? status.uidValidity;
          if (outcome.uid !== null) {
            // Copies held but not yet written, in this batch or the other one outstanding.
            const held = outcomes.ownerOf(folder, uidValidity, outcome.uid);
            if (held !== undefined && held !== it.m.uidl) throw reused(outcome.uid, held, it.m.uidl);
            status.floor = Math.max(status.floor, outcome.uid + 1);
          }
          group.add({ uidl: it.m.uidl, ok: true, destUidValidity: uidValidity, destUid: outcome.uid }, i);
        } else {
          refusals.set(i, outcome.error.context.serverResponse ?? null);
          group.add({ uidl: it.m.uidl, ok: false, error: outcome.error.message }, i);
        }
      },
    ),
    group,
  ).then((): Uidless | null => (uidless.length > 0 ? { folder, status, floor, uidls: uidless } : null));
  // Awaited by the caller in its turn; until then a rejection must not count as unhandled.
  appended.catch(() => undefined);
  return appended;
}

/**
 * Without a UID the copy claims no destination message, and an identical message's interrupted
 * copy could later settle on it: find it now, while the range is small. By content from the
 * floor on, so every batch still outstanding is settled first: a later batch's copy whose UID
 * is not journaled yet could otherwise be taken for one of these.
 */
async function learnUidless(
  ctx: RunContext,
  sink: ImapSink,
  uidless: readonly Uidless[],
  outstanding: ReadonlyArray<{ handed: Handed }>,
): Promise<void> {
  if (uidless.length === 0) return;
  await Promise.allSettled(outstanding.map((w) => w.handed));
  const { journal, account } = ctx.o;
  for (const u of uidless)
    await learnUids(
      ctx,
      sink,
      u.folder,
      u.status,
      u.floor,
      u.uidls.map((uidl) => journal.get(account, uidl)!),
    );
}

/**
 * Takes back the intents of prepared parts whose APPEND was never handed to the sink: write() was
 * not called for them, so no byte of theirs can have reached the connection, let alone the server,
 * and their rows need no search (Journal.withdrawAppend: new again, or 'failed' if retried). This
 * is the only case: once write() is called, the request may be on the wire whatever happens next
 * (a drop, a reply never read), and its rows stay 'appending' for reconciliation. Called while the
 * pass is ending for another reason, so a failure here (the journal itself failing) only leaves
 * the rows 'appending', which is safe, and does not replace the error that ended the pass.
 */
function withdraw(ctx: RunContext, parts: readonly Prepared[]): void {
  const uidls = parts.flatMap((p) => p.items.map((it) => it.m.uidl));
  if (uidls.length === 0) return;
  // Paced when it was prepared (--max-rate): never sent, so its allowance is the next pass's.
  ctx.unpace(parts.reduce((a, p) => a + p.items.reduce((b, it) => b + it.begin.size, 0), 0));
  try {
    ctx.o.journal.withdrawAppend(ctx.o.account, uidls);
  } catch (e) {
    ctx.o.logger.warn(
      { err: e instanceof Error ? e.message : String(e), messages: uidls.length },
      'could not withdraw the intents of a batch never sent; the next run looks for them in the destination',
    );
  }
}

/**
 * Copies `todo` in batches, as one continuous pipeline: while one batch's replies are awaited,
 * the next is journaled and written down the same APPEND connection (a window of
 * DEFAULT_APPEND_WINDOW batches outstanding), and the ones after are being received
 * (receive-ahead.ts: as far ahead as the memory bound allows). So neither the connection nor
 * popsync idles for a round trip or a server's transaction per batch, and memory holds what
 * receive-ahead.ts bounds (receiver.ts bounds each batch by received bytes). With the window
 * full, the next batch received is routed and its intent journaled ahead (prepare), so the
 * moment the oldest batch's outcomes are journaled it is written: routing and the intent's
 * fsync (12-16 ms per batch under load) were between a reply and the next write. Its floor,
 * taken before the batches ahead of it are settled, is lower than it could be, which only widens
 * reconciliation's search. Not without UIDPLUS: there the window is one batch, as copies without
 * a UID are found by content from their floor, which a later batch's copies must not be in yet.
 * A prepared batch a failure or an interrupt stops is never written, and its intents are withdrawn
 * (withdraw): nothing of it was handed to the APPEND connection, so the destination cannot hold
 * it and the next pass or run has nothing to look for. Only a crash leaves its rows 'appending'.
 * Receiving has no side effect on either server, so a batch received but never stored (drop,
 * interrupt) is simply received again later; its spool files go when this ends. Whatever ends
 * the pass, the batches outstanding are settled (journaled or failed) first: nothing of this
 * pass may still be writing when the next one reconciles.
 */
export async function copyAll(
  ctx: RunContext,
  source: Pop3Session,
  sink: ImapSink,
  todo: ListedMessage[],
  spool: Spool,
  limits: ReceiveLimits,
): Promise<void> {
  // From here on the code run is mostly per message and per batch: it tiers up later (tier-up.ts).
  delayTierUpForCopy();
  // Where every message goes, when the routing knows it before any arrives: asked for (STATUS,
  // CREATE if missing) before receiving starts, so its round trip runs while the first batch is
  // received. Asked after the receiving had started, it waited behind the first messages already
  // in (the head start's, read and hashed at once), and the first APPEND then waited for its reply.
  const only = ctx.o.onlyFolder?.() ?? null;
  if (only !== null && !ctx.folders.has(only) && !refusedFolders.get(ctx)?.has(only)) prepareFolder(sink, only);
  const receiver = new Receiver(ctx, source, todo, spool, limits);
  const outcomes = new OutcomeJournal(ctx.o.journal, ctx.o.account);
  const depth = sink.capabilities.has('UIDPLUS') ? DEFAULT_APPEND_WINDOW : 1;
  const window: Array<{ handed: Handed; got: ReceivedBatch; settled: boolean; failed: boolean }> = [];
  // Only the spooled messages' files: a promise per message held in memory was most of a batch's garbage here.
  const discard = (got: ReceivedBatch): Promise<unknown> => {
    const files: Array<Promise<void>> = [];
    for (let i = 0; i < got.items.length; i++) {
      const file = got.items[i]!.body.file;
      if (file) files.push(spool.discard(file));
    }
    return Promise.all(files);
  };
  const ahead = new ReceiveAhead(receiver, limits.bytes);
  const retire = async (): Promise<void> => {
    const w = window.shift()!;
    try {
      await learnUidless(ctx, sink, await w.handed, window);
    } finally {
      await discard(w.got);
      ahead.release(w.got, !w.failed);
    }
  };
  const interrupted = (): PopsyncError =>
    new PopsyncError('interrupted', 'interrupted; the journal is consistent, run again to resume');
  const stopIfInterrupted = async (got: ReceivedBatch): Promise<void> => {
    if (!ctx.o.signal?.aborted) return;
    await discard(got);
    throw interrupted();
  };
  // The next batch, its intents journaled while the window was full: written the moment a reply
  // frees the window, not a routing and an fsync later.
  let next = null as { got: ReceivedBatch; parts: Prepared[] } | null;
  const hand = async (got: ReceivedBatch, handed: Handed): Promise<void> => {
    const w = { handed, got, settled: false, failed: false };
    handed.then(
      () => {
        w.settled = true;
      },
      () => {
        w.settled = true;
        w.failed = true;
      },
    );
    window.push(w);
    // The stored part of the batch is journaled; the receive error ends the pass as POP3's.
    if (got.error) {
      while (window.length > 0) await retire();
      await ctx.on('pop3', Promise.reject(got.error));
    }
  };
  try {
    for (;;) {
      // A failed batch ends the pass (retire throws it): nothing more is prepared or written after
      // it, with `next` waiting or not. Checked only there, a batch received while the window had
      // room after the oldest retired was written behind a failure already known.
      if (window.some((w) => w.failed)) {
        await retire();
        continue;
      }
      if (next !== null) {
        // Written once the window's batches being stored are fewer than its depth: the moment
        // the oldest's outcomes are journaled, before its spool files go and receiving resumes.
        const storing = window.filter((w) => !w.settled);
        if (storing.length >= depth) {
          await storing[0]!.handed.then(noop, noop);
          continue;
        }
        // Interrupted after its intents were journaled: it is not written, and they are withdrawn
        // when the pass ends (it is still `next` there).
        if (ctx.o.signal?.aborted) throw interrupted();
        const { got, parts } = next;
        next = null;
        await hand(got, handed(parts.map((p) => write(ctx, sink, p, outcomes))));
        continue;
      }
      // A batch received goes out first, while the window has room: the server is kept fed.
      // With the window full, the next one is prepared instead. Only with UIDPLUS: without it
      // the window is one batch, and its floor must be taken after the batch before is settled.
      const early: boolean = next === null && depth > 1 && window.length >= depth && !window[0]!.settled;
      const got: ReceivedBatch | undefined = window.length < depth || early ? ahead.take() : undefined;
      if (got === undefined) {
        // The window is full, or the oldest batch's replies are in, or nothing more will come:
        // the oldest retires, making room in the window and for receiving further.
        const retiring = window.length > 0 && (window.length >= depth || window[0]!.settled || ahead.done);
        if (retiring && !(early && !ahead.done)) {
          await retire();
          continue;
        }
        if (ahead.done) break;
        // Whichever comes first: the next batch, or the replies that let the oldest retire.
        await Promise.race([ahead.arrival(), ...window.slice(0, 1).map((w) => w.handed.then(noop, noop))]);
        continue;
      }
      await stopIfInterrupted(got);
      if (early) {
        const parts: Prepared[] = [];
        try {
          await prepare(ctx, sink, got.items, (p) => parts.push(p));
        } catch (e) {
          // A folder's intent journaled before another folder's failed: never written either.
          withdraw(ctx, parts);
          await discard(got);
          throw e;
        }
        next = { got, parts };
        continue;
      }
      let handedOver: Handed;
      try {
        handedOver = (await storeBatch(ctx, sink, got.items, outcomes)).settled;
      } catch (e) {
        await discard(got);
        throw e;
      }
      await hand(got, handedOver);
    }
  } catch (e) {
    // A batch being received must not outlive the pass: dropping the source ends its reads.
    receiver.close();
    source.destroy();
    const unstored = await ahead.stop();
    // Nor a batch being appended: its outcomes are journaled (or it fails) before the pass ends.
    await Promise.allSettled(window.map((w) => w.handed));
    // A prepared batch never written: its intents are taken back, nothing of it was sent.
    if (next !== null) withdraw(ctx, next.parts);
    const unwritten = next === null ? [] : [next.got];
    await Promise.all([...window.splice(0).map((w) => w.got), ...unwritten, ...unstored].map(discard));
    throw e;
  } finally {
    await spool.clear();
  }
}

function noop(): void {}
