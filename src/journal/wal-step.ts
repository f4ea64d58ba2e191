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
import { closeSync, fchmodSync, ftruncateSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import { journalFile } from './sidecars.js';

/** Beside the journal file itself, through a symlink, where SQLite keeps `-wal` (sidecars.ts). */
export function stepFilePath(journalPath: string): string {
  return `${journalFile(journalPath)}-step`;
}

/** What a `-step` file says, or null when there is none or it cannot be read as one. */
export function readStepFile(journalPath: string): { mark: string; step: string } | null {
  let text: string;
  try {
    text = readFileSync(stepFilePath(journalPath), 'utf8');
  } catch {
    return null;
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
    let fd: number | null = null;
    try {
      // 0600 from its first byte, as the journal; 'w' keeps the mode of a file that exists (left
      // by a killed run), hence the chmod. It names a host and a pid, nothing secret, but it is
      // the journal's.
      fd = openSync(path, 'w', 0o600);
      fchmodSync(fd, 0o600);
    } catch {
      // No help, as said above; an old file of another mark names another run and matches nothing.
      if (fd !== null) closeSync(fd);
      fd = null;
      StepFile.unlink(path);
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

  private static unlink(path: string): void {
    try {
      unlinkSync(path);
    } catch {
      // Missing already, or in a folder this user may not write: what is left names another
      // run (start), or was emptied first (record).
    }
  }
}
