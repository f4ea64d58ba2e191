/**
 * The crash matrix (crash-matrix.ts) against a Dovecot without LITERAL+: popsync appends one
 * message at a time through imapflow, and UIDPLUS still tells it each copy's UID. Kills only
 * after each step: with UIDs known, reconciliation is the pipelined file's (killed on both
 * sides there), and the imapflow path is killed on both sides in crash-resume-no-uidplus.
 */
import { defineCrashMatrix } from './crash-matrix.js';

defineCrashMatrix({
  name: 'imapflow APPEND, UIDPLUS',
  labOptions: { imapWithout: ['LITERAL+', 'MULTIAPPEND'] },
  appendPath: 'imapflow',
  killSides: ['after'],
  randomMessages: 120,
  randomKills: 8,
});
