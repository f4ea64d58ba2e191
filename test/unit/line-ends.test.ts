/**
 * Bare LF -> CRLF for APPEND (engine/line-ends.ts): the same bytes however the message is cut
 * into chunks, nothing else touched, and the normalised fingerprint unchanged by it, which is
 * what keeps reconciliation and verify recognising a copy popsync sent with the CR added.
 */
import { describe, expect, it } from 'vitest';
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
