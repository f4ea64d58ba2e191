/**
 * Messages as non-Dovecot POP3 servers hand them out (bare LF line ends, bare CR, NUL bytes,
 * raw 8-bit header bytes, no final newline, no Message-ID), and the comparison that tells
 * whether an IMAP server's stored copy is one of them despite the rewrites it is known to apply.
 *
 * The comparison lives here, written from the servers' documented and measured behaviour, and
 * not in popsync: a test that borrowed popsync's own notion of "the same message" could not
 * catch popsync getting it wrong.
 */
import { createHash } from 'node:crypto';

export type HostileKind = 'bare-lf' | 'bare-cr' | 'nul' | '8bit-header' | 'no-final-newline' | 'lf-nul-no-id';

export const HOSTILE_KINDS: readonly HostileKind[] = [
  'bare-lf',
  'bare-cr',
  'nul',
  '8bit-header',
  'no-final-newline',
  'lf-nul-no-id',
];

/** Message `i` of the given kind; `tag` makes it unique (the same tag gives the same bytes). */
export function hostileMessage(kind: HostileKind, tag: string): Buffer {
  const id = kind === 'lf-nul-no-id' ? [] : [`Message-ID: <${tag}@hostile.example>`];
  const head = [
    'Date: Fri, 01 Mar 2024 10:00:00 +0000',
    'From: "Sender" <s@example.com>',
    'To: <r@example.org>',
    `Subject: ${kind} ${tag}`,
    ...id,
  ];
  const body = ['first line', `tag ${tag}`, 'a line with trailing spaces   ', '', 'last line'];
  const crlf = (lines: string[]): string => lines.join('\r\n');
  switch (kind) {
    case 'bare-lf':
      return Buffer.from(`${[...head, '', ...body].join('\n')}\n`, 'latin1');
    case 'bare-cr':
      return Buffer.from(
        `${crlf([...head, '', 'before', 'a bare CR\rin the middle', 'two\r\rbare CRs', ...body])}\r\n`,
        'latin1',
      );
    case 'nul':
      return Buffer.from(`${crlf([...head, '', 'a NUL \0 here', '\0\0 two at the start', ...body])}\r\n`, 'latin1');
    case '8bit-header':
      return Buffer.concat([
        Buffer.from(crlf(head.map((h) => (h.startsWith('Subject:') ? `${h} caf\xe9 \xfc\xdf` : h))), 'latin1'),
        Buffer.from('\r\nX-Raw-Utf8: grüße\r\n\r\n', 'utf8'),
        Buffer.from(`${crlf(body)}\r\n`, 'latin1'),
      ]);
    case 'no-final-newline':
      return Buffer.from(crlf([...head, '', ...body]), 'latin1');
    case 'lf-nul-no-id':
      return Buffer.from([...head, '', 'LF, a NUL \0 and no Message-ID', ...body].join('\n'), 'latin1');
  }
}

/** `count` messages cycling through every kind, each unique, plus the repeats asked for. */
export function hostileCorpus(count: number, seed: string, repeat: number[] = []): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < count; i++) out.push(hostileMessage(HOSTILE_KINDS[i % HOSTILE_KINDS.length]!, `${seed}-${i}`));
  for (const r of repeat) out.push(out[r]!);
  return out;
}

/**
 * The canonical form under the rewrites Dovecot 2.3 applies (measured, see
 * test/e2e/normalisation.test.ts): line ends CRLF (a bare LF gains its CR), NUL becomes 0x80,
 * trailing line ends do not count. Cyrus's and Courier's rewrites have their own functions.
 */
export function dovecotCanonical(b: Buffer): Buffer {
  const out = Buffer.allocUnsafe(b.length * 2);
  let j = 0;
  for (let i = 0; i < b.length; i++) {
    const c = b[i]!;
    if (c === 0x0a && (i === 0 || b[i - 1] !== 0x0d)) out[j++] = 0x0d;
    out[j++] = c === 0 ? 0x80 : c;
  }
  let end = j;
  while (end >= 2 && out[end - 2] === 0x0d && out[end - 1] === 0x0a) end -= 2;
  return out.subarray(0, end);
}

/**
 * The canonical form under what Cyrus 3.6 (Debian defaults) does on APPEND (measured, see
 * test/e2e/cyrus.test.ts): every 8-bit byte in the header section becomes 'X' (munge8bit,
 * length kept); NUL, bare CR and a missing final newline are kept; bare LF is refused
 * outright ("Message contains bare newlines"), so it never needs folding.
 */
export function cyrusCanonical(b: Buffer): Buffer {
  const out = Buffer.from(b);
  let end = out.indexOf('\r\n\r\n');
  if (end < 0) end = out.length;
  for (let i = 0; i < end; i++) if (out[i]! >= 0x80) out[i] = 0x58;
  let len = out.length;
  while (len >= 2 && out[len - 2] === 0x0d && out[len - 1] === 0x0a) len -= 2;
  return out.subarray(0, len);
}

/**
 * The canonical form under what Courier 5.0 (imapd, maildir) does on APPEND (measured, see
 * test/e2e/courier.test.ts): a bare LF gains its CR, a bare CR is dropped, NUL and 8-bit
 * header bytes are kept; trailing line ends do not count.
 */
export function courierCanonical(b: Buffer): Buffer {
  const out = Buffer.allocUnsafe(b.length * 2);
  let j = 0;
  for (let i = 0; i < b.length; i++) {
    const c = b[i]!;
    if (c === 0x0d && b[i + 1] !== 0x0a) continue;
    if (c === 0x0a && (i === 0 || b[i - 1] !== 0x0d)) out[j++] = 0x0d;
    out[j++] = c;
  }
  let end = j;
  while (end >= 2 && out[end - 2] === 0x0d && out[end - 1] === 0x0a) end -= 2;
  return out.subarray(0, end);
}

/** The message as popsync sends it: every bare LF with its CR (Cyrus would refuse it otherwise). */
export function withCrlf(b: Buffer): Buffer {
  const out = Buffer.allocUnsafe(b.length * 2);
  let j = 0;
  for (let i = 0; i < b.length; i++) {
    if (b[i] === 0x0a && (i === 0 || b[i - 1] !== 0x0d)) out[j++] = 0x0d;
    out[j++] = b[i]!;
  }
  return out.subarray(0, j);
}

/** Whether a message has a LF without CR before it (Cyrus refuses those unless popsync adds the CR). */
export function hasBareLf(b: Buffer): boolean {
  for (let i = b.indexOf(0x0a); i >= 0; i = b.indexOf(0x0a, i + 1)) if (i === 0 || b[i - 1] !== 0x0d) return true;
  return false;
}

/** Sorted digests of the canonical forms: equal lists mean each message exactly once. */
export function canonicalDigests(bodies: Buffer[], canon: (b: Buffer) => Buffer = dovecotCanonical): string[] {
  return bodies.map((b) => createHash('sha256').update(canon(b)).digest('hex')).sort();
}
