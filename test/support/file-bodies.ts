/**
 * Message bodies kept in a file, as the engine hands the sink those too large to hold in memory
 * (imap/types.ts FileBody), for the tests of the paths that stream them.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach } from 'vitest';
import type { FileBody } from '../../src/imap/types.js';

/**
 * Call in a describe block: returns what writes `bytes` to a file `name` in a directory of its
 * own for each test (prefixed `prefix`, removed after the test) and gives it as a FileBody.
 */
export function fileBodies(prefix: string): (name: string, bytes: Buffer) => FileBody {
  let tmp: string;
  beforeEach(() => {
    tmp = mkdtempSync(join(tmpdir(), prefix));
  });
  afterEach(() => rmSync(tmp, { recursive: true, force: true }));
  return (name, bytes) => {
    const file = join(tmp, name);
    writeFileSync(file, bytes);
    return { file, size: bytes.length, hasNul: bytes.includes(0) };
  };
}
