/**
 * A message's two digests, sha256 of the exact bytes and the normalised fingerprint
 * (fingerprint.ts), computed in one place for every path that hashes a received message: as it
 * streams in (a spooled or line-end-converted message, received.ts), whole on the main thread,
 * and whole in the digest worker (digest-worker.ts). One implementation for all three is what
 * keeps a worker's digests byte-identical to the inline ones stored in users' journals.
 */
import { createHash, type Hash } from 'node:crypto';
import { Fingerprinter } from './fingerprint.js';

export interface Digests {
  sha256: string;
  fingerprint: string;
}

/**
 * The fingerprinter's output space is as large as what it is given at once; fed a whole 4 MB
 * message it would allocate 4 MB. In slices it stays at one slice (the result is the same
 * however the bytes are split).
 */
const FINGERPRINT_SLICE = 64 * 1024;

export class DigestStream {
  private readonly hash: Hash = createHash('sha256');
  private readonly fingerprint = new Fingerprinter();

  update(bytes: Uint8Array): this {
    this.hash.update(bytes);
    for (let at = 0; at < bytes.length; at += FINGERPRINT_SLICE) {
      this.fingerprint.update(bytes.subarray(at, at + FINGERPRINT_SLICE));
    }
    return this;
  }

  digest(): Digests {
    return { sha256: this.hash.digest('hex'), fingerprint: this.fingerprint.digest() };
  }
}

export function digestsOf(bytes: Uint8Array): Digests {
  return new DigestStream().update(bytes).digest();
}
