/**
 * The three forms a message body takes on its way to APPEND: one Buffer (a caller's), the
 * pieces it arrived in (received.ts keeps them rather than join them), or a spool file.
 */
import { closeSync, openSync, readSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import type { Writable } from 'node:stream';
import type { ChunkedBody, FileBody } from './types.js';

export type MessageBody = Buffer | ChunkedBody | FileBody;

const PIECE_BYTES = 256 * 1024;

export function isFileBody(b: MessageBody): b is FileBody {
  return !Buffer.isBuffer(b) && 'file' in b;
}

export function bodySize(b: MessageBody): number {
  return Buffer.isBuffer(b) ? b.length : b.size;
}

export function bodyHasNul(b: MessageBody): boolean {
  return Buffer.isBuffer(b) ? b.includes(0) : b.hasNul;
}

/** A body in memory as the buffers that hold it, in order (no copy). */
export function memoryChunks(b: Buffer | ChunkedBody): readonly Buffer[] {
  return Buffer.isBuffer(b) ? [b] : b.chunks;
}

/**
 * A spool file's bytes in pieces of at most 256 KiB, read into one buffer reused for every piece
 * (a fresh buffer per piece was as much garbage as the message, and the process peaked that
 * much higher): a piece is valid only until the next is asked for, so the caller sends it with
 * sendPiece() first. The file is read with blocking calls: a piece is one copy out of the page
 * cache the file was just written to (~0.1 ms; one disk read of a piece should the kernel have
 * dropped it), where fs/promises added a FileHandle, a promise and a threadpool round trip per
 * piece, ~500 for the typical mix's 21 spooled messages (126 MB). A body in memory needs no
 * pieces: pipeline.ts writes the buffers that hold it as they are (write-gather.ts).
 */
export async function* bodyPieces(b: FileBody): AsyncGenerator<Buffer> {
  const fd = openSync(b.file, 'r');
  try {
    const buf = Buffer.allocUnsafe(Math.max(1, Math.min(PIECE_BYTES, b.size)));
    let seen = 0;
    // Never past `size`: the literal announced that many octets, and a byte more would be read
    // by the server as the rest of the command line.
    while (seen < b.size) {
      const bytesRead = readSync(fd, buf, 0, Math.min(buf.length, b.size - seen), null);
      if (bytesRead === 0) break;
      seen += bytesRead;
      yield buf.subarray(0, bytesRead);
    }
    // Sending fewer would leave the server waiting for the rest and read our next command as
    // message text.
    if (seen !== b.size) throw new Error(`spool file ${b.file} holds ${seen} bytes, expected ${b.size}`);
  } finally {
    closeSync(fd);
  }
}

/**
 * Writes one piece of a spool file (bodyPieces) and waits until it left for the kernel: its
 * buffer is reused for the next piece. On a destroyed socket Node still calls back (with
 * ERR_STREAM_DESTROYED), so this settles.
 */
export function sendPiece(sock: Writable, piece: Buffer): Promise<void> {
  return new Promise((resolve) => sock.write(piece, () => resolve()));
}

/**
 * Resolves when `sock` can take more, and at once when it never will: a socket cut while we
 * were reading the next piece from disk emitted 'close' long before this wait began, so a
 * wait for 'drain' or 'close' would never end and the run would hang with no timer left to
 * notice (a link cut mid-APPEND hung migrations for good). The caller learns of the loss from
 * the connection's own close handling.
 */
export function whenDrained(sock: Writable): Promise<void> {
  if (sock.destroyed || !sock.writableNeedDrain) return Promise.resolve();
  return new Promise((resolve) => {
    const done = (): void => {
      sock.off('drain', done);
      sock.off('close', done);
      resolve();
    };
    sock.once('drain', done);
    sock.once('close', done);
  });
}

/** The whole body in one Buffer: only for the one-at-a-time imapflow path, which takes a Buffer. */
export function bodyBuffer(b: MessageBody): Promise<Buffer> {
  if (isFileBody(b)) return readFile(b.file);
  return Promise.resolve(Buffer.isBuffer(b) ? b : Buffer.concat(b.chunks, b.size));
}
