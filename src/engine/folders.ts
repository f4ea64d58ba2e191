/** Opening a destination folder for this run: once per connection, checked against the journal. */
import type { ImapSink } from '../imap/types.js';
import type { OpenFolder, RunContext } from './context.js';

export async function openFolder(ctx: RunContext, sink: ImapSink, folder: string): Promise<OpenFolder> {
  let st = ctx.folders.get(folder);
  if (!st) {
    const s = await ctx.on('imap', sink.ensureFolder(folder));
    // A changed UIDVALIDITY is accepted, not a stop: the folder was deleted and recreated, or
    // it is Courier's INBOX, whose UIDVALIDITY changes every second until first written.
    // Rows done under the old value keep their history; rows still 'appending' under it are
    // settled by content (reconciler.ts), and any mail the folder holds is searched for copies
    // before anything is appended (adopter.ts), so nothing is copied twice.
    const known = ctx.o.journal.recordFolder(ctx.o.account, folder, s.uidValidity, { uidNext: s.uidNext, messages: s.messages ?? null });
    if (known.replaced !== null) {
      ctx.rec.warn(
        `destination folder "${folder}" was recreated (UIDVALIDITY ${known.replaced} is now ${s.uidValidity}): ` +
          'copies made before are no longer tracked by UID; interrupted copies and any mail now in it are recognised by content',
      );
    }
    st = { ...s, floor: s.uidNext, adoptBelow: known.adoptBelow };
    ctx.folders.set(folder, st);
  }
  return st;
}
