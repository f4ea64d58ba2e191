/** What a caller (the CLI's jobs) hands the engine for one account. */
import {
  DEFAULT_RECONNECT_ATTEMPTS,
  DEFAULT_RECONNECT_BASE_DELAY_MS,
  DEFAULT_RECONNECT_MAX_DELAY_MS,
} from '../defaults.js';
import type { Journal } from '../journal/journal.js';
import type { Logger } from '../log.js';
import type { ImapSink } from '../imap/types.js';
import type { Router } from '../mapping/types.js';
import type { Pop3Session } from '../pop3/types.js';
import type { DeletionPolicy } from './deletion.js';
import type { ThrottleBounds } from './throttle.js';
import type { ProgressListener } from './types.js';

export interface RetryPolicy {
  /** Consecutive failed passes (no message settled in between) before giving up. */
  maxAttempts: number;
  baseDelayMs: number;
  maxDelayMs: number;
}

/** Built from the defaults in ../defaults.ts, the one place every default lives. */
export const DEFAULT_RETRY: RetryPolicy = {
  maxAttempts: DEFAULT_RECONNECT_ATTEMPTS,
  baseDelayMs: DEFAULT_RECONNECT_BASE_DELAY_MS,
  maxDelayMs: DEFAULT_RECONNECT_MAX_DELAY_MS,
};

/**
 * What bounds the uploads of a run: the user's --max-rate and --daily-budget, and what a
 * provider profile publishes (config/providers.ts turns both into this).
 */
export interface UploadLimits {
  /** Average upload bytes per second (rate.ts); null: unbounded. */
  maxRate: number | null;
  /** Bytes in any 24 hours, counted from the journal (budget.ts), and the figure's origin for messages. */
  dailyBudget: { bytes: number; basis: string } | null;
  /** Largest message the destination takes when its CAPABILITY has no APPENDLIMIT; null: unknown. */
  appendLimit: number | null;
  /** The provider's name for messages ("Gmail"), or null. */
  provider: string | null;
  /** How long the run waits when the server asks it to (throttle.ts defaults when absent). */
  throttle?: ThrottleBounds;
}

export interface EngineOptions {
  command: 'migrate' | 'sync';
  /** Journal key of the source mailbox: "user@host" (the port is transport, not identity). */
  account: string;
  /** How reports name the source, e.g. "user@host:port"; defaults to `account`. */
  sourceDisplay?: string;
  destination: string;
  journal: Journal;
  openSource: () => Promise<Pop3Session>;
  openSink: () => Promise<ImapSink>;
  route: Router;
  /**
   * The folder `route` sends every message to, when that is known before any message arrives
   * (mapping/rules.ts onlyFolder): the copier opens it while the first batch is received.
   */
  onlyFolder?: () => string | null;
  logger: Logger;
  progress?: ProgressListener;
  batchMessages?: number;
  batchBytes?: number;
  /**
   * Messages larger than this are spooled to a temporary file (default DEFAULT_SPILL_BYTES),
   * unless they fit in the room their batch has left under `batchBytes` (engine/receiver.ts).
   */
  spillBytes?: number;
  /** Where the spool's private directory is made (default: the system temp dir). */
  spoolDir?: string;
  /** Failed receive attempts before a message is set aside (default 3, at most retry.maxAttempts). */
  setAsideAfter?: number;
  retry?: Partial<RetryPolicy>;
  signal?: AbortSignal;
  sleep?: (ms: number) => Promise<void>;
  /** Connect to IMAP only when there is something to do there (sync's cheap no-op run). */
  lazyDestination?: boolean;
  /** Remove copied messages from the source; absent: the source is never modified. */
  deletion?: DeletionPolicy | null;
  now?: () => Date;
  /** skip_larger_than: messages whose LIST size exceeds this are not fetched nor copied. */
  skipLargerThan?: number | null;
  /** Keep a MessageDetail per listed message in RunResult.messages (`--report`). */
  detail?: boolean;
  /** Rate, daily budget, size limit, throttling bounds; absent: none but the server's own. */
  limits?: UploadLimits;
}
