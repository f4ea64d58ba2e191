/**
 * The run with its side effects switched off: what `plan` (and `migrate`/`sync --dry-run`)
 * knows about the run that would follow. It takes the steps of a run's first pass (run.ts) in
 * the same order and with the same code, and leaves out each write:
 *
 * - inventory: `listSource` and `identifyListing` (inventory.ts), as the run lists and
 *   identifies (UIDL, or the header fallback without it; reused and renumbered UIDLs); what
 *   identification would write to the journal is applied to an in-memory copy of the rows;
 * - the plan: `planCopy` (plan.ts) over those rows, as the run plans;
 * - routing: the run's own Router, fed the header block from `TOP n 0` where the run would
 *   have it from RETR (bodies are never fetched), and the LIST size where the run has the
 *   received size (equal on every server that counts CRLF, as RFC 1939 asks);
 * - folders: the run opens (and creates) each folder it routes to; here the folder is only
 *   looked up (STATUS), and one that does not exist is reported as "would be created".
 *
 * Left out: APPEND, every journal write (the rows come from a read-only look), DELE, CREATE.
 * An interrupted copy ('appending') is planned as a retry: the run settles it by content
 * first, and either way the message ends up copied once.
 */
import { isPopsyncError } from '../errors.js';
import type { ImapSink } from '../imap/types.js';
import type { JournalRow } from '../journal/types.js';
import type { Logger } from '../log.js';
import { decodedHeader } from '../mapping/decode.js';
import { messageIdOf, parseHeaders } from '../mapping/headers.js';
import type { Router, Routing } from '../mapping/types.js';
import type { Pop3Session } from '../pop3/types.js';
import { withRekeys } from './identity.js';
import { identifyListing, listSource, NO_UIDL_WARNING, readHeads } from './inventory.js';
import { planCopy, type ListedMessage, type Plan } from './plan.js';

/** A message routed from its header block, with what a person needs to recognise it. */
export interface RoutedHead {
  routing: Routing;
  subject: string | null;
  from: string | null;
  messageId: string | null;
}

export interface PreviewOptions {
  /** The journal's rows as they are now, read without writing (empty for a new journal). */
  rows: ReadonlyMap<string, JournalRow>;
  openSource: () => Promise<Pop3Session>;
  /** The run's opener: it resolves the SPECIAL-USE roles the router then reads. */
  openSink: () => Promise<ImapSink>;
  /** The router the run would use. */
  route: Router;
  logger: Logger;
  now: Date;
}

export interface Preview {
  /** Each listed message under its journal key, as the run would key it. */
  listing: ListedMessage[];
  plan: Plan;
  /** The rows as identification would leave them. */
  rows: ReadonlyMap<string, JournalRow>;
  /** By message number, for the messages the run would copy or fail: routed, or why not. */
  routed: ReadonlyMap<number, RoutedHead | { error: string }>;
  /** Folders the run would write to (or wrote to before) that exist already. */
  existingFolders: ReadonlySet<string>;
  /** The destination's capabilities (APPENDLIMIT decides what it would refuse). */
  capabilities: ReadonlySet<string>;
  /** How the run would identify messages. */
  identity: 'uidl' | 'header-hash';
}

export async function previewRun(o: PreviewOptions): Promise<Preview> {
  let source: Pop3Session | null = null;
  let sink: ImapSink | null = null;
  // The destination opens while the source is reached and listed, as a run's does (run.ts):
  // neither waits for the other's round trips (TCP, TLS, greeting, login: several at 30 ms RTT).
  // A failure of the source is still the one reported.
  const sinkOpening = o.openSink();
  sinkOpening.catch(() => undefined);
  try {
    let listed: Awaited<ReturnType<typeof listSource>>;
    try {
      source = await o.openSource();
      listed = await listSource(source);
    } catch (e) {
      // Settled first, so the finally below closes a destination that opened meanwhile.
      sink = await sinkOpening.catch(() => null);
      throw e;
    }
    if (!listed.uidlSupported) o.logger.warn(NO_UIDL_WARNING);
    sink = await sinkOpening;
    // Heads read for identification are kept for routing: no message is asked for twice.
    const heads = new Map<number, Buffer | null>();
    const id = await identifyListing(source, listed, o.rows, { now: o.now, seen: (n, h) => heads.set(n, h) });
    const rows = withRekeys(o.rows, id.rekeys);
    const plan = planCopy(id.listing, rows);
    const wanted = [...plan.copy, ...plan.invalid].sort((a, b) => a.n - b.n);
    // Only the messages the run would copy or fail are routed (as only those would be fetched).
    const keep = new Set(wanted.map((m) => m.n));
    for (const n of heads.keys()) if (!keep.has(n)) heads.delete(n);
    const started = Date.now();
    await readHeads(
      source,
      wanted.map((m) => m.n).filter((n) => !heads.has(n)),
      (n, h) => heads.set(n, h),
    );
    o.logger.info({ messages: wanted.length, ms: Date.now() - started }, 'read headers with TOP n 0');
    source.leave();
    source = null;

    const routed = new Map<number, RoutedHead | { error: string }>();
    for (const m of wanted) routed.set(m.n, routeHead(o.route, m, heads.get(m.n) ?? null));
    heads.clear();
    const folders = new Set<string>();
    for (const r of routed.values()) if (!('error' in r)) folders.add(r.routing.folder);
    for (const m of plan.skip) {
      const f = rows.get(m.uidl)?.folder;
      if (f) folders.add(f);
    }
    return {
      listing: id.listing,
      plan,
      rows,
      routed,
      existingFolders: await existing(sink, folders),
      capabilities: new Set(sink.capabilities),
      identity: listed.uidlSupported ? 'uidl' : 'header-hash',
    };
  } finally {
    source?.destroy();
    await sink?.close().catch(() => undefined);
  }
}

function routeHead(route: Router, m: ListedMessage, head: Buffer | null): RoutedHead | { error: string } {
  if (head === null) return { error: 'the POP3 server refused TOP for this message, so its headers could not be read' };
  const fields = parseHeaders(head);
  return {
    routing: route({ fields, size: m.size, uidl: m.uidl }),
    subject: decodedHeader(fields, 'subject'),
    from: decodedHeader(fields, 'from'),
    messageId: messageIdOf(fields),
  };
}

/** The run creates a missing folder; here STATUS's refusal is that answer, not a failure. */
async function existing(sink: ImapSink, folders: ReadonlySet<string>): Promise<Set<string>> {
  const out = new Set<string>();
  for (const f of folders) {
    try {
      await sink.status(f);
      out.add(f);
    } catch (e) {
      if (!(isPopsyncError(e) && e.kind === 'server')) throw e;
    }
  }
  return out;
}
