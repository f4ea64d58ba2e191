/**
 * The bytes our APPEND connection (pipeline.ts) writes before each literal: the command with
 * the mailbox name, and each message's flag list, internal date and literal announcement.
 *
 * imapflow's command compiler wrote these, so that both connections send the same bytes; but
 * it builds a token tree and a Buffer per token for every message (about 50 ms of a 3,000
 * message copy, more than the rest of the APPEND writing). These few lines apply the same
 * rules as its version 2.10 (test/unit/imap-append-head.test.ts compares them byte for byte
 * over a seeded set of names, flags and dates):
 *
 * - An atom (the mailbox name, each flag) goes bare when every character after an optional
 *   leading backslash is an ATOM-CHAR (RFC 9051: CHAR minus "(", ")", "{", SP, CTL, "%",
 *   "*", DQUOTE, "\" and "]"), else as a quoted string; so does the empty name.
 * - A quoted string escapes only DQUOTE and backslash; CR, LF or NUL cannot be quoted and is
 *   refused (imapflow never sends a literal for these either): a mailbox name holding one is the
 *   server's (a NAMESPACE prefix it announced), so mailboxArgument() fails that folder with a
 *   typed error before anything is written. Text is sent as UTF-8: an 8-bit name arrives here
 *   already in modified UTF-7 unless the server accepts UTF-8.
 * - The flag list is sent when there are flags or a date, so a date alone follows "()".
 */

import { PopsyncError } from '../errors.js';
import { unsendableFolder } from './errors.js';

/** Characters that keep an atom bare (imapflow's ATOM-CHAR, imap-formal-syntax.js). */
const ATOM_CHARS = /^[\x21\x23\x24\x26\x27\x2b-\x5b\x5e-\x7a\x7c-\x7e]*$/;
const UNQUOTABLE = /[\r\n\0]/;
const QUOTED_SPECIALS = /["\\]/g;
/** What quoted() escapes or refuses: one search finds that a value (every date sent) needs neither. */
const QUOTING_CARE = /["\\\r\n\0]/;

function quoted(value: string): string {
  if (!QUOTING_CARE.test(value)) return `"${value}"`;
  // Never reached from here with such a value: a flag is an atom (imapflow's formatFlag drops any
  // other), a date is ours, and a mailbox name is checked by mailboxArgument() first.
  if (UNQUOTABLE.test(value))
    throw new PopsyncError('internal', 'an IMAP quoted string would hold a line break or NUL', {
      hint: 'this is a bug in popsync',
    });
  return `"${value.replace(QUOTED_SPECIALS, '\\$&')}"`;
}

export function atom(value: string): string {
  const bare = value.charCodeAt(0) === 0x5c ? value.slice(1) : value;
  return value !== '' && ATOM_CHARS.test(bare) ? value : quoted(value);
}

/**
 * The mailbox as an APPEND names it (atom() of the server's name); `folder` is the engine's name
 * for it. A name no command can carry throws unsendableFolder ('server', naming the folder).
 */
export function mailboxArgument(mailbox: string, folder: string): string {
  if (UNQUOTABLE.test(mailbox)) throw unsendableFolder(folder);
  return atom(mailbox);
}

/** The command up to its first message's flags: `mailbox` is mailboxArgument() of the name. */
export function appendCommand(tag: string, mailbox: string, firstMessage: string): string {
  return `${tag} APPEND ${mailbox}${firstMessage}`;
}

/** One message of an APPEND or MULTIAPPEND: its flags, date and literal announcement. */
export function messageHead(
  flags: readonly string[],
  date: string | undefined,
  size: number,
  binary: boolean,
  nonSync: boolean,
): string {
  return messageArgs(flags, date) + literalAnnouncement(size, binary, nonSync);
}

/** A message's flags and date, each after a space; empty when it has neither. */
function messageArgs(flags: readonly string[], date: string | undefined): string {
  if (flags.length === 0 && !date) return '';
  const list = flagList(flags);
  return date ? `${list} ${quoted(date)}` : list;
}

/**
 * The flag list as sent, for the list given last: routing hands every copy one of a few lists
 * for the whole run (mapping/rules.ts, and imap/writer.ts formats each once), so the atoms of
 * each are checked and joined once per run of messages that share it, not once per message.
 * The lists are never changed once given (PipelineItem.flags).
 */
let lastFlags: readonly string[] | null = null;
let lastList = '';

function flagList(flags: readonly string[]): string {
  if (flags === lastFlags) return lastList;
  let out = ' (';
  for (let i = 0; i < flags.length; i++) out += i === 0 ? atom(flags[i]!) : ` ${atom(flags[i]!)}`;
  out += ')';
  lastFlags = flags;
  lastList = out;
  return out;
}

/** A literal's announcement: `~` for a binary literal (RFC 3516), `+` when the server need not accept it first. */
function literalAnnouncement(size: number, binary: boolean, nonSync: boolean): string {
  return ` ${binary ? '~' : ''}{${size}${nonSync ? '+' : ''}}\r\n`;
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** "00" to "59", made once: two fresh strings per field were garbage for every message appended. */
const TWO_DIGITS = Array.from({ length: 60 }, (_, n) => (n < 10 ? `0${n}` : `${n}`));

const two = (n: number): string => TWO_DIGITS[n] ?? (n < 10 ? `0${n}` : `${n}`);

/**
 * An internal date as APPEND sends it (RFC 3501 date-time, in UTC): what imapflow's
 * formatDateTime() returns, byte for byte, and undefined for an invalid Date as there. It
 * tested validity with Date#toString(), twice, which formats in the local zone and cost more
 * than the rest of a message's APPEND head (3-4 µs a message; 10,000 small messages: 34 ms
 * against 12 ms here).
 */
export function internalDateTime(date: Date): string | undefined {
  if (Number.isNaN(date.getTime())) return undefined;
  const year = date.getUTCFullYear();
  if (year < 0 || year > 9999) return fromIsoString(date.toISOString());
  const day = date.getUTCDate();
  const time = `${two(date.getUTCHours())}:${two(date.getUTCMinutes())}:${two(date.getUTCSeconds())}`;
  return `${day < 10 ? ' ' : ''}${day}-${MONTHS[date.getUTCMonth()]}-${String(year).padStart(4, '0')} ${time} +0000`;
}

/** imapflow's own steps, for the years toISOString() writes with a sign and six digits. */
function fromIsoString(iso: string): string {
  const parts: Array<string | undefined> = iso.substring(0, 10).split('-');
  parts.reverse();
  parts[1] = MONTHS[Number(parts[1]) - 1];
  return `${parts.join('-').replace(/^0/, ' ')} ${iso.substring(11, 19)} +0000`;
}
