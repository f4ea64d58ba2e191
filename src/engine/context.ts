/**
 * What the parts of one engine run share. run.ts (the supervisor) owns the connections and the
 * pass loop; inventory, copier, reconciler and deleter each do one job against this context,
 * so none of them holds state the others would have to keep in step with.
 */
import type { FolderStatus, ImapSink } from '../imap/types.js';
import type { EngineOptions } from './options.js';
import type { ListedMessage } from './plan.js';
import type { RunRecorder } from './recorder.js';
import type { ProgressListener } from './types.js';

export type Side = 'pop3' | 'imap';

/**
 * A destination folder as this run knows it: its status, the lowest UID a new copy can get, and
 * (while the journal is adopting copies it did not make there) the UID below which to search.
 */
export type OpenFolder = FolderStatus & { floor: number; adoptBelow: number | null };

export interface RunContext {
  readonly o: EngineOptions;
  readonly rec: RunRecorder;
  /** Per folder, opened once per IMAP connection (cleared on reconnect). */
  readonly folders: Map<string, OpenFolder>;
  /** This pass's listing, each message under its journal key. */
  listing: ListedMessage[];
  /** Messages settled (copied, refused, reconciled) in this pass: progress resets the retry budget. */
  settledThisPass: number;
  /** Per UIDL, the attempts to receive it that ended with a broken connection, in this run. */
  readonly receiveFailures: Map<string, number>;
  now(): Date;
  emit: ProgressListener;
  /** Tags a rejection with the side it came from, for the reconnect message. */
  on<T>(side: Side, p: Promise<T>): Promise<T>;
  connectSink(): Promise<ImapSink>;
  /** Waits as long as --max-rate requires before `bytes` are uploaded (no wait without it). */
  pace(bytes: number): Promise<void>;
  /** Gives back what pace() reserved for `bytes` that will not be uploaded (a withdrawn batch). */
  unpace(bytes: number): void;
  /** Counts a confirmed copy of `bytes` against the daily budget. */
  spent(bytes: number): void;
}
