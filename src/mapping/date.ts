/**
 * RFC 5322 dates as real archives write them, and the arrival date (INTERNALDATE) a copy gets.
 *
 * Written by hand because Date.parse reads a zone-less date as local time (RFC 5322 says
 * "-0000", i.e. UTC), rolls 31 Feb into March, and rejects CEST and military zones; luxon's
 * fromRFC2822 rejects wrong weekdays, "UT" and missing zones, all common in real mail.
 */
import { firstHeader, type HeaderField } from './headers.js';

const MONTHS: Record<string, number> = {
  jan: 0,
  feb: 1,
  mar: 2,
  apr: 3,
  may: 4,
  jun: 5,
  jul: 6,
  aug: 7,
  sep: 8,
  oct: 9,
  nov: 10,
  dec: 11,
};

/**
 * Minutes east of UTC. Obsolete and common non-standard names; military letters are unreliable
 * (RFC 5322 4.3) and read as UTC.
 */
const ZONES: Record<string, number> = {
  ut: 0,
  utc: 0,
  gmt: 0,
  z: 0,
  wet: 0,
  est: -300,
  edt: -240,
  cst: -360,
  cdt: -300,
  mst: -420,
  mdt: -360,
  pst: -480,
  pdt: -420,
  bst: 60,
  cet: 60,
  met: 60,
  cest: 120,
  mest: 120,
  eet: 120,
  eest: 180,
  msk: 180,
  ist: 330,
  jst: 540,
};

/** Leading white space is skipped here rather than trimmed off: a copy of the text per message. */
const DATE_RE = new RegExp(
  String.raw`^\s*(?:[a-z]+,?\s*)?(\d{1,2})[\s-]+([a-z]+)[\s-]+(\d{2,4})` +
    String.raw`\s+(\d{1,2})[:.](\d{2})(?:[:.](\d{2}))?\s*([+-]\d{4}|[a-z]+)?`,
  'i',
);

const MONTH_DAYS = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/**
 * What Date.UTC's calendar gives (proleptic Gregorian, a year 0-99 read as 19xx, as "0004" is),
 * counted rather than asked of a Date: one per message routed.
 */
function daysInMonth(year: number, month: number): number {
  if (month !== 1) return MONTH_DAYS[month]!;
  const y = year <= 99 ? 1900 + year : year;
  return (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0 ? 29 : 28;
}

const PLUS = 0x2b;
const MINUS = 0x2d;

/** The two ASCII digits at `at` as a number. */
function digitsAt(s: string, at: number): number {
  return (s.charCodeAt(at) - 0x30) * 10 + (s.charCodeAt(at + 1) - 0x30);
}

/** MONTHS by the first three letters, each lower-cased by its bit (the pattern's letters are ASCII). */
const MONTH_KEYS: ReadonlyMap<number, number> = new Map(
  Object.entries(MONTHS).map(([name, month]) => [monthKey(name), month]),
);

function monthKey(name: string): number {
  return ((name.charCodeAt(0) | 0x20) << 16) | ((name.charCodeAt(1) | 0x20) << 8) | (name.charCodeAt(2) | 0x20);
}

/**
 * MONTHS[name.slice(0, 3).toLowerCase()], without the two strings made for it per message
 * routed and a lookup by a string never seen before.
 */
function monthOf(name: string): number | undefined {
  return name.length < 3 ? undefined : MONTH_KEYS.get(monthKey(name));
}

/** Parses an RFC 5322 (or obsolete-syntax) date; null when it is not one. Never uses local time. */
export function parseMailDate(input: string): Date | null {
  // Every \s in DATE_RE takes a run of white space, so runs need no collapsing; comments
  // (rare) go. Each replace copied the text for every message routed.
  const text = input.includes('(') ? input.replace(/\([^()]*\)/g, ' ') : input;
  const m = DATE_RE.exec(text);
  if (!m) return null;
  // By index: destructuring walks the match with an iterator, an object per element, until
  // this is optimised (most of a run, for the mail of one run).
  const dd = m[1];
  const mon = m[2];
  const yy = m[3];
  const hh = m[4];
  const mi = m[5];
  const ss = m[6];
  const zone = m[7];
  const month = monthOf(mon!);
  if (month === undefined) return null;
  let year = Number(yy);
  if (yy!.length === 2) year += year < 50 ? 2000 : 1900;
  else if (yy!.length === 3) year += 1900;
  const day = Number(dd);
  const hour = Number(hh);
  const minute = Number(mi);
  // A leap second (":60") is legal; Date cannot hold it, so it is read as :59.
  const second = Math.min(Number(ss ?? 0), 59);
  if (day < 1 || day > daysInMonth(year, month) || hour > 23 || minute > 59 || Number(ss ?? 0) > 60) return null;
  let offset = 0;
  if (zone) {
    // The pattern's numeric zone is a sign and four digits exactly; any other is a name.
    const sign = zone.charCodeAt(0);
    if (sign === PLUS || sign === MINUS) {
      const h = digitsAt(zone, 1);
      const mm = digitsAt(zone, 3);
      if (h > 23 || mm > 59) return null;
      offset = (sign === MINUS ? -1 : 1) * (h * 60 + mm);
    } else {
      offset = ZONES[zone.toLowerCase()] ?? 0;
    }
  }
  return new Date(Date.UTC(year, month, day, hour, minute, second) - offset * 60_000);
}

/**
 * Where an arrival date came from. 'clamped-*': the only dates the message carries are before
 * 1980 or in the future (clock errors); the copy gets the nearest plausible date instead and
 * the report says so, rather than silently losing the date.
 */
type DateSource = 'received' | 'date' | 'none' | 'clamped-future' | 'clamped-old';

export interface ArrivalDate {
  date: Date | null;
  source: DateSource;
}

/** Oldest date we accept: earlier ones are clock errors, not 1970s mail. */
const EARLIEST = Date.UTC(1980, 0, 1);
/** Slack for clock skew between the source server and us. */
const FUTURE_SLACK_MS = 24 * 3600_000;

function plausible(d: Date | null, now: Date): boolean {
  return d !== null && d.getTime() >= EARLIEST && d.getTime() <= now.getTime() + FUTURE_SLACK_MS;
}

/**
 * When the POP server received the message: the topmost Received: line (added last, by the
 * server we read from), else the Date: header, else none (the destination uses the copy time).
 * A plausible date from a later source beats an implausible one from an earlier source (a
 * relay with a broken clock is common); only when no source is plausible is the first parsed
 * date clamped: to 1980-01-01 when older, to `now` when in the future.
 */
export function arrivalDate(fields: HeaderField[], now: Date): ArrivalDate {
  // Received first, then Date, as described; neither read into a list of candidates (two objects
  // and an array per message routed).
  let fromReceived: Date | null = null;
  const received = firstHeader(fields, 'received');
  if (received !== undefined) {
    const semi = received.lastIndexOf(';');
    fromReceived = semi >= 0 ? parseMailDate(received.slice(semi + 1)) : null;
    if (plausible(fromReceived, now)) return { date: fromReceived, source: 'received' };
  }
  const dateHeader = firstHeader(fields, 'date');
  const fromDate = dateHeader === undefined ? null : parseMailDate(dateHeader);
  if (plausible(fromDate, now)) return { date: fromDate, source: 'date' };
  const first = fromReceived ?? fromDate;
  if (first === null) return { date: null, source: 'none' };
  if (first.getTime() < EARLIEST) return { date: new Date(EARLIEST), source: 'clamped-old' };
  return { date: new Date(now.getTime()), source: 'clamped-future' };
}
