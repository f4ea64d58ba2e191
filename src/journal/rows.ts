/**
 * The messages table as SQLite hands it back, and its one translation into the JournalRow the
 * engine reads. Shared by the writing side (messages.ts) and the read-only views (readonly.ts),
 * so a column added to the schema is mapped in exactly one place.
 */
import { PopsyncError } from '../errors.js';
import type { JournalRow, RowState } from './types.js';

/** Server error texts can be long; the journal keeps enough to act on. */
export const MAX_ERROR_CHARS = 4_000;

export interface MessageRecord {
  account: string;
  uidl: string;
  state: RowState;
  size: number;
  sha256: string | null;
  message_id: string | null;
  folder: string | null;
  dest_uidvalidity: string | null;
  dest_uidnext: number | null;
  dest_uid: number | null;
  attempts: number;
  last_error: string | null;
  first_seen_at: string;
  updated_at: string;
  copied_at: string | null;
  flags: string | null;
  internal_date: string | null;
  date_source: string | null;
  seen_source: string | null;
  folder_rule: string | null;
  header_hash?: string | null;
  list_size?: number | null;
  deleted_at?: string | null;
  vanished_at?: string | null;
  fingerprint?: string | null;
}

export function toRow(r: MessageRecord): JournalRow {
  return {
    account: r.account,
    uidl: r.uidl,
    state: r.state,
    size: r.size,
    sha256: r.sha256,
    messageId: r.message_id,
    folder: r.folder,
    destUidValidity: r.dest_uidvalidity === null ? null : BigInt(r.dest_uidvalidity),
    destUidNext: r.dest_uidnext,
    destUid: r.dest_uid,
    attempts: r.attempts,
    lastError: r.last_error,
    firstSeenAt: r.first_seen_at,
    updatedAt: r.updated_at,
    copiedAt: r.copied_at,
    provenance:
      r.date_source == null
        ? null
        : {
            flags: r.flags === null ? [] : (JSON.parse(r.flags) as string[]),
            internalDate: r.internal_date,
            dateSource: r.date_source,
            seenSource: r.seen_source,
            folderRule: r.folder_rule,
          },
    headerHash: r.header_hash ?? null,
    fingerprint: r.fingerprint ?? null,
    listSize: r.list_size ?? null,
    deletedAt: r.deleted_at ?? null,
    vanishedAt: r.vanished_at ?? null,
  };
}

export function checkUidValidity(v: bigint, what: string): string {
  if (typeof v !== 'bigint' || v < 0n)
    throw new PopsyncError('internal', `${what}: UIDVALIDITY must be a non-negative bigint, got ${String(v)}`);
  return v.toString();
}

export function checkCount(n: number, what: string, min: number): void {
  if (!Number.isSafeInteger(n) || n < min)
    throw new PopsyncError('internal', `${what} must be an integer >= ${min}, got ${String(n)}`);
}
