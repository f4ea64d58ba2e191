/**
 * The one clock of a run (journal times, deletion ages, lock heartbeats). TEST-ONLY:
 * POPSYNC_TEST_NOW=<ISO time> starts the clock at that instant instead of the real time, so
 * end-to-end tests can make "3 days passed" between two runs, as the crash hook lets them kill
 * at a journal step. Production never sets it. Read here and nowhere else.
 */
import { PopsyncError } from '../errors.js';

let offsetMs: number | undefined;

function load(): number {
  const raw = process.env['POPSYNC_TEST_NOW'];
  if (raw === undefined || raw === '') return 0;
  const t = Date.parse(raw);
  if (!Number.isFinite(t)) throw new PopsyncError('internal', `POPSYNC_TEST_NOW must be an ISO time, not ${JSON.stringify(raw)}`);
  return t - Date.now();
}

/** Real time, or test time that starts at POPSYNC_TEST_NOW and runs at the real pace. */
export function now(): Date {
  offsetMs ??= load();
  return new Date(Date.now() + offsetMs);
}
