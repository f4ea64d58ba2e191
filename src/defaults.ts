/**
 * Every default a user can change, in one place: the CLI's option defaults, the config's
 * built-in values, the engine and the protocol clients all read them from here, so `--help`,
 * the README and what a run does cannot drift apart. A neutral root file (like errors.ts) so
 * the protocol clients can read it without importing anything above them.
 */

/** Where copies go when neither a rule nor --folder says otherwise. */
export const DEFAULT_FOLDER = 'INBOX';
/** Copies keep the source's date as their INTERNALDATE (arrival_date / --no-arrival-date). */
export const DEFAULT_ARRIVAL_DATE = true;

/**
 * A batch is received whole before it is appended: these two caps bound the memory it takes,
 * counted on the bytes that arrived (never on LIST sizes, which a server may understate). Three
 * byte caps may be held at once (DEFAULT_APPEND_WINDOW batches being appended, the rest received
 * ahead: engine/receive-ahead.ts), so 10 MB keeps bodies within the 32 MB that two batches of
 * 16 MB held before the window. The
 * count matches one MULTIAPPEND (imap/append-plan.ts): each batch costs one fsynced journal
 * step and one server transaction, and on small mail 50 a batch made those the run's pace.
 */
export const DEFAULT_BATCH_MESSAGES = 100;
export const DEFAULT_BATCH_MB = 10;
export const DEFAULT_BATCH_BYTES = DEFAULT_BATCH_MB * 1024 * 1024;
/**
 * Batches outstanding at once on the APPEND connection (engine/copier.ts): the next is journaled
 * and written while the last one's replies are awaited, so the connection does not idle for a
 * round trip per batch. Not a user option: it multiplies the memory the batch caps bound (one
 * more cap's worth is received ahead, engine/receive-ahead.ts), and an interrupt finishes the
 * batches outstanding (app/interrupt.ts says how many).
 */
export const DEFAULT_APPEND_WINDOW = 2;
/**
 * `--append-connections` at most: each is one more IMAP login of the account, and servers cap
 * those (Dovecot's default: 10 per user and address, Gmail: 15 per mailbox).
 */
export const MAX_APPEND_CONNECTIONS = 16;
/**
 * A message larger than this goes through a temporary file instead of memory (engine/spool.ts),
 * unless it fits in the room its batch has left under the byte cap (engine/receiver.ts).
 */
export const DEFAULT_SPILL_BYTES = 4 * 1024 * 1024;
/** Failed attempts to receive one message in a run before it is set aside (engine/receiver.ts). */
export const DEFAULT_SET_ASIDE_AFTER = 3;

/** Network inactivity timeout (--timeout, timeout:), for POP3 and IMAP replies alike. */
export const DEFAULT_TIMEOUT_SECONDS = 60;
export const DEFAULT_TIMEOUT_MS = DEFAULT_TIMEOUT_SECONDS * 1000;
/** Connecting and the greeting, on either side, when no --timeout was given. */
export const DEFAULT_CONNECT_TIMEOUT_MS = 30_000;
/** imapflow's socket inactivity limit when the caller gave no timeout (the CLI always gives one). */
export const DEFAULT_IMAP_SOCKET_TIMEOUT_MS = 5 * 60_000;

/** Consecutive failed passes (no message settled in between) before a run gives up (--reconnect-attempts). */
export const DEFAULT_RECONNECT_ATTEMPTS = 5;
/** Backoff between reconnects: doubling from the base, never above the max. */
export const DEFAULT_RECONNECT_BASE_DELAY_MS = 1000;
export const DEFAULT_RECONNECT_MAX_DELAY_MS = 30_000;

/**
 * RETRs the receiver keeps written ahead of the message it reads (engine/retr-ahead.ts): a
 * batch's count (DEFAULT_BATCH_MESSAGES) always, and up to this many where the measured round
 * trip needs them, while the LIST sizes of those ahead stay within RETRS_AHEAD_LIST_BYTES. A
 * batch's worth held small mail to one batch per round trip, 100 messages (3,300 a second at
 * 30 ms, where popsync copies about 10,000 a second on loopback): of 2,500 small messages at 30 ms
 * the POP3 server ran out of commands 27-32 times, 6-11 with these. Below the POP3 window (512
 * commands, pop3/client.ts): one write.
 */
export const RETRS_AHEAD_MAX = 400;
/**
 * The LIST bytes those beyond a batch's count may ask for. At 1 MiB mail of a few tens of KB kept
 * only a batch's count ahead, so a typical mailbox at 30 ms came 100 messages per round trip and
 * popsync idled between them. What they ask for is not what popsync holds: replies wait in the
 * socket and the server beyond the session's read-ahead (pop3/retr-body.ts), so this bounds only
 * the server's work in flight. 16 MiB covers 30 ms at about 400 MB/s, above popsync's rate.
 */
export const RETRS_AHEAD_LIST_BYTES = 16 * 1024 * 1024;
/**
 * The most small messages a second popsync receives (about 10,000 on loopback): RETRs ahead cover
 * a round trip at this rate, so RETRS_AHEAD_MAX at 30 ms and a batch's count below 7.5 ms.
 */
export const RETRS_AHEAD_RATE = 10_000;
