/** Opening a destination folder for this run: once per connection, checked against the journal. */
import type { FolderStatus, ImapSink } from '../imap/types.js';
import type { OpenFolder, RunContext } from './context.js';

/** Per connection, folders asked for ahead of their first batch (prepareFolder), not yet taken. */
const prepared = new WeakMap<ImapSink, Map<string, Promise<FolderStatus>>>();

/**
 * Asks the destination for `folder` (STATUS, CREATE if missing) now, while the batch that needs
 * it is still being received, instead of a round trip after that batch is in. Only the server is
 * asked: openFolder records what it answered when the batch comes, as it would have anyway. A
 * failure is reported there too, by the batch that needs the folder.
 */
export function prepareFolder(sink: ImapSink, folder: string): void {
  let ahead = prepared.get(sink);
  if (!ahead) {
    ahead = new Map();
    prepared.set(sink, ahead);
  }
  if (ahead.has(folder)) return;
  const asked = sink.ensureFolder(folder);
  // Awaited by openFolder in its turn; until then a rejection must not count as unhandled.
  asked.catch(() => undefined);
  ahead.set(folder, asked);
}

/** The answer prepareFolder asked for on this connection, once; undefined when none was asked. */
function takePrepared(sink: ImapSink, folder: string): Promise<FolderStatus> | undefined {
  const ahead = prepared.get(sink);
  const asked = ahead?.get(folder);
  ahead?.delete(folder);
  return asked;
}

export async function openFolder(ctx: RunContext, sink: ImapSink, folder: string): Promise<OpenFolder> {
  let st = ctx.folders.get(folder);
  if (!st) {
    // A STATUS asked earlier is as good as one asked now: its UIDNEXT is a floor for the copies
    // to come (others' appends only raise it), and its UIDVALIDITY is checked like any other.
    const s = await ctx.on('imap', takePrepared(sink, folder) ?? sink.ensureFolder(folder));
    // A changed UIDVALIDITY is accepted, not a stop: the folder was deleted and recreated, or
    // it is Courier's INBOX, whose UIDVALIDITY changes every second until first written.
    // Rows done under the old value keep their history; rows still 'appending' under it are
    // settled by content (reconciler.ts), and any mail the folder holds is searched for copies
    // before anything is appended (adopter.ts), so nothing is copied twice.
    const known = ctx.o.journal.recordFolder(ctx.o.account, folder, s.uidValidity, {
      uidNext: s.uidNext,
      messages: s.messages ?? null,
    });
    if (known.replaced !== null) warnReplaced(ctx, folder, known.replaced, s.uidValidity);
    st = { ...s, floor: s.uidNext, adoptBelow: known.adoptBelow };
    ctx.folders.set(folder, st);
  }
  return st;
}

/**
 * An APPENDUID names another UIDVALIDITY than the folder had when it was opened: it changed in
 * between (Courier's empty INBOX does, every second, until this very APPEND filled it). The
 * server's answer is where the copy is, so that value is recorded like any change (openFolder),
 * with everything below the copy's UID counted as mail this journal did not make.
 */
export function acceptUidValidity(
  ctx: RunContext,
  folder: string,
  st: OpenFolder,
  uidValidity: bigint,
  copyUid: number,
): void {
  const known = ctx.o.journal.recordFolder(ctx.o.account, folder, uidValidity, { uidNext: copyUid, messages: null });
  if (known.replaced !== null) warnReplaced(ctx, folder, known.replaced, uidValidity);
  st.uidValidity = uidValidity;
  st.adoptBelow = known.adoptBelow;
  st.floor = copyUid;
}

/** Only when copies were made under the old value: an empty folder renumbered loses nothing. */
function warnReplaced(ctx: RunContext, folder: string, was: bigint, now: bigint): void {
  const { journal, account, logger } = ctx.o;
  if (
    journal.doneUidsIn(account, folder, was).size === 0 &&
    journal.copiesWithoutUid(account, folder, was).length === 0
  ) {
    logger.info(
      { folder, was: String(was), now: String(now) },
      'destination folder has a new UIDVALIDITY; no copy was made under the old one',
    );
    return;
  }
  ctx.rec.warn(
    `destination folder "${folder}" was recreated (UIDVALIDITY ${was} is now ${now}): ` +
      'copies made before are no longer tracked by UID; interrupted copies and any mail now in it are ' +
      'recognised by content',
  );
}
