/**
 * Bare LF -> CRLF for APPEND (engine/line-ends.ts): the same bytes however the message is cut
 * into chunks, nothing else touched, and the normalised fingerprint unchanged by it, which is
 * what keeps reconciliation and verify recognising a copy popsync sent with the CR added.
 */
import { describe, expect, it } from 'vitest';
import { Prng } from '../../lab/corpus.js';
import { Fingerprinter } from '../../src/engine/fingerprint.js';
import { BareLfToCrlf } from '../../src/engine/line-ends.js';

/** The rule applied to the whole message at once, byte by byte. */
function reference(b: Buffer): Buffer {
  const out: number[] = [];
  for (let i = 0; i < b.length; i++) {
    if (b[i] === 0x0a && (i === 0 || b[i - 1] !== 0x0d)) out.push(0x0d);
    out.push(b[i]!);
  }
  return Buffer.from(out);
}

function convertInChunks(b: Buffer, cuts: number[]): Buffer {
  const c = new BareLfToCrlf();
  const parts: Buffer[] = [];
  let from = 0;
  for (const at of [...cuts, b.length]) {
    parts.push(c.convert(b.subarray(from, at)));
    from = at;
  }
  return Buffer.concat(parts);
}

const fingerprint = (b: Buffer): string => new Fingerprinter().update(b).digest();

describe('BareLfToCrlf', () => {
  it('adds the CR to a bare LF only: CRLF, bare CR and other bytes are kept', () => {
    const raw = Buffer.from('\nSubject: a\n\r\nbody\rstill\r\r\nend\n\n');
    expect(convertInChunks(raw, []).toString('latin1')).toBe('\r\nSubject: a\r\n\r\nbody\rstill\r\r\nend\r\n\r\n');
  });

  it('returns a chunk without a bare LF as it is, uncopied', () => {
    const crlf = Buffer.from('Subject: x\r\n\r\nbody\r\n');
    expect(new BareLfToCrlf().convert(crlf)).toBe(crlf);
  });

  it('treats a CR ending one chunk and the LF starting the next as one CRLF', () => {
    const raw = Buffer.from('a\r\nb\nc');
    expect(convertInChunks(raw, [2]).toString('latin1')).toBe('a\r\nb\r\nc');
    // And a LF starting a chunk after a chunk that did not end in CR is bare.
    expect(convertInChunks(raw, [1, 5]).toString('latin1')).toBe('a\r\nb\r\nc');
  });

  it('gives the whole-message result however the bytes are cut, and keeps the fingerprint', () => {
    let seed = 7;
    const rand = (n: number): number => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    const alphabet = [0x0d, 0x0a, 0x0a, 0x00, 0x80, 0x58, 0xe9, 0x41, 0x20];
    for (let t = 0; t < 300; t++) {
      const raw = Buffer.from(Array.from({ length: 1 + rand(200) }, () => alphabet[rand(alphabet.length)]!));
      const cuts = Array.from({ length: rand(6) }, () => rand(raw.length)).sort((a, b) => a - b);
      const sent = convertInChunks(raw, cuts);
      expect(sent.equals(reference(raw)), `message ${t} cut at ${cuts}`).toBe(true);
      expect(fingerprint(sent)).toBe(fingerprint(raw));
    }
  });
});

/**
 * The receiver converts only the chunks the fingerprint's scan says hold a bare LF
 * (Fingerprinter.lastHadBareLf, received.ts): what it sends must be what converting every chunk
 * sends, byte for byte, however the message is cut - a CR ending one chunk and its LF starting
 * the next above all - and the scan must say so exactly (a chunk it wrongly passes goes out with
 * its bare LF; one it wrongly flags costs the search it exists to save).
 */
describe('BareLfToCrlf told by the fingerprint which chunks hold a bare LF', () => {
  /** What the receiver sends, and per chunk what the fingerprint said. */
  function hinted(chunks: Buffer[]): { sent: Buffer; said: boolean[] } {
    const f = new Fingerprinter();
    const c = new BareLfToCrlf();
    const said: boolean[] = [];
    const parts = chunks.map((chunk) => {
      f.update(chunk);
      said.push(f.lastHadBareLf);
      return c.convert(chunk, f.lastHadBareLf);
    });
    return { sent: Buffer.concat(parts), said };
  }

  /** Converting every chunk (the receiver before the hint), and whether each chunk held a bare LF. */
  function unhinted(chunks: Buffer[]): { sent: Buffer; bare: boolean[] } {
    const c = new BareLfToCrlf();
    const bare: boolean[] = [];
    let crBefore = false;
    const parts = chunks.map((chunk) => {
      bare.push(chunk.some((b, i) => b === 0x0a && (i === 0 ? !crBefore : chunk[i - 1] !== 0x0d)));
      if (chunk.length > 0) crBefore = chunk[chunk.length - 1] === 0x0d;
      return c.convert(chunk);
    });
    return { sent: Buffer.concat(parts), bare };
  }

  function check(raw: Buffer, cuts: number[]): void {
    const chunks: Buffer[] = [];
    let from = 0;
    for (const at of [...cuts, raw.length]) {
      chunks.push(raw.subarray(from, at));
      from = at;
    }
    const got = hinted(chunks);
    const want = unhinted(chunks);
    const what = `${JSON.stringify(raw.toString('latin1'))} cut at ${cuts}`;
    expect(got.sent.equals(want.sent), what).toBe(true);
    expect(got.sent.equals(reference(raw)), what).toBe(true);
    expect(got.said, what).toEqual(want.bare);
  }

  // Mulberry32 (lab/corpus.ts): the low bits of a power-of-two LCG repeat every few draws, too
  // regular to meet a bare LF in a header.
  const rng = new Prng(11);
  const rand = (n: number): number => Math.floor(rng.next() * n);
  // Line ends dominate; NUL and 0x80 are the fingerprint's other dropped bytes, X and 0xe9 its header rule.
  const alphabet = [0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x80, 0x58, 0xe9, 0x41, 0x20];
  const pieces = ['\r\n', '\r\n', '\n', '\r', '\r\r\n', 'ab', 'Subject: s', '\0', '\x80'];
  /** A header, its end (CRLF, LF or mixed), then a body of mostly CRLF lines with bare LFs and CRs among them. */
  function message(): Buffer {
    const head = Array.from({ length: rand(4) }, () => pieces[rand(pieces.length)]).join('');
    const end = ['\r\n\r\n', '\n\n', '\r\n\n', '\n\r\n'][rand(4)]!;
    const body = Array.from({ length: rand(12) }, () => pieces[rand(pieces.length)]).join('');
    return Buffer.from(head + end + body, 'latin1');
  }

  it('split at every position and every pair of positions: the bytes of converting every chunk', () => {
    for (let t = 0; t < 150; t++) {
      const raw =
        t % 3 === 0 ? Buffer.from(Array.from({ length: 1 + rand(24) }, () => alphabet[rand(10)]!)) : message();
      for (let i = 0; i <= raw.length; i++) {
        check(raw, [i]);
        for (let j = i; j <= raw.length; j++) check(raw, [i, j]);
      }
    }
  });

  it('long CRLF bodies with a rare bare LF or bare CR, in random chunks, and one byte at a time', () => {
    for (let t = 0; t < 200; t++) {
      const lines = Array.from({ length: 1 + rand(60) }, (_, k) => {
        const text = 'x'.repeat(rand(80));
        const r = rand(40);
        return (
          text +
          (r === 0 ? '\n' : r === 1 ? '\r' : r === 2 ? '\r\r\n' : r === 3 ? '\n\r' : '\r\n') +
          (k % 7 ? '' : '\0\x80')
        );
      });
      const raw = Buffer.from(`Subject: ${t}\r\n\r\n${lines.join('')}`, 'latin1');
      const cuts = Array.from({ length: rand(12) }, () => rand(raw.length + 1)).sort((a, b) => a - b);
      check(raw, cuts);
      if (t % 20 === 0)
        check(
          raw,
          Array.from({ length: raw.length }, (_, i) => i),
        );
    }
  });
});
