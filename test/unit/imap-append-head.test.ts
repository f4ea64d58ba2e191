/**
 * append-head.ts writes the APPEND heads that imapflow's command compiler wrote before
 * (pipeline.ts used it for every message). The bytes must stay the same: a name quoted
 * differently is another folder, or a BAD for the whole batch. So every rule is checked
 * against the compiler itself, as pipeline.ts called it, over every ASCII character alone,
 * after a backslash and inside a name, and over seeded names, flags and dates built from the
 * characters each rule is about.
 */
import { describe, expect, it } from 'vitest';
import { PopsyncError } from '../../src/errors.js';
import { appendCommand, atom, internalDateTime, mailboxArgument, messageHead } from '../../src/imap/append-head.js';
import { compiler, formatDateTime, formatFlag } from '../../src/imap/imapflow-adapter.js';
import { joinedPieces, seeded } from '../support/seeded.js';

interface Message {
  flags: string[];
  date: string | undefined;
  size: number;
  binary: boolean;
  nonSync: boolean;
}

/** pipeline.ts's messageArgs() before append-head.ts. */
function oldArgs(m: Message) {
  return [
    ...(m.flags.length || m.date ? [m.flags.map((f) => ({ type: 'ATOM' as const, value: f }))] : []),
    ...(m.date ? [{ type: 'STRING' as const, value: m.date }] : []),
  ];
}

function oldLiteralHead(m: Message): Buffer {
  return Buffer.from(` ${m.binary ? '~' : ''}{${m.size}${m.nonSync ? '+' : ''}}\r\n`);
}

/** pipeline.ts's command() before append-head.ts: the compiler's bytes, or its refusal. */
function oldCommand(tag: string, mailbox: string, m: Message): string {
  try {
    const head = compiler({ tag, command: 'APPEND', attributes: [{ type: 'ATOM', value: mailbox }, ...oldArgs(m)] });
    return Buffer.concat([head, oldLiteralHead(m)]).toString('latin1');
  } catch {
    return 'refused';
  }
}

/** pipeline.ts's nextMessage() before append-head.ts. */
function oldNextMessage(m: Message): string {
  try {
    const args = compiler({ tag: 'X', command: 'X', attributes: oldArgs(m) }).subarray(3);
    return Buffer.concat([args, oldLiteralHead(m)]).toString('latin1');
  } catch {
    return 'refused';
  }
}

function newCommand(tag: string, mailbox: string, m: Message): string {
  try {
    const first = messageHead(m.flags, m.date, m.size, m.binary, m.nonSync);
    return Buffer.from(appendCommand(tag, atom(mailbox), first)).toString('latin1');
  } catch {
    return 'refused';
  }
}

function newNextMessage(m: Message): string {
  try {
    return Buffer.from(messageHead(m.flags, m.date, m.size, m.binary, m.nonSync)).toString('latin1');
  } catch {
    return 'refused';
  }
}

const plain: Message = { flags: [], date: undefined, size: 12, binary: false, nonSync: true };
const ascii = Array.from({ length: 128 }, (_, c) => String.fromCharCode(c));

/** Characters each rule is about, and text around them. */
const pieces = [
  ...ascii,
  'INBOX',
  'Sent Items',
  'a',
  '\\',
  '\\\\',
  '"',
  '&',
  '&AOQ-',
  '&-',
  'Entw&APw-rfe',
  'ü',
  'Entwürfe',
  '日本',
  '\u{1F4E7}',
  '/',
  '.',
  '[Gmail]',
  'x]',
  '{5}',
  '{5+}',
  '%',
  '*',
  '(',
  ')',
  ' ',
  '\t',
  '\x7f',
  'NIL',
];

describe('APPEND heads as imapflow compiled them', () => {
  it('every ASCII character as a mailbox name, after a backslash, and inside one', () => {
    for (const c of ascii) {
      for (const name of [c, `\\${c}`, `a${c}b`, `${c}${c}`]) {
        expect(newCommand('P1', name, plain), JSON.stringify(name)).toBe(oldCommand('P1', name, plain));
      }
    }
  });

  it('every ASCII character as a flag and in a date', () => {
    for (const c of ascii) {
      for (const v of [c, `\\${c}`, `$${c}Label`]) {
        const m = { ...plain, flags: ['\\Seen', v] };
        expect(newNextMessage(m), JSON.stringify(v)).toBe(oldNextMessage(m));
        const d = { ...plain, date: ` 2-Jan-2024 03:04:05 ${v}` };
        expect(newNextMessage(d), JSON.stringify(v)).toBe(oldNextMessage(d));
      }
    }
  });

  it('the empty name, flag and date, and the flag list alone or with a date alone', () => {
    const date = formatDateTime(new Date(Date.UTC(2024, 0, 2, 3, 4, 5)));
    const cases: Array<[string, Message]> = [
      ['', plain],
      ['INBOX', { ...plain, flags: [''] }],
      ['INBOX', { ...plain, date: '' }],
      ['INBOX', { ...plain, flags: ['\\Seen'], date: '' }],
      ['INBOX', { ...plain, flags: [], date }],
      ['INBOX', { ...plain, flags: ['\\Seen'], date: undefined }],
      ['INBOX', { ...plain, flags: ['\\Seen', '\\Flagged', '$Forwarded'], date }],
      ['INBOX', { ...plain, size: 0, binary: true, nonSync: false }],
      ['INBOX', { ...plain, size: 123456789, binary: true, nonSync: true }],
    ];
    for (const [name, m] of cases) {
      expect(newCommand('P7', name, m), JSON.stringify([name, m])).toBe(oldCommand('P7', name, m));
      expect(newNextMessage(m), JSON.stringify(m)).toBe(oldNextMessage(m));
    }
  });

  it('seeded names, flags as formatFlag passes them, and dates', () => {
    const next = seeded(20261130);
    let refused = 0;
    for (let i = 0; i < 3000; i++) {
      const name = joinedPieces(next, pieces, 6);
      const flags: string[] = [];
      for (let k = next(4); k > 0; k--) {
        const f = `${next(3) === 0 ? '\\' : ''}${joinedPieces(next, pieces, 3)}`;
        // pipeline.ts gets flags formatFlag accepted; now and then one it would not, too.
        const formatted = formatFlag(f);
        if (formatted) flags.push(formatted);
        else if (next(5) === 0) flags.push(f);
      }
      const when = new Date(Date.UTC(1970 + next(100), next(12), 1 + next(28), next(24), next(60), next(60)));
      const date = [undefined, formatDateTime(when), joinedPieces(next, pieces, 4)][next(3)];
      const m: Message = { flags, date, size: next(1 << 24), binary: next(2) === 0, nonSync: next(2) === 0 };
      const tag = `P${i}`;
      const expected = oldCommand(tag, name, m);
      if (expected === 'refused') refused++;
      expect(newCommand(tag, name, m), JSON.stringify([name, m])).toBe(expected);
      expect(newNextMessage(m), JSON.stringify(m)).toBe(oldNextMessage(m));
    }
    // The set holds names the compiler refuses (CR, LF, NUL) and many it sends.
    expect(refused).toBeGreaterThan(100);
    expect(refused).toBeLessThan(2000);
  });
});

describe('a mailbox name no command can carry', () => {
  it('is refused with a typed error naming the folder (the server gave the name), not a plain Error', () => {
    for (const name of ['Mail\r\n.Archive', 'Mail\n.Archive', 'Mail\r.Archive', 'Mail\0.Archive']) {
      let caught: unknown;
      try {
        mailboxArgument(name, 'Archive');
      } catch (e) {
        caught = e;
      }
      expect(caught, JSON.stringify(name)).toBeInstanceOf(PopsyncError);
      expect(caught).toMatchObject({
        kind: 'server',
        context: { folder: 'Archive' },
        message: expect.stringContaining('IMAP folder "Archive" cannot be named in any IMAP command'),
      });
    }
  });

  it('any other name goes as atom() writes it', () => {
    for (const name of pieces.filter((p) => !/[\r\n\0]/.test(p)))
      expect(mailboxArgument(name, 'x'), JSON.stringify(name)).toBe(atom(name));
  });
});

describe('internal dates as imapflow formatted them', () => {
  const same = (d: Date): void => expect(internalDateTime(d), String(d.getTime())).toBe(formatDateTime(d));

  it('every day of a leap year and of years 0-9999 around their edges, each hour, minute and second', () => {
    for (let day = 0; day < 366; day++) same(new Date(Date.UTC(2024, 0, 1 + day, day % 24, day % 60, (day * 7) % 60)));
    for (const year of [0, 1, 9, 10, 99, 100, 999, 1000, 1969, 1970, 2038, 9999])
      for (const [m, d, h, mi, s] of [
        [0, 1, 0, 0, 0],
        [11, 31, 23, 59, 59],
        [1, 29, 9, 5, 1],
        [8, 9, 10, 10, 10],
      ] as const) {
        const at = new Date(0);
        at.setUTCFullYear(year, m, d);
        at.setUTCHours(h, mi, s, 999);
        same(at);
      }
  });

  it('years outside 0-9999, the ends of the Date range, and an invalid Date', () => {
    for (const year of [-1, -9999, -10000, -271821, 10000, 99999, 275760]) {
      const at = new Date(0);
      at.setUTCFullYear(year, 3, 5);
      same(at);
    }
    same(new Date(8.64e15));
    same(new Date(-8.64e15));
    same(new Date(-1));
    same(new Date(Number.NaN));
    expect(internalDateTime(new Date(Number.NaN))).toBeUndefined();
  });

  it('seeded instants across the whole Date range, in UTC and in a zone half an hour off it', () => {
    const zone = process.env.TZ;
    try {
      for (const tz of ['UTC', 'America/St_Johns']) {
        process.env.TZ = tz;
        const next = seeded(42);
        for (let i = 0; i < 10000; i++) {
          const span = [1e12, 1e14, 8.64e15][next(3)]!;
          const fraction = (next(32768) * 32768 + next(32768)) / 2 ** 30;
          same(new Date((fraction * 2 - 1) * span + next(1000)));
        }
      }
    } finally {
      if (zone === undefined) delete process.env.TZ;
      else process.env.TZ = zone;
    }
  });
});
