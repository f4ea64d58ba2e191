/**
 * The crash matrix (crash-matrix.ts) against a Dovecot without LITERAL+: popsync appends one
 * message at a time through imapflow, and UIDPLUS still tells it each copy's UID.
 */
import { defineCrashMatrix } from './crash-matrix.js';

defineCrashMatrix({ name: 'imapflow APPEND, UIDPLUS', labOptions: { imapWithout: ['LITERAL+'] }, appendPath: 'imapflow', randomMessages: 120, randomKills: 8 });
