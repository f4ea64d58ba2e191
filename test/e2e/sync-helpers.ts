/** Shared by the sync end-to-end tests: the command line cron would run against the lab. */
import type { Lab } from '../../src/lab/dovecot.js';

export function syncArgs(lab: Lab, pop: string, imap: string, journal: string, extra: string[] = []): string[] {
  return [
    'sync',
    '--pop', `pop3://${pop}@127.0.0.1:${lab.pop3.port}`,
    '--pop-tls', 'none',
    '--imap', `imap://${imap}@127.0.0.1:${lab.imap.port}`,
    '--imap-tls', 'none',
    '--pop-password-env', 'PW',
    '--imap-password-env', 'PW',
    '--journal', journal,
    ...extra,
  ];
}

/** A distinct small message; `tag` keeps every message of every test unique. */
export const mail = (tag: string): Buffer =>
  Buffer.from(`From: a@example.org\r\nTo: b@example.org\r\nSubject: ${tag}\r\nMessage-ID: <${tag}@lab>\r\n\r\nbody ${tag}\r\n`);
