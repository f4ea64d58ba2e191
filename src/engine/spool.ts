/**
 * Where message bodies too large to hold in memory wait between RETR and APPEND.
 *
 * Bodies are mail, so nobody else on the machine may read them, and a file or symlink planted
 * in a shared temp directory must never be written through: the spool is a private directory
 * (mkdtemp: random name, mode 0700) under the system temp dir, and each body is a file created
 * exclusively (O_EXCL) with mode 0600 under a random name. A file is removed as soon as its
 * message is settled, every file of a pass when the pass ends (a dropped connection included),
 * and the directory when the run ends, whatever the outcome - also when the process leaves
 * through process.exit (a second Ctrl-C, a closed stdout), which skips every `finally`. What
 * SIGKILL or a power cut leaves behind is removed by the next run on the host: the directory
 * is named `popsync-spool-<host>-<pid>-*`, and every run sweeps those of its own host and user
 * whose process is gone as it starts.
 */
import { randomBytes } from 'node:crypto';
import { lstatSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { open, unlink, type FileHandle } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { PopsyncError } from '../errors.js';
import { processAlive } from '../journal/lock.js';
import { readsDied } from './scavenge.js';

export class SpoolFile {
  private constructor(
    readonly path: string,
    private handle: FileHandle | null,
  ) {}

  static async create(dir: string): Promise<SpoolFile> {
    const path = join(dir, randomBytes(12).toString('hex'));
    return new SpoolFile(path, await open(path, 'wx', 0o600));
  }

  async write(chunk: Uint8Array): Promise<void> {
    if (!this.handle) throw new PopsyncError('internal', 'spool file written after it was closed');
    try {
      let done = 0;
      while (done < chunk.length) done += (await this.handle.write(chunk, done, chunk.length - done)).bytesWritten;
    } catch (e) {
      throw this.writeError(e);
    }
  }

  /** Several pieces in one write (received.ts gathers a socket's chunks rather than joining them). */
  async writev(chunks: Uint8Array[]): Promise<void> {
    if (!this.handle) throw new PopsyncError('internal', 'spool file written after it was closed');
    let written: number;
    try {
      written = (await this.handle.writev(chunks)).bytesWritten;
    } catch (e) {
      throw this.writeError(e);
    }
    let bytes = 0;
    // A short write is finished piece by piece.
    for (const c of chunks) {
      bytes += c.length;
      if (written >= c.length) {
        written -= c.length;
        continue;
      }
      await this.write(c.subarray(written));
      written = 0;
    }
    // Written out, the reads are garbage: freed by the next scavenge, which this may run (scavenge.ts).
    readsDied(bytes);
  }

  private writeError(e: unknown): PopsyncError {
    return new PopsyncError(
      'temporary',
      `cannot write a large message to its temporary file ${this.path}: ${(e as Error).message}`,
      {
        hint:
          'large messages pass through a temporary file; set TMPDIR to a directory with room for the ' +
          'largest message',
      },
    );
  }

  async close(): Promise<void> {
    const h = this.handle;
    this.handle = null;
    await h?.close();
  }
}

const PREFIX = 'popsync-spool-';

/** The name's host part: letters, digits and '.', so the pid after it is always found. */
function hostTag(): string {
  return hostname().replace(/[^A-Za-z0-9.]/g, '_') || 'host';
}

/**
 * Removes spool directories under `root` that a killed popsync of this host and user left:
 * their pid is no longer running. Best effort: anything unexpected is left alone.
 */
function sweepStale(root: string): number {
  const mine = `${PREFIX}${hostTag()}-`;
  let removed = 0;
  let names: string[];
  try {
    names = readdirSync(root);
  } catch {
    return 0;
  }
  for (const name of names) {
    if (!name.startsWith(mine)) continue;
    const pid = Number(/^(\d+)-/.exec(name.slice(mine.length))?.[1]);
    if (!Number.isSafeInteger(pid) || pid <= 0 || pid === process.pid || processAlive(pid)) continue;
    try {
      const st = lstatSync(join(root, name));
      if (!st.isDirectory() || (process.getuid && st.uid !== process.getuid())) continue;
      rmSync(join(root, name), { recursive: true, force: true });
      removed++;
    } catch {
      // Gone meanwhile, or not ours to remove.
    }
  }
  return removed;
}

export class Spool {
  private dir: string | null = null;
  private readonly live = new Set<string>();
  private readonly onExit = (): void => this.dispose();

  constructor(private readonly root: string = tmpdir()) {}

  /** Removes what killed runs of this host left (sweepStale); a run calls it as it starts. */
  sweep(): void {
    sweepStale(this.root);
  }

  /** A new, empty, private file; its path stays valid until discard(), clear() or dispose(). */
  async create(): Promise<SpoolFile> {
    try {
      if (this.dir === null) {
        this.dir = mkdtempSync(join(this.root, `${PREFIX}${hostTag()}-${process.pid}-`));
        process.on('exit', this.onExit);
      }
      const f = await SpoolFile.create(this.dir);
      this.live.add(f.path);
      return f;
    } catch (e) {
      if (e instanceof PopsyncError) throw e;
      // Usually a full or read-only temp dir: the environment's to fix, and a later run may succeed.
      throw new PopsyncError(
        'temporary',
        `cannot create a temporary file for a large message in ${this.root}: ${(e as Error).message}`,
        {
          hint:
            'large messages pass through a temporary file; set TMPDIR to a writable directory with room ' +
            'for the largest message',
        },
      );
    }
  }

  async discard(path: string): Promise<void> {
    if (!this.live.delete(path)) return;
    await unlink(path).catch(() => undefined);
  }

  /** Removes every file still held (the end of a pass: its unstored bodies are fetched again). */
  async clear(): Promise<void> {
    await Promise.all([...this.live].map((p) => this.discard(p)));
  }

  /** Removes the directory and everything in it; the spool can be used again afterwards. */
  dispose(): void {
    this.live.clear();
    if (this.dir) rmSync(this.dir, { recursive: true, force: true });
    this.dir = null;
    process.off('exit', this.onExit);
  }

  /** Files currently held; for tests. */
  get files(): number {
    return this.live.size;
  }

  /** The private directory, once one was made; for tests. */
  get directory(): string | null {
    return this.dir;
  }
}
