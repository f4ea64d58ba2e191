/** Shared by the sync end-to-end tests: the command line cron would run against the lab. */
import type { Lab } from '../../lab/dovecot.js';
import { labArgs } from '../support/lab-fixture.js';

export function syncArgs(lab: Lab, pop: string, imap: string, journal: string, extra: string[] = []): string[] {
  return labArgs('sync', lab, pop, imap, journal, extra);
}

/** A distinct small message; `tag` keeps every message of every test unique. */
export const mail = (tag: string): Buffer =>
  Buffer.from(
    `From: a@example.org\r\nTo: b@example.org\r\nSubject: ${tag}\r\nMessage-ID: <${tag}@lab>\r\n\r\nbody ${tag}\r\n`,
  );
