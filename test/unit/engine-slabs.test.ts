/**
 * Slabs for received bodies (engine/slabs.ts) and the collector that copies into them: a body
 * held in memory must not keep its socket's reads alive (they would wait for a full GC), and a
 * batch's memory is reused only through its arena.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BodyCollector } from '../../src/engine/received.js';
import { Arena, SLAB_BYTES, SlabPool } from '../../src/engine/slabs.js';
import { Spool } from '../../src/engine/spool.js';
import { seeded } from '../support/seeded.js';

let root: string;
let spool: Spool;
beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'popsync-slabs-test-'));
  spool = new Spool(root);
});
afterEach(() => {
  spool.dispose();
  rmSync(root, { recursive: true, force: true });
});

/** Letters only: no line end for the collector to convert. */
const bytes = (n: number, seed = 1): Buffer =>
  Buffer.from(Array.from({ length: n }, (_, i) => 97 + ((i * 31 + seed) % 26)));

describe('Arena', () => {
  it('copies bytes into slabs, one view per slab however many chunks came', () => {
    const pool = new SlabPool(10);
    const arena = new Arena(pool);
    const out: Buffer[] = [];
    const a = bytes(SLAB_BYTES - 10, 1);
    const b = bytes(30, 2);
    arena.copy(a, out);
    arena.copy(b, out);
    // One view per slab: the first 10 bytes of `b` continue `a`'s view.
    expect(out.map((v) => v.length)).toEqual([SLAB_BYTES, 20]);
    expect(out[1]!.buffer).not.toBe(out[0]!.buffer);
    expect(Buffer.concat(out).equals(Buffer.concat([a, b]))).toBe(true);
    // Copies, not the buffers given: changing those changes nothing held.
    a.fill(0);
    expect(out[0]!.subarray(0, SLAB_BYTES - 10).equals(bytes(SLAB_BYTES - 10, 1))).toBe(true);
    // Views of another message (another `out`) are never joined to these.
    const other: Buffer[] = [];
    arena.copy(bytes(5), other);
    expect(other.map((v) => [v.byteOffset, v.length])).toEqual([[20, 5]]);
    expect(out[1]!.length).toBe(20);
  });

  it("copies a message's first chunk into an array of its own: one view while the slab has room", () => {
    const arena = new Arena(new SlabPool(10));
    arena.copy(bytes(SLAB_BYTES - 10), []);
    const one = arena.copied(bytes(10, 3));
    expect(one.map((v) => [v.byteOffset, v.length])).toEqual([[SLAB_BYTES - 10, 10]]);
    expect(one[0]!.equals(bytes(10, 3))).toBe(true);
    // Larger than a slab's room: a view in each slab, as copy() gives.
    const two = arena.copied(bytes(SLAB_BYTES + 5, 4));
    expect(two.map((v) => v.length)).toEqual([SLAB_BYTES, 5]);
    expect(Buffer.concat(two).equals(bytes(SLAB_BYTES + 5, 4))).toBe(true);
    expect(arena.copied(Buffer.alloc(0))).toEqual([]);
  });

  it('rewinds to a position as to the mark taken there', () => {
    const pool = new SlabPool(10);
    const arena = new Arena(pool);
    arena.copy(bytes(100), []);
    const m = arena.mark();
    const at = arena.position;
    arena.copy(bytes(2 * SLAB_BYTES), []);
    arena.rewindTo(at);
    expect(arena.mark()).toEqual(m);
    expect(pool.spare).toBe(2);
  });

  it('rewinds to a mark, giving back the slabs taken since', () => {
    const pool = new SlabPool(10);
    const arena = new Arena(pool);
    arena.copy(bytes(100), []);
    const m = arena.mark();
    arena.copy(bytes(2 * SLAB_BYTES), []);
    arena.rewind(m);
    expect(pool.spare).toBe(2);
    const out: Buffer[] = [];
    arena.copy(bytes(10, 3), out);
    // Right after the bytes before the mark, in the same slab.
    expect(out[0]!.byteOffset % SLAB_BYTES).toBe(100);
  });

  it('recycles its slabs into the pool once, and the pool hands the same memory out again', () => {
    const pool = new SlabPool(1);
    const arena = new Arena(pool);
    const out: Buffer[] = [];
    arena.copy(bytes(SLAB_BYTES + 1), out);
    arena.recycle();
    arena.recycle();
    // Kept at most `keep`: the other slab is left to the garbage collector.
    expect(pool.spare).toBe(1);
    const next: Buffer[] = [];
    new Arena(pool).copy(bytes(5), next);
    expect([out[0]!.buffer, out[1]!.buffer]).toContain(next[0]!.buffer);
    expect(pool.spare).toBe(0);
  });
});

describe('BodyCollector with an arena', () => {
  it('holds a body in memory as copies in the slabs, not as views of the chunks it was given', async () => {
    const arena = new Arena(new SlabPool(10));
    const c = new BodyCollector(spool, 1024 * 1024, arena);
    // As a socket's reads: a 16 KB read holding the end of one message and the start of the next.
    const read = Buffer.concat([Buffer.from('Subject: x\r\n\r\nhello\r\n'), bytes(16 * 1024)]);
    await c.add(read.subarray(0, 21));
    const body = await c.finish();
    expect(Buffer.concat(body.bytes!.chunks).toString()).toBe('Subject: x\r\n\r\nhello\r\n');
    for (const chunk of [...body.bytes!.chunks, body.head]) expect(chunk.buffer).not.toBe(read.buffer);
  });

  it('holds a message that came in many reads as one view per slab', async () => {
    const arena = new Arena(new SlabPool(10));
    const c = new BodyCollector(spool, 1024 * 1024, arena);
    const message = Buffer.concat([Buffer.from('Subject: reads\r\n\r\n'), bytes(100_000)]);
    for (let i = 0; i < message.length; i += 16 * 1024) await c.add(message.subarray(i, i + 16 * 1024));
    const body = await c.finish();
    expect(body.bytes!.chunks).toHaveLength(1);
    expect(body.bytes!.chunks[0]!.equals(message)).toBe(true);
    expect(body.sha256).toBe(createHash('sha256').update(message).digest('hex'));
  });

  it('gives a message that spills its memory back to the arena', async () => {
    const pool = new SlabPool(10);
    const arena = new Arena(pool);
    arena.copy(bytes(7), []);
    const before = arena.mark();
    const message = Buffer.concat([Buffer.from('Subject: big\r\n\r\n'), bytes(3 * SLAB_BYTES)]);
    const c = new BodyCollector(spool, SLAB_BYTES, arena);
    for (let i = 0; i < message.length; i += 16 * 1024) await c.add(message.subarray(i, i + 16 * 1024));
    const body = await c.finish();
    expect(body.bytes).toBeNull();
    expect(readFileSync(body.file!).equals(message)).toBe(true);
    expect(arena.mark()).toEqual(before);
    expect(pool.spare).toBeGreaterThan(0);
  });

  it('gives an abandoned message its memory back', async () => {
    const arena = new Arena(new SlabPool(10));
    const before = arena.mark();
    const c = new BodyCollector(spool, 1024 * 1024, arena);
    await c.add(bytes(1000));
    await c.abandon();
    expect(arena.mark()).toEqual(before);
  });

  it('holds every body of a batch intact to its end, with messages spilled and abandoned among them', async () => {
    // Seeded batches on one arena: each message in random reads, some past spillAt (written out,
    // their slabs given back), some abandoned. A rewind to the wrong place, or a first chunk's
    // view made where the next message is copied, shows as a body changed once the batch is in.
    const next = seeded(29);
    const big = (k: number): number => next(k >> 12) * 4096 + next(4096);
    const pool = new SlabPool(4);
    for (let batch = 0; batch < 40; batch++) {
      const arena = new Arena(pool);
      const held: Array<{ body: Awaited<ReturnType<BodyCollector['finish']>>; wire: Buffer; what: string }> = [];
      for (let m = 0; m < 1 + next(10); m++) {
        const size = next(4) === 0 ? big(SLAB_BYTES + 100_000) : next(3000);
        const source = Buffer.from(
          Array.from({ length: size }, (_, i) => (i % 61 === 60 ? 0x0a : i % 53 === 52 ? 0x0d : 97 + ((i + m) % 26))),
        );
        const spillAt = [1000, 100_000, SLAB_BYTES, 1024 * 1024][next(4)]!;
        const c = new BodyCollector(spool, spillAt, arena, next(5) === 0);
        for (let at = 0; at < source.length; ) {
          const n = next(3) === 0 ? big(SLAB_BYTES) : 1 + next(2000);
          await c.add(source.subarray(at, at + n));
          at += n;
        }
        if (next(6) === 0) {
          await c.abandon();
          continue;
        }
        const body = await c.finish();
        // What APPEND sends: the bare LF made CRLF (line-ends.ts).
        const wire = Buffer.from(source.toString('latin1').replace(/(?<!\r)\n/g, '\r\n'), 'latin1');
        held.push({ body, wire, what: `batch ${batch} message ${m}, ${size} bytes, spillAt ${spillAt}` });
        expect(body.sha256, held.at(-1)!.what).toBe(createHash('sha256').update(source).digest('hex'));
      }
      for (const { body, wire, what } of held) {
        const sent = body.bytes ? Buffer.concat(body.bytes.chunks) : readFileSync(body.file!);
        expect(sent.equals(wire), what).toBe(true);
      }
      arena.recycle();
    }
  });
});
