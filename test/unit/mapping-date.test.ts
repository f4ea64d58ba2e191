import { describe, expect, it } from 'vitest';
import { arrivalDate, parseMailDate } from '../../src/mapping/date.js';
import { parseHeaders } from '../../src/mapping/headers.js';
import { seeded } from '../support/seeded.js';

const iso = (s: string) => parseMailDate(s)?.toISOString() ?? null;

describe('parseMailDate', () => {
  it('reads standard dates with numeric zones', () => {
    expect(iso('Mon, 1 Jan 2024 10:00:00 +0100')).toBe('2024-01-01T09:00:00.000Z');
    expect(iso('Tue, 15 Nov 1994 08:12:31 -0800 (PST)')).toBe('1994-11-15T16:12:31.000Z');
  });
  it('reads a zone-less date as UTC, whatever the local zone', () => {
    expect(iso('Mon, 1 Jan 2024 10:00:00')).toBe('2024-01-01T10:00:00.000Z');
  });
  it('accepts names Date.parse rejects', () => {
    expect(iso('1 Jul 2023 12:00:00 CEST')).toBe('2023-07-01T10:00:00.000Z');
    expect(iso('1 Jul 2023 12:00:00 MSK')).toBe('2023-07-01T09:00:00.000Z');
    expect(iso('1 Jul 2023 12:00:00 A')).toBe('2023-07-01T12:00:00.000Z');
  });
  it('ignores a wrong weekday, handles two- and three-digit years and no seconds', () => {
    expect(iso('Fri, 1 Jan 2024 10:00 +0000')).toBe('2024-01-01T10:00:00.000Z');
    expect(iso('1 Jan 99 10:00:00 +0000')).toBe('1999-01-01T10:00:00.000Z');
    expect(iso('1 Jan 24 10:00:00 +0000')).toBe('2024-01-01T10:00:00.000Z');
    expect(iso('1 Jan 103 10:00:00 +0000')).toBe('2003-01-01T10:00:00.000Z');
  });
  it('rejects impossible dates instead of rolling them over', () => {
    expect(iso('31 Feb 2024 10:00:00 +0000')).toBeNull();
    expect(iso('29 Feb 2023 10:00:00 +0000')).toBeNull();
    expect(iso('29 Feb 2024 10:00:00 +0000')).toBe('2024-02-29T10:00:00.000Z');
    expect(iso('1 Foo 2024 10:00:00 +0000')).toBeNull();
    expect(iso('garbage')).toBeNull();
  });
  it("knows Date.UTC's leap years: centuries, and a four-digit year under 100 read as 19xx", () => {
    expect(iso('29 Feb 1900 10:00:00 +0000')).toBeNull();
    expect(iso('29 Feb 2000 10:00:00 +0000')).toBe('2000-02-29T10:00:00.000Z');
    expect(iso('31 Apr 2024 10:00:00 +0000')).toBeNull();
    // Date.UTC reads year 0 as 1900 (no leap day) and 4 as 1904; the check and the date agree.
    expect(iso('29 Feb 0000 10:00:00 +0000')).toBeNull();
    expect(iso('29 Feb 0004 10:00:00 +0000')).toBe('1904-02-29T10:00:00.000Z');
  });
  it('reads a leap second as :59 and dotted times', () => {
    expect(iso('31 Dec 2016 23:59:60 +0000')).toBe('2016-12-31T23:59:59.000Z');
    expect(iso('1 Jan 2024 10.00.00 +0000')).toBe('2024-01-01T10:00:00.000Z');
  });

  it("reads a month by its first three letters in any case, and a zone's hours and minutes from their places", () => {
    // The month is looked up by its letters' codes, and the zone's digits read by position: a
    // letter left in its case, or a digit read one place off, shows here.
    for (const month of ['JAN', 'jAn', 'jaN', 'January', 'JANUARY']) {
      expect(iso(`1 ${month} 2024 10:00:00 +0000`), month).toBe('2024-01-01T10:00:00.000Z');
    }
    expect(iso('1 SEPT 2024 10:00:00 +0000')).toBe('2024-09-01T10:00:00.000Z');
    expect(iso('1 Ja 2024 10:00:00 +0000')).toBeNull();
    expect(iso('1 Jan 2024 10:00:00 +0130')).toBe('2024-01-01T08:30:00.000Z');
    expect(iso('1 Jan 2024 10:00:00 -0945')).toBe('2024-01-01T19:45:00.000Z');
    expect(iso('1 Jan 2024 10:00:00 +2359')).toBe('2023-12-31T10:01:00.000Z');
    expect(iso('1 Jan 2024 10:00:00 -0059')).toBe('2024-01-01T10:59:00.000Z');
    for (const zone of ['+2400', '-2400', '+0060', '-1360', '+9900']) {
      expect(iso(`1 Jan 2024 10:00:00 ${zone}`), zone).toBeNull();
    }
  });

  it('reads any text as it did when it collapsed white space and trimmed first (seeded random dates)', () => {
    // The text parseMailDate matched before it left runs of white space to the pattern.
    const collapsed = (s: string): string | null =>
      iso(
        s
          .replace(/\([^()]*\)/g, ' ')
          .replace(/\s+/g, ' ')
          .trim(),
      );
    const pieces = [
      ' ',
      '  ',
      '\t',
      '\r\n ',
      '\xa0',
      '\u2003',
      '(c)',
      '(',
      ')',
      'Mon,',
      'Tue',
      ',',
      '-',
      '1',
      '31',
      '07',
      'Feb',
      'jAN',
      'Sept',
      '2024',
      '99',
      '123',
      ':',
      '.',
      '10',
      '59',
      '60',
      '+0100',
      '-2400',
      'CEST',
      'z',
      'x',
    ];
    const next = seeded(5);
    const shape = [' ', '28', ' ', 'Feb', ' ', '2024', ' ', '10', ':', '59', ':', '60', ' ', '+0100'];
    for (let i = 0; i < 20000; i++) {
      // Mostly near-dates (a piece of a real shape swapped or doubled), so the pattern gets far.
      const text = shape.map((p) => (next(4) === 0 ? pieces[next(pieces.length)]! + (next(2) ? p : '') : p)).join('');
      expect([text, iso(text)]).toEqual([text, collapsed(text)]);
    }
  });
});

describe('arrivalDate', () => {
  const now = new Date('2026-01-01T00:00:00Z');
  const msg = (h: string) => parseHeaders(Buffer.from(h + '\r\n\r\nbody\r\n'));

  it('prefers the topmost Received line', () => {
    const f = msg(
      'Received: from b by pop.example (Dovecot);\r\n  Tue, 2 Jan 2024 10:00:00 +0000\r\nReceived: from a by ' +
        'b; Mon, 1 Jan 2024 09:00:00 +0000\r\nDate: Sun, 31 Dec 2023 08:00:00 +0000',
    );
    expect(arrivalDate(f, now)).toEqual({ date: new Date('2024-01-02T10:00:00Z'), source: 'received' });
  });
  it('falls back to Date: when Received has no usable date', () => {
    const f = msg('Received: from a by b\r\nDate: Sun, 31 Dec 2023 08:00:00 +0000');
    expect(arrivalDate(f, now)).toEqual({ date: new Date('2023-12-31T08:00:00Z'), source: 'date' });
  });
  it('clamps dates in the future or before 1980, and says so', () => {
    expect(arrivalDate(msg('Date: 1 Jan 2030 00:00:00 +0000'), now)).toEqual({ date: now, source: 'clamped-future' });
    expect(arrivalDate(msg('Date: 1 Jan 1970 00:00:00 +0000'), now)).toEqual({
      date: new Date('1980-01-01T00:00:00Z'),
      source: 'clamped-old',
    });
  });
  it('prefers a plausible Date: over an implausible Received: date', () => {
    const f = msg('Received: from a by b; 1 Jan 2031 00:00:00 +0000\r\nDate: Sun, 31 Dec 2023 08:00:00 +0000');
    expect(arrivalDate(f, now)).toEqual({ date: new Date('2023-12-31T08:00:00Z'), source: 'date' });
  });
  it('tolerates a day of skew into the future', () => {
    expect(arrivalDate(msg('Date: 1 Jan 2026 12:00:00 +0000'), now).source).toBe('date');
  });
  it('has no date when nothing parses', () => {
    expect(arrivalDate(msg('Date: yesterday'), now)).toEqual({ date: null, source: 'none' });
  });
});
