/**
 * The crash matrix (crash-matrix.ts) against a Dovecot without MULTIAPPEND: popsync pipelines
 * one APPEND per message with LITERAL+ literals on its own connection, UIDs from APPENDUID.
 */
import { defineCrashMatrix } from './crash-matrix.js';

defineCrashMatrix({
  name: 'pipelined APPEND, no MULTIAPPEND',
  labOptions: { imapWithout: ['MULTIAPPEND'] },
  appendPath: 'pipelined',
  randomMessages: 200,
  randomKills: 10,
});
