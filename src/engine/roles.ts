/**
 * SPECIAL-USE targets (`folder: \Junk`) name a role, not a folder: the destination says which
 * folder plays it (RFC 6154 LIST). Resolved once per run, on the first connection, and checked
 * for every role the rules use, so a missing role stops the run before anything is copied
 * instead of failing message by message.
 */
import { PopsyncError } from '../errors.js';
import type { ImapSink } from '../imap/types.js';

export async function resolveRoles(sink: ImapSink, needed: readonly string[]): Promise<Map<string, string>> {
  if (needed.length === 0) return new Map();
  if (!sink.specialUse)
    throw new PopsyncError(
      'config',
      `cannot resolve ${needed.join(', ')}: this destination cannot list SPECIAL-USE folders`,
    );
  const roles = await sink.specialUse();
  const missing = needed.filter((r) => !roles.has(r));
  if (missing.length > 0) {
    throw new PopsyncError('config', `the destination has no folder marked ${missing.join(', ')} (SPECIAL-USE)`, {
      hint: `name a folder instead of ${missing[0]} in the config`,
    });
  }
  return roles;
}

/** Wraps a sink opener so the first connection resolves the roles; `roles()` feeds the router. */
export function resolvingRoles(
  needed: readonly string[],
  openSink: () => Promise<ImapSink>,
): { openSink: () => Promise<ImapSink>; roles: () => ReadonlyMap<string, string> | null } {
  let roles: Map<string, string> | null = null;
  return {
    roles: () => roles,
    openSink: async () => {
      const sink = await openSink();
      if (roles === null) {
        try {
          roles = await resolveRoles(sink, needed);
        } catch (e) {
          await sink.close().catch(() => undefined);
          throw e;
        }
      }
      return sink;
    },
  };
}
