/** The two forms a message body takes on its way to APPEND: in memory, or in a spool file. */
import { createReadStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import type { FileBody } from './types.js';

export type MessageBody = Buffer | FileBody;

export function bodySize(b: MessageBody): number {
  return Buffer.isBuffer(b) ? b.length : b.size;
}

export function bodyHasNul(b: MessageBody): boolean {
  return Buffer.isBuffer(b) ? b.includes(0) : b.hasNul;
}

/** The bytes in pieces of at most 256 KiB: a file body is never read whole into memory. */
export async function* bodyChunks(b: MessageBody): AsyncGenerator<Buffer> {
  if (Buffer.isBuffer(b)) {
    yield b;
    return;
  }
  let seen = 0;
  for await (const chunk of createReadStream(b.file, { highWaterMark: 256 * 1024 })) {
    seen += (chunk as Buffer).length;
    yield chunk as Buffer;
  }
  // The literal announced `size` octets; sending fewer would leave the server waiting for the
  // rest and read our next command as message text.
  if (seen !== b.size) throw new Error(`spool file ${b.file} holds ${seen} bytes, expected ${b.size}`);
}

/** The whole body in memory: only for the one-at-a-time imapflow path, which takes a Buffer. */
export function bodyBuffer(b: MessageBody): Promise<Buffer> {
  return Buffer.isBuffer(b) ? Promise.resolve(b) : readFile(b.file);
}
