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
  // From line end to line end by native search: every message passes here twice (routing and
  // the identity hash), and a step per byte was most of the cost of both on small mail.
  const within = message.subarray(0, scan);
  for (let i = within.indexOf(0x0a); i >= 0; i = within.indexOf(0x0a, i + 1)) {
    // A blank line is LF followed by LF, or LF followed by CR LF.
    if (message[i + 1] === 0x0a) return i + 2;
    if (message[i + 1] === 0x0d && message[i + 2] === 0x0a) return i + 3;
  }
  return scan;
}

export function parseHeaders(message: Buffer): HeaderField[] {
  const block = message.subarray(0, headerBlockEnd(message)).toString('latin1');
  const fields: HeaderField[] = [];
  for (const line of block.split(/\r?\n/)) {
    if (line === '') break;
    const last = fields[fields.length - 1];
    if ((line.startsWith(' ') || line.startsWith('\t')) && last) {
      last.value += ' ' + line.trim();
      continue;
    }
    const colon = line.indexOf(':');
    if (colon <= 0) continue; // not a field (mbox "From " line, junk): skipped, bytes are untouched anyway
    fields.push({ name: line.slice(0, colon).trim().toLowerCase(), value: line.slice(colon + 1).trim() });
  }
  return fields;
}

export function firstHeader(fields: HeaderField[], name: string): string | undefined {
  return fields.find((f) => f.name === name)?.value;
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
