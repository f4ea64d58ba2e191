import { describe, expect, it } from 'vitest';
import { RetrSplitter, uidlReply } from '../../lab/retr-splitter.js';

/** What a POP3 server sends for RETR of `m`: status line, dot-stuffed lines, terminator. */
function retrReply(m: string): string {
  const stuffed = m.replace(/(^|\r\n)\./g, '$1..');
  return `+OK ${m.length} octets\r\n${stuffed}.\r\n`;
}

const MESSAGES = [
  'Subject: a\r\n\r\nplain body\r\n',
  '',
  '.\r\n',
  '..\r\n.x\r\n\r\n.\r\nend\r\n',
  'Subject: dots\r\n\r\n. leading\r\nmid.dle\r\n.\r\n..\r\n',
  '\r\n',
  'x\r\n\r\n\r\n.\r\n\r\n',
];

function split(stream: Buffer, cuts: number[]): string[] {
  const out: string[] = [];
  const s = new RetrSplitter((parts, size) => {
    const whole = Buffer.concat(parts);
    expect(whole.length).toBe(size);
    out.push(whole.toString('latin1'));
  });
  let at = 0;
  for (const c of [...cuts, stream.length]) {
    s.push(stream.subarray(at, c));
    at = c;
  }
  return out;
}

describe('RetrSplitter (lab/retr-splitter.ts): pipelined RETR replies back into messages', () => {
  const stream = Buffer.from(MESSAGES.map(retrReply).join(''), 'latin1');

  it('undoes dot-stuffing whole, in one chunk', () => {
    expect(split(stream, [])).toEqual(MESSAGES);
  });

  it('gives the same messages wherever one cut falls', () => {
    for (let c = 1; c < stream.length; c++) expect(split(stream, [c])).toEqual(MESSAGES);
  });

  it('gives the same messages for one byte per chunk', () => {
    expect(
      split(
        stream,
        Array.from({ length: stream.length - 1 }, (_, i) => i + 1),
      ),
    ).toEqual(MESSAGES);
  });

  it('stops at an -ERR status line', () => {
    const s = new RetrSplitter(() => {});
    expect(() => s.push(Buffer.from('-ERR no such message\r\n'))).toThrow(/RETR refused: -ERR no such message/);
  });
});

describe('uidlReply (lab/retr-splitter.ts): the UIDL listing ahead of pipelined RETRs', () => {
  const listing = '+OK\r\n1 abc\r\n2 d.e\r\n3 .x\r\n.\r\n';
  const after = '+OK 12 octets\r\n';
  const stream = Buffer.from(listing + after, 'latin1');

  it('waits for the terminator wherever a chunk ends, then gives the UIDLs and where RETR begins', () => {
    for (let c = 0; c < listing.length; c++) expect(uidlReply(stream.subarray(0, c))).toBeNull();
    for (let c = listing.length; c <= stream.length; c++)
      expect(uidlReply(stream.subarray(0, c))).toEqual({ uidls: ['abc', 'd.e', '.x'], end: listing.length });
  });

  it('reads an empty listing', () => {
    expect(uidlReply(Buffer.from('+OK 0 messages\r\n.\r\n'))).toEqual({ uidls: [], end: 19 });
  });

  it('stops at an -ERR status line, even before its end', () => {
    expect(() => uidlReply(Buffer.from('-ER'))).toThrow(/UIDL refused: -ER/);
    expect(() => uidlReply(Buffer.from('-ERR not now\r\n.\r\n'))).toThrow(/UIDL refused: -ERR not now/);
  });
});
