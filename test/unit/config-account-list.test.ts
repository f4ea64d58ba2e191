import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadAccountList, parseAccountList, passwordFileModeProblem } from '../../src/config/account-list.js';
import { PopsyncError } from '../../src/errors.js';

const HEADER = 'name,source,destination\n';

function problem(text: string): string {
  try {
    parseAccountList(text, 'a.csv');
  } catch (e) {
    expect(e).toBeInstanceOf(PopsyncError);
    expect((e as PopsyncError).kind).toBe('usage');
    return (e as Error).message;
  }
  throw new Error('parsed');
}

describe('parseAccountList', () => {
  it('reads rows under a header, skipping blank lines, with their line numbers', () => {
    const l = parseAccountList(
      `${HEADER}\nalice,pop3s://alice@pop.example,imaps://alice@imap.example\n\n\r\n` +
        'bob,pop3s://bob@pop.example,imaps://bob@imap.example\n',
      'a.csv',
    );
    expect(l.accounts).toEqual([
      { line: 3, name: 'alice', source: 'pop3s://alice@pop.example', destination: 'imaps://alice@imap.example' },
      { line: 6, name: 'bob', source: 'pop3s://bob@pop.example', destination: 'imaps://bob@imap.example' },
    ]);
    expect(l.passwordColumns).toEqual({ source: false, destination: false });
  });

  it('drops a UTF-8 byte order mark (a spreadsheet export) and takes columns in any order and case', () => {
    const l = parseAccountList('\uFEFFDestination,Name,Source\r\nimaps://a@i,a,pop3s://a@p\r\n', 'a.csv');
    expect(l.accounts).toEqual([{ line: 2, name: 'a', source: 'pop3s://a@p', destination: 'imaps://a@i' }]);
  });

  it('keeps quoted commas, doubled quotes and spaces in passwords as they are', () => {
    const l = parseAccountList(
      'name,source,destination,source_password,destination_password\na,pop3://a@p,imap://a@i,"p,w ""x""", lead\n',
      'a.csv',
    );
    expect(l.accounts[0]).toMatchObject({ sourcePassword: 'p,w "x"', destinationPassword: ' lead' });
    expect(l.passwordColumns).toEqual({ source: true, destination: true });
  });

  it('counts the line a row starts on when a quoted field spans lines', () => {
    const l = parseAccountList(
      `${HEADER}a,pop3://a@p,imap://a@i\nb,"pop3://b@p",imap://b@i\nc,pop3://c@p,imap://c@i\n`,
      'a.csv',
    );
    expect(l.accounts.map((a) => a.line)).toEqual([2, 3, 4]);
    const m = parseAccountList(
      'name,source,destination,folder\na,pop3://a@p,imap://a@i,"two\nlines"\nb,pop3://b@p,imap://b@i,\n',
      'a.csv',
    );
    expect(m.accounts.map((a) => [a.name, a.line])).toEqual([
      ['a', 2],
      ['b', 4],
    ]);
    expect(m.accounts[0]!.folder).toBe('two\nlines');
    expect(m.accounts[1]!.folder).toBeUndefined();
  });

  it('names the line and column of a bad row, never the field text of a CSV error', () => {
    expect(problem(`${HEADER}a,pop3://a@p,imap://a@i\nb,,imap://b@i\n`)).toBe('a.csv line 3, column source: empty');
    expect(problem(`${HEADER}a,pop3://a@p\n`)).toBe(
      'a.csv line 2: this row does not have as many fields as the header',
    );
    expect(problem(`${HEADER}a,pop3://a@p,"imap://a@i\n`)).toMatch(/^a\.csv line \d+: a quoted field is not closed/);
    const secret = problem('name,source,destination,source_password\na,pop3://a@p,imap://a@i,"hunter2"zz\n');
    expect(secret).toMatch(/^a\.csv line 2: text after a closing quote/);
    expect(secret).not.toContain('zz');
    expect(problem(`${HEADER}a,pop3://a@p,imap://a@i\na,pop3://b@p,imap://b@i\n`)).toBe(
      'a.csv line 3, column name: a is already the name of the account on line 2',
    );
    expect(problem(`${HEADER}../x,pop3://a@p,imap://a@i\n`)).toMatch(
      /^a\.csv line 2, column name: "\.\.\/x" is not a usable account name/,
    );
    expect(problem('name,source_password,destination,source\n')).toBe('a.csv lists no accounts: only a header row');
    expect(problem('name,source,destination,password\n')).toMatch(/^a\.csv line 1, column password: unknown column/);
    expect(problem('name,source\n')).toMatch(
      /^a\.csv line 1, column destination: the header has no destination column/,
    );
    expect(problem('name,source,destination,source_password\na,pop3://a@p,imap://a@i,\n')).toBe(
      'a.csv line 2, column source_password: empty (the column is there, so every row needs one)',
    );
    expect(problem('')).toMatch(/a\.csv is empty/);
  });

  it('parses thousands of rows in one pass', () => {
    const rows = Array.from({ length: 5000 }, (_, i) => `u${i},pop3s://u${i}@pop.example,imaps://u${i}@imap.example`);
    const l = parseAccountList(HEADER + rows.join('\n') + '\n', 'big.csv');
    expect(l.accounts).toHaveLength(5000);
    expect(l.accounts[4999]).toMatchObject({ line: 5001, name: 'u4999' });
  });
});

describe('password columns and the file mode', () => {
  const dir = mkdtempSync(join(tmpdir(), 'popsync-csv-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('refuses passwords in a file group or others can read, naming the file and its mode', () => {
    expect(passwordFileModeProblem('/x.csv', 0o100600)).toBeNull();
    expect(passwordFileModeProblem('/x.csv', 0o100640)).toBe(
      '/x.csv holds passwords but its mode is 0640, so other users can read it; run: chmod 600 /x.csv',
    );
    const f = join(dir, 'pw.csv');
    writeFileSync(f, 'name,source,destination,destination_password\na,pop3://a@p,imap://a@i,pw\n');
    chmodSync(f, 0o644);
    expect(() => loadAccountList(f)).toThrow(`${f} holds passwords but its mode is 0644`);
    chmodSync(f, 0o600);
    expect(loadAccountList(f).accounts[0]!.destinationPassword).toBe('pw');
  });

  it('accepts a readable file without password columns, and names a missing file', () => {
    const f = join(dir, 'plain.csv');
    writeFileSync(f, `${HEADER}a,pop3://a@p,imap://a@i\n`);
    chmodSync(f, 0o644);
    expect(loadAccountList(f).accounts).toHaveLength(1);
    expect(() => loadAccountList(join(dir, 'none.csv'))).toThrow(/--accounts: cannot read .*none\.csv \(ENOENT\)/);
  });
});
