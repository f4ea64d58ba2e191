/**
 * popsync's own POP3 client. We do not use an npm POP3 client because every one we tried returns
 * wrong bytes: none undoes dot-stuffing, and node-pop3 hangs when the terminator is split across
 * packets. Import from here, not from the files behind it.
 */

export { connectPop3, DEFAULT_CONNECT_TIMEOUT_MS, DEFAULT_TIMEOUT_MS, PIPELINE_WINDOW } from './client.js';
export { isOverCeiling, messageCeiling } from './limits.js';
export { ResponseDecoder, parseStatusLine, type FrameEvent, type StatusLine } from './framing.js';
export type {
  Pop3AuthMethod,
  Pop3Options,
  Pop3Session,
  Pop3SizeEntry,
  Pop3Stat,
  Pop3UidlEntry,
} from './types.js';
