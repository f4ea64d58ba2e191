/**
 * popsync's own POP3 client. We do not use an npm POP3 client because every one we tried returns
 * wrong bytes: none undoes dot-stuffing, and node-pop3 hangs when the terminator is split across
 * packets. Import from here, not from the files behind it.
 */

export { connectPop3, warmPop3 } from './client.js';
export { isOverCeiling, messageCeiling } from './limits.js';
export { RETR_READ_AHEAD_BYTES } from './retr-body.js';
export type { RetrBody } from './retr-body.js';
