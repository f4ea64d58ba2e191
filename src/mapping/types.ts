/**
 * The routing decision: what the mapping layer tells the engine about one message. It lives
 * here, beside the rules that make it, so mapping/ needs nothing from the engine above it.
 */
import type { HeaderField } from './headers.js';

export interface Routing {
  folder: string;
  flags: string[];
  internalDate: Date | null;
  /** Recorded in the journal with the copy; reports show it. */
  dateSource: string;
  seenSource: string | null;
  folderRule: string | null;
}

/**
 * Decides where a message goes and how it looks there, from its header fields and size alone:
 * the body of a large message is on disk by then (engine/spool.ts).
 */
export type Router = (message: { size: number; fields: HeaderField[]; uidl: string }) => Routing;
