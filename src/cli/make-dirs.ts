/**
 * Creating a missing folder and its missing parents, one level at a time.
 *
 * Node's mkdirSync(path, { recursive: true }) never returns for a path under /proc (Node 20:
 * mkdir answers ENOENT while the parent exists, and it retries forever in a synchronous loop),
 * so `--log-file /proc/x/log` spun a core and ignored SIGTERM. Here each level is made once: a
 * level that cannot be made throws its error (ENOENT, EACCES, ENOTDIR, EROFS) for the caller
 * to word.
 */
import { mkdirSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';

export function makeDirs(path: string, mode: number): void {
  const missing: string[] = [];
  for (let dir = resolve(path); ; dir = dirname(dir)) {
    if (isThere(dir)) break;
    missing.push(dir);
    if (dirname(dir) === dir) break;
  }
  for (const dir of missing.reverse()) {
    try {
      mkdirSync(dir, { mode });
    } catch (e) {
      // Made meanwhile by another process (two runs of a batch share a journal folder).
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
  }
}

/** Something is at `dir`; whether it is a folder is for the next mkdir or open to say. */
function isThere(dir: string): boolean {
  try {
    statSync(dir);
    return true;
  } catch {
    return false;
  }
}
