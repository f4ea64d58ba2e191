/**
 * `--accounts FILE.csv`: the spreadsheet of mailboxes an ISP exports when it retires a POP3
 * platform. A header row names the columns; `name`, `source` and `destination` are required,
 * `source_password`, `destination_password` and `folder` are optional, any other column is
 * refused (a typo such as `destinaton` must not silently drop a setting).
 *
 * Parsing is csv-parse (npm, no dependencies, maintained by the node-csv project since 2010):
 * RFC 4180 quoting with doubled quotes and line breaks inside quotes is easy to get almost
 * right by hand, and "almost" here means one account's password split across two columns.
 * Its own error messages are not shown: some quote a piece of the offending field, and that
 * field may be a password. Ours name the file, the line and the column instead.
 *
 * Pure but for `loadAccountList`, which reads the file and checks its mode: passwords in a
 * file that group or others can read are refused (a password file only draws a warning, but a
 * list of thousands of customers' passwords is not something to be lenient about).
 */
import { statSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { PopsyncError } from '../errors.js';

export interface ListedAccount {
  /** 1-based line of the file where the row starts, for messages. */
  line: number;
  name: string;
  source: string;
  destination: string;
  sourcePassword?: string;
  destinationPassword?: string;
  folder?: string;
}

export interface AccountList {
  path: string;
  accounts: ListedAccount[];
  /** Which password columns the header has: a column given means every row must fill it. */
  passwordColumns: { source: boolean; destination: boolean };
}

const REQUIRED = ['name', 'source', 'destination'] as const;
const OPTIONAL = ['source_password', 'destination_password', 'folder'] as const;
type Column = (typeof REQUIRED)[number] | (typeof OPTIONAL)[number];
const KNOWN = new Set<string>([...REQUIRED, ...OPTIONAL]);

/**
 * An account name becomes a file name (`--journal-dir`: `<name>.sqlite`) and a word in every
 * log line, so it is kept to characters that mean nothing to a shell or a file system.
 */
export const ACCOUNT_NAME_RE = /^[A-Za-z0-9_][A-Za-z0-9._@+-]{0,199}$/;

function bad(path: string, line: number, column: string | null, what: string): PopsyncError {
  return new PopsyncError('usage', `${path} line ${line}${column === null ? '' : `, column ${column}`}: ${what}`);
}

/** What a csv-parse error code means, in words that never quote the field. */
function csvProblem(code: string | undefined): string {
  switch (code) {
    case 'CSV_QUOTE_NOT_CLOSED':
      return 'a quoted field is not closed (a " is missing)';
    case 'CSV_INVALID_CLOSING_QUOTE':
      return 'text after a closing quote (write a " inside a quoted field as "")';
    case 'CSV_RECORD_INCONSISTENT_FIELDS_LENGTH':
      return 'this row does not have as many fields as the header';
    case 'CSV_NON_TRIMABLE_CHAR_AFTER_CLOSING_QUOTE':
      return 'text after a closing quote';
    default:
      return 'not valid CSV';
  }
}

interface CsvRow {
  record: string[];
  info: { lines: number };
}

/** The rows of an account list's text. `path` is only for messages. */
export function parseAccountList(text: string, path: string): AccountList {
  let rows: CsvRow[];
  try {
    // info: the line each record ends on, for messages. bom: a spreadsheet's "CSV UTF-8" export.
    // record_delimiter: files edited on two systems mix CRLF and LF lines.
    // Required here, not imported: its ten modules are ~20 ms of every start-up, and only
    // --accounts reads a list (its CommonJS build, the same parser).
    const { parse } = createRequire(import.meta.url)('csv-parse/sync') as typeof import('csv-parse/sync');
    rows = parse(text, {
      bom: true,
      skip_empty_lines: true,
      info: true,
      record_delimiter: ['\r\n', '\n'],
    }) as unknown as CsvRow[];
  } catch (e) {
    const err = e as { code?: string; lines?: number };
    throw bad(path, err.lines ?? 1, null, csvProblem(err.code));
  }
  if (rows.length === 0)
    throw new PopsyncError('usage', `${path} is empty: it needs a header row (name,source,destination)`);
  const header = rows[0]!.record.map((h) => h.trim().toLowerCase());
  const headerLine = rows[0]!.info.lines;
  const at = new Map<Column, number>();
  header.forEach((h, i) => {
    if (!KNOWN.has(h))
      throw bad(
        path,
        headerLine,
        h === '' ? `${i + 1}` : h,
        `unknown column (columns: ${[...REQUIRED, ...OPTIONAL].join(', ')})`,
      );
    if (at.has(h as Column)) throw bad(path, headerLine, h, 'this column appears twice');
    at.set(h as Column, i);
  });
  const missing = REQUIRED.filter((c) => !at.has(c));
  if (missing.length > 0)
    throw bad(
      path,
      headerLine,
      missing[0]!,
      `the header has no ${missing.join(', ')} column (the first row names the columns: name,source,destination)`,
    );

  const names = new Map<string, number>();
  const accounts = rows.slice(1).map(({ record, info }): ListedAccount => {
    // info.lines is where the record ends; a quoted field with line breaks starts it earlier.
    const line = info.lines - record.reduce((n, f) => n + (f.match(/\n/g)?.length ?? 0), 0);
    const cell = (c: Column): string | undefined => {
      const i = at.get(c);
      return i === undefined ? undefined : record[i];
    };
    const need = (c: Column): string => {
      const v = cell(c)?.trim() ?? '';
      if (v === '') throw bad(path, line, c, 'empty');
      return v;
    };
    const name = need('name');
    if (!ACCOUNT_NAME_RE.test(name))
      throw bad(
        path,
        line,
        'name',
        `"${name.slice(0, 60)}" is not a usable account name: letters, digits and . _ @ + - only (it names ` +
          `the account's journal file)`,
      );
    const first = names.get(name);
    if (first !== undefined)
      throw bad(path, line, 'name', `${name} is already the name of the account on line ${first}`);
    names.set(name, line);
    const a: ListedAccount = { line, name, source: need('source'), destination: need('destination') };
    // Passwords are taken as they are: spaces can be part of one.
    if (at.has('source_password')) {
      const v = cell('source_password') ?? '';
      if (v === '') throw bad(path, line, 'source_password', 'empty (the column is there, so every row needs one)');
      a.sourcePassword = v;
    }
    if (at.has('destination_password')) {
      const v = cell('destination_password') ?? '';
      if (v === '')
        throw bad(path, line, 'destination_password', 'empty (the column is there, so every row needs one)');
      a.destinationPassword = v;
    }
    const folder = cell('folder')?.trim();
    if (folder !== undefined && folder !== '') a.folder = folder;
    return a;
  });
  if (accounts.length === 0) throw new PopsyncError('usage', `${path} lists no accounts: only a header row`);
  return {
    path,
    accounts,
    passwordColumns: { source: at.has('source_password'), destination: at.has('destination_password') },
  };
}

/** Why a file of this mode may not hold passwords, or null when it may. */
export function passwordFileModeProblem(path: string, mode: number): string | null {
  if ((mode & 0o077) === 0) return null;
  const m = (mode & 0o777).toString(8).padStart(4, '0');
  return `${path} holds passwords but its mode is ${m}, so other users can read it; run: chmod 600 ${path}`;
}

/** Reads and parses an account list; refuses passwords in a file others can read. */
export function loadAccountList(path: string): AccountList {
  let text: string;
  let mode: number;
  try {
    mode = statSync(path).mode;
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new PopsyncError(
      'usage',
      `--accounts: cannot read ${path} (${(e as NodeJS.ErrnoException).code ?? 'error'})`,
    );
  }
  const list = parseAccountList(text, path);
  if (list.passwordColumns.source || list.passwordColumns.destination) {
    const problem = process.platform === 'win32' ? null : passwordFileModeProblem(path, mode);
    if (problem !== null) throw new PopsyncError('usage', problem);
  }
  return list;
}
