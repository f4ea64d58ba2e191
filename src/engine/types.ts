/** Data the engine hands to reports and the CLI. Plain and serialisable (JSON report). */
import type { Provenance } from '../journal/types.js';

/**
 * What one run did with one listed message, for `--report`. Kept only when asked for
 * (EngineOptions.detail): a 100k-message mailbox would otherwise cost a row each every run.
 */
export interface MessageDetail {
  n: number;
  uidl: string;
  /** LIST size (what the size rule and plans judge), or the bytes copied once known. */
  size: number;
  outcome: 'copied' | 'already-copied' | 'failed' | 'skipped-by-rule';
  folder: string | null;
  /** How the copy was (or would have been) made; null when the message was never routed. */
  provenance: Provenance | null;
  subject: string | null;
  from: string | null;
  messageId: string | null;
  reason: string | null;
  serverResponse: string | null;
}

export interface MessageFailure {
  uidl: string;
  /** POP3 message number in this session, for humans. */
  n: number | null;
  size: number;
  folder: string | null;
  reason: string;
  /** The server's words, verbatim, when a server refused. */
  serverResponse: string | null;
}

/**
 * A copy that was not as the journal records it when popsync looked, just before deleting its
 * original. The original was kept; 'missing' ones are copied again by the next run.
 */
export interface CopyProblem {
  uidl: string;
  folder: string | null;
  uid: number | null;
  /** missing: proven gone; differs: not the bytes copied; unknown: popsync cannot look it up. */
  problem: 'missing' | 'differs' | 'unknown';
  /** What was found and, for 'differs', the server setting that likely did it. */
  detail: string;
}

/**
 * Every field is set from the run's first moment (recorder.ts), so readers never guess a
 * default; only `messages` is optional, because it exists only for `--report`.
 */
export interface RunResult {
  command: 'migrate' | 'sync';
  /** Source account, "user@host:port" (never a password). */
  source: string;
  destination: string;
  /** Messages the POP3 server listed. */
  listed: number;
  listedBytes: number;
  /** Copied by this run. */
  copied: number;
  copiedBytes: number;
  /** Already in the destination according to the journal before this run. */
  alreadyCopied: number;
  /** Rows left 'appending' by an earlier run whose copy was found in the destination. */
  reconciled: number;
  /**
   * Copies found in the destination that this journal did not know of (a lost, new or second
   * journal; another tool's partial run): recorded as copied, not copied again.
   */
  adopted: number;
  failed: MessageFailure[];
  reconnects: number;
  startedAt: string;
  durationMs: number;
  /** Listed messages the journal had never seen (before any copy). */
  newMessages: number;
  /** How messages were identified: by UIDL, or by header hash when the server has no UIDL. */
  identity: 'uidl' | 'header-hash';
  /** Messages recognised under a new UIDL (the server changed its UIDL scheme): not copied again. */
  recognised: number;
  /** UIDLs the server reused for a different message than the one copied under them. */
  reusedUidls: string[];
  /** Removed from the source by this run (QUIT confirmed). */
  deleted: number;
  /** Copied and listed, kept on the source until --delete-after-days has passed. */
  deletionWaiting: number;
  /** Why deletion was refused this run (--max-delete), or null. */
  deletionRefused: string | null;
  /** Copies found missing or changed just before deleting their originals (kept on the source). */
  copyProblems: CopyProblem[];
  /** Things a human should know that are not failures (no UIDL, windowed source, skipped deletions). */
  warnings: string[];
  /** Not copied because of skip_larger_than: deliberate, so not failures (exit 0). */
  skippedByRule: number;
  /**
   * Why the run wrote over one IMAP connection, one APPEND at a time: the destination refused a
   * second connection for this user (its words; never a secret). Null when it did not.
   */
  oneImapConnection: string | null;
  /** Per listed message, only with EngineOptions.detail (`--report`); the CLI removes it before printing. */
  messages?: MessageDetail[];
}

export type Phase = 'connect-source' | 'connect-destination' | 'listing' | 'reconciling' | 'copying' | 'finishing';

export type ProgressEvent =
  | { type: 'phase'; phase: Phase; detail?: string }
  /**
   * newToJournal: the journal has no row of this mailbox (a first run, or a new, lost or second
   * journal), so it cannot say what the destination already holds; the copier adopts copies it
   * finds there, and the plan line says so before counting them as to copy.
   */
  | { type: 'plan'; toCopy: number; toCopyBytes: number; alreadyCopied: number; newToJournal: boolean }
  /**
   * One message settled. adopted/recognised: found already copied (RunResult.adopted, .recognised),
   * so progress can say so rather than count it as a copy.
   */
  | { type: 'message'; uidl: string; bytes: number; outcome: 'copied' | 'adopted' | 'recognised' | 'failed' }
  | { type: 'reconnect'; side: 'pop3' | 'imap'; attempt: number; delayMs: number; reason: string };

export type ProgressListener = (event: ProgressEvent) => void;
