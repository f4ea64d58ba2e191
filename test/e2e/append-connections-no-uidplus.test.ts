/**
 * The kill-and-resume tests of two APPEND connections (append-connections-matrix.ts) against a
 * Dovecot without UIDPLUS: no copy has a UID, each is found by content from its folder's floor,
 * which holds only because a folder's batches stay in order on one connection.
 */
import { defineFolderCrashTests } from './append-connections-matrix.js';

defineFolderCrashTests({
  name: 'no UIDPLUS',
  labOptions: { imapWithout: ['UIDPLUS'] },
  randomMessages: 120,
  randomKills: 8,
  // Each kill point costs three runs: only the side before each step, where the copies it
  // records were sent and nothing of them journaled (after step k is before k+1 less its work).
  killSides: ['before'],
});
