/**
 * Deterministic test mail: realistic mixes for end-to-end runs and benches, and the edge
 * cases that break naive POP3-to-IMAP copiers. Same seed, same bytes, on every machine: a
 * seeded PRNG drives everything (never Math.random or the clock), so a failing e2e run can
 * be replayed exactly.
 *
 * What Dovecot 2.3.19 does to maildir bytes (measured by seeding the edge cases below and
 * reading them back raw, see test/e2e/lab.test.ts):
 *  - POP3 RETR turns every bare LF into CRLF (a CR already before the LF is kept, a bare CR
 *    stays a bare CR), dot-stuffs, and when the message does not end in LF it sends an extra
 *    CRLF before the terminating "." line. LIST/"+OK n octets" count the CRLF form without
 *    that extra CRLF, so a client that strips ".\r\n" gets one CRLF more than the octet count
 *    for such messages. expectedPop3Bytes() gives what a correct client ends up with.
 *  - IMAP FETCH BODY[] also turns bare LF into CRLF but adds nothing at the end:
 *    expectedImapBytes(). So for messages with bare LFs, or without a final newline, the
 *    bytes stored on disk, the bytes RETR returns and the bytes FETCH returns all differ;
 *    e2e tests must compare against these helpers, never against the seeded buffer.
 *  - A message APPENDed over IMAP is stored with LF line ends (mail_save_crlf = no) and
 *    served with CRLF, so FETCH after APPEND of CRLF bytes returns the same bytes.
 */

import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const CRLF = '\r\n';

/** mulberry32: tiny, fast, and good enough to make varied but reproducible mail. */
export class Prng {
  private state: number;

  constructor(seed: number) {
    this.state = seed >>> 0 || 0x9e3779b9;
  }

  /** Uniform in [0, 1). */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** Integer in [lo, hi]. */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }

  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.next() * items.length)]!;
  }

  chance(p: number): boolean {
    return this.next() < p;
  }

  bytes(n: number): Buffer {
    const words = new Uint32Array(Math.ceil(n / 4));
    for (let i = 0; i < words.length; i++) words[i] = Math.floor(this.next() * 4294967296);
    return Buffer.from(words.buffer, 0, n);
  }
}

// ---------------------------------------------------------------------------------------
// Realistic mail

const FIRST = [
  'Anna',
  'Bernd',
  'Chloé',
  'Dmitri',
  'Eva',
  'François',
  'Grete',
  'Hiroshi',
  'Inés',
  'Jürgen',
  'Kai',
  'Lena',
  'Mateo',
  'Nora',
  'Øystein',
  'Priya',
];
const LAST = [
  'Müller',
  'Schmidt',
  'Dubois',
  'Ivanova',
  'Tanaka',
  'García',
  'Nowak',
  'Rossi',
  'Jensen',
  'Okafor',
  'Weber',
  'Kowalski',
];
const DOMAINS = ['example.com', 'example.org', 'example.net', 'mail.example.de', 'corp.example.fr'];
const RELAYS = ['mx1.example.net', 'mx2.example.net', 'smtp.example.org', 'relay.example.com', 'edge-03.example.de'];
const SUBJECTS = [
  'Quarterly report draft',
  'Re: Meeting on Thursday',
  'Invoice 2024-0193',
  'Fwd: travel plans',
  'Your order has shipped',
  'Minutes of the board meeting',
  'Question about the contract',
  'Photos from the weekend',
  'Server maintenance window',
  'Re: Re: budget numbers',
];
const UNICODE_SUBJECTS = [
  'Grüße aus München',
  'Réunion à 14h — café',
  'Смета на июль',
  '会議の議事録',
  'Ærlig talt: ønskeliste',
  'Ποιότητα ✓ release notes',
];
const WORDS = (
  'the of and to in is that for it as was with be by on not he this are or his from at which but have an ' +
  'they you were ' +
  'her she there been one all we their has would when if so no will can more other what time up about out into only ' +
  'report meeting budget server mailbox message attachment schedule review draft invoice quarter customer contract ' +
  'please thanks regards tomorrow yesterday project release deadline update question answer numbers figures team'
).split(' ');

function dateHeader(ms: number): string {
  // RFC 5322 date in a fixed zone: Date#toUTCString gives "Mon, 01 Jan 2024 10:00:00 GMT".
  return new Date(ms).toUTCString().replace(/GMT$/, '+0000');
}

function encodeWord(text: string, rng: Prng): string {
  // Real mail uses both encodings; B for scripts, Q for mostly-Latin text.
  if (rng.chance(0.5)) return `=?UTF-8?B?${Buffer.from(text, 'utf8').toString('base64')}?=`;
  const q = [...Buffer.from(text, 'utf8')]
    .map((b) =>
      b === 0x20
        ? '_'
        : (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a)
          ? String.fromCharCode(b)
          : `=${b.toString(16).toUpperCase().padStart(2, '0')}`,
    )
    .join('');
  return `=?UTF-8?Q?${q}?=`;
}

function asciiName(s: string): string {
  return s.normalize('NFD').replace(/[^\x20-\x7e]/g, '');
}

function address(rng: Prng): { display: string; addr: string } {
  const first = rng.pick(FIRST);
  const last = rng.pick(LAST);
  const addr = `${asciiName(first).toLowerCase()}.${asciiName(last).toLowerCase()}@${rng.pick(DOMAINS)}`;
  const name = `${first} ${last}`;
  // Non-ASCII display names must be RFC 2047 encoded in a 7-bit header.
  const display = /^[\x20-\x7e]*$/.test(name) ? `"${name}"` : encodeWord(name, rng);
  return { display, addr };
}

function paragraph(rng: Prng, approxBytes: number): string {
  const lines: string[] = [];
  let line = '';
  let size = 0;
  while (size < approxBytes) {
    const w = rng.pick(WORDS);
    if (line.length + w.length + 1 > 72) {
      lines.push(line);
      size += line.length + 2;
      line = '';
    }
    line = line === '' ? w : `${line} ${w}`;
  }
  if (line !== '') lines.push(line);
  return lines.join(CRLF);
}

function textBody(rng: Prng, bytes: number): string {
  const parts: string[] = [];
  let left = bytes;
  while (left > 0) {
    const n = Math.min(left, rng.int(200, 1200));
    parts.push(paragraph(rng, n));
    left -= n;
  }
  return parts.join(CRLF + CRLF) + CRLF;
}

function base64Lines(data: Buffer): string {
  const b64 = data.toString('base64');
  const out: string[] = [];
  for (let i = 0; i < b64.length; i += 76) out.push(b64.slice(i, i + 76));
  return out.join(CRLF);
}

interface Shape {
  textBytes: number;
  attachments: number[];
}

function message(rng: Prng, index: number, when: number, shape: Shape): Buffer {
  const from = address(rng);
  const to = address(rng);
  const id = `${index.toString(36)}.${Math.floor(rng.next() * 1e12).toString(36)}@${rng.pick(DOMAINS)}`;
  const subject = rng.chance(0.25) ? encodeWord(rng.pick(UNICODE_SUBJECTS), rng) : rng.pick(SUBJECTS);

  const headers: string[] = [];
  // Newest Received first, each hop a few seconds earlier than the one above it.
  const hops = rng.int(2, 4);
  let t = when;
  for (let h = 0; h < hops; h++) {
    const by = rng.pick(RELAYS);
    const fromHost = h === hops - 1 ? `[192.0.2.${rng.int(1, 254)}]` : rng.pick(RELAYS);
    headers.push(
      `Received: from ${fromHost} (${fromHost} [198.51.100.${rng.int(1, 254)}])${CRLF}` +
        `\tby ${by} with ESMTPS id ${rng.bytes(6).toString('hex')}${CRLF}` +
        `\tfor <${to.addr}>; ${dateHeader(t)}`,
    );
    t -= rng.int(1, 30) * 1000;
  }
  headers.push(`Date: ${dateHeader(t)}`);
  headers.push(`From: ${from.display} <${from.addr}>`);
  headers.push(`To: ${to.display} <${to.addr}>`);
  headers.push(`Subject: ${subject}`);
  headers.push(`Message-ID: <${id}>`);
  headers.push('MIME-Version: 1.0');

  const text = textBody(rng, shape.textBytes);
  if (shape.attachments.length === 0) {
    headers.push('Content-Type: text/plain; charset=us-ascii', 'Content-Transfer-Encoding: 7bit');
    return Buffer.from(headers.join(CRLF) + CRLF + CRLF + text, 'latin1');
  }
  const boundary = `----=_Part_${index}_${rng.bytes(8).toString('hex')}`;
  headers.push(`Content-Type: multipart/mixed; boundary="${boundary}"`);
  const parts = [
    `--${boundary}${CRLF}Content-Type: text/plain; charset=us-ascii${CRLF}Content-Transfer-Encoding: ` +
      `7bit${CRLF}${CRLF}${text}`,
  ];
  for (const [k, size] of shape.attachments.entries()) {
    const kind = rng.pick([
      ['application/pdf', 'pdf'],
      ['image/jpeg', 'jpg'],
      ['application/zip', 'zip'],
      ['application/octet-stream', 'bin'],
    ] as const);
    const name = `attachment-${index}-${k}.${kind[1]}`;
    // Attachment size is the decoded size; base64 makes the message ~4/3 of it.
    parts.push(
      `--${boundary}${CRLF}Content-Type: ${kind[0]}; name="${name}"${CRLF}` +
        `Content-Transfer-Encoding: base64${CRLF}Content-Disposition: attachment; filename="${name}"${CRLF}${CRLF}` +
        base64Lines(rng.bytes(size)) +
        CRLF,
    );
  }
  return Buffer.from(
    headers.join(CRLF) +
      CRLF +
      CRLF +
      'This is a multi-part message in MIME format.' +
      CRLF +
      parts.join('') +
      `--${boundary}--${CRLF}`,
    'latin1',
  );
}

function generate(count: number, seed: number, shape: (rng: Prng) => Shape): Buffer[] {
  const rng = new Prng(seed);
  // 2024-03-01T00:00:00Z, then forward in time like a real inbox.
  let when = Date.UTC(2024, 2, 1);
  const out: Buffer[] = [];
  for (let i = 0; i < count; i++) {
    when += rng.int(60, 6 * 3600) * 1000;
    out.push(message(rng, i, when, shape(rng)));
  }
  return out;
}

/**
 * Valid RFC 5322 messages with CRLF line ends: ~85% plain text of 2-20 KB, ~15% multipart
 * with one or two base64 attachments of 50-500 KB. Deterministic in (count, seed).
 */
export function realisticMix(count: number, seed: number): Buffer[] {
  return generate(count, seed, (rng) => {
    const textBytes = rng.int(1500, 19000);
    if (!rng.chance(0.15)) return { textBytes, attachments: [] };
    const n = rng.chance(0.3) ? 2 : 1;
    // Base64 grows the data by 4/3; keep each encoded attachment within 50-500 KB.
    return { textBytes: rng.int(500, 4000), attachments: Array.from({ length: n }, () => rng.int(38_000, 375_000)) };
  });
}

/**
 * The bench's mix: ~90% 2-20 KB text, ~9% 50-500 KB with an attachment, ~1% (at least one
 * when count >= 20) 1-8 MB. Deterministic in (count, seed).
 */
export function benchMix(count: number, seed: number): Buffer[] {
  const out = generate(count, seed, (rng) => {
    const r = rng.next();
    if (r < 0.9) return { textBytes: rng.int(1500, 19000), attachments: [] };
    if (r < 0.99) return { textBytes: 2000, attachments: [rng.int(38_000, 375_000)] };
    return { textBytes: 2000, attachments: [rng.int(750_000, 6_000_000)] };
  });
  // A bench of a few dozen messages must still meet a multi-megabyte one.
  if (count >= 20 && !out.some((m) => m.length > 1_000_000)) {
    const i = Math.floor(count / 2);
    const rng = new Prng(seed ^ 0x5bd1e995);
    out[i] = message(rng, i, Date.UTC(2024, 2, 1), { textBytes: 2000, attachments: [rng.int(750_000, 3_000_000)] });
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// Edge cases

export interface EdgeCase {
  /** Stable name, e.g. "dot-lines"; tests look cases up by it. */
  name: string;
  /** Exactly the bytes to seed into the POP3 maildir. */
  bytes: Buffer;
  /** Why this message is hard. */
  why: string;
}

/** Where the committed .eml fixtures live, from lab/. */
export const FIXTURE_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'mail');

const FIXTURES: ReadonlyArray<{ name: string; file: string; lf?: boolean; why: string }> = [
  { name: 'no-message-id', file: 'no-message-id.eml', why: 'no Message-ID: dedup must not rely on it' },
  {
    name: 'same-message-id-a',
    file: 'same-message-id-a.eml',
    why: 'shares its Message-ID with same-message-id-b but differs in content',
  },
  {
    name: 'same-message-id-b',
    file: 'same-message-id-b.eml',
    why: 'shares its Message-ID with same-message-id-a but differs in content',
  },
  {
    name: 'duplicate-1',
    file: 'duplicate.eml',
    why: 'byte-identical to duplicate-2: two POP3 messages, two UIDLs, both must be copied',
  },
  { name: 'duplicate-2', file: 'duplicate.eml', why: 'byte-identical to duplicate-1' },
  {
    name: 'dot-lines',
    file: 'dot-lines.eml',
    why: 'lines starting with "." and "..", and a line that is only "." (POP3 dot-stuffing)',
  },
  {
    name: 'status-lines',
    file: 'status-lines.eml',
    why: 'body lines starting with "+OK" and "-ERR" (a sloppy POP3 reader takes them for responses)',
  },
  {
    name: 'latin1-headers',
    file: 'latin1-headers.eml',
    why: 'raw 8-bit ISO-8859-1 bytes in headers (not valid UTF-8)',
  },
  { name: 'utf8-headers', file: 'utf8-headers.eml', why: 'raw 8-bit UTF-8 in headers (RFC 6532 style)' },
  {
    name: 'bare-lf',
    file: 'bare-lf.eml',
    lf: true,
    why: 'LF line ends: the server serves CRLF (see the module comment)',
  },
  { name: 'no-body', file: 'no-body.eml', why: 'headers, the blank line, and nothing after it' },
  { name: 'headers-only', file: 'headers-only.eml', why: 'headers only, not even the blank separator line' },
];

/** Line ends in the fixtures are normalised on load so git's autocrlf cannot change a case. */
function normalise(data: Buffer, lf: boolean): Buffer {
  const s = data.toString('latin1').replace(/\r\n/g, '\n');
  return Buffer.from(lf ? s : s.replace(/\n/g, '\r\n'), 'latin1');
}

function longLine(rng: Prng, length: number): string {
  let s = '';
  while (s.length < length) s += `${rng.pick(WORDS)} `;
  return s.slice(0, length);
}

/** ~size bytes of valid multipart mail; built in chunks so 25 MB stays cheap to make. */
export function hugeMessage(size: number, seed = 25): Buffer {
  const rng = new Prng(seed);
  const boundary = `huge-${seed}`;
  const head = Buffer.from(
    [
      'Received: from mx1.example.net (mx1.example.net [198.51.100.7])',
      '\tby mx2.example.net with ESMTPS id huge; Fri, 01 Mar 2024 12:00:00 +0000',
      'Date: Fri, 01 Mar 2024 11:59:58 +0000',
      'From: "Big Sender" <big@example.com>',
      'To: <someone@example.org>',
      `Subject: A ${Math.round(size / 1e6)} MB message`,
      `Message-ID: <huge-${size}-${seed}@example.com>`,
      'MIME-Version: 1.0',
      `Content-Type: multipart/mixed; boundary="${boundary}"`,
      '',
      `--${boundary}`,
      'Content-Type: text/plain; charset=us-ascii',
      '',
      'See the attachment.',
      `--${boundary}`,
      'Content-Type: application/octet-stream; name="huge.bin"',
      'Content-Transfer-Encoding: base64',
      'Content-Disposition: attachment; filename="huge.bin"',
      '',
      '',
    ].join(CRLF),
    'latin1',
  );
  const tail = Buffer.from(`--${boundary}--${CRLF}`, 'latin1');
  const chunks: Buffer[] = [head];
  let total = head.length + tail.length;
  // 57 raw bytes make one 76-char base64 line; 78 bytes with CRLF.
  const lineRaw = 57;
  const linesPerChunk = 4096;
  while (total < size) {
    const lines = Math.min(linesPerChunk, Math.ceil((size - total) / 78));
    const raw = rng.bytes(lines * lineRaw);
    const b64 = raw.toString('base64');
    const parts: string[] = [];
    for (let i = 0; i < lines; i++) parts.push(b64.slice(i * 76, i * 76 + 76));
    const chunk = Buffer.from(parts.join(CRLF) + CRLF, 'latin1');
    chunks.push(chunk);
    total += chunk.length;
  }
  chunks.push(tail);
  return Buffer.concat(chunks);
}

/**
 * Every edge case, in a fixed order: the committed fixtures, then generated ones (long lines,
 * no final newline, and unless `huge: false` one ~25 MB message named "huge-25mb").
 */
export function edgeCases(opts: { huge?: boolean } = {}): EdgeCase[] {
  const out: EdgeCase[] = FIXTURES.map((f) => ({
    name: f.name,
    bytes: normalise(readFileSync(path.join(FIXTURE_DIR, f.file)), f.lf === true),
    why: f.why,
  }));
  const rng = new Prng(1000);
  const longHead = [
    'Date: Fri, 01 Mar 2024 10:00:00 +0000',
    'From: "Long Lines" <long@example.com>',
    'To: <someone@example.org>',
    'MIME-Version: 1.0',
    'Content-Type: text/plain; charset=us-ascii',
  ];
  out.push({
    name: 'long-line-1k',
    bytes: Buffer.from(
      [
        ...longHead,
        'Subject: a 1500-character line',
        'Message-ID: <long-1k@example.com>',
        '',
        'before',
        longLine(rng, 1500),
        'after',
        '',
      ].join(CRLF),
      'latin1',
    ),
    why: "a 1500-character body line, over RFC 5322's 998 limit",
  });
  out.push({
    name: 'long-line-10k',
    bytes: Buffer.from(
      [
        ...longHead,
        `Subject: a 12000-character line and a long header`,
        `X-Long-Header: ${longLine(rng, 2000)}`,
        'Message-ID: <long-10k@example.com>',
        '',
        'before',
        longLine(rng, 12_000),
        'after',
        '',
      ].join(CRLF),
      'latin1',
    ),
    why: 'a 12000-character body line and a 2000-character header line (line-length limits in clients and servers)',
  });
  out.push({
    name: 'no-final-newline',
    bytes: Buffer.from(
      [
        ...longHead,
        'Subject: the last line has no line end',
        'Message-ID: <nofinal-1@example.com>',
        '',
        'first line',
        'last line, no CRLF',
      ].join(CRLF),
      'latin1',
    ),
    why: 'ends without CRLF: POP3 RETR adds one, IMAP FETCH does not',
  });
  if (opts.huge !== false) {
    out.push({
      name: 'huge-25mb',
      bytes: hugeMessage(25 * 1024 * 1024),
      why: 'about 25 MB: streaming, timeouts, size limits',
    });
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// What the servers hand back (Dovecot 2.3, maildir; see the module comment)

/** Bare LF to CRLF; an existing CRLF and a bare CR are left alone. */
export function toCrlf(stored: Buffer): Buffer {
  // A byte loop rather than a string regex: it must be exact for 8-bit data too.
  const buf = Buffer.allocUnsafe(stored.length * 2);
  let j = 0;
  for (let i = 0; i < stored.length; i++) {
    const b = stored[i]!;
    if (b === 0x0a && (i === 0 || stored[i - 1] !== 0x0d)) buf[j++] = 0x0d;
    buf[j++] = b;
  }
  return buf.subarray(0, j);
}

/**
 * The message as a correct POP3 client has it after RETR (dot-unstuffed, ".\r\n" removed)
 * from a Dovecot maildir that holds `stored`.
 */
export function expectedPop3Bytes(stored: Buffer): Buffer {
  const crlf = toCrlf(stored);
  const endsWithNewline = crlf.length >= 2 && crlf[crlf.length - 1] === 0x0a;
  return endsWithNewline || crlf.length === 0 ? crlf : Buffer.concat([crlf, Buffer.from(CRLF)]);
}

/** What IMAP FETCH BODY[] returns for a maildir file holding `stored`. */
export function expectedImapBytes(stored: Buffer): Buffer {
  return toCrlf(stored);
}

/** Small messages (about 0.6-2 KB), deterministic in (count, seed), each with its own Message-ID. */
export function smallMix(count: number, seed: number): Buffer[] {
  let x = seed;
  const next = (): number => {
    x = (x * 1103515245 + 12345) % 2 ** 31;
    return x / 2 ** 31;
  };
  return Array.from({ length: count }, (_, i) => {
    const body = `Line ${i} of a short note.\r\n`.repeat(10 + Math.floor(next() * 50));
    return Buffer.from(
      `From: "Sender ${i % 97}" <s${i % 97}@example.org>\r\nTo: <rcpt@example.net>\r\n` +
        `Subject: note ${i}\r\nDate: Mon, 1 Jan 2024 10:00:00 +0000\r\n` +
        `Message-ID: <small-${seed}-${i}@bench>\r\n\r\n${body}`,
    );
  });
}
