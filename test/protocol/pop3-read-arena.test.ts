/**
 * How the POP3 client reads its socket (src/net/read-arena.ts): bytes land in 64 KiB arenas of
 * its own (the socket's onread option) instead of a fresh buffer per read pushed through the
 * stream. Over implicit TLS a body then reaches the reader in chunks of several TLS records
 * (Node hands over one record, at most 16 KiB, at a time); over plain TCP each read follows the
 * last in one arena. Either way the reading still pauses for a slow reader and keeps, in order,
 * whatever arrived after it paused, up to the server's hang-up. Against the scripted server
 * (test/support/fake-pop3.ts).
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { ARENA_BYTES } from '../../src/net/read-arena.js';
import { RETR_STREAM_CHUNKS } from '../../src/pop3/retr-body.js';
import { generateTestCertificate, multiline } from '../support/fake-pop3.js';
import { failure, usePop3Harness } from '../support/pop3-harness.js';

const { fake, connect } = usePop3Harness();
/** The most plaintext Node hands over from a TLS socket at once: one record. */
const TLS_RECORD = 16 * 1024;

let cert: { key: string; cert: string };
beforeAll(() => {
  cert = generateTestCertificate();
});

/** `mb` MB of lines, some starting with a dot (stuffed on the wire). */
function bigMessage(mb: number): Buffer {
  const lines: string[] = [];
  for (let i = 0; lines.length * 40 < mb * 1024 * 1024; i++)
    lines.push(`${i % 7 ? '' : '.'}line ${i} ${'x'.repeat(28)}`);
  return Buffer.from(`${lines.join('\r\n')}\r\n`, 'latin1');
}

describe('POP3 over implicit TLS', () => {
  it('hands a body on in chunks of several TLS records, each within one arena', async () => {
    const big = bigMessage(4);
    const pop = await fake({ tls: { ...cert, mode: 'implicit' }, messages: [big, 'next\r\n'] });
    const s = await connect(pop, { tls: 'implicit', ca: [cert.cert] });
    const chunks: Buffer[] = [];
    for await (const c of s.retrStream(1)) chunks.push(c);
    expect(Buffer.concat(chunks).equals(big)).toBe(true);
    const biggest = Math.max(...chunks.map((c) => c.length));
    // One record at a time, it was at least big / 16 KiB chunks of at most 16 KiB each.
    expect(biggest).toBeGreaterThan(TLS_RECORD);
    expect(biggest).toBeLessThanOrEqual(ARENA_BYTES);
    expect(chunks.length).toBeLessThan(big.length / TLS_RECORD / 2);
    expect((await s.retr(2)).toString()).toBe('next\r\n');
  });
});

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
});

describe.each(['implicit TLS', 'plain TCP'] as const)('POP3 over %s', (over) => {
  it('a slow reader pauses the socket and still reads the whole reply when the server hung up behind it', async () => {
    const big = bigMessage(1);
    const tls = over === 'implicit TLS';
    const pop = await fake({
      ...(tls ? { tls: { ...cert, mode: 'implicit' as const } } : {}),
      messages: [big],
      handlers: {
        RETR: async (ctx) => {
          // Everything written, then the connection dropped, while the reader is still asleep.
          if (await ctx.writeWait(multiline(`+OK ${big.length} octets`, big))) ctx.drop();
        },
      },
    });
    const s = await connect(pop, tls ? { tls: 'implicit', ca: [cert.cert] } : { tls: 'none' });
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
    // Paused: the reply's queue stopped at its bound while the rest waited in the arenas.
    expect(queued).toBeGreaterThan(0);
    expect(queued).toBeLessThanOrEqual(RETR_STREAM_CHUNKS);
    // Only then does the hang-up reach the session.
    expect((await failure(s.noop())).kind).toBe('connection');
  });
});
