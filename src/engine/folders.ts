/** Opening a destination folder for this run: once per connection, checked against the journal. */
import type { ImapSink } from '../imap/types.js';
import type { OpenFolder, RunContext } from './context.js';

export async function openFolder(ctx: RunContext, sink: ImapSink, folder: string): Promise<OpenFolder> {
  let st = ctx.folders.get(folder);
  if (!st) {
    const s = await ctx.on('imap', sink.ensureFolder(folder));
    // Throws 'uidvalidity' when the folder was recreated since the journal last saw it.
    ctx.o.journal.recordFolder(ctx.o.account, folder, s.uidValidity);
    st = { ...s, floor: s.uidNext };
    ctx.folders.set(folder, st);
  }
  return st;
}
