/**
 * The digest worker's thread (digest-offload.ts starts it): hashes each message it is asked
 * for, one the main thread copied into the shared ring or one in a spool file, and answers with
 * its digests, in the order they were asked for. A spool file is read with blocking reads: this
 * thread has nothing else to do, and answering in order needs one job at a time anyway.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { type Digests, digestsOf, digestsOfFileSync, filePieceBuffer } from './digests.js';

export type DigestJob = { id: number } & (
  | {
      /** The message's offset and length in the ring. */
      at: number;
      length: number;
    }
  | { file: string }
);

export type WorkerAnswer = { ready: true } | ({ id: number } & Digests) | { id: number; error: string };

const port = parentPort;
if (port) {
  const ring = new Uint8Array((workerData as { ring: SharedArrayBuffer }).ring);
  let piece: Buffer | null = null;
  const hash = (job: DigestJob): Digests => {
    if ('at' in job) return digestsOf(ring.subarray(job.at, job.at + job.length));
    piece ??= filePieceBuffer();
    return digestsOfFileSync(job.file, piece);
  };
  port.on('message', (job: DigestJob) => {
    let answer: WorkerAnswer;
    try {
      answer = { id: job.id, ...hash(job) };
    } catch (e) {
      // A spool file gone or unreadable: the main thread tries it itself and reports it.
      answer = { id: job.id, error: (e as Error).message };
    }
    port.postMessage(answer);
  });
  // Loaded and listening: the main thread hashes inline until this arrives (digest-offload.ts).
  port.postMessage({ ready: true } satisfies WorkerAnswer);
}
