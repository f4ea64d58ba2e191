/**
 * Journal rows and their states. One row per source message, keyed by (account, uidl).
 *
 *   (no row) --begin--> appending --confirm--> done
 *                          |  ^ \--refuse--> failed --begin--> appending
 *                          |  |
 *                          +--+ begin again (reconcile found no copy: copy it again)
 *
 *   appending --withdraw (its APPEND never handed to the connection)--> (no row), or failed if retried
 *
 *   (no row), failed --adopt (the copy was in the destination before any APPEND)--> done
 *
 *   done --mark--> deleting --QUIT +OK--> deleted
 *    |                \--still listed next run--> done
 *    +--copy proven absent from the destination--> failed (copied again by the next run)
 *
 * 'appending' is written and committed BEFORE the APPEND is sent, with the lower bound of the
 * UID the copy can get (the folder's UIDNEXT). A row still 'appending' at start-up is settled by
 * looking in the destination, never by guessing (engine/reconcile.ts).
 */
export type RowState = 'appending' | 'done' | 'failed' | 'deleting' | 'deleted';

export interface JournalRow {
  account: string;
  uidl: string;
  state: RowState;
  /** Exact byte count retrieved (not the LIST size, which is a hint). */
  size: number;
  sha256: string | null;
  messageId: string | null;
  folder: string | null;
  destUidValidity: bigint | null;
  /** Lower bound of the copy's UID: the folder's UIDNEXT seen before APPEND. */
  destUidNext: number | null;
  destUid: number | null;
  attempts: number;
  lastError: string | null;
  firstSeenAt: string;
  updatedAt: string;
  copiedAt: string | null;
  /** How the copy was made (schema v2); null on rows from older journals. */
  provenance: Provenance | null;
  /** sha256 of the header block without volatile fields (engine/identity.ts); null before v3. */
  headerHash: string | null;
  /**
   * The normalised content fingerprint of the copy (engine/fingerprint.ts), to recognise it
   * after the server rewrote it; null (or absent) on rows from before v5.
   */
  fingerprint?: string | null;
  /** The size the POP3 server's LIST reported, to notice a UIDL reused for another message. */
  listSize: number | null;
  deletedAt: string | null;
  /** When a copied message was first missing from a listing without popsync deleting it. */
  vanishedAt: string | null;
}

/**
 * The few fields a run needs for every journaled message to decide what is new, what moved
 * and what may be deleted; the rest of a row is read only for the messages that need it.
 * (A full row per message costs ~15 µs, most of a no-op sync at 20,000 messages.)
 */
export type JournalIndexRow = Pick<
  JournalRow,
  'uidl' | 'state' | 'size' | 'listSize' | 'headerHash' | 'vanishedAt' | 'copiedAt'
>;

/** Why a copy went where it went and looks how it looks; recorded with the intent to append. */
export interface Provenance {
  flags: string[];
  /** ISO time given as INTERNALDATE, or null when the server chose (copy time). */
  internalDate: string | null;
  /** Where the arrival date came from: 'received', 'date', 'none', ... */
  dateSource: string;
  /** Which seen-policy rule decided \\Seen, or null when no policy applies. */
  seenSource: string | null;
  /** Which folder rule chose the folder, or null for the default. */
  folderRule: string | null;
}

/** What the engine knows just before sending an APPEND. */
export interface BeginAppend {
  uidl: string;
  size: number;
  sha256: string;
  messageId: string | null;
  folder: string;
  destUidValidity: bigint;
  destUidNext: number;
  provenance?: Provenance;
  headerHash?: string | null;
  listSize?: number | null;
  fingerprint?: string | null;
}

/** An APPEND's outcome for one 'appending' row: its copy (UID null when the server named none), or its refusal. */
export type AppendSettlement =
  | { uidl: string; ok: true; destUidValidity: bigint; destUid: number | null }
  | { uidl: string; ok: false; error: string };

/** A copy found in the destination before any APPEND of it was journaled (adoption). */
export type Adopted = BeginAppend & { destUid: number };

/** What the journal knew of a destination folder when a run opened it. */
export interface FolderRecord {
  /** No record before: the journal never copied into this folder. */
  first: boolean;
  /** The UIDVALIDITY recorded before, when the folder's has changed since; else null. */
  replaced: bigint | null;
  /** Copies below this UID predate what this journal knows of the folder (adoption); or null. */
  adoptBelow: number | null;
}

/** The source account a journal belongs to: "user@host:port" of the POP3 side. */
export interface JournalBinding {
  source: string;
}

export interface JournalCounts {
  done: number;
  appending: number;
  failed: number;
  /** Present only when some row is in that state (journals without deletion look as before). */
  deleting?: number;
  deleted?: number;
}
