/**
 * The journal's public face. The crash hook is deliberately not re-exported: it is test-only
 * and nothing outside journal.ts should call it.
 */
export { Journal, type JournalOpenOptions } from './journal.js';
export { SCHEMA_VERSION } from './schema.js';
export { assertTransition, isLegalTransition, nextStates, type FromState } from './states.js';
export type { BeginAppend, JournalBinding, JournalCounts, JournalRow, RowState } from './types.js';
