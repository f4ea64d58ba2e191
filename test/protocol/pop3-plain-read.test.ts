/**
 * How the POP3 client reads a plain TCP socket (src/net/read-arena.ts): each read lands in an
 * arena of its own (the socket's onread option) instead of a fresh buffer pushed through the
 * stream, and the reading still pauses for a slow reader and keeps, in order, whatever arrived
 * after it paused, up to the server's hang-up. Against the scripted server (test/support/fake-pop3.ts).
 */
import { describe, expect, it } from 'vitest';
import { ARENA_BYTES } from '../../src/net/read-arena.js';
import { RETR_STREAM_CHUNKS } from '../../src/pop3/retr-body.js';
import { multiline } from '../support/fake-pop3.js';
import { failure, usePop3Harness } from '../support/pop3-harness.js';

const { fake, connect } = usePop3Harness();

/** `mb` MB of lines, some starting with a dot (stuffed on the wire). */
function bigMessage(mb: number): Buffer {
  const lines: string[] = [];
  for (let i = 0; lines.length * 40 < mb * 1024 * 1024; i++)
    lines.push(`${i % 7 ? '' : '.'}line ${i} ${'x'.repeat(28)}`);
  return Buffer.from(`${lines.join('\r\n')}\r\n`, 'latin1');
}

describe('POP3 over plain TCP', () => {
  it('reads into arenas: reads land side by side in one 64 KiB arena', async () => {
    const pieces = [0, 1, 2, 3].map((n) => Buffer.from(`${`piece ${n} `.repeat(100)}\r\n`, 'latin1'));
    const body = Buffer.concat(pieces);
    // The server sends the next piece only once the reader has the previous one: one read each.
    let got = 0;
    let wake = (): void => {};
    const reader = async (n: number): Promise<void> => {
      while (got < n)
        await new Promise<void>((r) => {
          wake = r;
        });
    };
    const pop = await fake({
      messages: [body],
      handlers: {
        RETR: async (ctx) => {
          ctx.write(`+OK ${body.length} octets\r\n`);
          for (const [n, piece] of pieces.entries()) {
            if (!(await ctx.writeWait(piece))) return;
            await reader(n + 1);
          }
          ctx.write('.\r\n');
        },
      },
    });
    const s = await connect(pop, { tls: 'none' });
    const chunks: Buffer[] = [];
    for await (const c of s.retrStream(1)) {
      chunks.push(c);
      got++;
      wake();
    }
    expect(Buffer.concat(chunks).equals(body)).toBe(true);
    const read = chunks.slice(0, pieces.length);
    expect(read.map((c) => c.length)).toEqual(pieces.map((p) => p.length));
    // Through 'data' events every read is a buffer of its own; in an arena each follows the last.
    expect(new Set(read.map((c) => c.buffer)).size).toBe(1);
    expect(read[0]!.buffer.byteLength).toBe(ARENA_BYTES);
    for (let i = 1; i < read.length; i++)
      expect(read[i]!.byteOffset).toBe(read[i - 1]!.byteOffset + read[i - 1]!.length);
  });

  it('a slow reader pauses the socket and still reads the whole reply when the server hung up behind it', async () => {
    const big = bigMessage(1);
    const pop = await fake({
      messages: [big],
      handlers: {
        RETR: async (ctx) => {
          if (await ctx.writeWait(multiline(`+OK ${big.length} octets`, big))) ctx.drop();
        },
      },
    });
    const s = await connect(pop, { tls: 'none' });
    const stream = s.retrStream(1);
    const chunks: Buffer[] = [];
    let queued = 0;
    for await (const c of stream) {
      chunks.push(c);
      if (chunks.length === 1) {
        await new Promise((r) => setTimeout(r, 300));
        queued = stream.queued;
      }
    }
    expect(Buffer.concat(chunks).equals(big)).toBe(true);
    expect(queued).toBeGreaterThan(0);
    expect(queued).toBeLessThanOrEqual(RETR_STREAM_CHUNKS);
    expect((await failure(s.noop())).kind).toBe('connection');
  });
});
