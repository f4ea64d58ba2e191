/**
 * The spool (private temp files for large bodies) and the collector that decides, byte by byte
 * as a message arrives, whether it stays in memory or goes to disk.
 */
import { createHash } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BodyCollector } from '../../src/engine/received.js';
import { Arena, SLAB_BYTES, SlabPool } from '../../src/engine/slabs.js';
import { Spool, SpoolFile } from '../../src/engine/spool.js';
import { HEADER_PARSE_LIMIT, parseHeaders } from '../../src/mapping/headers.js';
import { headerHash } from '../../src/engine/identity.js';

let root: string;
let spool: Spool;
beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'popsync-spool-test-'));
  spool = new Spool(root);
});
afterEach(() => {
  spool.dispose();
  rmSync(root, { recursive: true, force: true });
});

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

async function collect(
  message: Buffer,
  spillAt: number,
  chunk = 1000,
): Promise<Awaited<ReturnType<BodyCollector['finish']>>> {
  const c = new BodyCollector(spool, spillAt);
  for (let i = 0; i < message.length; i += chunk) await c.add(message.subarray(i, i + chunk));
  return c.finish();
}

/** What APPEND sends: the chunks held, or the spool file. */
function sentBytes(r: Awaited<ReturnType<BodyCollector['finish']>>): Buffer {
  return r.bytes ? Buffer.concat(r.bytes.chunks) : readFileSync(r.file!);
}

describe('Spool', () => {
  it('makes a private directory and 0600 files with random names, and removes them', async () => {
    const a = await spool.create();
    const b = await spool.create();
    await a.write(Buffer.from('mail'));
    await a.close();
    await b.close();
    const dir = spool.directory!;
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    expect(statSync(a.path).mode & 0o777).toBe(0o600);
    expect(a.path).not.toBe(b.path);
    expect(readFileSync(a.path, 'utf8')).toBe('mail');
    await spool.discard(a.path);
    expect(existsSync(a.path)).toBe(false);
    expect(spool.files).toBe(1);
    await spool.clear();
    expect(readdirSync(dir)).toEqual([]);
    spool.dispose();
    expect(existsSync(dir)).toBe(false);
  });
});

describe('Spool after a SIGKILL', () => {
  it(
    'the next spool on the host removes the directories of popsync processes that are gone, and ' + 'only those',
    async () => {
      const first = await spool.create();
      await first.close();
      const name = basename(spool.directory!);
      const m = /^(popsync-spool-.+)-(\d+)-[^-]+$/.exec(name);
      expect(m && Number(m[2])).toBe(process.pid);
      const ours = m![1]!;
      const plant = (dirName: string): string => {
        const d = join(root, dirName);
        mkdirSync(d, { mode: 0o700 });
        writeFileSync(join(d, 'body'), 'mail', { mode: 0o600 });
        return d;
      };
      const dead = plant(`${ours}-2147483646-aaaaaa`);
      const living = plant(`${ours}-${process.ppid}-bbbbbb`);
      const otherHost = plant('popsync-spool-elsewhere.example-2147483646-cccccc');
      const later = new Spool(root);
      try {
        later.sweep();
        expect(existsSync(dead)).toBe(false);
        expect(existsSync(living)).toBe(true);
        expect(existsSync(otherHost)).toBe(true);
        expect(existsSync(spool.directory!)).toBe(true);
      } finally {
        later.dispose();
      }
    },
  );
});

describe('Spool at process exit', () => {
  it('removes its directory from an exit handler, which process.exit still runs (finally blocks do not)', async () => {
    const before = process.listeners('exit');
    const f = await spool.create();
    await f.close();
    const added = process.listeners('exit').filter((l) => !before.includes(l));
    expect(added).toHaveLength(1);
    const dir = spool.directory!;
    (added[0] as () => void)();
    expect(existsSync(dir)).toBe(false);
    expect(process.listeners('exit').filter((l) => !before.includes(l))).toHaveLength(0);
  });
});

describe('BodyCollector', () => {
  const small = Buffer.from('Subject: hi\r\nMessage-ID: <a@b>\r\n\r\nbody with a \0 NUL\r\n');

  it('keeps a small message in memory, with its sha256, size, head and NUL flag', async () => {
    const r = await collect(small, 1024, 7);
    expect(r.file).toBeNull();
    expect(sentBytes(r).equals(small)).toBe(true);
    expect(r.bytes!.chunks.length).toBe(Math.ceil(small.length / 7));
    expect(r).toMatchObject({ size: small.length, sha256: sha(small), hasNul: true });
    expect(r.bytes).toMatchObject({ size: small.length, hasNul: true });
    // Held in 7-byte chunks, the head is joined only up to the end of the header block.
    expect(r.head.toString()).toBe('Subject: hi\r\nMessage-ID: <a@b>\r\n\r\n');
    expect((await collect(small, 1024, 1000)).head.equals(small)).toBe(true);
    expect(spool.files).toBe(0);
  });

  it('moves a message to a spool file once it grows past the threshold, holding only its head', async () => {
    const big = Buffer.concat([Buffer.from('Subject: big\r\n\r\n'), Buffer.alloc(3 * HEADER_PARSE_LIMIT, 'x')]);
    const r = await collect(big, 64 * 1024, 65_536);
    expect(r.bytes).toBeNull();
    expect(r.file).not.toBeNull();
    expect(readFileSync(r.file!).equals(big)).toBe(true);
    expect(statSync(r.file!).mode & 0o777).toBe(0o600);
    expect(r).toMatchObject({ size: big.length, sha256: sha(big), hasNul: false });
    // Its header block, not a copy of the first 1 MiB held as long as its batch.
    expect(r.head.toString()).toBe('Subject: big\r\n\r\n');
  });

  it("fills a spilled message's head on past the spill until its header block ends, or up to the limit", async () => {
    const header = `Subject: long\r\n${'X-Pad: 0123456789abcdef\r\n'.repeat(2000)}\r\n`;
    const long = Buffer.concat([Buffer.from(header), Buffer.alloc(200_000, 'b')]);
    const r = await collect(long, 1000, 333);
    expect(r.file).not.toBeNull();
    expect(r.head.toString()).toBe(header);
    const endless = Buffer.from(`Subject: none\r\n${'X-Pad: 0123456789abcdef\r\n'.repeat(50_000)}`);
    const e = await collect(endless, 64 * 1024, 65_536);
    expect(e.head.equals(endless.subarray(0, HEADER_PARSE_LIMIT + 2))).toBe(true);
  });

  it('holds and spools a bare-LF message as APPEND sends it (CRLF), hashed as it was received', async () => {
    const lf = Buffer.from(`Subject: lf\n\n${'line\n'.repeat(2000)}`);
    const sent = Buffer.from(lf.toString('latin1').replaceAll('\n', '\r\n'), 'latin1');
    for (const spillAt of [1 << 20, 1024]) {
      const r = await collect(lf, spillAt, 333);
      expect(r).toMatchObject({ size: lf.length, wireSize: sent.length, sha256: sha(lf) });
      expect(sentBytes(r).equals(sent)).toBe(true);
      expect(r.file === null).toBe(spillAt > sent.length);
      expect(headerHash(r.head)).toBe(headerHash(lf));
    }
  });

  it('hashes the source bytes when a bare LF comes only in a later chunk, in memory or spooled', async () => {
    // The first chunks are CRLF only (held as received, hashed at the end in one call); the
    // sha256 must still cover them once a later chunk is converted or the message spills.
    const mixed = Buffer.from(`Subject: mixed\r\n\r\n${'crlf line\r\n'.repeat(300)}${'lf line\n'.repeat(300)}`);
    const sent = Buffer.from(mixed.toString('latin1').replace(/(?<!\r)\n/g, '\r\n'), 'latin1');
    for (const spillAt of [1 << 20, 2000, 5000]) {
      const r = await collect(mixed, spillAt, 1000);
      expect(r, `spillAt ${spillAt}`).toMatchObject({ size: mixed.length, wireSize: sent.length, sha256: sha(mixed) });
      expect(sentBytes(r).equals(sent)).toBe(true);
    }
  });

  it('a spilled message arrives whole however it is chunked, holding at most spillAt plus a chunk', async () => {
    const big = Buffer.concat([Buffer.from('Subject: big\r\n\r\n'), Buffer.alloc(5 * 1024 * 1024 + 7, 'y')]);
    big.write('middle', 3 * 1024 * 1024 + 5);
    for (const [spillAt, chunk] of [
      [64 * 1024, 65_536],
      [4 * 1024 * 1024, 65_536],
      [1000, 333],
      [3 * 1024 * 1024, 1_500_000],
    ]) {
      const c = new BodyCollector(spool, spillAt!);
      let most = 0;
      for (let i = 0; i < big.length; i += chunk!) {
        await c.add(big.subarray(i, i + chunk!));
        most = Math.max(most, c.inMemory - 'Subject: big\r\n\r\n'.length);
      }
      const r = await c.finish();
      expect(readFileSync(r.file!).equals(big), `spillAt ${spillAt}, chunk ${chunk}`).toBe(true);
      expect(r.head.toString()).toBe('Subject: big\r\n\r\n');
      expect(most).toBeLessThanOrEqual(spillAt! + chunk!);
    }
  });

  it('writev puts every piece in order, also more pieces than one system call takes', async () => {
    const f = await SpoolFile.create(root);
    const pieces = Array.from({ length: 3000 }, (_, i) => Buffer.from(`${i},`));
    await f.writev(pieces);
    await f.writev([Buffer.from('end')]);
    await f.close();
    expect(readFileSync(f.path, 'latin1')).toBe(`${pieces.join('')}end`);
  });

  it('abandon() removes the spool file of a message cut off mid-way', async () => {
    const c = new BodyCollector(spool, 10);
    await c.add(Buffer.alloc(100, 'a'));
    expect(spool.files).toBe(1);
    await c.abandon();
    expect(spool.files).toBe(0);
    expect(readdirSync(spool.directory!)).toEqual([]);
  });

  it(
    'gives the same header hash and fields from the head as from the whole message, also past the ' + 'parse limit',
    async () => {
      // A header block far larger than the limit: only its first HEADER_PARSE_LIMIT bytes count.
      const fold = `X-Pad: ${'p'.repeat(998)}\r\n`;
      const header =
        `Subject: huge\r\nMessage-ID: ` + `<h@x>\r\n${fold.repeat(Math.ceil((3 * HEADER_PARSE_LIMIT) / fold.length))}`;
      const message = Buffer.concat([Buffer.from(header), Buffer.from('\r\nbody\r\n')]);
      const r = await collect(message, 256 * 1024, 100_000);
      expect(r.file).not.toBeNull();
      expect(headerHash(r.head)).toBe(headerHash(message));
      const fields = parseHeaders(r.head);
      expect(fields.slice(0, 2).map((f) => f.name)).toEqual(['subject', 'message-id']);
      // Capped: about a thousand 1 KB fields, not three thousand.
      expect(fields.length).toBeLessThan(HEADER_PARSE_LIMIT / 1000 + 3);
      // And a blank line exactly at the limit is found the same way in the head and the whole.
      const edge = Buffer.concat([
        Buffer.from('A: '),
        Buffer.alloc(HEADER_PARSE_LIMIT - 5, 'a'),
        Buffer.from('\n\nrest'),
      ]);
      const e = await collect(edge, 1024, 4096);
      expect(headerHash(e.head)).toBe(headerHash(edge));
    },
  );
});

describe('BodyCollector of a message the server listed past the spill threshold', () => {
  /**
   * Collects `message` into an arena of its own; says whether it took slabs (a spilled message
   * gives them back to the pool, which then holds them).
   */
  async function intoArena(message: Buffer, listedLarge: boolean) {
    const pool = new SlabPool(64);
    const arena = new Arena(pool);
    const c = new BodyCollector(spool, 2 * 1024 * 1024, arena, listedLarge);
    for (let i = 0; i < message.length; i += 65536) await c.add(message.subarray(i, i + 65536));
    const r = await c.finish();
    return { r, arenaUsed: pool.spare > 0 || arena.mark().slab > 0 || arena.mark().at !== SLAB_BYTES };
  }

  const large = Buffer.concat([Buffer.from('Subject: big\r\n\r\n'), Buffer.alloc(3 * 1024 * 1024, 'b')]);

  it('goes to its spool file without being copied into the arena first, byte for byte', async () => {
    const early = await intoArena(large, true);
    expect(early.arenaUsed).toBe(false);
    expect(early.r.file).not.toBeNull();
    expect(readFileSync(early.r.file!).equals(large)).toBe(true);
    expect(early.r).toMatchObject({ size: large.length, sha256: sha(large) });
    // The control: listed at its size or less, its first 2 MB went through the arena.
    const late = await intoArena(large, false);
    expect(late.arenaUsed).toBe(true);
    expect(late.r).toMatchObject({ size: large.length, sha256: sha(large), fingerprint: early.r.fingerprint });
  });

  it('stays in memory when smaller than the server said, copied into the arena, with the same digests', async () => {
    const small = large.subarray(0, 100_000);
    const { r, arenaUsed } = await intoArena(small, true);
    expect(r.file).toBeNull();
    // Not the chunks it arrived in: each would keep its whole socket read alive (read-arena.ts).
    expect(arenaUsed).toBe(true);
    for (const c of [...r.bytes!.chunks, r.head]) expect(c.buffer).not.toBe(small.buffer);
    expect(sentBytes(r).equals(small)).toBe(true);
    expect(r).toMatchObject({ size: small.length, sha256: sha(small) });
    expect(r.fingerprint).toBe((await intoArena(small, false)).r.fingerprint);
  });
});
