/** Rule routing, seen chain, keywords and templates: pure, from header fields and a size. */
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { routingSpecOf } from '../../src/config/resolve.js';
import { parseHeaders } from '../../src/mapping/headers.js';
import { compileGlob, compileRegex, regexProblem } from '../../src/mapping/patterns.js';
import { compileRouting, flagProblem, folderNameProblem, type RoutingSpec } from '../../src/mapping/rules.js';
import { decideSeen } from '../../src/mapping/seen.js';
import { parseTemplate, renderTemplate } from '../../src/mapping/template.js';
import { resolveRoles } from '../../src/engine/roles.js';
import type { ImapSink } from '../../src/imap/types.js';

const now = new Date('2026-06-01T00:00:00Z');

/** A RoutingSpec from account YAML, through the real loader, so tests read like configs. */
function spec(yaml: string): RoutingSpec {
  const text =
    `accounts:\n  - source: { url: 'pop3s://u@p' }\n    destination: { url: 'imaps://u@i' ` +
    `}\n${yaml.replace(/^/gm, '    ')}\n`;
  const c = parseConfig(text, 't.yml');
  return routingSpecOf(c.accounts[0]!, c.defaults ?? {});
}
const msg = (h: string) => parseHeaders(Buffer.from(h.replace(/\n/g, '\r\n') + '\r\n\r\nbody\r\n'));
const route = (s: RoutingSpec, h: string, size = 100, roles?: Map<string, string>) =>
  compileRouting(s).route({ fields: msg(h), size }, { now, roles: roles ?? null });

const RULES = spec(`
folder: Archive/{year}
rules:
  - name: lists
    match: { list_id: '*.lists.example.org' }
    folder: Lists/{list-id}
  - name: support
    match: { to: ['support@*', 'help@example.com'] }
    folder: Support/{to-local}
  - name: tickets
    match: { subject: { regex: '^\\[T#\\d+\\]' } }
    folder: Tickets
  - name: big
    match: { larger_than: 1MB }
    folder: Big
  - name: old
    match: { before: 2015-01-01 }
    folder: Old
  - name: recent
    match: { newer_than: 7d }
    folder: Recent
`);

describe('folder rules', () => {
  it('first match wins, with the rule name recorded', () => {
    const r = route(
      RULES,
      'List-Id: Dev list <dev.lists.example.org>\nTo: support@example.com\nDate: 1 Jan 2024 10:00:00 +0000',
    );
    expect(r).toMatchObject({ folder: 'Lists/dev_lists_example_org', folderRule: 'lists' });
  });
  it('globs match whole addresses, case-insensitively, any address of the field', () => {
    expect(
      route(RULES, 'To: Bob <bob@x.org>, "Help" <HELP@Example.com>\nDate: 1 Jan 2024 10:00:00 +0000'),
    ).toMatchObject({ folder: 'Support/bob', folderRule: 'support' });
    expect(route(RULES, 'To: notsupport@x.org\nDate: 1 Jan 2024 10:00:00 +0000').folderRule).toBeNull();
  });
  it('{to-local} prefers Delivered-To (multidrop boxes)', () => {
    expect(
      route(RULES, 'Delivered-To: carol@example.com\nTo: support@example.com\nDate: 1 Jan 2024 10:00:00 +0000').folder,
    ).toBe('Support/carol');
  });
  it('regex on the RFC 2047-decoded subject, unanchored unless anchored', () => {
    expect(
      route(RULES, 'Subject: =?UTF-8?Q?[T#12]_K=C3=BChlschrank?=\nDate: 1 Jan 2024 10:00:00 +0000').folderRule,
    ).toBe('tickets');
    expect(route(RULES, 'Subject: Re: [T#12]\nDate: 1 Jan 2024 10:00:00 +0000').folderRule).toBeNull();
  });
  it('size and date conditions use the size given and the arrival date', () => {
    expect(route(RULES, 'Date: 1 Jan 2024 10:00:00 +0000', 2 * 1024 * 1024).folderRule).toBe('big');
    expect(route(RULES, 'Date: 1 Jan 2014 10:00:00 +0000').folderRule).toBe('old');
    expect(route(RULES, 'Date: 30 May 2026 10:00:00 +0000').folderRule).toBe('recent');
  });
  it('the default folder is a template too; a message without a date falls back to INBOX', () => {
    expect(route(RULES, 'Date: 1 Jan 2019 10:00:00 +0000')).toMatchObject({ folder: 'Archive/2019', folderRule: null });
    expect(route(RULES, 'Subject: no date').folder).toBe('INBOX');
  });
  it('a template value the message lacks lets the next rule decide', () => {
    const s = spec(
      `rules:\n  - match: { subject: '*' }\n    folder: Lists/{list-id}\n  - name: rest\n    folder: Rest`,
    );
    expect(route(s, 'Subject: hi')).toMatchObject({ folder: 'Rest', folderRule: 'rest' });
  });
  it('raw 8-bit headers: UTF-8 read as UTF-8, other bytes as latin1', () => {
    const s = spec(
      `rules:\n  - name: u\n    match: { subject: '*Grüße*' }\n    folder: U\n  - name: l\n    match: { ` +
        `subject: '*café*' }\n    folder: L`,
    );
    const utf8 = compileRouting(s).route(
      { fields: parseHeaders(Buffer.from('Subject: Grüße\r\n\r\n', 'utf8')), size: 1 },
      { now },
    );
    const latin1 = compileRouting(s).route(
      { fields: parseHeaders(Buffer.from('Subject: café\r\n\r\n', 'latin1')), size: 1 },
      { now },
    );
    expect([utf8.folder, latin1.folder]).toEqual(['U', 'L']);
  });
  it('non-ASCII folder names pass through unchanged', () => {
    const s = spec(
      `rules:\n  - match: { from: '*@example.ru' }\n    folder: Отправленные\n  - match: { from: ` +
        `'*@example.jp' }\n    folder: 日本語/{from-local}`,
    );
    expect(route(s, 'From: a@example.ru').folder).toBe('Отправленные');
    expect(route(s, 'From: taro@example.jp').folder).toBe('日本語/taro');
  });
  it('SPECIAL-USE targets resolve through the server map, and fail clearly without it', () => {
    const s = spec(`rules:\n  - match: { subject: 'spam*' }\n    folder: '\\junk'`);
    expect(compileRouting(s).roles).toEqual(['\\Junk']);
    expect(route(s, 'Subject: spam offer', 1, new Map([['\\Junk', 'Junk E-Mail']])).folder).toBe('Junk E-Mail');
    expect(() => route(s, 'Subject: spam offer')).toThrow(/no folder marked \\Junk/);
  });
  it('globs escape regex characters', () => {
    expect(compileGlob('a.b+(c)*', false).test('A.B+(C)xyz')).toBe(true);
    expect(compileGlob('a.b', false).test('axb')).toBe(false);
  });
});

describe('the one folder known before any message (onlyFolder)', () => {
  it('is the default when no rule can send a message elsewhere and it names no field', () => {
    expect(compileRouting(spec('folder: inbox')).onlyFolder(null)).toBe('INBOX');
    expect(compileRouting(spec('folder: Imported/2024')).onlyFolder(null)).toBe('Imported/2024');
  });
  it('is unknown with folder rules, or a default that a message field decides', () => {
    expect(compileRouting(RULES).onlyFolder(null)).toBeNull();
    expect(compileRouting(spec('folder: Archive/{year}')).onlyFolder(null)).toBeNull();
  });
  it('is a role default once the destination resolved it', () => {
    const s = compileRouting(spec("folder: '\\Archive'"));
    expect(s.onlyFolder(null)).toBeNull();
    expect(s.onlyFolder(new Map([['\\Archive', 'Old Mail']]))).toBe('Old Mail');
  });
});

describe('seen chain, keywords, dates', () => {
  const S = spec(`flags: ['$Migrated']\nseen: [status-header, 'older-than: 30d', none]`);
  it('Status: decides first; X-Status adds answered/flagged', () => {
    expect(route(S, 'Status: RO\nX-Status: AF\nDate: 30 May 2026 10:00:00 +0000')).toMatchObject({
      flags: ['\\Seen', '\\Answered', '\\Flagged', '$Migrated'],
      seenSource: 'status-header',
    });
    expect(route(S, 'Status: O\nDate: 1 Jan 2020 10:00:00 +0000')).toMatchObject({
      flags: ['$Migrated'],
      seenSource: 'status-header',
    });
  });
  it('older-than decides only for old messages; none ends the chain', () => {
    expect(route(S, 'Date: 1 Jan 2020 10:00:00 +0000')).toMatchObject({
      flags: ['\\Seen', '$Migrated'],
      seenSource: 'older-than:30d',
    });
    expect(route(S, 'Date: 30 May 2026 10:00:00 +0000')).toMatchObject({ flags: ['$Migrated'], seenSource: 'none' });
  });
  it('no chain: unread, no source; rule flags add to account flags without duplicates', () => {
    const s = spec(
      `flags: ['$Migrated', '\\Seen']\nrules:\n  - match: {}\n    folder: X\n    flags: ['$migrated', '$Rule']`,
    );
    expect(route(s, 'Subject: x')).toMatchObject({ flags: ['$Migrated', '\\Seen', '$Rule'], seenSource: null });
    expect(decideSeen([], msg('Status: R'), null, now)).toEqual({ seen: false, source: null, extraFlags: [] });
  });
  it('dates: clamped and flagged; arrival_date false keeps the copy time but rules still see the date', () => {
    expect(route(S, 'Date: 1 Jan 1975 00:00:00 +0000')).toMatchObject({
      internalDate: new Date('1980-01-01T00:00:00Z'),
      dateSource: 'clamped-old',
    });
    const s = spec(`arrival_date: false\nrules:\n  - match: { before: 2020-01-01 }\n    folder: Old`);
    expect(route(s, 'Date: 1 Jan 2019 00:00:00 +0000')).toMatchObject({
      folder: 'Old',
      internalDate: null,
      dateSource: 'copy-time',
    });
  });
});

describe('templates', () => {
  it('parses, refuses unknown names and stray braces, sanitises values', () => {
    const t = parseTemplate('A/{year}-{month}/{list-id}');
    expect(t.ok).toBe(true);
    if (t.ok)
      expect(
        renderTemplate(t.parts, (n) => ({ year: '2024', month: '03', 'list-id': 'a.b/c*%' })[n as string] ?? null),
      ).toBe('A/2024-03/a_b_c__');
    expect(parseTemplate('{nope}')).toMatchObject({ ok: false });
    expect(parseTemplate('a}')).toMatchObject({ ok: false });
    expect(parseTemplate('{year')).toMatchObject({ ok: false });
  });
});

describe('SPECIAL-USE resolution', () => {
  const sink = (roles: Map<string, string> | null) =>
    ({ specialUse: roles ? async () => roles : undefined }) as unknown as ImapSink;
  it('asks the server once and checks every role used', async () => {
    await expect(resolveRoles(sink(new Map([['\\Archive', 'Archiv']])), ['\\Archive'])).resolves.toEqual(
      new Map([['\\Archive', 'Archiv']]),
    );
    await expect(resolveRoles(sink(new Map()), ['\\Archive'])).rejects.toThrow(/no folder marked \\Archive/);
    await expect(resolveRoles(sink(null), ['\\Archive'])).rejects.toThrow(/cannot list SPECIAL-USE/);
    await expect(resolveRoles(sink(null), [])).resolves.toEqual(new Map());
  });
});

describe('what a user may name as a folder or a flag', () => {
  it('folder names: no line break, CR, NUL or other control character', () => {
    expect(folderNameProblem('Archive/2019')).toBeNull();
    expect(folderNameProblem('Entwürfe')).toBeNull();
    expect(folderNameProblem('a\nb')).toMatch(/a line break \(LF\)/);
    expect(folderNameProblem('a\rb')).toMatch(/contains CR/);
    expect(folderNameProblem('a\0b')).toMatch(/contains NUL/);
    expect(folderNameProblem('a\u007fb')).toMatch(/U\+007F/);
    expect(() => compileRouting({ rules: [], defaultFolder: 'x\ny', flags: [], seen: [], arrivalDate: true })).toThrow(
      /default folder: the folder name contains a line break/,
    );
  });
  it('flags: \\Deleted and \\Recent refused; keywords must be IMAP atoms', () => {
    for (const ok of ['\\Seen', '\\answered', '\\Flagged', '\\Draft', '$Migrated', 'Junk', 'a.b-c_d'])
      expect(flagProblem(ok), ok).toBeNull();
    expect(flagProblem('\\Deleted')).toMatch(/\\Deleted is refused/);
    expect(flagProblem('\\DELETED')).toMatch(/\\Deleted is refused/);
    expect(flagProblem('\\Recent')).toMatch(/\\Recent is refused/);
    for (const bad of ['\\Important', 'two words', 'Müll', 'a]b', 'a(b', '%x', '', 'a\r\nb'])
      expect(flagProblem(bad), bad).toMatch(/invalid flag/);
  });
});

describe('rule patterns run on a linear-time engine (RE2)', () => {
  it('regexes: RE2 syntax, anywhere unless anchored, case as asked', () => {
    expect(compileRegex('^\\[T#\\d+\\]', true).test('[T#42] help')).toBe(true);
    expect(compileRegex('invoice', false).test('Your INVOICE')).toBe(true);
    expect(compileRegex('invoice', true).test('Your INVOICE')).toBe(false);
    expect(compileRegex('\\p{Greek}+', true).test('Ωμέγα')).toBe(true);
  });
  it('globs: whole value, * across a folded line, special characters literal', () => {
    expect(compileGlob('*@example.org', false).test('Bob@EXAMPLE.org')).toBe(true);
    expect(compileGlob('*@example.org', false).test('bob@example.org.evil')).toBe(false);
    expect(compileGlob('list*', false).test('list\n folded')).toBe(true);
    expect(compileGlob('[a]+(b)|{c}$^', true).test('[a]+(b)|{c}$^')).toBe(true);
  });
  it('what RE2 cannot run is named, with the reason, for the config loader', () => {
    expect(regexProblem('^(a+)+$')).toBeNull();
    expect(regexProblem('([a-')).toMatch(/^invalid regular expression: missing closing \]/);
    expect(regexProblem('^(?!Re:)')).toMatch(
      /unsupported Perl syntax.*lookahead, lookbehind and backreferences are not supported/,
    );
    expect(regexProblem('(?<=x)y')).toMatch(/lookahead, lookbehind and backreferences are not supported/);
    expect(regexProblem('(a)\\1')).toMatch(/invalid escape sequence.*backreferences are not supported/);
    expect(regexProblem('a{1001}')).toMatch(/invalid repeat count/);
  });
});
