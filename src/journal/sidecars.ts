/**
 * Where the files beside a journal live when the journal's path is a symlink: beside the file
 * it names. SQLite resolves a symlinked database path and keeps `-wal` and `-shm` beside the file
 * itself, so the lost-WAL guard must look for `-wal` there (beside the symlink it never found
 * one: `status` during a run through a symlink refused the journal as one that lost its `-wal`,
 * and after any kill so did the next run unless `-step` matched). popsync's own `-step` and
 * `.lock` go there too: the same journal named through a symlink and through its own path must
 * share one lock file, or a second run gets in, writes its "in use" mark over the first run's
 * and, refused by the lock row, takes it out as it closes.
 *
 * Only the last component's symlinks matter (a file beside `linked-dir/j.sqlite` is the one
 * beside `real-dir/j.sqlite`), and a path that is not a symlink is kept as it was given, so
 * that messages name it as the user did.
 */
import { readlinkSync, realpathSync } from 'node:fs';
import { dirname, resolve } from 'node:path';

/** How many symlinks in a row are followed, as Linux's own limit (ELOOP beyond). */
const MAX_HOPS = 40;

/** The path of the journal file itself, through any symlinks; the path as given when it is none. */
export function journalFile(journalPath: string): string {
  let p = journalPath;
  for (let hops = 0; hops < MAX_HOPS; hops++) {
    let target: string;
    try {
      target = readlinkSync(p);
    } catch {
      // Not a symlink (EINVAL), or nothing there yet: this is the file.
      return p;
    }
    try {
      // Relative to the folder the link is in, as the kernel reads it (through that folder's own
      // symlinks, which resolve() alone would not follow before a "..").
      p = resolve(realpathSync(dirname(p)), target);
    } catch {
      return resolve(dirname(p), target);
    }
  }
  return p;
}
