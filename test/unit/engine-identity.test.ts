/** Identity beyond UIDL, deletion planning and windowed-source detection: pure functions, no sockets. */
import { describe, expect, it } from 'vitest';
import { planDeletion, parseMaxDelete, type DeletionPolicy } from '../../src/engine/deletion.js';
import { createHash } from 'node:crypto';
import { benchMix, edgeCases } from '../../lab/corpus.js';
import { headerHash, headerHashOf, identify, needsHeaders } from '../../src/engine/identity.js';
import { invalidReasonText, joinListing, planCopy } from '../../src/engine/plan.js';
import { windowWarnings } from '../../src/engine/window.js';
import type { JournalRow } from '../../src/journal/types.js';
import {
  BLANK_LINE_SEARCH,
  HEADER_PARSE_LIMIT,
  type HeaderField,
  headerBlockEnd,
  headerFields,
  headerText,
} from '../../src/mapping/headers.js';
import { joinedPieces, seeded } from '../support/seeded.js';

const row = (uidl: string, o: Partial<JournalRow> = {}): JournalRow => ({
  account: 'a',
  uidl,
  state: 'done',
  size: 100,
  sha256: 'x',
  messageId: null,
  folder: 'INBOX',
  destUidValidity: 1n,
  destUidNext: 1,
  destUid: 1,
  attempts: 1,
  lastError: null,
  firstSeenAt: 't',
  updatedAt: 't',
  copiedAt: '2030-01-01T00:00:00.000Z',
  provenance: null,
  headerHash: `h-${uidl}`,
  listSize: 100,
  deletedAt: null,
  vanishedAt: null,
  ...o,
});
const rows = (...r: JournalRow[]) => new Map(r.map((x) => [x.uidl, x]));
const NOW = new Date('2030-01-05T00:00:00Z');

describe('headerHash', () => {
  const base = 'From: a@b\r\nSubject: Hello\r\n  world\r\nMessage-ID: <1@b>\r\n\r\nbody\r\n';
  it('ignores volatile headers, case of names, folding and line ends, and the body', () => {
    const h = headerHash(Buffer.from(base));
    expect(
      headerHash(Buffer.from('Status: RO\r\nX-UIDL: 77\r\n' + base.replace('Subject', 'SUBJECT') + 'more body')),
    ).toBe(h);
    expect(
      headerHash(
        Buffer.from(
          'return-path: <x@y>\nFrom: a@b\nSubject: Hello\n  world\nMessage-ID: <1@b>\nContent-Length: ' +
            '5\nX-Keywords: $x\nLines: 3\n\n',
        ),
      ),
    ).toBe(h);
    expect(headerHash(Buffer.from('From: a@b\r\nSubject: Hello\r\nMessage-ID: <1@b>\r\n\r\n'))).not.toBe(h);
    expect(headerHash(Buffer.from(base.replace('<1@b>', '<2@b>')))).not.toBe(h);
  });
  it('hashes a TOP n 0 answer like the whole message', () => {
    expect(headerHash(Buffer.from(base.split('\r\n\r\n')[0] + '\r\n\r\n'))).toBe(headerHash(Buffer.from(base)));
  });
});

/**
 * Journals key messages without a usable UIDL by their header hash, so a faster headerHash or
 * headerBlockEnd must give the same results. These were computed by the code before both
 * searched line ends natively and hashed in one update (a step per byte, an update per field).
 */
describe('headerHash and headerBlockEnd: the results journals hold', () => {
  it('the lab corpus: header block ends and hashes as before', () => {
    expect(
      edgeCases({ huge: false }).map((e) => [e.name, headerBlockEnd(e.bytes), headerHash(e.bytes).slice(0, 16)]),
    ).toEqual([
      ['no-message-id', 337, '5d445df8639d2429'],
      ['same-message-id-a', 390, '3c60301fcc04a01d'],
      ['same-message-id-b', 391, 'e47feeede5701569'],
      ['duplicate-1', 367, 'bc32f505778d4a28'],
      ['duplicate-2', 367, 'bc32f505778d4a28'],
      ['dot-lines', 368, 'e249a6b75ec208bc'],
      ['status-lines', 378, '7effa6cc84d259df'],
      ['latin1-headers', 449, '3c496a3b332270e3'],
      ['utf8-headers', 456, 'd078a341032f51aa'],
      ['bare-lf', 358, 'dd67f6507fc993a1'],
      ['no-body', 369, '29633376a461abd5'],
      ['headers-only', 381, '3b0f058398c05b2d'],
      ['long-line-1k', 237, 'e8859d6be02f3cd5'],
      ['long-line-10k', 2274, '0dfb04157ff094d5'],
      ['no-final-newline', 247, '13006571f653532c'],
    ]);
  });

  it('200 messages of the bench mix: the same ends and hashes as before', () => {
    const all = benchMix(200, 3).map((m) => `${headerBlockEnd(m)} ${headerHash(m)}`);
    for (const m of [...benchMix(200, 3), ...edgeCases({ huge: false }).map((e) => e.bytes)]) {
      const fields: HeaderField[] = [];
      const block = headerText(m);
      expect([headerHashOf(block, fields), fields]).toEqual([headerHash(m), headerFields(block)]);
    }
    expect(createHash('sha256').update(all.join('\n')).digest('hex')).toBe(
      'e2947e4fcd070bc56267f51ef2a34c3fbb98365e8f679c4d8d37339be8068c55',
    );
  });

  it('header block ends: LF LF, LF CR LF, none, and a blank line right at the parse limit', () => {
    const b = (s: string): Buffer => Buffer.from(s, 'latin1');
    expect(headerBlockEnd(b('A: 1\n\nbody'))).toBe(6);
    expect(headerBlockEnd(b('A: 1\r\n\r\nbody'))).toBe(8);
    expect(headerBlockEnd(b('A: 1\r\n\rB: 2\r\n\r\n'))).toBe(15);
    expect(headerBlockEnd(b('\nbody'))).toBe(5);
    expect(headerBlockEnd(b('A: 1\r\nno blank line'))).toBe(19);
    const atLimit = (blank: string, at: number): number => {
      const m = Buffer.alloc(HEADER_PARSE_LIMIT + 10, 'a');
      m.write(blank, at, 'latin1');
      return headerBlockEnd(m);
    };
    // The first LF of the blank line must lie within the limit; the bytes after it may not.
    expect(atLimit('\n\n', HEADER_PARSE_LIMIT)).toBe(HEADER_PARSE_LIMIT);
    expect(atLimit('\r\n\r\n', HEADER_PARSE_LIMIT - 2)).toBe(HEADER_PARSE_LIMIT + 2);
    expect(atLimit('\n\n', HEADER_PARSE_LIMIT - 1)).toBe(HEADER_PARSE_LIMIT + 1);
  });

  it('header block ends as the search line by line found them, for any bytes and near the limit', () => {
    // The per-line search headerBlockEnd made before it searched for the two patterns.
    const lineByLine = (message: Buffer): number => {
      const scan = Math.min(message.length, HEADER_PARSE_LIMIT);
      const within = message.subarray(0, scan);
      for (let i = within.indexOf(0x0a); i >= 0; i = within.indexOf(0x0a, i + 1)) {
        if (message[i + 1] === 0x0a) return i + 2;
        if (message[i + 1] === 0x0d && message[i + 2] === 0x0a) return i + 3;
      }
      return scan;
    };
    const next = seeded(5);
    const pieces = ['\n', '\r', '\r\n', '\n\n', '\n\r\n', '\r\n\r\n', 'a', 'A: 1', ' '];
    for (let i = 0; i < 4000; i++) {
      const m = Buffer.from(joinedPieces(next, pieces, 30), 'latin1');
      expect(headerBlockEnd(m), JSON.stringify(m.toString('latin1'))).toBe(lineByLine(m));
    }
    // Blank lines of each kind just before, on and past the limit, alone and two of them in
    // either order.
    // The same around the end of the part searched by pattern, where the line by line search
    // takes over.
    for (const edge of [HEADER_PARSE_LIMIT, BLANK_LINE_SEARCH]) {
      const near = [edge - 6, edge - 3, edge - 2, edge - 1, edge];
      for (const first of ['\n\n', '\n\r\n', '\r\n\r\n']) {
        for (const second of ['', '\n\n', '\n\r\n']) {
          for (const at of [...near, edge + 1]) {
            for (const other of near) {
              for (const extra of [0, 1, 2, 10, edge === BLANK_LINE_SEARCH ? 5000 : 0]) {
                const m = Buffer.alloc(Math.max(at + first.length, other + second.length) + extra, 'a');
                m.write(second, other, 'latin1');
                m.write(first, at, 'latin1');
                const what = `${JSON.stringify(first)} at ${at}, ${JSON.stringify(second)} at ${other}, +${extra}`;
                expect(headerBlockEnd(m), what).toBe(lineByLine(m));
              }
            }
          }
        }
      }
    }
  });

  /** headerHash as it was when it worked on latin1 strings: the bytes the byte version must hash. */
  function stringHeaderHash(message: Buffer): string {
    const block = message.subarray(0, headerBlockEnd(message)).toString('latin1');
    const fields: string[] = [];
    for (const line of block.split(/\r?\n/)) {
      if (line === '') break;
      if ((line.startsWith(' ') || line.startsWith('\t')) && fields.length > 0) {
        fields[fields.length - 1] += line;
        continue;
      }
      fields.push(line);
    }
    const volatile = new Set(['status', 'x-status', 'x-uid', 'x-uidl', 'x-keywords', 'x-imap', 'x-imapbase']);
    for (const v of ['content-length', 'return-path', 'lines']) volatile.add(v);
    let canonical = '';
    for (const f of fields) {
      const colon = f.indexOf(':');
      const name = (colon > 0 ? f.slice(0, colon) : f).trim().toLowerCase();
      if (colon > 0 && volatile.has(name)) continue;
      canonical += colon > 0 ? `${name}:${f.slice(colon + 1).trimEnd()}\n` : `${f.trimEnd()}\n`;
    }
    return createHash('sha256').update(Buffer.from(canonical, 'latin1')).digest('hex');
  }

  it('hashes the same bytes as the string version for any header block (seeded random blocks)', () => {
    // Pieces that exercise every rule: line ends, folding, colons, what trim() removes in latin1
    // (VT, FF, NBSP), capitals ASCII and accented (and the multiplication sign, which has none).
    const pieces = [
      'Subject',
      'STATUS',
      'X-UIDL',
      'Lines',
      'Return-Path',
      'x-Imapbase',
      'From',
      'ÀÉÞ×ß',
      ':',
      ': ',
      ' ',
      '\t',
      '\r\n',
      '\n',
      '\r',
      '\r\n ',
      '\n\t',
      '\x0b',
      '\x0c',
      '\xa0',
      'value',
      'ÿ',
      '\x00',
      'a:b',
      '\r\n\r\n',
      'body',
    ];
    const next = seeded(7);
    for (let i = 0; i < 3000; i++) {
      const text = joinedPieces(next, pieces, 40);
      const m = Buffer.from(text, 'latin1');
      expect([text, headerHash(m)]).toEqual([text, stringHeaderHash(m)]);
      // The copy's pass, which reads the fields too: the same hash, and headerFields' fields.
      const fields: HeaderField[] = [];
      const block = headerText(m);
      expect([text, headerHashOf(block, fields), fields]).toEqual([text, stringHeaderHash(m), headerFields(block)]);
    }
    // Larger than the buffer the canonical text is built in, and a block cut at the parse limit.
    const long = Buffer.from(`Subject: ${'x'.repeat(70_000)}\r\n X-UIDL: 1 \r\nStatus: RO\r\n\r\nbody`, 'latin1');
    expect(headerHash(long)).toBe(stringHeaderHash(long));
    const cut = Buffer.from(`A: 1\r\nB: ${'y'.repeat(HEADER_PARSE_LIMIT)}\r\n\r\n`, 'latin1');
    expect(headerHash(cut)).toBe(stringHeaderHash(cut));
    expect(headerHash(Buffer.from('Subject: short\r\n\r\n'))).toBe(
      stringHeaderHash(Buffer.from('Subject: short\r\n\r\n')),
    );
  });
});

describe('identify', () => {
  it('trusts known UIDLs of unchanged size and fetches no headers when nothing is missing', () => {
    const listing = [
      { n: 1, uidl: 'u1', size: 100 },
      { n: 2, uidl: 'new', size: 50 },
    ];
    expect(needsHeaders(listing, rows(row('u1')), true)).toEqual([]);
    const id = identify(listing, rows(row('u1')), new Map(), { uidlSupported: true, now: NOW });
    expect(id).toMatchObject({ rekeys: [], recognised: 0, reused: [], listSizes: [], vanished: [] });
  });

  it('treats a reused UIDL (other size, other headers) as a new message and moves the old row aside', () => {
    const listing = [{ n: 1, uidl: 'u1', size: 300 }];
    expect(needsHeaders(listing, rows(row('u1')), true)).toEqual([1]);
    const id = identify(listing, rows(row('u1')), new Map([[1, 'other']]), { uidlSupported: true, now: NOW });
    expect(id.reused).toEqual(['u1']);
    expect(id.rekeys).toEqual([{ from: 'u1', to: `u1 reused ${NOW.toISOString()}` }]);
  });

  // A deletion whose QUIT reached the server's UPDATE but whose +OK never came (a drop, a -ERR to
  // QUIT after some deletions, a kill) leaves rows 'deleting'. Should the server give such a
  // UIDL to new mail before the next run, at the same size, the row was settled back to 'done'
  // on the UIDL alone: the new message counted as copied and was never copied.
  it("reads the headers of a listed UIDL whose row is 'deleting', and a different message there is a reuse", () => {
    const listing = [{ n: 1, uidl: 'u1', size: 100 }];
    const j = rows(row('u1', { state: 'deleting' }));
    expect(needsHeaders(listing, j, true)).toEqual([1]);
    const id = identify(listing, j, new Map([[1, 'other']]), { uidlSupported: true, now: NOW });
    expect(id.reused).toEqual(['u1']);
    expect(id.rekeys).toEqual([{ from: 'u1', to: `u1 reused ${NOW.toISOString()}` }]);
    expect(id.listSizes).toEqual([]);
  });

  it("keeps a listed 'deleting' row whose message still has the copied headers, writing nothing", () => {
    const listing = [{ n: 1, uidl: 'u1', size: 100 }];
    const j = rows(row('u1', { state: 'deleting' }));
    const id = identify(listing, j, new Map([[1, 'h-u1']]), { uidlSupported: true, now: NOW });
    expect(id).toMatchObject({ rekeys: [], reused: [], listSizes: [], vanished: [] });
    // TOP refused: the UIDL is trusted, as for any other row.
    expect(identify(listing, j, new Map(), { uidlSupported: true, now: NOW })).toMatchObject({
      rekeys: [],
      reused: [],
    });
  });

  it('keeps a known UIDL whose size changed but whose headers did not, and records the new size', () => {
    const id = identify([{ n: 1, uidl: 'u1', size: 300 }], rows(row('u1')), new Map([[1, 'h-u1']]), {
      uidlSupported: true,
      now: NOW,
    });
    expect(id).toMatchObject({ rekeys: [], reused: [], listSizes: [{ uidl: 'u1', listSize: 300 }] });
  });

  it('recognises messages under a new UIDL scheme by header hash and size, and re-keys them', () => {
    const j = rows(row('old1'), row('old2'), row('old3', { state: 'deleted' }));
    const listing = [
      { n: 1, uidl: 'NEW-A', size: 100 },
      { n: 2, uidl: 'NEW-B', size: 100 },
      { n: 3, uidl: 'NEW-C', size: 100 },
    ];
    expect(needsHeaders(listing, j, true)).toEqual([1, 2, 3]);
    const id = identify(
      listing,
      j,
      new Map([
        [1, 'h-old2'],
        [2, 'h-old1'],
        [3, 'h-old3'],
      ]),
      { uidlSupported: true, now: NOW },
    );
    expect(id.rekeys).toEqual([
      { from: 'old2', to: 'NEW-A' },
      { from: 'old1', to: 'NEW-B' },
    ]);
    expect(id.recognised).toBe(2);
    expect(id.vanished).toEqual([]);
  });

  it('reports copied rows that left the listing without being deleted, once', () => {
    const id = identify(
      [{ n: 1, uidl: 'u1', size: 100 }],
      rows(row('u1'), row('gone'), row('seen', { vanishedAt: 't' }), row('del', { state: 'deleted' })),
      new Map(),
      { uidlSupported: true, now: NOW },
    );
    expect(id.vanished).toEqual(['gone']);
  });

  it('without UIDL: rows copied under UIDLs before are recognised by header hash and size, re-keyed', () => {
    const H = (c: string) => c.repeat(64);
    const j = rows(
      row('u1', { headerHash: H('a'), listSize: 10, state: 'deleting' }),
      row('u2', { headerHash: H('b'), listSize: 20 }),
      row('u3', { headerHash: H('c'), listSize: 30 }),
    );
    const listing = [
      { n: 1, uidl: '', size: 10 },
      { n: 2, uidl: '', size: 20 },
      { n: 3, uidl: '', size: 40 },
    ];
    const hashes = new Map([
      [1, H('a')],
      [2, H('b')],
      [3, H('c')],
    ]);
    const id = identify(listing, j, hashes, { uidlSupported: false, now: NOW });
    expect(id.rekeys).toEqual([
      { from: 'u1', to: `header:${H('a')}:10#1` },
      { from: 'u2', to: `header:${H('b')}:20#1` },
    ]);
    expect(id.recognised).toBe(2);
    // Another size: not u3's message.
    expect(id.listing.map((m) => m.uidl)).toEqual([
      `header:${H('a')}:10#1`,
      `header:${H('b')}:20#1`,
      `header:${H('c')}:40#1`,
    ]);
  });

  it('without UIDL: keys by header hash and size, telling identical messages apart by occurrence', () => {
    const listing = [
      { n: 1, uidl: '', size: 10 },
      { n: 2, uidl: '', size: 10 },
      { n: 3, uidl: '', size: 20 },
    ];
    expect(needsHeaders(listing, new Map(), false)).toEqual([1, 2, 3]);
    const hashes = new Map([
      [1, 'a'.repeat(64)],
      [2, 'a'.repeat(64)],
      [3, 'b'.repeat(64)],
    ]);
    const first = identify(listing, new Map(), hashes, { uidlSupported: false, now: NOW });
    const keys = first.listing.map((m) => m.uidl);
    expect(keys).toEqual([
      `header:${'a'.repeat(64)}:10#1`,
      `header:${'a'.repeat(64)}:10#2`,
      `header:${'b'.repeat(64)}:20#1`,
    ]);
    // Next run: same keys; after #1 was deleted, a third identical copy gets a fresh occurrence.
    expect(
      identify(listing, rows(...keys.map((k) => row(k))), hashes, { uidlSupported: false, now: NOW }).listing.map(
        (m) => m.uidl,
      ),
    ).toEqual(keys);
    const later = identify(listing, rows(row(keys[0]!, { state: 'deleted' }), row(keys[1]!), row(keys[2]!)), hashes, {
      uidlSupported: false,
      now: NOW,
    });
    expect(later.listing.map((m) => m.uidl)).toEqual([keys[1], `header:${'a'.repeat(64)}:10#3`, keys[2]]);
  });
});

describe('identify: shared UIDLs (popa3d) and UIDLs popsync deleted', () => {
  const H = (c: string) => c.repeat(64);
  const opts = { uidlSupported: true, now: NOW };

  it('keys only the messages under a shared UIDL by header hash, size and occurrence', () => {
    const listing = [
      { n: 1, uidl: 'p', size: 10 },
      { n: 2, uidl: 'p', size: 10 },
      { n: 3, uidl: 'q', size: 30 },
    ];
    expect(needsHeaders(listing, new Map(), true)).toEqual([1, 2]);
    const id = identify(
      listing,
      new Map(),
      new Map([
        [1, H('a')],
        [2, H('a')],
      ]),
      opts,
    );
    expect(id.listing.map((m) => m.uidl)).toEqual([`header:${H('a')}:10#1`, `header:${H('a')}:10#2`, 'q']);
    expect(id.rekeys).toEqual([]);
    const plan = planCopy(id.listing, new Map());
    expect(plan.invalid).toEqual([]);
    expect(plan.copy).toHaveLength(3);
  });

  it('a message copied under a UIDL that is now shared keeps its copy: its row joins the header group', () => {
    const listing = [
      { n: 1, uidl: 'p', size: 10 },
      { n: 2, uidl: 'p', size: 10 },
    ];
    const before = rows(row('p', { headerHash: H('a'), listSize: 10 }));
    const id = identify(
      listing,
      before,
      new Map([
        [1, H('a')],
        [2, H('a')],
      ]),
      opts,
    );
    expect(id.rekeys).toEqual([{ from: 'p', to: `header:${H('a')}:10#1` }]);
    expect(id.listing.map((m) => m.uidl)).toEqual([`header:${H('a')}:10#1`, `header:${H('a')}:10#2`]);
    expect(id.vanished).toEqual([]);
    const after = rows(row(`header:${H('a')}:10#1`, { headerHash: H('a'), listSize: 10 }));
    expect(planCopy(id.listing, after).copy.map((m) => m.n)).toEqual([2]);
  });

  it('when the UIDL is unique again, the surviving header row gets it back instead of a second copy', () => {
    const key1 = `header:${H('a')}:10#1`;
    const key2 = `header:${H('a')}:10#2`;
    const j = rows(
      row(key1, { headerHash: H('a'), listSize: 10, state: 'deleted' }),
      row(key2, { headerHash: H('a'), listSize: 10 }),
    );
    const listing = [{ n: 1, uidl: 'p', size: 10 }];
    expect(needsHeaders(listing, j, true)).toEqual([1]);
    const id = identify(listing, j, new Map([[1, H('a')]]), opts);
    expect(id.rekeys).toEqual([{ from: key2, to: 'p' }]);
    expect(id.recognised).toBe(1);
  });

  it('a shared UIDL whose TOP failed is a fault of that message, named', () => {
    const listing = [
      { n: 1, uidl: 'p', size: 10 },
      { n: 2, uidl: 'p', size: 10 },
    ];
    const id = identify(listing, new Map(), new Map([[1, H('a')]]), opts);
    expect(id.listing[1]).toMatchObject({ uidl: '', fault: expect.stringMatching(/UIDL p for more than one message/) });
    const plan = planCopy(id.listing, new Map());
    expect(plan.invalid.map((m) => [m.n, m.reason, invalidReasonText(m)])).toEqual([
      [2, 'unusable-uidl', id.listing[1]!.fault],
    ]);
  });

  it('a UIDL popsync deleted and sees again is a new message: the old row is moved aside', () => {
    const listing = [
      { n: 1, uidl: 'u1', size: 100 },
      { n: 2, uidl: 'u2', size: 100 },
    ];
    const j = rows(row('u1', { state: 'deleted' }), row('u2'));
    expect(needsHeaders(listing, j, true)).toEqual([1]);
    // Other headers, or a TOP refused: a new message under the reused UIDL.
    for (const hashes of [new Map([[1, 'other']]), new Map<number, string>()]) {
      const id = identify(listing, j, hashes, opts);
      expect(id.rekeys).toEqual([{ from: 'u1', to: `u1 reused ${NOW.toISOString()}` }]);
      expect(id.reused).toEqual(['u1']);
      expect(id.reappeared).toEqual([]);
    }
    const after = rows(row(`u1 reused ${NOW.toISOString()}`, { state: 'deleted' }), row('u2'));
    const id = identify(listing, j, new Map([[1, 'other']]), opts);
    expect(planCopy(id.listing, after).copy.map((m) => m.uidl)).toEqual(['u1']);
  });

  it("a UIDL recorded 'deleted' listed again with the copied headers and size is that message: not copied", () => {
    const listing = [{ n: 1, uidl: 'u1', size: 100 }];
    const j = rows(row('u1', { state: 'deleted' }));
    const id = identify(listing, j, new Map([[1, 'h-u1']]), opts);
    expect(id).toMatchObject({ rekeys: [], reused: [], reappeared: ['u1'], listSizes: [] });
    expect(planCopy(id.listing, j).copy).toEqual([]);
    // The same headers at another size: not the message copied.
    const other = identify([{ n: 1, uidl: 'u1', size: 120 }], j, new Map([[1, 'h-u1']]), opts);
    expect(other).toMatchObject({ reused: ['u1'], reappeared: [] });
  });

  it('a UIDL with bytes RFC 1939 forbids is a reported fault, never cut or guessed', () => {
    const listing = joinListing(
      [
        { n: 1, size: 5 },
        { n: 2, size: 6 },
      ],
      [
        { n: 1, uidl: '', fault: 'bad UIDL "a\\x20b"' },
        { n: 2, uidl: 'ok' },
      ],
    );
    const plan = planCopy(listing, new Map());
    expect(plan.invalid.map((m) => invalidReasonText(m))).toEqual(['bad UIDL "a\\x20b"']);
    expect(plan.copy.map((m) => m.uidl)).toEqual(['ok']);
  });
});

describe('joinListing and planCopy', () => {
  const sizes = [
    { n: 1, size: 10 },
    { n: 2, size: 20 },
    { n: 3, size: 30 },
  ];
  it('pairs LIST and UIDL by message number, whatever order and gaps the UIDL answer has', () => {
    const inOrder = joinListing(sizes, [
      { n: 1, uidl: 'a' },
      { n: 2, uidl: 'b' },
      { n: 3, uidl: 'c', fault: 'bad' },
    ]);
    expect(inOrder).toEqual([
      { n: 1, size: 10, uidl: 'a' },
      { n: 2, size: 20, uidl: 'b' },
      { n: 3, size: 30, uidl: 'c', fault: 'bad' },
    ]);
    // Out of order, one missing, one number listed twice (the later line wins, as it always did).
    expect(
      joinListing(sizes, [
        { n: 3, uidl: 'c' },
        { n: 1, uidl: 'a' },
        { n: 1, uidl: 'a2' },
      ]),
    ).toEqual([
      { n: 1, size: 10, uidl: 'a2' },
      { n: 2, size: 20, uidl: '' },
      { n: 3, size: 30, uidl: 'c' },
    ]);
    // UIDL in step with LIST as far as it goes, the last message left out: that one has no UIDL.
    expect(
      joinListing(sizes, [
        { n: 1, uidl: 'a' },
        { n: 2, uidl: 'b' },
      ]).map((m) => m.uidl),
    ).toEqual(['a', 'b', '']);
    // Same positions but a number twice: not taken as in step.
    expect(
      joinListing(
        [
          { n: 1, size: 10 },
          { n: 1, size: 11 },
        ],
        [
          { n: 1, uidl: 'x' },
          { n: 1, uidl: 'y' },
        ],
      ).map((m) => m.uidl),
    ).toEqual(['y', 'y']);
  });

  it('copies what the journal lacks, skips copies, and never copies a key listed twice', () => {
    const listing = [
      { n: 1, uidl: 'new', size: 1 },
      { n: 2, uidl: 'twice', size: 2 },
      { n: 3, uidl: 'copied', size: 3 },
      { n: 4, uidl: 'twice', size: 4 },
      { n: 5, uidl: 'lost', size: 5 },
      { n: 6, uidl: '', size: 6 },
    ];
    const plan = planCopy(listing, rows(row('copied'), row('lost', { state: 'appending', copiedAt: null })));
    expect(plan.copy).toEqual([
      { n: 1, uidl: 'new', size: 1, retry: false },
      { n: 5, uidl: 'lost', size: 5, retry: true },
    ]);
    // The listing's own object: a run with nothing new skips every message it lists.
    expect(plan.skip).toEqual([{ n: 3, uidl: 'copied', size: 3 }]);
    expect(plan.skip[0]).toBe(listing[2]);
    expect(plan.invalid.map((m) => [m.n, m.reason])).toEqual([
      [2, 'duplicate-uidl'],
      [4, 'duplicate-uidl'],
      [6, 'no-uidl'],
    ]);
  });
});

describe('planDeletion', () => {
  const policy = (o: Partial<DeletionPolicy> = {}): DeletionPolicy => ({
    afterDays: 0,
    maxDelete: null,
    force: false,
    verify: false,
    ...o,
  });
  const listing = ['a', 'b', 'c', 'd', 'e'].map((uidl, i) => ({ n: i + 1, uidl, size: 100 }));
  const j = rows(
    row('a'),
    row('b', { copiedAt: '2030-01-04T00:00:00.000Z' }),
    row('c', { state: 'appending', copiedAt: null }),
    row('d', { state: 'failed', copiedAt: null }),
    row('x-not-listed'),
  );
  it('deletes only confirmed copies that are listed', () => {
    expect(planDeletion(listing, j, policy(), NOW).delete.map((c) => c.uidl)).toEqual(['a', 'b']);
  });
  it('keeps copies younger than afterDays, counted from the first confirmed copy', () => {
    const p = planDeletion(listing, j, policy({ afterDays: 3 }), NOW);
    expect(p.delete.map((c) => [c.uidl, c.n])).toEqual([['a', 1]]);
    expect(p.waiting).toBe(1);
  });
  it('refuses everything beyond the ceiling unless forced', () => {
    expect(planDeletion(listing, j, policy({ maxDelete: { count: 1 } }), NOW)).toMatchObject({
      delete: [],
      refused: expect.stringMatching(/refusing to delete 2 messages/),
    });
    expect(planDeletion(listing, j, policy({ maxDelete: { percent: 40 } }), NOW)).toMatchObject({
      ceiling: 2,
      refused: null,
    });
    expect(planDeletion(listing, j, policy({ maxDelete: { percent: 20 } }), NOW).refused).toMatch(
      /20% of 5 listed = 1/,
    );
    expect(planDeletion(listing, j, policy({ maxDelete: { count: 1 }, force: true }), NOW).delete).toHaveLength(2);
  });
  it('parses --max-delete', () => {
    expect(parseMaxDelete('10')).toEqual({ count: 10 });
    expect(parseMaxDelete('5%')).toEqual({ percent: 5 });
    expect(() => parseMaxDelete('lots')).toThrow(/--max-delete/);
    expect(() => parseMaxDelete('101%')).toThrow(/percentage/);
  });
});

describe('windowWarnings', () => {
  it('warns when a round count repeats while new mail arrives, and never says "all"', () => {
    const w = windowWarnings({
      listed: 250,
      newCount: 3,
      vanished: 0,
      previous: [{ listed: 250, deleted: 0, result: 'ok' }],
    });
    expect(w).toHaveLength(1);
    expect(w[0]).toMatch(/exactly 250 .*newest 250/);
    expect(w[0]).not.toMatch(/\ball\b/);
  });
  it('stays quiet for a first run, an odd count, no new mail, or a run that deleted', () => {
    expect(windowWarnings({ listed: 250, newCount: 3, vanished: 0, previous: [] })).toEqual([]);
    expect(
      windowWarnings({ listed: 251, newCount: 3, vanished: 0, previous: [{ listed: 251, deleted: 0, result: 'ok' }] }),
    ).toEqual([]);
    expect(
      windowWarnings({ listed: 250, newCount: 0, vanished: 0, previous: [{ listed: 250, deleted: 0, result: 'ok' }] }),
    ).toEqual([]);
    expect(
      windowWarnings({ listed: 250, newCount: 3, vanished: 0, previous: [{ listed: 250, deleted: 3, result: 'ok' }] }),
    ).toEqual([]);
  });
  it(
    'stays quiet when the previous run did not end ok: its listed messages may still be unknown to the ' + 'journal',
    () => {
      // A 500-message migration interrupted after 200, then resumed: 300 unknown, none arrived.
      expect(
        windowWarnings({
          listed: 500,
          newCount: 300,
          vanished: 0,
          previous: [{ listed: 500, deleted: 0, result: 'error' }],
        }),
      ).toEqual([]);
      // Nor does an older ok run behind it count: the interrupted one is the last word.
      expect(
        windowWarnings({
          listed: 500,
          newCount: 300,
          vanished: 0,
          previous: [
            { listed: 500, deleted: 0, result: 'error' },
            { listed: 500, deleted: 0, result: 'ok' },
          ],
        }),
      ).toEqual([]);
      // Set-aside messages are not journaled: a 'partial' run proves nothing either.
      expect(
        windowWarnings({
          listed: 500,
          newCount: 2,
          vanished: 0,
          previous: [{ listed: 500, deleted: 0, result: 'partial' }],
        }),
      ).toEqual([]);
    },
  );
  it('warns when copied messages vanished without popsync deleting them', () => {
    expect(windowWarnings({ listed: 7, newCount: 0, vanished: 2, previous: [] })[0]).toMatch(
      /^2 messages copied earlier are no longer listed/,
    );
  });
});
