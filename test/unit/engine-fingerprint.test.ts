/**
 * The normalised content fingerprint: equal for a message and its copy under each rewrite a
 * server is known to apply, different for different messages, and the same however the bytes
 * are split across update() calls.
 */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { edgeCases, Prng } from '../../lab/corpus.js';
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

  it('several fed in turn (the reconciler streams many at once) digest as each alone', () => {
    // A Fingerprinter's first output stays in the space every one of them writes to until
    // another writes there: each must have taken its own copy by then.
    const messages = [original, dovecot, b('Subject: x\r\n\r\nshort\r\n'), b('Subject: y\r\n\r\n')];
    const alone = messages.map((m) => fingerprint(m));
    for (const parts of [1, 2, 3]) {
      const chunks = messages.map((m) =>
        splitAt(m, ...Array.from({ length: parts - 1 }, (_, k) => Math.floor((m.length * (k + 1)) / parts))),
      );
      const fs = messages.map(() => new Fingerprinter());
      for (let k = 0; k < parts; k++) for (const [i, f] of fs.entries()) f.update(chunks[i]![k]!);
      expect(
        fs.map((f) => f.digest()),
        `${parts} chunks each`,
      ).toEqual(alone);
    }
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

  it('sees every NUL (the receiver asks it instead of searching each chunk again), wherever it is', () => {
    // In the header (the byte loop), in a body the fast path refuses, at a chunk's first or last
    // byte, after a long run of held-back LFs; and none in a body of 0x80 and text.
    const lfs = '\n'.repeat(70_000);
    const cases: Array<[string, boolean]> = [
      ['X-A: \0\r\n\r\nbody\r\n', true],
      ['S: a\r\n\r\nbo\0dy\r\n', true],
      ['S: a\r\n\r\nbody\x80 more\r\n', false],
      [`S: a\r\n\r\nx${lfs}\0`, true],
      [`S: a\r\n\r\nx${lfs}y`, false],
      ['\0', true],
      ['', false],
    ];
    const rng = new Prng(5);
    for (const [text, nul] of cases) {
      const m = b(text);
      for (const chunks of [[m], randomSplit(m, rng), [...m].map((c) => Buffer.of(c))]) {
        const f = new Fingerprinter();
        for (const c of chunks) f.update(c);
        expect(f.sawNul, JSON.stringify(text.slice(0, 40))).toBe(nul);
      }
    }
    for (let seed = 2000; seed < 2100; seed++) {
      const m = hostile(seed).subarray(0, rng.int(0, 3000));
      const f = new Fingerprinter();
      for (const c of randomSplit(m, rng)) f.update(c);
      expect(f.sawNul, `hostile(${seed})`).toBe(m.includes(0));
    }
  });

  it('a body with NUL and 0x80 next to CRs, LFs and each other, split at every pair of points', () => {
    // The body's fast path drops them as it drops CR, each found by a search of its own.
    const m = b('S: a\r\n\r\n\x80\0x\r\x80\n\0\r\n \xe2\x80\x93 y\x80\r\n\0\0\x80\n\n\x80');
    for (let p = 0; p <= m.length; p++)
      for (let q = p; q <= m.length; q++) {
        expect(inChunks(splitAt(m, p, q)), `split at ${p}, ${q}`).toBe(reference(m));
      }
  });

  it('chunks joined while the output is small, then streamed once it outgrows 16 KiB, hash as one', () => {
    // Small output is kept (and joined across chunks) until it passes 16 KiB, then streamed:
    // splits before, across and after that point must give the digest of the whole.
    const body = Array.from({ length: 900 }, (_, i) => `line ${i} of the note\r\n`).join('');
    const m = Buffer.from(`From: a@b\r\nSubject: s\r\n\r\n${body}`, 'latin1');
    for (const size of [100, 6000, 15000, 17000]) {
      const f = new Fingerprinter();
      for (let at = 0; at < m.length; at += size) f.update(m.subarray(at, at + size));
      expect(f.digest(), `chunks of ${size}`).toBe(reference(m));
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

/**
 * Journals hold v1 fingerprints, so a faster Fingerprinter must give bit-identical digests.
 * These were computed by the v1 code before bodyFast() closed the body up in place (one
 * Buffer.copy per line between CRs then), over the lab's hostile corpus and seeded hostile
 * messages; reference() above checks the same messages against the rules, whole and split.
 */
const V1_DIGESTS: ReadonlyArray<[string, string]> = [
  ['no-message-id', 'v1:2f63bed5ba4be1a8cce580da1228e9d57df462d40b4ab650e18fd98c380734ef'],
  ['same-message-id-a', 'v1:83882cc03edb36e9174b9d533cb9a7099ed1c180554e750432014bd35cc5eb57'],
  ['same-message-id-b', 'v1:1e9960aa5d3367215ba04054eb14610f5217b8676880f0c7e79a9aaf3b5af1a9'],
  ['duplicate-1', 'v1:adc586416fb57eb262dddc99f4aa1e8e892bacf3f39f42cb97685fa46412c085'],
  ['duplicate-2', 'v1:adc586416fb57eb262dddc99f4aa1e8e892bacf3f39f42cb97685fa46412c085'],
  ['dot-lines', 'v1:0c8cee39b3ffdf944b8f4ea66109818b838429598697c37cc3d12febba6695d0'],
  ['status-lines', 'v1:6d6965f99bdec42ea57b43d12f635e18ec437de48c9dc3f0d125b8648aa87cd1'],
  ['latin1-headers', 'v1:bfc71ffc9344710dcefc22ebf8451eec5f77cae168dcaa28f7b9efdbec2e96cc'],
  ['utf8-headers', 'v1:d3d4ae4d8fd6ed42a6b265faab9a571172eccb3086d2f23af27cc4e8601c0632'],
  ['bare-lf', 'v1:5920c11f38852922ba607d1e4488c5e1931027318332d4c0075687667179dc1d'],
  ['no-body', 'v1:6acfaa76976a320f5b54d2fd505b3af9ef7c79f94d1444775f01bda967a92565'],
  ['headers-only', 'v1:52e999d0d59a326af32c555e147fdd991dd3471f0dbc7ffd695c75579bb7fd1f'],
  ['long-line-1k', 'v1:aeb716b3f965e4d201e2999583116af5083e939d65f0c8265c15f85cf63eae93'],
  ['long-line-10k', 'v1:e322568c8abf4e7f9135792a716b54505017ff47a0bd440498b815198cbcfb96'],
  ['no-final-newline', 'v1:ab6d8699d88127c068910282935bcdf208a1bc27dfe8ea63e49a71e5b6b19f22'],
  ['huge-25mb', 'v1:e3ee77858115a75e882f303b090f89c8776a1f2dbdd3d3432271bd63ba6c779b'],
];

/**
 * A seeded message of everything the rules treat specially, in both the header and the body:
 * NUL, 0x80, 8-bit bytes, 'X', bare CR, bare LF, CR runs, LF runs past the 64 KiB block
 * Fingerprinter hashes them in, blank lines, and trailing line ends or none. Odd seeds keep NUL
 * and 0x80 out of the body, so the whole body takes bodyFast(); even ones need the byte loop.
 */
function hostile(seed: number): Buffer {
  const rng = new Prng(seed);
  const parts: Buffer[] = [];
  const text = (): string => rng.pick(['Subject: caf', 'X-Tag: ', 'To: a@b', 'line', ' . ', 'XX', 'abc def']);
  const end = (): string => rng.pick(['\r\n', '\r\n', '\r\n', '\n', '\r', '\r\r\n', '']);
  const rare = [0xe9, 0xc3, 0xa9, 0xff, 0x58, 0x0d, 0x0a, 0x00, 0x80];
  const piece = (inBody: boolean): Buffer => {
    const k = rng.int(0, 19);
    if (k < 10) return b(text() + end());
    if (k < 16) return Buffer.from([rng.pick(inBody && seed % 2 === 1 ? rare.slice(0, -2) : rare)]);
    if (k < 18) return Buffer.alloc(rng.int(1, 40), rng.pick(['\r\n', '\n', '\r']));
    return Buffer.alloc(rng.int(1, 150_000), rng.pick(['\n', '\r\n']));
  };
  for (let i = rng.int(0, 12); i > 0; i--) parts.push(piece(false));
  parts.push(b(rng.pick(['\r\n', '\n', '\r\n\r\n', ''])));
  for (let i = rng.int(0, 60); i > 0; i--) parts.push(piece(true));
  parts.push(Buffer.alloc(rng.int(0, 3), rng.pick(['\r\n', '\n'])));
  return Buffer.concat(parts);
}

/** Random splits: single bytes, small pieces, and socket-sized ones, so boundaries fall everywhere. */
function randomSplit(message: Buffer, rng: Prng): Buffer[] {
  const chunks: Buffer[] = [];
  for (let at = 0; at < message.length; ) {
    const size = rng.pick([1, rng.int(1, 16), rng.int(1, 4096), rng.int(30_000, 70_000)]);
    chunks.push(message.subarray(at, at + size));
    at += size;
  }
  return chunks;
}

/** Digests of hostile(seed) from the v1 code before bodyFast() closed the body up in place. */
const V1_HOSTILE: ReadonlyArray<[number, string]> = [
  [1, 'v1:c7f5f53412c0686e412350a64aed6fdcaf6aefe117d89d6bf6d5ee494ab92ca7'],
  [2, 'v1:80481a565d898a4f84f8cb8d1b2fe0216761529f41ebf5b74a3f3988f027c48b'],
  [3, 'v1:28480c554de925560281c3532f14f49689334e6f51045484a841e590e19d50f1'],
  [4, 'v1:4a7b857cde26c2f0b93f7a0f28e9d7d5a4aaf27c205d7af5230b950c27630053'],
  [5, 'v1:00ec0d89d1a57f5d8bd28eebf44ecd28dd4668bf755959be1f7a54460863fbbe'],
  [6, 'v1:aa889742558a4d69b70455e9fb3b4457471d8ef432888e4f5710e4a590d36589'],
  [7, 'v1:672a390f85ceddb9da6e29236fdc79a97570fa4c6da3129485c6710390d0c44f'],
  [8, 'v1:71e2ee9422d85aaa3faece49ce6502786120d1cd390d1c25d780f8c51689994a'],
  [9, 'v1:4a272b24936ae61996d1ff4d10ef6e9a27c32c4f63270129157e3745499c6bb9'],
  [10, 'v1:3d50a8c4c7b3b9cdcc3be15b6ce781f2edc8ab7584248277d011beb31bf70cfa'],
  [11, 'v1:eee61cd79859340737540e92a6c9091b1bcbf8994ae5301e9875e900867098b0'],
  [12, 'v1:7b74308892b566ea439a32e15218f9201e98c6e1a8a683db6ec56bb9324687f4'],
];

describe('fingerprint: bit-identical to the v1 digests journals hold', () => {
  const corpus = edgeCases();

  it('the lab corpus, whole: the digests v1 gave', () => {
    expect(corpus.map((e) => [e.name, fingerprint(e.bytes)])).toEqual(V1_DIGESTS);
  });

  it('seeded hostile messages, whole: the digests v1 gave, and the rules byte by byte', () => {
    for (const [seed, digest] of V1_HOSTILE) {
      const m = hostile(seed);
      expect(fingerprint(m), `hostile(${seed})`).toBe(digest);
      expect(reference(m), `hostile(${seed})`).toBe(digest);
    }
  });

  it('the lab corpus and hostile messages in random chunks equal the whole', () => {
    const rng = new Prng(7);
    const messages = [
      ...corpus.filter((e) => e.bytes.length < 1_000_000).map((e) => e.bytes),
      ...V1_HOSTILE.map(([seed]) => hostile(seed)),
    ];
    for (const [i, m] of messages.entries()) {
      const whole = fingerprint(m);
      for (let round = 0; round < 6; round++) expect(inChunks(randomSplit(m, rng)), `message ${i}`).toBe(whole);
    }
    const huge = corpus.find((e) => e.name === 'huge-25mb')!.bytes;
    expect(inChunks(randomSplit(huge, rng))).toBe(fingerprint(huge));
  });

  it('many small hostile messages in random chunks equal the rules', () => {
    const rng = new Prng(11);
    for (let seed = 1000; seed < 1300; seed++) {
      const m = hostile(seed).subarray(0, rng.int(0, 3000));
      expect(inChunks(randomSplit(m, rng)), `hostile(${seed})`).toBe(reference(m));
    }
  });
});
