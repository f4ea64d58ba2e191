/**
 * A provider's folders that must never receive copies (Gmail: `[Gmail]/All Mail`, whatever
 * the account's language calls it). Literal names in the config are refused before the run
 * (config/providers.ts); this guard catches the rest on the connection itself: a template
 * that renders to such a name, and the folder the server marks with a refused SPECIAL-USE
 * role (`\All`), asked of the server once per connection. Nothing is created or appended there.
 */
import { PopsyncError } from '../errors.js';
import type { ImapSink } from '../imap/types.js';

export interface FolderGuard {
  /** Folder names refused, compared without case. */
  names: readonly string[];
  /** SPECIAL-USE roles whose folder is refused. */
  roles: readonly string[];
  /** The error's words: which provider, and why. */
  refusal(folder: string): string;
}

export function guardingFolders(guard: FolderGuard, openSink: () => Promise<ImapSink>): () => Promise<ImapSink> {
  return async () => {
    const sink = await openSink();
    const refused = new Set(guard.names.map((n) => n.toLowerCase()));
    if (guard.roles.length > 0 && sink.specialUse) {
      try {
        const byRole = await sink.specialUse();
        for (const r of guard.roles) {
          const path = byRole.get(r);
          if (path !== undefined) refused.add(path.toLowerCase());
        }
      } catch (e) {
        await sink.close().catch(() => undefined);
        throw e;
      }
    }
    const check = (path: string) => {
      if (refused.has(path.toLowerCase()))
        throw new PopsyncError('config', guard.refusal(path), { folder: path, hint: 'route these messages elsewhere' });
    };
    // Every call goes to the sink itself (its methods keep their `this`); only the two that
    // could put mail into a folder look at the name first.
    const guarded: ImapSink = {
      get capabilities() {
        return sink.capabilities;
      },
      get appendCounts() {
        return sink.appendCounts;
      },
      get oneConnection() {
        return sink.oneConnection;
      },
      ensureFolder: async (path) => {
        check(path);
        return sink.ensureFolder(path);
      },
      appendBatch: async (path, items, onOutcome) => {
        check(path);
        return sink.appendBatch(path, items, onOutcome);
      },
      status: (path) => sink.status(path),
      listSince: (path, since, below) => sink.listSince(path, since, below),
      fetchBody: (path, uid) => sink.fetchBody(path, uid),
      scanHeaders: (path, which, each) => sink.scanHeaders(path, which, each),
      readBodies: (path, uids, reader) => sink.readBodies(path, uids, reader),
      close: () => sink.close(),
    };
    if (sink.specialUse) guarded.specialUse = () => sink.specialUse!();
    return guarded;
  };
}
