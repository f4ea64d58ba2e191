/**
 * Journal rows and their states. One row per source message, keyed by (account, uidl).
 *
 *   (no row) --begin--> appending --confirm--> done
 *                          |  ^ \--refuse--> failed --begin--> appending
 *                          |  |
 *                          +--+ begin again (reconcile found no copy: copy it again)
 *
 * 'appending' is written and committed BEFORE the APPEND is sent, with the lower bound of the
 * UID the copy can get (the folder's UIDNEXT). A row still 'appending' at start-up is settled by
 * looking in the destination, never by guessing (engine/reconcile.ts).
 */
export type RowState = 'appending' | 'done' | 'failed';

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
}

/** The source account a journal belongs to: "user@host:port" of the POP3 side. */
export interface JournalBinding {
  source: string;
}

export interface JournalCounts {
  done: number;
  appending: number;
  failed: number;
}
