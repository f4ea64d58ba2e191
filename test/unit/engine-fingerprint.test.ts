/**
 * The normalised content fingerprint: equal for a message and its copy under each rewrite a
 * server is known to apply, different for different messages, and the same however the bytes
 * are split across update() calls.
 */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { Fingerprinter } from '../../src/engine/fingerprint.js';
import { fingerprint } from '../support/fingerprint.js';

const b = (s: string): Buffer => Buffer.from(s, 'latin1');

/** A message exercising every rule: 8-bit header bytes, NUL, bare CR and LF, no final newline. */
const original = b(
  'Subject: Caf\xe9 \xc3\xa9t\xe9\r\nFrom: a@example.org\r\nX-Tag: \x00nul\r\n\r\nline ' +
    'one\nline\0two\r\nbare\rcr\r\n8-bit body \xc3\xa9\r\nlast line',
);

function splitAt(buf: Buffer, ...points: number[]): Buffer[] {
  const out: Buffer[] = [];
  let prev = 0;
  for (const p of points) {
    out.push(buf.subarray(prev, p));
    prev = p;
  }
  out.push(buf.subarray(prev));
  return out;
}

const inChunks = (chunks: Buffer[]): string => {
  const f = new Fingerprinter();
  for (const c of chunks) f.update(c);
  return f.digest();
};

describe('fingerprint: rewrites servers apply are invisible', () => {
  const fp = fingerprint(original);

  it('Dovecot: bare LF stored as CRLF, NUL as 0x80', () => {
    const dovecot = b(original.toString('latin1').replace(/\r?\n/g, '\r\n').replace(/\0/g, '\x80'));
    expect(dovecot.equals(original)).toBe(false);
    expect(fingerprint(dovecot)).toBe(fp);
  });

  it('Courier: bare CR stripped; servers that strip NUL', () => {
    const courier = b(
      original
        .toString('latin1')
        .replace(/\r(?!\n)/g, '')
        .replace(/\0/g, ''),
    );
    expect(courier.length).toBeLessThan(original.length);
    expect(fingerprint(courier)).toBe(fp);
  });

  it('CRLF turned into LF everywhere', () => {
    expect(fingerprint(b(original.toString('latin1').replace(/\r\n/g, '\n')))).toBe(fp);
  });

  it('Cyrus munge8bit: each 8-bit header byte becomes X, the body is untouched', () => {
    const s = original.toString('latin1');
    const end = s.indexOf('\r\n\r\n');
    const munged = b(s.slice(0, end).replace(/[\x80-\xff]/g, 'X') + s.slice(end));
    expect(munged.length).toBe(original.length); // the trap that fooled a size check
    expect(fingerprint(munged)).toBe(fp);
  });

  it('a final CRLF (or LF, or a blank line) added to a message without one', () => {
    expect(fingerprint(Buffer.concat([original, b('\r\n')]))).toBe(fp);
    expect(fingerprint(Buffer.concat([original, b('\n')]))).toBe(fp);
    expect(fingerprint(Buffer.concat([original, b('\r\n\r\n')]))).toBe(fp);
  });

  it('all of them at once', () => {
    const s = original.toString('latin1');
    const end = s.indexOf('\r\n\r\n');
    const all = b(
      (s.slice(0, end).replace(/[\x80-\xff]/g, 'X') + s.slice(end))
        .replace(/\r(?!\n)/g, '')
        .replace(/\r?\n/g, '\r\n')
        .replace(/\0/g, '\x80') + '\r\n',
    );
    expect(fingerprint(all)).toBe(fp);
  });
});

describe('fingerprint: different messages differ', () => {
  const fp = fingerprint(original);
  const variants: Array<[string, string]> = [
    ['one body letter', original.toString('latin1').replace('line one', 'line onE')],
    ['a header value', original.toString('latin1').replace('a@example.org', 'b@example.org')],
    ['an 8-bit body byte', original.toString('latin1').replace('body \xc3\xa9', 'body \xc3\xa8')],
    [
      '8-bit body byte replaced by X (munging applies to headers only)',
      original.toString('latin1').replace('body \xc3\xa9', 'body XX'),
    ],
    ['a line break joined', original.toString('latin1').replace('line one\n', 'line one')],
    ['the header/body boundary moved', original.toString('latin1').replace('\r\n\r\n', '\r\n')],
    ['trailing text after the last line', `${original.toString('latin1')}\r\nmore`],
  ];
  for (const [what, text] of variants) {
    it(what, () => {
      expect(fingerprint(b(text))).not.toBe(fp);
    });
  }

  it('carries its rule-set version', () => {
    expect(fp).toMatch(/^v1:[0-9a-f]{64}$/);
  });

  it('an empty message and one of only line ends are the same; a byte is not', () => {
    expect(fingerprint(b(''))).toBe(fingerprint(b('\r\n\r\n')));
    expect(fingerprint(b(''))).not.toBe(fingerprint(b('a')));
  });
});

describe('fingerprint: incremental', () => {
  const whole = fingerprint(original);
  const dovecot = b(original.toString('latin1').replace(/\r?\n/g, '\r\n').replace(/\0/g, '\x80'));

  it('two chunks, split at every byte', () => {
    for (let i = 0; i <= original.length; i++) expect(inChunks(splitAt(original, i)), `split at ${i}`).toBe(whole);
    for (let i = 0; i <= dovecot.length; i++) expect(inChunks(splitAt(dovecot, i)), `split at ${i}`).toBe(whole);
  });

  it('three chunks, at every pair of split points around the header end', () => {
    const end = original.indexOf('\r\n\r\n');
    for (let i = end - 3; i <= end + 6; i++) {
      for (let j = i; j <= end + 8; j++) expect(inChunks(splitAt(original, i, j)), `split at ${i},${j}`).toBe(whole);
    }
  });

  it('one byte at a time, and trailing newlines arriving alone', () => {
    const bytes = [...original].map((c) => Buffer.from([c]));
    expect(inChunks(bytes)).toBe(whole);
    expect(inChunks([original, b('\r'), b('\n'), b(''), b('\r\n')])).toBe(whole);
  });

  it('refuses update after digest (a second digest would be of a different hash state)', () => {
    const f = new Fingerprinter().update(original);
    f.digest();
    expect(() => f.update(original)).toThrow();
  });
});

describe('fingerprint: long runs of line ends', () => {
  it('LFs held back across many chunks are hashed as if in one piece', () => {
    const lfs = Buffer.alloc(200_000, '\n');
    const message = Buffer.concat([b('Subject: x\n\nbody'), lfs, b('tail\n')]);
    const whole = fingerprint(message);
    const chunks: Buffer[] = [];
    for (let i = 0; i < message.length; i += 7_001) chunks.push(message.subarray(i, i + 7_001));
    expect(inChunks(chunks)).toBe(whole);
    expect(
      inChunks([
        message.subarray(0, 20),
        message.subarray(20, message.length - 5),
        message.subarray(message.length - 5),
      ]),
    ).toBe(whole);
    expect(whole).not.toBe(fingerprint(b('Subject: x\n\nbody\ntail\n')));
  });
});

/**
 * The rules as written in fingerprint.ts, one byte at a time over the whole message: what the
 * incremental Fingerprinter (and its fast path for bodies without NUL and 0x80) must equal.
 */
function reference(message: Buffer): string {
  const out: number[] = [];
  let inHeader = true;
  let lastWasLf = true;
  for (const c of message) {
    if (c === 0x0d || c === 0x00 || c === 0x80) continue;
    if (c === 0x0a) {
      if (inHeader && lastWasLf) inHeader = false;
      lastWasLf = true;
      out.push(c);
      continue;
    }
    lastWasLf = false;
    if (inHeader && (c > 0x7f || c === 0x58)) continue;
    out.push(c);
  }
  while (out.length > 0 && out[out.length - 1] === 0x0a) out.pop();
  return `v1:${createHash('sha256').update(Buffer.from(out)).digest('hex')}`;
}

describe('fingerprint: the same as the rules, byte by byte, for any message and any split', () => {
  it('random messages of line ends, NUL, 0x80, X, 8-bit bytes and text, in random chunks', () => {
    let seed = 99;
    const rnd = (n: number): number => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    const alphabet = [0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x80, 0x58, 0xe9, 0x41, 0x20, 0x3a, 0x61, 0x62];
    for (let round = 0; round < 400; round++) {
      // Mostly plain text with CRLF (the fast path), sometimes the rarer bytes (the byte loop).
      const rare = rnd(3) === 0;
      const length = rnd(300);
      const bytes = Buffer.alloc(length);
      for (let i = 0; i < length; i++) {
        bytes[i] = rare ? alphabet[rnd(alphabet.length)]! : [0x0d, 0x0a, 0x41, 0x42, 0x20][rnd(5)]!;
      }
      const f = new Fingerprinter();
      for (let at = 0; at < length; ) {
        const next = Math.min(length, at + 1 + rnd(40));
        f.update(bytes.subarray(at, next));
        at = next;
      }
      expect(f.digest(), `round ${round}: ${bytes.toString('hex')}`).toBe(reference(bytes));
    }
  });

  it('a realistic message whole, and split inside a CRLF and right after the header', () => {
    const m = Buffer.from('From: a@b\r\nSubject: caf\xe9 X\r\n\r\nline one\r\nline two\r\n\r\n\r\n', 'latin1');
    expect(fingerprint(m)).toBe(reference(m));
    for (const at of [m.indexOf('\r\n\r\n') + 3, m.indexOf('one') + 4, m.length - 3]) {
      const f = new Fingerprinter().update(m.subarray(0, at)).update(m.subarray(at));
      expect(f.digest(), `split at ${at}`).toBe(reference(m));
    }
  });
});
