/**
 * `<journal>-step`: how far the run that has the journal open got, kept outside SQLite, so that
 * a journal whose `-wal` was emptied into it by another program can be told from one whose
 * `-wal` was lost (wal-guard.ts says why and what it cannot tell).
 *
 * It holds two lines: the run's "in use" mark (a time, a pid and a host name, as the journal's
 * meta table holds it) and the number of write transactions the run has committed. Nothing else:
 * no secret, no message. It is written in place after every commit with one pwrite, never
 * fsynced (a kill cannot lose a write the kernel has; the cost of an fsync per transaction is
 * what the journal's own synchronous=NORMAL avoids), and removed by a clean close once the mark
 * is gone from the journal file.
 */
import {
  closeSync,
  constants,
  fchmodSync,
  fstatSync,
  ftruncateSync,
  openSync,
  readSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { journalFile } from './sidecars.js';

/** Beside the journal file itself, through a symlink, where SQLite keeps `-wal` (sidecars.ts). */
export function stepFilePath(journalPath: string): string {
  return `${journalFile(journalPath)}-step`;
}

/**
 * Far more than a mark (a time, a pid and a host name of at most 255 bytes) and a count take: a
 * bigger file is not one popsync wrote, and is not read whole.
 */
const MAX_BYTES = 1024;

/**
 * Opened as a file of its own only: never through a symlink, never blocking (a FIFO planted at
 * the name would hold the open, or a read, for ever; O_NONBLOCK makes a FIFO without a writer
 * fail, or read as empty).
 */
const NOFOLLOW = constants.O_NOFOLLOW | constants.O_NONBLOCK;

/** What a `-step` file says, or null when there is none or it cannot be read as one. */
export function readStepFile(journalPath: string): { mark: string; step: string } | null {
  let fd: number | null = null;
  let text: string;
  try {
    fd = openSync(stepFilePath(journalPath), constants.O_RDONLY | NOFOLLOW);
    const st = fstatSync(fd);
    if (!st.isFile() || st.size > MAX_BYTES) return null;
    const buf = Buffer.alloc(MAX_BYTES + 1);
    const n = readSync(fd, buf, 0, buf.length, 0);
    if (n > MAX_BYTES) return null;
    text = buf.toString('utf8', 0, n);
  } catch {
    return null;
  } finally {
    if (fd !== null) closeSync(fd);
  }
  const m = /^([^\n]+)\n(0|[1-9][0-9]*)\n$/.exec(text);
  return m === null || m[1] === undefined || m[2] === undefined ? null : { mark: m[1], step: m[2] };
}

/** The writer's side: opened once its mark is in the journal file, written after every commit. */
export class StepFile {
  private constructor(
    private readonly path: string,
    private readonly mark: string,
    private fd: number | null,
  ) {}

  /**
   * Replaces whatever an earlier run left (its mark is no longer the journal's). A file that
   * cannot be written is no danger, only no help: without one, a journal missing its `-wal` is
   * refused, as before this file existed.
   */
  static start(journalPath: string, mark: string, step: number): StepFile {
    const path = stepFilePath(journalPath);
    // A killed run's file is reused; anything else at the name (a symlink: the open would truncate
    // and write the file it names, as 'w' did; a FIFO, a file of another user, one with other
    // links) is removed and a file of our own made in its place, or, if that fails, none.
    let fd = StepFile.open(path, 0);
    if (fd === null) {
      StepFile.unlink(path);
      // Null again: no help, as said above; what is left there (a folder, a file in a folder this
      // user may not write) is not a -step of this run's mark, and matches nothing.
      fd = StepFile.open(path, constants.O_EXCL);
    }
    const f = new StepFile(path, mark, fd);
    f.record(step);
    return f;
  }

  /**
   * After the commit of transaction `step` returned, before anything the run does because of it.
   * The count only grows, so each write covers the one before it. A write that fails leaves a
   * count that is too low, which could match a journal file checkpointed back then: the file is
   * emptied and removed instead (either is enough), and the run goes on unprotected by it.
   */
  record(step: number): void {
    if (this.fd === null) return;
    try {
      writeSync(this.fd, `${this.mark}\n${step}\n`, 0);
    } catch {
      try {
        ftruncateSync(this.fd, 0);
      } catch {
        // Removed below.
      }
      this.close();
      StepFile.unlink(this.path);
    }
  }

  /** Once the mark is gone from the journal file (a clean close): the file says nothing more. */
  remove(): void {
    this.close();
    StepFile.unlink(this.path);
  }

  close(): void {
    if (this.fd === null) return;
    try {
      closeSync(this.fd);
    } catch {
      // Nothing was buffered: every write went to the kernel as it was made.
    }
    this.fd = null;
  }

  /**
   * An empty regular file of this user's, mode 0600 from its first byte as the journal (it names
   * a host and a pid, nothing secret, but it is the journal's), or null. The mode is set again:
   * an existing file (left by a killed run) keeps its own.
   */
  private static open(path: string, extra: number): number | null {
    let fd: number | null = null;
    try {
      fd = openSync(path, constants.O_WRONLY | constants.O_CREAT | NOFOLLOW | extra, 0o600);
      const st = fstatSync(fd);
      if (!st.isFile() || st.nlink !== 1) throw new Error('not a file of its own');
      fchmodSync(fd, 0o600);
      ftruncateSync(fd, 0);
      return fd;
    } catch {
      if (fd !== null) closeSync(fd);
      return null;
    }
  }

  private static unlink(path: string): void {
    try {
      unlinkSync(path);
    } catch {
      // Missing already, or in a folder this user may not write: what is left names another
      // run (start), or was emptied first (record).
    }
  }
}
