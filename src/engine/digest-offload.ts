/**
 * Hashing received messages on a worker thread, so the main thread only receives, journals and
 * writes. On a typical mailbox popsync was CPU-bound on its main thread (2.36 s of CPU in a
 * 2.55 s run) while the second core sat half idle, and the two sha256 passes plus the
 * fingerprint's normalisation were the largest single piece of that CPU (digests.ts).
 *
 * A message in memory reaches the worker through one fixed SharedArrayBuffer, a ring: the main
 * thread copies it in (a memcpy, about a tenth of what hashing it costs) and posts where it
 * lies. The message itself stays an ordinary Buffer. Holding messages in SharedArrayBuffers of
 * their own, the zero-copy alternative, raised the typical mix's peak RSS from 150 to 235-250
 * MB: V8 does not count shared memory towards the external memory that triggers its garbage
 * collection, so those buffers, once promoted, outlived their messages by far (and the worker's
 * handles on them were never freed at all: it allocates too little to collect). The ring is
 * allocated once and reused, so it adds RING_BYTES, no more, and it bounds what waits for the
 * worker: a message that finds no room is hashed inline rather than waited for. A message in a
 * spool file (over 4 MB, half the bytes of a typical mix) is read from the file by the worker
 * once it is complete (from the page cache): the main thread only writes it.
 *
 * The worker starts on the first message large enough to be worth it, never on a run that
 * receives nothing (plan, status, a no-op sync), and messages are hashed inline until it is
 * ready, so its start never delays a batch. It is unref'd while idle and ended after IDLE_MS
 * idle (a `sync --every` process holds no thread between runs), so it never keeps the process
 * alive. If it cannot start or dies, its messages and every later one are hashed inline from
 * the message's own bytes or file: never a missing or different digest, never a wait that
 * cannot end.
 */
import { Worker } from 'node:worker_threads';
import { PopsyncError } from '../errors.js';
import type { DigestJob, WorkerAnswer } from './digest-worker.js';
import { type Digests, digestsOf, digestsOfFile } from './digests.js';

/**
 * Below this a message is hashed inline: posting it costs the main thread about 10 us, hashing
 * 2 KB of text 15 us and 4 KB 25 us (8 KB 50, 32 KB 185), so from 4 KB the worker pays, and
 * small mail (mostly under 2 KB) stays as it was.
 */
export const OFFLOAD_MIN_BYTES = 4 * 1024;

/**
 * The ring's size: the largest message kept in memory by default (DEFAULT_SPILL_BYTES). The
 * worker hashes several times faster than mail arrives, so the ring rarely holds more than one
 * message; 8 MB cost 4 MB more RSS for no measurable CPU.
 */
export const RING_BYTES = 4 * 1024 * 1024;

/** An idle worker is ended after this long; the next message large enough starts another. */
const IDLE_MS = 10_000;

interface Job {
  id: number;
  /** Where the copy lies in the ring; null for a spool file. */
  at: number | null;
  /** The same digests without the worker: from the message's own bytes, or its file. */
  inline: () => Promise<Digests>;
  resolve: (d: Digests) => void;
  reject: (e: unknown) => void;
}

export type SpawnDigestWorker = (ring: SharedArrayBuffer) => Worker;

/**
 * The worker's live heap is a few objects per message, so a small young generation keeps its
 * garbage (and its RSS) small: with V8's default the worker thread cost about 10 MB more.
 */
const WORKER_YOUNG_GENERATION_MB = 1;

const spawnBuilt: SpawnDigestWorker = (ring) =>
  new Worker(new URL('./digest-worker.js', import.meta.url), {
    workerData: { ring },
    resourceLimits: { maxYoungGenerationSizeMb: WORKER_YOUNG_GENERATION_MB },
  });

export class DigestOffload {
  private worker: Worker | null = null;
  private ring: Buffer | null = null;
  private ready = false;
  private failure: string | null = null;
  /** Posted and not yet answered, oldest first: the worker answers in order. */
  private readonly jobs: Job[] = [];
  private nextId = 1;
  /** Where the next copy goes unless it must wrap to 0. */
  private head = 0;
  private idle: NodeJS.Timeout | null = null;
  private readonly notices: string[] = [];

  constructor(private readonly spawn: SpawnDigestWorker = spawnBuilt) {}

  /**
   * The digests of `bytes`: from the worker when it is running and the ring has room, else
   * computed here and now. `bytes` must stay unchanged until this settles (the worker's death
   * is answered from them). Never rejects.
   */
  digest(bytes: Uint8Array): Promise<Digests> {
    if (bytes.length < OFFLOAD_MIN_BYTES || this.failure !== null) return Promise.resolve(digestsOf(bytes));
    const w = this.worker ?? this.start();
    const at = w && this.ready ? this.room(bytes.length) : null;
    if (!w || at === null) return Promise.resolve(digestsOf(bytes));
    this.ring!.set(bytes, at);
    this.head = at + bytes.length;
    return this.post(w, { at, length: bytes.length }, at, () => Promise.resolve(digestsOf(bytes)));
  }

  /**
   * Whether the worker takes spool files now (digestFile()); starts it if it is not running.
   * A message spooled while the answer is no is hashed as it arrives, as before.
   */
  takesFiles(): boolean {
    if (this.failure !== null) return false;
    if (!this.worker) this.start();
    return this.ready;
  }

  /**
   * The digests of the spool file at `path`, complete and left in place until this settles:
   * read and hashed by the worker, or here when it cannot (then asynchronously, a piece at a
   * time). Rejects only when the file cannot be read.
   */
  digestFile(path: string): Promise<Digests> {
    const inline = (): Promise<Digests> =>
      digestsOfFile(path).catch((e: unknown) => {
        throw new PopsyncError(
          'temporary',
          `cannot read a large message back from its temporary file ${path}: ${(e as Error).message}`,
        );
      });
    const w = this.worker;
    if (!w || !this.ready) return inline();
    return this.post(w, { file: path }, null, inline);
  }

  private post(
    w: Worker,
    what: DistributiveOmit<DigestJob, 'id'>,
    at: number | null,
    inline: () => Promise<Digests>,
  ): Promise<Digests> {
    return new Promise<Digests>((resolve, reject) => {
      const id = this.nextId++;
      this.jobs.push({ id, at, inline, resolve, reject });
      if (this.jobs.length === 1) this.busy(w);
      try {
        w.postMessage({ id, ...what } as DigestJob);
      } catch (e) {
        this.fail(w, `cannot post to it: ${(e as Error).message}`);
      }
    });
  }

  /** What happened to the worker since last asked (started, failed): for the run's debug log. */
  takeNotices(): string[] {
    return this.notices.splice(0);
  }

  /**
   * Where `n` bytes fit in the ring without touching a copy the worker has not answered, or
   * null. Copies are placed one after another and answered in that order, so what is in use is
   * one region from the oldest copy to `head`, wrapped around the end at most once.
   */
  private room(n: number): number | null {
    const size = this.ring!.length;
    const oldest = this.jobs.find((j) => j.at !== null)?.at;
    if (oldest === undefined || oldest === null) return n <= size ? 0 : null;
    if (this.head > oldest) {
      if (size - this.head >= n) return this.head;
      return oldest >= n ? 0 : null;
    }
    return oldest - this.head >= n ? this.head : null;
  }

  private start(): Worker | null {
    const ring = new SharedArrayBuffer(RING_BYTES);
    let w: Worker;
    try {
      w = this.spawn(ring);
    } catch (e) {
      this.failure = (e as Error).message;
      this.notices.push(`digest worker not started (${this.failure}): messages are hashed on the main thread`);
      return null;
    }
    this.worker = w;
    this.ring = Buffer.from(ring);
    this.ready = false;
    this.head = 0;
    w.unref();
    w.on('message', (a: WorkerAnswer) => this.answer(w, a));
    w.on('error', (e) => this.fail(w, e.message));
    w.on('messageerror', (e) => this.fail(w, e.message));
    w.on('exit', (code) => this.fail(w, `it exited with code ${code}`));
    return w;
  }

  private answer(w: Worker, a: WorkerAnswer): void {
    if (w !== this.worker) return;
    if ('ready' in a) {
      this.ready = true;
      this.notices.push('digest worker started: messages are hashed off the main thread');
      this.armIdle(w);
      return;
    }
    const job = this.jobs[0];
    if (job?.id !== a.id) {
      this.fail(w, `it answered message ${a.id} out of order`);
      return;
    }
    this.jobs.shift();
    // The worker could not read a spool file: reading it here says why, or gets it after all.
    if ('error' in a) settle(job, job.inline());
    else job.resolve({ sha256: a.sha256, fingerprint: a.fingerprint });
    if (this.jobs.length === 0) {
      w.unref();
      this.armIdle(w);
    }
  }

  /** Work waits on the worker: it must keep the process alive until the answer comes. */
  private busy(w: Worker): void {
    if (this.idle) clearTimeout(this.idle);
    this.idle = null;
    w.ref();
  }

  private armIdle(w: Worker): void {
    if (this.idle) clearTimeout(this.idle);
    this.idle = setTimeout(() => {
      this.idle = null;
      if (w !== this.worker || this.jobs.length > 0) return;
      this.stop();
      void w.terminate();
    }, IDLE_MS);
    this.idle.unref();
  }

  private stop(): void {
    this.worker = null;
    this.ring = null;
    this.ready = false;
    if (this.idle) clearTimeout(this.idle);
    this.idle = null;
  }

  /**
   * The worker failed (or exited on its own): its messages are hashed inline, and so is every
   * later one - a worker that died once is not restarted in a loop.
   */
  private fail(w: Worker, why: string): void {
    if (w !== this.worker) return;
    this.stop();
    this.failure = why;
    void w.terminate().catch(() => undefined);
    this.notices.push(`digest worker failed (${why}): messages are hashed on the main thread`);
    for (const j of this.jobs.splice(0)) settle(j, j.inline());
  }
}

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

function settle(job: Job, digests: Promise<Digests>): void {
  digests.then(job.resolve, job.reject);
}

/** The process's one digest worker: every account and pass of a run shares it. */
export const digestOffload = new DigestOffload();
