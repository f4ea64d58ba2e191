/**
 * The digest worker's thread (digest-offload.ts starts it): hashes each message the main thread
 * copied into the shared ring and answers with its digests, in the order they were asked for.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { type Digests, digestsOf } from './digests.js';

export interface DigestJob {
  id: number;
  /** The message's offset and length in the ring. */
  at: number;
  length: number;
}

export type WorkerAnswer = { ready: true } | ({ id: number } & Digests);

const port = parentPort;
if (port) {
  const ring = new Uint8Array((workerData as { ring: SharedArrayBuffer }).ring);
  port.on('message', ({ id, at, length }: DigestJob) =>
    port.postMessage({ id, ...digestsOf(ring.subarray(at, at + length)) } satisfies WorkerAnswer),
  );
  // Loaded and listening: the main thread hashes inline until this arrives (digest-offload.ts).
  port.postMessage({ ready: true } satisfies WorkerAnswer);
}
