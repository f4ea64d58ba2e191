/**
 * Writing a file that holds mail metadata (subjects, senders: reports, plans) so that nobody
 * else can read it, nobody can redirect it, and no reader ever sees half of it.
 *
 * The content goes to a temporary file in the target's own folder (a rename across file
 * systems is a copy, not atomic), created with O_EXCL|O_NOFOLLOW under a random name: a
 * name an attacker can predict (`<path>.<pid>.tmp`) lets them plant a symlink there and have
 * us write through it onto a file of their choosing. The data is fsynced before the rename
 * and the folder after it, so a crash leaves the old file or the new one, never an empty
 * one. rename() replaces a symlink at the target itself rather than following it.
 */
import { closeSync, constants, fchmodSync, fsyncSync, openSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { basename, dirname, join, resolve } from 'node:path';

export interface PrivateFileOptions {
  /** Names of the temporary file to try, in order; tests plant traps at them. */
  tempNames?: () => Iterable<string>;
}

/** How many names to try before giving up: each collision needs someone racing us. */
const ATTEMPTS = 8;

function* randomNames(path: string): Iterable<string> {
  const dir = dirname(resolve(path));
  for (let i = 0; i < ATTEMPTS; i++) yield join(dir, `.${basename(path)}.${randomBytes(9).toString('base64url')}.tmp`);
}

function createExclusive(names: Iterable<string>): { fd: number; name: string } {
  const flags = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;
  let last: unknown = null;
  for (const name of names) {
    try {
      return { fd: openSync(name, flags, 0o600), name };
    } catch (e) {
      // Someone holds this name (a planted file or link): take another, never theirs.
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      last = e;
    }
  }
  throw last ?? new Error('no temporary file name to try');
}

/** Replaces `path` with `data`, mode 0600, atomically and durably. Throws the fs error. */
export function writePrivateFile(path: string, data: string | Uint8Array, o: PrivateFileOptions = {}): void {
  const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  const { fd, name } = createExclusive(o.tempNames?.() ?? randomNames(path));
  let renamed = false;
  try {
    try {
      // The umask can only narrow 0600, but an explicit chmod makes the mode independent of it.
      fchmodSync(fd, 0o600);
      for (let off = 0; off < bytes.length; ) off += writeSync(fd, bytes, off, bytes.length - off);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(name, path);
    renamed = true;
    syncFolder(dirname(resolve(path)));
  } finally {
    if (!renamed) {
      try {
        unlinkSync(name);
      } catch {
        // Already gone; nothing of ours is left behind.
      }
    }
  }
}

/** The rename is durable only once the folder is; some file systems refuse, which is no error. */
function syncFolder(dir: string): void {
  let fd: number | null = null;
  try {
    fd = openSync(dir, constants.O_RDONLY | constants.O_DIRECTORY);
    fsyncSync(fd);
  } catch {
    // The data itself is on disk; only the name may be lost in a crash.
  } finally {
    if (fd !== null) closeSync(fd);
  }
}
