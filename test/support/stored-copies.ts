/**
 * Changing what Dovecot stored behind popsync's back, as a server-side rewrite, another client
 * or an administrator would: the lab's Maildir files are edited directly.
 */
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** The Maildir file of the stored message that holds `needle`. */
export function storedFile(maildir: string, needle: string): string {
  for (const sub of ['cur', 'new']) {
    for (const f of readdirSync(join(maildir, sub))) {
      const p = join(maildir, sub, f);
      if (readFileSync(p).includes(needle)) return p;
    }
  }
  throw new Error(`no stored message holds ${needle}`);
}

/**
 * Rewrites a stored message in place (latin1 text replace), keeping its file name, and drops
 * Dovecot's cache file so the next FETCH reads the new bytes instead of cached headers.
 */
export function alterStored(maildir: string, needle: string, from: string, to: string): void {
  const p = storedFile(maildir, needle);
  const text = readFileSync(p, 'latin1');
  if (!text.includes(from)) throw new Error(`the stored message holding ${needle} has no ${JSON.stringify(from)}`);
  writeFileSync(p, Buffer.from(text.replace(from, to), 'latin1'));
  rmSync(join(maildir, 'dovecot.index.cache'), { force: true });
}

/** A second file with the same bytes: Dovecot gives it a new UID (a duplicated copy). */
export function duplicateStored(maildir: string, needle: string): void {
  const p = storedFile(maildir, needle);
  writeFileSync(join(maildir, 'new', `${Date.now()}.M1P${process.pid}.popsync-dup`), readFileSync(p));
}
