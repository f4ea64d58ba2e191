/**
 * What the source holds and which journal row each message is: LIST and UIDL (or the header
 * fallback without UIDL), identification beyond the UIDL (identity.ts), and settling rows an
 * interrupted deletion left 'deleting'. Everything here reads the source; nothing modifies it.
 */
import { isPopsyncError } from '../errors.js';
import type { JournalIndexRow } from '../journal/types.js';
import type { Pop3Session } from '../pop3/types.js';
import type { RunContext } from './context.js';
import { headerHash, identify, needsHeaders } from './identity.js';
import { joinListing, type ListedMessage } from './plan.js';

/** Header hash from TOP n 0; null when the server refuses TOP for this message. */
export function topHash(source: Pop3Session, n: number): Promise<string | null> {
  return source.top(n, 0).then(headerHash, (e: unknown) => {
    if (isPopsyncError(e) && e.kind === 'server') return null;
    throw e;
  });
}

export class Inventory {
  private uidlSupported = true;
  /** Copied rows found missing from the listing for the first time, over the whole run. */
  vanished = 0;

  constructor(private readonly ctx: RunContext) {}

  /** LIST and UIDL together; a server without UIDL (-ERR) is not an error, it changes the identity. */
  async list(source: Pop3Session): Promise<ListedMessage[]> {
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
      this.ctx.rec.result.identity = 'header-hash';
      this.ctx.rec.warn(
        'the POP3 server does not support UIDL: messages are identified by a hash of their headers and their ' +
          'size (identical messages by their order), which costs a TOP per message on every run',
      );
    }
    return sizes.map((m) => ({ n: m.n, size: m.size, uidl: '' }));
  }

  /**
   * Matches the listing to journal rows (identity.ts) and writes what that changes. Returns the
   * rows it read when it wrote nothing (still current), else null.
   */
  async identify(source: Pop3Session, listing: ListedMessage[]): Promise<Map<string, JournalIndexRow> | null> {
    const { ctx } = this;
    const { journal, account, logger } = ctx.o;
    const rows = journal.indexByUidl(account);
    const need = needsHeaders(listing, rows, this.uidlSupported);
    const hashes = new Map<number, string>();
    if (need.length > 0) {
      const tops = await ctx.on('pop3', Promise.all(need.map((n) => topHash(source, n))));
      need.forEach((n, i) => {
        const h = tops[i];
        if (h !== null && h !== undefined) hashes.set(n, h);
      });
    }
    const id = identify(listing, rows, hashes, { uidlSupported: this.uidlSupported, now: ctx.now() });
    journal.rekey(account, id.rekeys);
    journal.setListSizes(account, id.listSizes);
    journal.markVanished(account, id.vanished);
    for (const uidl of id.reused)
      logger.warn(
        { account, uidl },
        'the server reused this UIDL for a different message; the old row was moved aside and the new ' +
          'message is copied',
      );
    if (id.recognised > 0) logger.info({ account, recognised: id.recognised }, 'messages recognised under new UIDLs');
    const result = ctx.rec.result;
    result.recognised = (result.recognised ?? 0) + id.recognised;
    result.reusedUidls!.push(...id.reused);
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
    this.ctx.rec.result.deleted! += deleted.length;
    logger.info({ account, deleted: deleted.length, kept: kept.length }, 'settled an interrupted deletion');
    return true;
  }
}
