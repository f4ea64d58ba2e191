/**
 * What the source holds and which journal row each message is: LIST and UIDL (or the header
 * fallback without UIDL), identification beyond the UIDL (identity.ts), and settling rows an
 * interrupted deletion left 'deleting'. Everything here reads the source; nothing modifies it.
 *
 * `listSource` and `identifyListing` read only, and are the whole inventory step of both the
 * run (the Inventory below, which then writes what identification changed) and the dry run
 * (preview.ts, which applies it to its in-memory copy of the rows): `plan` cannot list or
 * identify differently from `migrate`.
 */
import { isPopsyncError } from '../errors.js';
import type { JournalIndexRow } from '../journal/types.js';
import type { Pop3Session } from '../pop3/types.js';
import type { RunContext } from './context.js';
import { headerHash, identify, needsHeaders, type Identification } from './identity.js';
import { joinListing, type ListedMessage } from './plan.js';

/** TOP commands in flight at once: pipelined, but bounded whatever the mailbox holds. */
const TOP_CHUNK = 500;

export const NO_UIDL_WARNING =
  'the POP3 server does not support UIDL: messages are identified by a hash of their headers and their size ' +
  '(identical messages by their order), which costs a TOP per message on every run';

/** The listing of one session; without UIDL (the server answered -ERR) every `uidl` is ''. */
export interface SourceListing {
  listing: ListedMessage[];
  uidlSupported: boolean;
}

/** LIST and UIDL together; a server without UIDL (-ERR) is not an error, it changes the identity. */
export async function listSource(source: Pop3Session): Promise<SourceListing> {
  const [sizes, uidls] = await Promise.all([
    source.list(),
    source.uidl().catch((e: unknown) => {
      if (isPopsyncError(e) && e.kind === 'server') return null;
      throw e;
    }),
  ]);
  if (uidls !== null) return { listing: joinListing(sizes, uidls), uidlSupported: true };
  return { listing: sizes.map((m) => ({ n: m.n, size: m.size, uidl: '' })), uidlSupported: false };
}

/** `TOP n 0`; null when the server refuses TOP for this message (-ERR fails that message only). */
function topHead(source: Pop3Session, n: number): Promise<Buffer | null> {
  return source.top(n, 0).catch((e: unknown) => {
    if (isPopsyncError(e) && e.kind === 'server') return null;
    throw e;
  });
}

/** Header hash from TOP n 0; null when the server refuses TOP for this message. */
export async function topHash(source: Pop3Session, n: number): Promise<string | null> {
  const head = await topHead(source, n);
  return head === null ? null : headerHash(head);
}

/**
 * `TOP n 0` for each of `ns`, at most TOP_CHUNK in flight (the client pipelines them where the
 * server offers PIPELINING), each head handed to `each` and then let go.
 */
export async function readHeads(
  source: Pop3Session,
  ns: readonly number[],
  each: (n: number, head: Buffer | null) => void,
): Promise<void> {
  for (let i = 0; i < ns.length; i += TOP_CHUNK) {
    const chunk = ns.slice(i, i + TOP_CHUNK);
    const heads = await Promise.all(chunk.map((n) => topHead(source, n)));
    for (const [k, n] of chunk.entries()) each(n, heads[k] ?? null);
  }
}

/**
 * Which journal row each listed message is (identity.ts), reading the headers of the messages
 * that need it. Writes nothing: the caller applies the result. `seen` receives each head read,
 * for a caller that routes from them (the dry run) instead of asking the server twice.
 */
export async function identifyListing(
  source: Pop3Session,
  listed: SourceListing,
  rows: ReadonlyMap<string, JournalIndexRow>,
  o: { now: Date; seen?: (n: number, head: Buffer | null) => void },
): Promise<Identification> {
  const hashes = new Map<number, string>();
  await readHeads(source, needsHeaders(listed.listing, rows, listed.uidlSupported), (n, head) => {
    o.seen?.(n, head);
    if (head !== null) hashes.set(n, headerHash(head));
  });
  return identify(listed.listing, rows, hashes, { uidlSupported: listed.uidlSupported, now: o.now });
}

export class Inventory {
  private uidlSupported = true;
  /** Copied rows found missing from the listing for the first time, over the whole run. */
  vanished = 0;

  constructor(private readonly ctx: RunContext) {}

  /** The source's listing; the first time it turns out to have no UIDL, the run says so once. */
  async list(source: Pop3Session): Promise<ListedMessage[]> {
    const listed = await listSource(source);
    if (!listed.uidlSupported && this.uidlSupported) {
      this.uidlSupported = false;
      this.ctx.rec.result.identity = 'header-hash';
      this.ctx.rec.warn(NO_UIDL_WARNING);
    }
    return listed.listing;
  }

  /**
   * Matches the listing to journal rows (identity.ts) and writes what that changes. Returns the
   * rows it read (or was given, read since the last journal write) when it wrote nothing (still
   * current), else null.
   */
  async identify(
    source: Pop3Session,
    listing: ListedMessage[],
    read?: Map<string, JournalIndexRow>,
  ): Promise<Map<string, JournalIndexRow> | null> {
    const { ctx } = this;
    const { journal, account, logger } = ctx.o;
    const rows = read ?? journal.indexByUidl(account);
    const id = await ctx.on(
      'pop3',
      identifyListing(source, { listing, uidlSupported: this.uidlSupported }, rows, { now: ctx.now() }),
    );
    journal.rekey(account, id.rekeys);
    journal.setListSizes(account, id.listSizes);
    journal.markVanished(account, id.vanished);
    for (const uidl of id.reused)
      logger.warn(
        { account, uidl },
        'the server reused this UIDL for a different message; the old row was moved aside and the new ' +
          'message is copied',
      );
    for (const uidl of id.reappeared)
      ctx.rec.warn(
        `UIDL ${uidl}: recorded deleted from the source, but listed again with the headers and size of the ` +
          'message copied (a listing that hid it after a deletion the server never confirmed): its copy ' +
          'stands, so it is not copied again, and it stays on the source',
      );
    if (id.recognised > 0) logger.info({ account, recognised: id.recognised }, 'messages recognised under new UIDLs');
    const result = ctx.rec.result;
    result.recognised += id.recognised;
    result.reusedUidls.push(...id.reused);
    this.vanished += id.vanished.length;
    ctx.listing = id.listing;
    return id.rekeys.length + id.listSizes.length + id.vanished.length === 0 ? rows : null;
  }

  /**
   * Rows an interrupted deletion left 'deleting': still listed means the server removed
   * nothing (no QUIT +OK), so they are 'done' again; gone means the QUIT did happen.
   */
  settleDeleting(): boolean {
    const { journal, account, logger } = this.ctx.o;
    const rows = journal.rowsInState(account, 'deleting');
    if (rows.length === 0) return false;
    const listed = new Set(this.ctx.listing.map((m) => m.uidl));
    const kept = rows.filter((r) => listed.has(r.uidl)).map((r) => r.uidl);
    const deleted = rows.filter((r) => !listed.has(r.uidl)).map((r) => r.uidl);
    journal.settleDeleting(account, { deleted, kept });
    this.ctx.rec.result.deleted += deleted.length;
    logger.info({ account, deleted: deleted.length, kept: kept.length }, 'settled an interrupted deletion');
    return true;
  }
}
