/**
 * Raw header access over the exact message bytes. Hand-written (about 40 lines) because the
 * MIME libraries decode 8-bit header bytes to U+FFFD and we need the raw value of a few fields
 * (Message-ID, Received, Date) without parsing the body. Decoding of RFC 2047 words for
 * display and rules belongs to the rules module, which uses postal-mime.
 */

export interface HeaderField {
  /** Lower-cased field name. */
  name: string;
  /** Unfolded value, leading white space removed; bytes read as latin1 so nothing is lost. */
  value: string;
}

/**
 * How much of a message's header block is ever read: routing, Message-ID and the identity hash
 * see the fields within the first 1 MiB only. Real header blocks are kilobytes (Postfix refuses
 * over 100 KB); a 100 MB one was parsed whole and took about 700 MB of memory. The same cut
 * applies wherever a header block is read (whole message, TOP answer, the head of a streamed
 * one), so every path computes the same header hash.
 */
export const HEADER_PARSE_LIMIT = 1024 * 1024;

/**
 * Offset just past the blank line that ends the header block, or HEADER_PARSE_LIMIT (or the
 * whole length, if shorter) when none is found within it.
 */
export function headerBlockEnd(message: Buffer): number {
  const scan = Math.min(message.length, HEADER_PARSE_LIMIT);
  // The pattern may end up to two bytes past the limit, as it may start just before it. A view
  // only when the message runs past that: most are shorter, and a view per call was garbage.
  const within = scan + 2 >= message.length ? message : message.subarray(0, scan + 2);
  // Most header blocks end within the first BLANK_LINE_SEARCH bytes: there the blank line is
  // found by a native search for each way it can end, not by one per line (a call into Buffer's
  // indexOf for each header line of every message copied). Past them, line by line as before,
  // so that mail without LF CR LF anywhere is not searched to its end for one.
  const first = within.length > BLANK_LINE_SEARCH ? within.subarray(0, BLANK_LINE_SEARCH) : within;
  const crlf = first.indexOf(LF_CR_LF);
  // Most mail is CRLF and has no LF LF before its LF CR LF: a search back from there says so
  // without a view that stops a forward search there, or one that runs on into the body.
  const lf = crlf < 0 || first.lastIndexOf(LF_LF, crlf) >= 0 ? first.indexOf(LF_LF) : -1;
  // Found within `first`, a pattern starts before any cut at its end could: it is the first.
  if (lf >= 0 && lf < scan) return lf + 2;
  if (crlf >= 0 && crlf < scan) return crlf + 3;
  if (first === within) return scan;
  const lines = within.subarray(0, scan);
  for (let i = lines.indexOf(0x0a, BLANK_LINE_SEARCH - 2); i >= 0; i = lines.indexOf(0x0a, i + 1)) {
    // A blank line is LF followed by LF, or LF followed by CR LF.
    if (message[i + 1] === 0x0a) return i + 2;
    if (message[i + 1] === 0x0d && message[i + 2] === 0x0a) return i + 3;
  }
  return scan;
}

/** How far headerBlockEnd() searches by pattern before it goes line by line. */
export const BLANK_LINE_SEARCH = 16 * 1024;
const LF_LF = Buffer.from('\n\n');
const LF_CR_LF = Buffer.from('\n\r\n');

/** What String.prototype.trim() removes, within latin1. */
function isTrimmed(c: number): boolean {
  return (c >= 0x09 && c <= 0x0d) || c === 0x20 || c === 0xa0;
}

/**
 * The header block of `message` (up to headerBlockEnd) as text, its bytes read as latin1 so that
 * nothing is lost: what parseHeaders and the header hash (engine/identity.ts) read. The copy
 * reads it once per message for both.
 */
export function headerText(message: Buffer): string {
  return message.toString('latin1', 0, headerBlockEnd(message));
}

/** The fields of the header block, unfolded. */
export function parseHeaders(message: Buffer): HeaderField[] {
  return headerFields(headerText(message));
}

/**
 * The fields of a header block read by headerText(), unfolded. Lines are found by searching the
 * block's one string: splitting it by a pattern made an array and a string per line for every
 * message.
 */
export function headerFields(block: string): HeaderField[] {
  const fields: HeaderField[] = [];
  for (let pos = 0; pos < block.length; ) {
    const lf = block.indexOf('\n', pos);
    let end = lf < 0 ? block.length : lf;
    const next = lf < 0 ? block.length : lf + 1;
    if (lf >= 0 && end > pos && block.charCodeAt(end - 1) === 0x0d) end--;
    if (end === pos) break;
    const first = block.charCodeAt(pos);
    const last = fields[fields.length - 1];
    if ((first === 0x20 || first === 0x09) && last) {
      last.value += ' ' + block.slice(pos, end).trim();
    } else {
      const colon = block.indexOf(':', pos);
      // Not a field (mbox "From " line, junk): skipped, bytes are untouched anyway.
      if (colon > pos && colon < end) {
        // The value's bounds found before it is cut out: trimming a cut-out copied it again.
        let from = colon + 1;
        let to = end;
        while (from < to && isTrimmed(block.charCodeAt(from))) from++;
        while (to > from && isTrimmed(block.charCodeAt(to - 1))) to--;
        fields.push({ name: block.slice(pos, colon).trim().toLowerCase(), value: block.slice(from, to) });
      }
    }
    pos = next;
  }
  return fields;
}

/**
 * A plain loop: every message routed asks for five fields (Received, Date, X-Status, Status,
 * Message-ID), and a find() with a callback was a closure and a call per field for each, in code
 * that runs unoptimised for most of a run.
 */
export function firstHeader(fields: HeaderField[], name: string): string | undefined {
  for (let i = 0; i < fields.length; i++) if (fields[i]!.name === name) return fields[i]!.value;
  return undefined;
}

export function allHeaders(fields: HeaderField[], name: string): string[] {
  return fields.filter((f) => f.name === name).map((f) => f.value);
}

/** The Message-ID with its angle brackets, or null when absent or empty. */
export function messageIdOf(fields: HeaderField[]): string | null {
  const raw = firstHeader(fields, 'message-id');
  if (!raw) return null;
  const m = /<[^<>\s]+>/.exec(raw);
  return m ? m[0] : raw.trim() || null;
}
