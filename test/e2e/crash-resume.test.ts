/**
 * The crash matrix (crash-matrix.ts) against Dovecot as it is: popsync takes its pipelined
 * LITERAL+/UIDPLUS APPEND path and learns every copy's UID.
 */
import { defineCrashMatrix } from './crash-matrix.js';

defineCrashMatrix({
  name: 'pipelined APPEND',
  labOptions: {},
  appendPath: 'pipelined',
  randomMessages: 400,
  randomKills: 25,
});
