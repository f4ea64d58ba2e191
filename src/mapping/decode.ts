/**
 * Header values as people read them, for rules and reports: RFC 2047 words decoded by
 * postal-mime (on single header values only, never the body), addresses split by its address
 * parser. Our own header reader (headers.ts) keeps raw bytes as latin1 so nothing is lost;
 * here we first try to read those bytes as UTF-8 (what most 8-bit mail uses) and fall back to
 * the latin1 reading when they are not valid UTF-8.
 */
import { createRequire } from 'node:module';
import { allHeaders, firstHeader, type HeaderField } from './headers.js';

type PostalMime = typeof import('postal-mime');
let postalMime: PostalMime | null = null;

/**
 * postal-mime, required on first use: its ten modules are ~25 ms of start-up CPU in front of the
 * first connect, and only rules and reports that read a header need it (its CommonJS build, the
 * same functions).
 */
function postal(): PostalMime {
  postalMime ??= createRequire(import.meta.url)('postal-mime') as PostalMime;
  return postalMime;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Raw 8-bit bytes as UTF-8 when they are valid UTF-8, else the latin1 reading as is. */
function rawText(value: string): string {
  // Pure ASCII is the common case and needs no round trip.
  if (!/[\x80-\xff]/.test(value)) return value;
  try {
    return utf8.decode(Buffer.from(value, 'latin1'));
  } catch {
    return value;
  }
}

export function decodeHeaderValue(value: string): string {
  const text = rawText(value);
  if (!text.includes('=?')) return text;
  try {
    return postal().decodeWords(text);
  } catch {
    // A malformed encoded word is shown as written rather than failing the message.
    return text;
  }
}

/** E-mail addresses (lower-cased) of every instance of an address field. */
export function addressesOf(fields: HeaderField[], name: string): string[] {
  const out: string[] = [];
  for (const raw of allHeaders(fields, name)) {
    let parsed: ReturnType<PostalMime['addressParser']>;
    try {
      parsed = postal().addressParser(rawText(raw), { flatten: true });
    } catch {
      continue;
    }
    for (const a of parsed) if (a.address) out.push(a.address.toLowerCase());
  }
  return out;
}

/** The list identifier inside List-Id's angle brackets (RFC 2919), or the whole value. */
export function listIdOf(fields: HeaderField[]): string | null {
  const raw = firstHeader(fields, 'list-id');
  if (raw === undefined) return null;
  const m = /<([^<>]+)>/.exec(raw);
  const id = (m ? m[1]! : raw).trim();
  return id === '' ? null : id;
}

export function decodedHeader(fields: HeaderField[], name: string): string | null {
  const raw = firstHeader(fields, name);
  return raw === undefined ? null : decodeHeaderValue(raw);
}
