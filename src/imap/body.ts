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
 * The bytes in pieces of at most 256 KiB, each a list of buffers to write together. A body in
 * memory is cut into views, not copied: on a TLS socket one write is encrypted whole into
 * native buffers before any of it leaves (a message's size again outside the JS heap), so
 * pieces sent as the socket drains keep that to one piece; the chunks a piece gathers leave
 * corked, in one write, as the one Buffer's view did. A file body is read into one buffer,
 * reused for every piece (a fresh buffer per piece was as much garbage as the message, and the
 * process peaked that much higher): a piece is valid only until the next is asked for, so the
 * caller sends it with sendPiece() first. The file is read with blocking calls: a piece is one
 * copy out of the page cache the file was just written to (~0.1 ms; one disk read of a piece
 * should the kernel have dropped it), where fs/promises added a FileHandle, a promise and a
 * threadpool round trip per piece, ~500 for the typical mix's 21 spooled messages (126 MB).
 */
export async function* bodyPieces(b: MessageBody): AsyncGenerator<readonly Buffer[]> {
  if (!isFileBody(b)) {
    let piece: Buffer[] = [];
    let bytes = 0;
    for (const c of memoryChunks(b)) {
      for (let at = 0; at < c.length; ) {
        const take = Math.min(c.length - at, PIECE_BYTES - bytes);
        piece.push(take === c.length ? c : c.subarray(at, at + take));
        at += take;
        bytes += take;
        if (bytes === PIECE_BYTES) {
          yield piece;
          piece = [];
          bytes = 0;
        }
      }
    }
    if (piece.length > 0) yield piece;
    return;
  }
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
      yield [buf.subarray(0, bytesRead)];
    }
    // Sending fewer would leave the server waiting for the rest and read our next command as
    // message text.
    if (seen !== b.size) throw new Error(`spool file ${b.file} holds ${seen} bytes, expected ${b.size}`);
  } finally {
    closeSync(fd);
  }
}

/**
 * Writes one piece of `body` and waits until the socket is ready for the next: for a file body
 * until this piece left for the kernel (its buffer is reused), for one in memory until the
 * socket drained if it had to buffer.
 */
export function sendPiece(sock: Writable, body: MessageBody, piece: readonly Buffer[]): Promise<void> {
  const corked = piece.length > 1;
  if (corked) sock.cork();
  const last = piece.length - 1;
  for (let i = 0; i < last; i++) sock.write(piece[i]!);
  let written: Promise<void> | null = null;
  // On a destroyed socket Node still calls back (with ERR_STREAM_DESTROYED), so this settles.
  if (isFileBody(body)) written = new Promise((resolve) => sock.write(piece[last]!, () => resolve()));
  else sock.write(piece[last]!);
  if (corked) sock.uncork();
  return written ?? whenDrained(sock);
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
