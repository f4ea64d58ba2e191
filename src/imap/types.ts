import type { Logger } from '../log.js';
import type { PopsyncError } from '../errors.js';
import type { TlsMode } from '../tls.js';

/** How to log in (login.ts): 'auto' picks from what the server offers and the secret given. */
export type ImapAuthMethod = 'auto' | 'plain' | 'login' | 'xoauth2' | 'oauthbearer';

export interface ImapOptions {
  host: string;
  port: number;
  tls: TlsMode;
  user: string;
  /** Unused ('') when `accessToken` is given. */
  password: string;
  /**
   * Called once per login (each of the sink's connections, each reconnect) for a fresh OAuth2
   * access token; the login is then XOAUTH2 or OAUTHBEARER and `password` is not used.
   */
  accessToken?: () => Promise<string>;
  /** Admin login: authenticate as this user with `password`, on behalf of `user` (SASL PLAIN authzid). */
  adminUser?: string;
  auth?: ImapAuthMethod;
  ca?: Array<string | Buffer>;
  rejectUnauthorized?: boolean;
  timeoutMs?: number;
  logger?: Logger;
  /**
   * How appendBatch sends: 'auto' (default) uses a second connection of our own (pipeline.ts)
   * when the server offers LITERAL+, LITERAL- or MULTIAPPEND, else one at a time through imapflow.
   * 'imapflow' and 'pipelined' force a path (tests); 'pipelined' fails if the server cannot.
   */
  appendPath?: 'auto' | 'pipelined' | 'imapflow';
  /**
   * Pipelined APPEND connections at most (default 1): a further one is opened when a further
   * folder is appended to, and each folder stays on one (append-pool.ts).
   */
  appendConnections?: number;
  /**
   * Shared by the sinks of one run (reconnects open new ones): the first sink whose APPEND
   * connection the server turned away while it let imapflow's session in sets `reason` (the
   * server's words), and the sinks after it open imapflow's session alone without asking again.
   * Decided once: the answer is the server's per-user limit, not a passing state.
   * `loginNo` is set when the server said so with a NO to the login that imapflow-adapter.ts
   * reads as refused credentials: that NO's response code ('' for none). A login after a logout
   * (writer.ts loginAlone) refused with a NO worded otherwise is taken for what it says, a wrong
   * password, and not tried again.
   */
  oneConnection?: { reason: string | null; loginNo?: string };
}

export interface FolderStatus {
  /** The folder as the user named it: UTF-8, '/' separates levels. */
  path: string;
  uidValidity: bigint;
  uidNext: number;
  /** How many messages it holds (STATUS MESSAGES); absent when the sink cannot tell. */
  messages?: number;
}

/**
 * A message kept in a file because it is too large to hold in memory (engine/spool.ts). Only
 * our own APPEND connection (pipeline.ts) can send it: imapflow takes a Buffer.
 */
export interface FileBody {
  file: string;
  size: number;
  /** Whether it holds a NUL byte (then a binary literal where the server offers BINARY). */
  hasNul: boolean;
}

/**
 * A message in memory as the pieces it arrived in (engine/received.ts): joining them into one
 * Buffer copied every byte of it (150 MB of a 260 MB copy) only to be cut up again for writing.
 */
export interface ChunkedBody {
  chunks: readonly Buffer[];
  /** Their total length. */
  size: number;
  hasNul: boolean;
}

export interface AppendRequest {
  body: Buffer | ChunkedBody | FileBody;
  flags: string[];
  internalDate?: Date;
}

export type AppendOutcome =
  | { ok: true; uid: number | null; uidValidity: bigint | null }
  | { ok: false; error: PopsyncError };

export interface DestinationMessage {
  uid: number;
  size: number;
  messageId: string | null;
}

/** One stored message as a batched `UID FETCH (UID RFC822.SIZE BODY.PEEK[HEADER])` returns it. */
export interface StoredHeader {
  uid: number;
  size: number;
  /** The header block as stored, including the empty line that ends it. */
  header: Buffer;
}

/** Receives a message's stored bytes piece by piece (readBodies). */
export interface BodyReader {
  chunk(uid: number, bytes: Buffer): void;
  /** After the last piece of `uid`; not called for a UID the folder does not hold. */
  end(uid: number): void;
}

/**
 * The destination, as the engine sees it. Folder paths are UTF-8 with '/' between levels;
 * the sink maps them to the server's delimiter, namespace prefix and modified UTF-7.
 *
 * appendBatch takes many messages for one folder so that a faster path (MULTIAPPEND,
 * pipelined LITERAL+) can replace the one-at-a-time imapflow path without touching the
 * engine. A refusal of one message (NO, too big) is an outcome with ok:false; a lost
 * connection throws PopsyncError('connection') and the outcomes of unsent items are unknown.
 */
export interface ImapSink {
  readonly capabilities: ReadonlySet<string>;
  /** Creates (and subscribes) the folder and its parents when missing. */
  ensureFolder(path: string): Promise<FolderStatus>;
  status(path: string): Promise<FolderStatus>;
  appendBatch(
    path: string,
    items: AppendRequest[],
    onOutcome?: (index: number, outcome: AppendOutcome) => void,
  ): Promise<AppendOutcome[]>;
  /**
   * Messages with UID >= sinceUid (and < belowUid when given), for reconciling appends whose
   * outcome was not recorded and for adopting copies made before the journal knew the folder.
   */
  listSince(path: string, sinceUid: number, belowUid?: number): Promise<DestinationMessage[]>;
  fetchBody(path: string, uid: number): Promise<Buffer>;
  /**
   * UID, RFC822.SIZE and header block of the messages `which` names (these UIDs, or every UID
   * from `since` on), in a few batched FETCHes, each handed to `each` as it arrives and then
   * dropped: a folder of any size costs one header in memory. A UID the folder does not hold is
   * simply not reported. Resolves to the UIDVALIDITY those UIDs belong to, or null when the
   * folder does not exist (nothing is created).
   */
  scanHeaders(
    path: string,
    which: { uids: readonly number[] } | { since: number },
    each: (m: StoredHeader) => void,
  ): Promise<{ uidValidity: bigint } | null>;
  /**
   * The exact stored bytes (BODY.PEEK[], \Seen untouched) of each UID, streamed into `reader`:
   * small messages batched in one FETCH, large ones in partial FETCHes, so memory never holds
   * more than one piece (at most ~4 MiB). `size` is the expected RFC822.SIZE, used to batch.
   */
  readBodies(path: string, uids: ReadonlyArray<{ uid: number; size: number }>, reader: BodyReader): Promise<void>;
  /**
   * SPECIAL-USE role ('\Archive', '\Sent' ...) -> folder path ('/' between levels), from one
   * LIST; optional so fakes need not implement it. Rule targets like `\Junk` resolve through it.
   */
  specialUse?(): Promise<Map<string, string>>;
  /**
   * Messages sent per APPEND path so far (`multiappend`: those of pipelined or streamed that
   * went in a MULTIAPPEND of two or more); for tests and diagnostics.
   */
  readonly appendCounts?: {
    readonly pipelined: number;
    readonly imapflow: number;
    readonly streamed?: number;
    readonly multiappend?: number;
  };
  /**
   * Why this sink writes over imapflow's session alone though the server offers a faster path:
   * it refused a second IMAP connection for this user (its words, never a secret); else null.
   */
  readonly oneConnection?: string | null;
  close(): Promise<void>;
}
