/**
 * A message's two digests, sha256 of the exact bytes and the normalised fingerprint
 * (fingerprint.ts), computed in one place for every path that hashes a received message: as it
 * streams in (a line-end-converted message, received.ts), whole on the main thread, whole in
 * the digest worker (digest-worker.ts), and from its spool file on either. One implementation for all three is what
 * keeps a worker's digests byte-identical to the inline ones stored in users' journals.
 */
import { createHash, type Hash } from 'node:crypto';
import { closeSync, openSync, readSync } from 'node:fs';
import { open } from 'node:fs/promises';
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

/** Pieces a spool file is read in to be hashed: the memory that costs, whatever its size. */
const FILE_PIECE_BYTES = 1024 * 1024;

/** The digests of a file, read in pieces into `buf` (reused across calls by the digest worker). */
export function digestsOfFileSync(path: string, buf: Buffer): Digests {
  const fd = openSync(path, 'r');
  try {
    const d = new DigestStream();
    for (let n = readSync(fd, buf, 0, buf.length, null); n > 0; n = readSync(fd, buf, 0, buf.length, null)) {
      d.update(buf.subarray(0, n));
    }
    return d.digest();
  } finally {
    closeSync(fd);
  }
}

/** The same, on the main thread without blocking it: what a spool file's digests fall back to. */
export async function digestsOfFile(path: string): Promise<Digests> {
  const d = new DigestStream();
  await feedFile(d, path);
  return d.digest();
}

/** Feeds the whole of a file to `d`, a piece at a time. */
export async function feedFile(d: DigestStream, path: string): Promise<void> {
  const fh = await open(path, 'r');
  try {
    const buf = Buffer.allocUnsafe(FILE_PIECE_BYTES);
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, buf.length, null);
      if (bytesRead === 0) return;
      d.update(buf.subarray(0, bytesRead));
    }
  } finally {
    await fh.close();
  }
}

/** A buffer for digestsOfFileSync(). */
export function filePieceBuffer(): Buffer {
  return Buffer.allocUnsafe(FILE_PIECE_BYTES);
}
