/**
 * Journal rows for a listing whose every message is copied ('done' into INBOX, UID = message
 * number), as the deleter finds them: the deleter tests build their sources on it.
 */
import { headerHash } from '../../src/engine/identity.js';
import type { JournalRow } from '../../src/journal/types.js';

/** The header block message `n` of a deleter test has; its hash is the copied row's. */
export const head = (n: number): Buffer => Buffer.from(`Subject: ${n}\r\nMessage-ID: <${n}@x>\r\n\r\n`);

/** One 'done' row per listed message, keyed by its UIDL. */
export function copiedRows(listing: ReadonlyArray<{ n: number; uidl: string }>): Map<string, JournalRow> {
  return new Map(
    listing.map((m): [string, JournalRow] => [
      m.uidl,
      {
        uidl: m.uidl,
        state: 'done',
        copiedAt: '2030-01-01T00:00:00.000Z',
        headerHash: headerHash(head(m.n)),
        folder: 'INBOX',
        destUidValidity: 1n,
        destUid: m.n,
      } as JournalRow,
    ]),
  );
}
