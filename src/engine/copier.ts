/**
 * Moving one batch: RETR (pipelined) -> route -> hash -> journal 'appending' with the folder's
 * UIDNEXT (committed) -> APPEND -> journal 'done' with the UID, or 'failed' for a message the
 * destination refused. Memory is bounded by the batch (a byte cap, or one message larger than
 * it), never by the mailbox. A message refused by either server fails alone; a lost connection
 * rejects and ends the pass (run.ts retries it from the journal).
 */
import type { AppendRequest, ImapSink } from '../imap/types.js';
import type { BeginAppend } from '../journal/types.js';
import { isPopsyncError } from '../errors.js';
import { decodedHeader } from '../mapping/decode.js';
import { messageIdOf, parseHeaders } from '../mapping/headers.js';
import type { Pop3Session } from '../pop3/types.js';
import type { RunContext } from './context.js';
import { openFolder } from './folders.js';
import { headerHash } from './identity.js';
import type { ListedMessage } from './plan.js';
import { sha256Hex } from './reconcile.js';
import type { RoutedItem } from './recorder.js';

/** One batch as RETR returned it; null where the server refused to send the message. */
export type Fetched = Array<{ m: ListedMessage; body: Buffer } | null>;

type Item = RoutedItem & { begin: BeginAppend; req: AppendRequest };

/** RETR of one batch, pipelined; a message the server refuses to send is failed and left out. */
export function fetchBatch(ctx: RunContext, source: Pop3Session, batch: ListedMessage[]): Promise<Fetched> {
  return ctx.on('pop3', Promise.all(
    batch.map((m) =>
      source.retr(m.n).then(
        (body) => ({ m, body }),
        (e: unknown) => {
          // -ERR on one RETR fails that message only; a lost connection fails the pass.
          if (isPopsyncError(e) && e.kind === 'server') {
            ctx.rec.fail(m, null, `the POP3 server refused to send it: ${e.message}`, e.context.serverResponse ?? null);
            return null;
          }
          throw e;
        },
      ),
    ),
  ));
}

/** Routes each fetched message and groups them by destination folder, in source order. */
function route(ctx: RunContext, fetched: Fetched): Map<string, Item[]> {
  const groups = new Map<string, Item[]>();
  for (const f of fetched) {
    if (!f) continue;
    const fields = parseHeaders(f.body);
    const routing = ctx.o.route({ body: f.body, fields, uidl: f.m.uidl });
    const group = groups.get(routing.folder) ?? [];
    groups.set(routing.folder, group);
    group.push({
      m: f.m,
      ...(ctx.rec.detailed ? { shown: { subject: decodedHeader(fields, 'subject'), from: decodedHeader(fields, 'from') } } : {}),
      begin: {
        uidl: f.m.uidl,
        size: f.body.length,
        sha256: sha256Hex(f.body),
        headerHash: headerHash(f.body),
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
      req: { body: f.body, flags: routing.flags, ...(routing.internalDate ? { internalDate: routing.internalDate } : {}) },
    });
  }
  return groups;
}

/** Route, journal the intent, append, journal each outcome: one fetched batch. */
export async function storeBatch(ctx: RunContext, sink: ImapSink, fetched: Fetched): Promise<void> {
  const { journal, account } = ctx.o;
  const { rec } = ctx;
  for (const [folder, items] of route(ctx, fetched)) {
    const status = await openFolder(ctx, sink, folder);
    for (const it of items) {
      it.begin.destUidValidity = status.uidValidity;
      it.begin.destUidNext = status.floor;
    }
    journal.beginAppend(account, items.map((it) => it.begin));
    await ctx.on('imap', sink.appendBatch(
      folder,
      items.map((it) => it.req),
      (i, outcome) => {
        const it = items[i]!;
        if (outcome.ok) {
          journal.confirm(account, it.m.uidl, { destUidValidity: outcome.uidValidity ?? status.uidValidity, destUid: outcome.uid });
          if (outcome.uid !== null) status.floor = Math.max(status.floor, outcome.uid + 1);
          rec.result.copied++;
          rec.result.copiedBytes += it.begin.size;
          ctx.settledThisPass++;
          ctx.emit({ type: 'message', uidl: it.m.uidl, bytes: it.begin.size, outcome: 'copied' });
          rec.record(it.m.uidl, rec.routed(it, 'copied', null, null));
        } else {
          const serverResponse = outcome.error.context.serverResponse ?? null;
          journal.fail(account, it.m.uidl, outcome.error.message);
          ctx.settledThisPass++;
          rec.fail(it.m, folder, outcome.error.message, serverResponse);
          rec.record(it.m.uidl, rec.routed(it, 'failed', outcome.error.message, serverResponse));
        }
      },
    ));
  }
}
