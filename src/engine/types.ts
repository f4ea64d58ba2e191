/** Data the engine hands to reports and the CLI. Plain and serialisable (JSON report). */

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
  failed: MessageFailure[];
  reconnects: number;
  startedAt: string;
  durationMs: number;
}

export type Phase = 'connect-source' | 'connect-destination' | 'listing' | 'reconciling' | 'copying' | 'finishing';

export type ProgressEvent =
  | { type: 'phase'; phase: Phase; detail?: string }
  | { type: 'plan'; toCopy: number; toCopyBytes: number; alreadyCopied: number }
  | { type: 'message'; uidl: string; bytes: number; outcome: 'copied' | 'failed' }
  | { type: 'reconnect'; side: 'pop3' | 'imap'; attempt: number; delayMs: number; reason: string };

export type ProgressListener = (event: ProgressEvent) => void;
