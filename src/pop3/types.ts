import type { RetrBody } from './retr-body.js';
import type { Logger } from '../log.js';

import type { TlsMode } from '../tls.js';

export type Pop3AuthMethod = 'auto' | 'user' | 'apop' | 'plain' | 'login' | 'xoauth2' | 'oauthbearer';

export interface Pop3Options {
  host: string;
  port: number;
  tls: TlsMode;
  user: string;
  /** Unused ('') when `accessToken` is given. */
  password: string;
  /**
   * Called once per login (every connection and reconnect) for a fresh OAuth2 access token; the
   * login is then XOAUTH2 or OAUTHBEARER and `password` is not used.
   */
  accessToken?: () => Promise<string>;
  /** Admin login: authenticate as this user with `password`, on behalf of `user` (SASL PLAIN authzid). */
  adminUser?: string;
  /**
   * 'auto': SASL PLAIN, then LOGIN, then APOP (if greeting has a timestamp), then USER/PASS;
   * with an access token OAUTHBEARER, else XOAUTH2.
   */
  auth?: Pop3AuthMethod;
  /** Extra trusted CAs (PEM). Node's NODE_EXTRA_CA_CERTS keeps working on top of these. */
  ca?: Array<string | Buffer>;
  /** false only when the user explicitly asked for it (--pop-insecure). */
  rejectUnauthorized?: boolean;
  /** Per-read inactivity timeout; every wait for the server is bounded by it. */
  timeoutMs?: number;
  connectTimeoutMs?: number;
  /** Use PIPELINING when CAPA offers it (default true). */
  pipelining?: boolean;
  logger?: Logger;
  /** Aborts a wait for the server's LOGIN-DELAY (SIGINT/SIGTERM). */
  signal?: AbortSignal;
  /** What a connection learnt of the server for the later ones: the same object for every connection of a run. */
  learnt?: Pop3Learnt;
}

/** What one POP3 connection learnt of its server that the run's later connections follow. */
export interface Pop3Learnt {
  /**
   * The server refused a CAPA written ahead of its greeting, hung up on it or left it
   * unanswered in silence (client.ts connectWithCapa): CAPA waits for the greeting.
   */
  capaAfterGreeting?: boolean;
}

export interface Pop3Stat {
  count: number;
  size: number;
}

export interface Pop3SizeEntry {
  n: number;
  size: number;
}

export interface Pop3UidlEntry {
  n: number;
  /** '' when the server's UIDL is not one (see `fault`). */
  uidl: string;
  /**
   * Why the server's UIDL for this message cannot be used: RFC 1939 allows 0x21-0x7E only, and
   * cutting at a space or dropping bytes could make two messages one. A server fault for this
   * message alone.
   */
  fault?: string;
}

/**
 * An authenticated POP3 session in the TRANSACTION state.
 *
 * Every method returns a promise that settles with that command's response. Commands are
 * queued in call order; when the server advertised PIPELINING, queued commands are written
 * without waiting for earlier responses, so `Promise.all(ns.map((n) => s.retr(n)))` is a
 * pipelined burst. Failures are PopsyncError: 'server' for -ERR (with the server's text and
 * RESP-CODE), 'temporary' for [IN-USE]/[LOGIN-DELAY]/[SYS/TEMP], 'connection' for drops and
 * timeouts (after which every pending and later command rejects with 'connection').
 */
export interface Pop3Session {
  readonly greeting: string;
  /** CAPA result: capability name (upper case) -> its arguments. Empty if CAPA unsupported. */
  readonly capabilities: ReadonlyMap<string, string[]>;
  readonly pipelining: boolean;
  /**
   * The least time a command written while nothing else was awaited took to be answered (ms): the
   * link's round trip plus the server's least work, Infinity before any reply. Absent: not measured.
   */
  readonly roundTripMs?: number;
  stat(): Promise<Pop3Stat>;
  list(): Promise<Pop3SizeEntry[]>;
  /** Rejects with kind 'server' when the server has no UIDL. */
  uidl(): Promise<Pop3UidlEntry[]>;
  /** Header block plus `lines` body lines, byte-exact (dot-unstuffed, terminator removed). */
  top(n: number, lines: number): Promise<Buffer>;
  /** The whole message, byte-exact. */
  retr(n: number): Promise<Buffer>;
  /**
   * The whole message as byte-exact chunks, read as they arrive (retr-body.ts); for messages too
   * big to buffer. Reading stops the socket while the reader is behind.
   */
  retrStream(n: number): RetrBody;
  dele(n: number): Promise<void>;
  rset(): Promise<void>;
  noop(): Promise<void>;
  /** QUIT: enters UPDATE; resolves only on +OK, which is when DELEs become real. */
  quit(): Promise<void>;
  /**
   * QUIT for a session that deleted nothing: written, and the connection closed without waiting
   * for the reply, which would only say goodbye (a round trip at the end of every run).
   */
  leave(): void;
  /** Drop the connection without QUIT: the server deletes nothing. */
  destroy(): void;
}
