import { describe, expect, it } from 'vitest';
import { benchMix, edgeCases } from '../../lab/corpus.js';
import { type HeaderField, headerBlockEnd, parseHeaders } from '../../src/mapping/headers.js';
import { joinedPieces, seeded } from '../support/seeded.js';

/** parseHeaders as it was when it split the block by /\r?\n/: what routing and dates saw. */
function splitParseHeaders(message: Buffer): HeaderField[] {
  const block = message.subarray(0, headerBlockEnd(message)).toString('latin1');
  const fields: HeaderField[] = [];
  for (const line of block.split(/\r?\n/)) {
    if (line === '') break;
    const last = fields[fields.length - 1];
    if ((line.startsWith(' ') || line.startsWith('\t')) && last) {
      last.value += ' ' + line.trim();
      continue;
    }
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    fields.push({ name: line.slice(0, colon).trim().toLowerCase(), value: line.slice(colon + 1).trim() });
  }
  return fields;
}

describe('parseHeaders', () => {
  it('reads the lab corpus and the bench mix field for field as the line-splitting version did', () => {
    for (const m of [...edgeCases({ huge: false }).map((e) => e.bytes), ...benchMix(200, 3)])
      expect(parseHeaders(m)).toEqual(splitParseHeaders(m));
  });

  it('agrees with it on any header block (seeded random blocks of line ends, folds, colons, junk)', () => {
    const pieces = [
      'Subject',
      'Date',
      'From ',
      'ÀÉ',
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
      '\xa0',
      'value',
      'a:b',
      '\r\n\r\n',
      'body',
      'Received: x; 1 Jan 2020 00:00 +0000',
    ];
    const next = seeded(11);
    for (let i = 0; i < 3000; i++) {
      const text = joinedPieces(next, pieces, 40);
      const m = Buffer.from(text, 'latin1');
      expect([text, parseHeaders(m)]).toEqual([text, splitParseHeaders(m)]);
    }
  });
});
