/**
 * The IMAP destination. The engine needs only connectImap() and the ImapSink contract; the
 * imapflow details stay inside writer.ts.
 */

export { connectImap } from './writer.js';
export type { ImapSink, ImapOptions, FolderStatus, AppendRequest, AppendOutcome, DestinationMessage } from './types.js';
