/**
 * received.ts keeps an in-memory message as the chunks it arrived in and takes its head without
 * joining them (headOf). Before, the head was the first HEADER_PARSE_LIMIT + 2 bytes of the
 * joined message. Every reader of a head must get the same answer from both: routing's
 * fields, the identity hash, the header block's end, and the adopter's header fingerprint.
 */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { headOf } from '../../src/engine/received.js';
import { headerHash } from '../../src/engine/identity.js';
import { headerComplete, headerFingerprint } from '../../src/engine/reconcile.js';
import { HEADER_PARSE_LIMIT, headerBlockEnd, parseHeaders } from '../../src/mapping/headers.js';
import { joinedPieces, seeded } from '../support/seeded.js';

const HEAD_BYTES = HEADER_PARSE_LIMIT + 2;

function readings(head: Buffer) {
  return {
    end: headerBlockEnd(head),
    // Digested: a deep comparison of the 13,000 fields of a 1 MiB header block took seconds.
    fields: createHash('sha256')
      .update(JSON.stringify(parseHeaders(head)))
      .digest('hex'),
    hash: headerHash(head),
    complete: headerComplete(head),
    fingerprint: headerFingerprint(head),
  };
}

/** The message cut at `cuts` (offsets), as the POP3 reader might hand it over. */
function split(message: Buffer, cuts: number[]): Buffer[] {
  const at = [...new Set(cuts.filter((c) => c > 0 && c < message.length))].sort((a, b) => a - b);
  const chunks: Buffer[] = [];
  let from = 0;
  for (const c of [...at, message.length]) {
    chunks.push(message.subarray(from, c));
    from = c;
  }
  return chunks.filter((c) => c.length > 0);
}

function expectSameReadings(message: Buffer, chunks: Buffer[], what: string): Buffer {
  const head = headOf(chunks, message.length);
  expect(readings(head), what).toEqual(readings(message.subarray(0, HEAD_BYTES)));
  return head;
}

const pieces = [
  'Subject: a',
  'From: x@y',
  'X-Mixed: XxX',
  '\r\n',
  '\n',
  '\r',
  '\r\n\r\n',
  '\n\n',
  '\n\r\n',
  '\r\n\r',
  '\n\r\r\n',
  '\n\0\n',
  '\n\x80\n',
  ' folded',
  '\t',
  '\xe9\xe8',
  ':',
  '\0',
  'body text',
];

describe('the head of a message held in chunks', () => {
  it('reads as the first HEADER_PARSE_LIMIT + 2 bytes of the joined message, however it is cut', () => {
    const next = seeded(11);
    for (let i = 0; i < 3000; i++) {
      const message = Buffer.from(joinedPieces(next, pieces, 30), 'latin1');
      const cuts = Array.from({ length: next(6) }, () => next(message.length + 1));
      expectSameReadings(message, split(message, cuts), JSON.stringify([message.toString('latin1'), cuts]));
    }
  });

  it('a blank line cut at each of its bytes', () => {
    for (const blank of ['\n\n', '\r\n\r\n', '\n\r\n', '\r\n\n']) {
      const message = Buffer.from(`Subject: a\r\nFrom: b${blank}body\r\n`, 'latin1');
      for (let a = 0; a <= message.length; a++)
        for (let b = a; b <= message.length; b++) expectSameReadings(message, split(message, [a, b]), `${a} ${b}`);
    }
  });

  it('around the parse limit, and with no blank line within it', () => {
    const line = 'X-Long: '.padEnd(78, 'y');
    const filler = (n: number): string => `${`${line}\r\n`.repeat(Math.ceil(n / 80))}`.slice(0, n);
    for (const blankAt of [-3, -2, -1, 0, 1, 2]) {
      for (const blank of ['\n\n', '\n\r\n']) {
        const before = filler(HEADER_PARSE_LIMIT + blankAt);
        const message = Buffer.from(`${before.slice(0, -1)}\r${blank}body\r\n`, 'latin1');
        for (const cuts of [[65_536], [HEADER_PARSE_LIMIT - 1, HEADER_PARSE_LIMIT + 1], [500_000, HEAD_BYTES]])
          expectSameReadings(message, split(message, cuts), `${blankAt} ${JSON.stringify(blank)} ${cuts}`);
      }
    }
    const noBlank = Buffer.from(filler(3 * HEADER_PARSE_LIMIT), 'latin1');
    const head = expectSameReadings(noBlank, split(noBlank, [1000, 70_000, 2_000_000]), 'no blank line');
    expect(head.equals(noBlank.subarray(0, HEAD_BYTES))).toBe(true);
  });

  it('copies no more than the header block, and nothing when the first chunk holds it', () => {
    const message = Buffer.from(`Subject: a\r\nFrom: b\r\n\r\n${'body line\r\n'.repeat(50_000)}`, 'latin1');
    const inFirst = split(message, [100, 70_000]);
    const head = headOf(inFirst, message.length);
    expect(head.buffer).toBe(message.buffer);
    expect(head.length).toBe(100);
    // Cut anywhere in the header block, its blank line included: joined up to its end only.
    const block = 'Subject: a\r\nFrom: b\r\n\r\n';
    for (let cut = 1; cut < block.length; cut++)
      expect(headOf(split(message, [cut, 70_000]), message.length).toString(), `cut at ${cut}`).toBe(block);
  });
});
