/**
 * The POP3 response decoder, without sockets. The wire bytes here are written out by hand (not
 * produced by our own encoder) and then fed to the decoder under every chunking we can think
 * of: split at each byte, one byte at a time, and random splits. Output must be byte-exact.
 */

import { describe, it, expect } from 'vitest';
import { MAX_STATUS_LINE, ResponseDecoder, parseStatusLine, type StatusLine } from '../../src/pop3/framing.js';
import { PopsyncError } from '../../src/errors.js';

interface Decoded {
  status: StatusLine;
  body?: Buffer;
}

/**
 * Runs the decoder like the client does: `multiline[i]` says whether response i has a body
 * after +OK. Returns the responses and how many data events were seen.
 */
function decode(chunks: Buffer[], multiline: boolean[]): { responses: Decoded[]; dataEvents: number } {
  const d = new ResponseDecoder();
  const responses: Decoded[] = [];
  let body: Buffer[] | undefined;
  let dataEvents = 0;
  for (const chunk of chunks) {
    d.push(chunk);
    for (let ev = d.next(); ev; ev = d.next()) {
      if (ev.type === 'status') {
        const i = responses.length;
        responses.push({ status: ev.status });
        if (ev.status.kind === 'ok' && multiline[i]) {
          d.beginBody();
          body = [];
        }
      } else if (ev.type === 'data') {
        dataEvents++;
        expect(body).toBeDefined();
        body?.push(ev.chunk);
      } else {
        const last = responses[responses.length - 1] as Decoded;
        last.body = Buffer.concat(body ?? []);
        body = undefined;
      }
    }
  }
  expect(d.buffered).toBe(0);
  return { responses, dataEvents };
}

const b = (s: string): Buffer => Buffer.from(s, 'latin1');

function splitAt(wire: Buffer, ...points: number[]): Buffer[] {
  const out: Buffer[] = [];
  let prev = 0;
  for (const p of points) {
    out.push(wire.subarray(prev, p));
    prev = p;
  }
  out.push(wire.subarray(prev));
  return out;
}

function bytewise(wire: Buffer): Buffer[] {
  return Array.from({ length: wire.length }, (_, i) => wire.subarray(i, i + 1));
}

/** Deterministic PRNG so a failure can be replayed. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

/** Asserts `wire` decodes to `expected` bodies under every chunking. */
function expectEveryChunking(wire: Buffer, multiline: boolean[], expected: Array<Buffer | undefined>): void {
  const check = (chunks: Buffer[], how: string): void => {
    const { responses } = decode(chunks, multiline);
    expect(responses.length, how).toBe(expected.length);
    responses.forEach((r, i) => {
      const want = expected[i];
      if (want === undefined) expect(r.body, `${how}: response ${i}`).toBeUndefined();
      else expect(r.body?.toString('hex'), `${how}: response ${i}`).toBe(want.toString('hex'));
    });
  };
  check([wire], 'one chunk');
  check(bytewise(wire), '1-byte chunks');
  for (let i = 0; i <= wire.length; i++) check(splitAt(wire, i), `split at ${i}`);
  const r = rng(wire.length);
  for (let k = 0; k < 50; k++) {
    const points = Array.from({ length: 1 + Math.floor(r() * 6) }, () => Math.floor(r() * (wire.length + 1))).sort(
      (x, y) => x - y,
    );
    check(splitAt(wire, ...points), `split at ${points.join(',')}`);
  }
}

describe('ResponseDecoder bodies', () => {
  it('removes the terminator and keeps the CRLF before it', () => {
    expectEveryChunking(b('+OK 7 octets\r\nHello\r\n.\r\n'), [true], [b('Hello\r\n')]);
  });

  it('undoes dot-stuffing only at line start, including a line that is just "."', () => {
    // Message lines: ".leading", ".", "..two", "a.b ..", "" (empty), "..".
    const wire = b('+OK\r\n..leading\r\n..\r\n...two\r\na.b ..\r\n\r\n...\r\n.\r\n');
    expectEveryChunking(wire, [true], [b('.leading\r\n.\r\n..two\r\na.b ..\r\n\r\n..\r\n')]);
  });

  it('passes lines that look like status lines through untouched', () => {
    const wire = b('+OK\r\n+OK not a status\r\n-ERR nor this\r\n+ nor a challenge\r\n.\r\n');
    expectEveryChunking(wire, [true], [b('+OK not a status\r\n-ERR nor this\r\n+ nor a challenge\r\n')]);
  });

  it('keeps 8-bit bytes and NULs', () => {
    const msg = Buffer.concat([
      b('Subject: caf'),
      Buffer.from([0xe9, 0x00, 0xff, 0x80, 0x0d, 0x0a]),
      b('..'),
      Buffer.from([0xfe, 0x0d, 0x0a]),
    ]);
    const wire = Buffer.concat([
      b('+OK\r\n'),
      b('Subject: caf'),
      Buffer.from([0xe9, 0x00, 0xff, 0x80, 0x0d, 0x0a]),
      b('...'),
      Buffer.from([0xfe, 0x0d, 0x0a]),
      b('.\r\n'),
    ]);
    expectEveryChunking(wire, [true], [msg]);
  });

  it('treats a bare LF as a line end for stuffing and the terminator, without changing bytes', () => {
    expectEveryChunking(b('+OK\r\na\nb\n..c\r\n.\r\n'), [true], [b('a\nb\n.c\r\n')]);
    expectEveryChunking(b('+OK\r\nx\n.\n'), [true], [b('x\n')]);
  });

  it('keeps bare CRs, and gives back an unstuffed leading dot as sent', () => {
    // ".\rx" and ".abc" at line start are not legal (should be stuffed) but are not terminators.
    expectEveryChunking(b('+OK\r\na\rb\r\n.\rx\r\n.abc\r\n.\r\n'), [true], [b('a\rb\r\n.\rx\r\n.abc\r\n')]);
  });

  it('returns an empty body for "+OK" followed by the terminator, with no data events', () => {
    const { responses, dataEvents } = decode([b('+OK 0 octets\r\n.\r\n')], [true]);
    expect(responses[0]?.body?.length).toBe(0);
    expect(dataEvents).toBe(0);
  });

  it('returns a message that lacked a final CRLF with the CRLF the server had to add', () => {
    // On the wire "abc" (no line end) must become "abc\r\n.\r\n"; the decoder cannot know the
    // CRLF was added, so it returns the bytes the server sent. Documented in framing.ts.
    expectEveryChunking(b('+OK\r\nabc\r\n.\r\n'), [true], [b('abc\r\n')]);
  });

  it('does not end the body on ".\r\n" that is not at line start, nor on "\r\n." without its line end', () => {
    const d = new ResponseDecoder();
    d.push(b('+OK\r\n'));
    expect(d.next()?.type).toBe('status');
    d.beginBody();
    d.push(b('abc.\r\n\r\n.\r'));
    const ev = d.next();
    expect(ev).toEqual({ type: 'data', chunk: b('abc.\r\n\r\n') });
    expect(d.next()).toBeUndefined(); // ".\r" is held back: terminator or not, we cannot tell yet
    expect(d.inBody).toBe(true);
    d.push(b('\n'));
    expect(d.next()).toEqual({ type: 'end' });
    expect(d.inBody).toBe(false);
  });

  it('streams: body bytes come out as they arrive, without copying a chunk free of dots', () => {
    const d = new ResponseDecoder();
    d.push(b('+OK\r\n'));
    d.next();
    d.beginBody();
    const chunk = Buffer.alloc(64 * 1024, 0x61);
    for (let i = 0; i < 16; i++) {
      d.push(chunk);
      const ev = d.next();
      expect(ev?.type).toBe('data');
      if (ev?.type !== 'data') return;
      expect(ev.chunk.length).toBe(chunk.length);
      expect(ev.chunk.buffer).toBe(chunk.buffer); // a view of the input, not a copy
      expect(d.next()).toBeUndefined();
    }
    d.push(b('\r\n.\r\n'));
    expect(d.next()).toEqual({ type: 'data', chunk: b('\r\n') });
    expect(d.next()).toEqual({ type: 'end' });
  });

  it('round-trips random messages under random chunkings', () => {
    const r = rng(42);
    const alphabet = [0x2e, 0x2e, 0x0d, 0x0a, 0x0a, 0x61, 0xe9, 0x00, 0x20];
    for (let round = 0; round < 300; round++) {
      const msg = Buffer.from(
        Array.from({ length: Math.floor(r() * 40) }, () => alphabet[Math.floor(r() * alphabet.length)] as number),
      );
      // Reference encoder, written independently of the decoder: stuff after every LF and at the start.
      const parts: number[] = [];
      let atStart = true;
      for (const c of msg) {
        if (atStart && c === 0x2e) parts.push(0x2e);
        parts.push(c);
        atStart = c === 0x0a;
      }
      const ending = msg.length === 0 || msg[msg.length - 1] === 0x0a ? '' : '\r\n';
      const wire = Buffer.concat([b('+OK\r\n'), Buffer.from(parts), b(`${ending}.\r\n`)]);
      const expected = Buffer.concat([msg, b(ending)]);
      const points = Array.from({ length: Math.floor(r() * 5) }, () => Math.floor(r() * (wire.length + 1))).sort(
        (x, y) => x - y,
      );
      const { responses } = decode(splitAt(wire, ...points), [true]);
      expect(responses[0]?.body?.toString('hex'), `round ${round}`).toBe(expected.toString('hex'));
      expect(decode(bytewise(wire), [true]).responses[0]?.body?.toString('hex')).toBe(expected.toString('hex'));
    }
  });
});

describe('ResponseDecoder with pipelined responses', () => {
  it('separates back-to-back responses in one chunk, at every split', () => {
    const wire = b(
      '+OK 2 320\r\n' + // STAT
        '+OK\r\n1 120\r\n2 200\r\n.\r\n' + // LIST
        '-ERR [IN-USE] locked\r\n' + // RETR 1 (no body after -ERR)
        '+OK\r\n..\r\n.\r\n' + // RETR 2
        '+OK\r\n.\r\n' + // TOP 2 0 with an empty body
        '+OK bye\r\n', // QUIT
    );
    expectEveryChunking(
      wire,
      [false, true, true, true, true, false],
      [undefined, b('1 120\r\n2 200\r\n'), undefined, b('.\r\n'), b(''), undefined],
    );
  });

  it('leaves bytes after a status line buffered until asked (the STLS injection check relies on it)', () => {
    const d = new ResponseDecoder();
    d.push(b('+OK begin TLS\r\n+OK injected\r\n'));
    expect(d.next()?.type).toBe('status');
    expect(d.buffered).toBe('+OK injected\r\n'.length);
  });
});

describe('status lines', () => {
  it('parses RESP-CODES and text', () => {
    expect(parseStatusLine('-ERR [IN-USE] Mailbox locked')).toEqual({
      kind: 'err',
      code: 'IN-USE',
      text: 'Mailbox locked',
      line: '-ERR [IN-USE] Mailbox locked',
    });
    expect(parseStatusLine('-ERR [SYS/TEMP] try later').code).toBe('SYS/TEMP');
    expect(parseStatusLine('-ERR [LOGIN-DELAY] 900').code).toBe('LOGIN-DELAY');
    expect(parseStatusLine('-err [auth] bad password')).toMatchObject({
      kind: 'err',
      code: 'AUTH',
      text: 'bad password',
    });
    expect(parseStatusLine('-ERR no such message')).toEqual({
      kind: 'err',
      text: 'no such message',
      line: '-ERR no such message',
    });
    expect(parseStatusLine('-ERR')).toEqual({ kind: 'err', text: '', line: '-ERR' });
    expect(parseStatusLine('+OK')).toEqual({ kind: 'ok', text: '', line: '+OK' });
    expect(parseStatusLine('+OK 2 320')).toEqual({ kind: 'ok', text: '2 320', line: '+OK 2 320' });
    expect(parseStatusLine('+OK Dovecot ready. <1.2@host>').text).toBe('Dovecot ready. <1.2@host>');
  });

  it('tells +OK and -ERR apart from any other line as upper-casing its start did, whatever the code unit', () => {
    // The rule before the indicators were compared by character code: the line's first four
    // characters upper-cased. A code unit in each place of either indicator (and after it) must
    // be read the same way: one letter not compared shows as a line taken for a reply.
    const upperCased = (line: string): string => {
      const upper = line.slice(0, 4).toUpperCase();
      if (upper.startsWith('+OK') && (line.length === 3 || line[3] === ' ')) return 'ok';
      if (upper === '-ERR' && (line.length === 4 || line[4] === ' ')) return 'err';
      if (line === '+' || line.startsWith('+ ')) return 'continue';
      return 'refused';
    };
    const byCodes = (line: string): string => {
      try {
        return parseStatusLine(line).kind;
      } catch {
        return 'refused';
      }
    };
    // Latin-1 and what follows it up to the combining marks, and every code unit at all whose
    // upper case holds an ASCII character (ß to SS, ﬀ to FF, ẖ to H and a mark): the
    // only ones upper-casing could have read as a letter of either indicator.
    const units: string[] = [];
    for (let c = 0; c < 0x10000; c++) {
      const ch = String.fromCharCode(c);
      if (c < 0x300 || /[\0-\x7f]/.test(ch.toUpperCase())) units.push(ch);
    }
    for (const indicator of ['+OK', '-ERR']) {
      for (let at = 1; at <= indicator.length; at++) {
        for (const ch of units) {
          const line = `${indicator.slice(0, at)}${ch}${indicator.slice(at + 1)} text`;
          if (byCodes(line) !== upperCased(line)) expect([line, byCodes(line)]).toEqual([line, upperCased(line)]);
        }
      }
    }
  });

  it('parses SASL continuations', () => {
    expect(parseStatusLine('+ VXNlcm5hbWU6')).toEqual({
      kind: 'continue',
      text: 'VXNlcm5hbWU6',
      line: '+ VXNlcm5hbWU6',
    });
    expect(parseStatusLine('+ ')).toMatchObject({ kind: 'continue', text: '' });
    expect(parseStatusLine('+')).toMatchObject({ kind: 'continue', text: '' });
  });

  it('rejects anything else as a protocol error', () => {
    for (const line of ['* OK imap?', '+OKAY', '-ERROR', '', 'hello']) {
      let err: unknown;
      try {
        parseStatusLine(line);
      } catch (e) {
        err = e;
      }
      expect(err, line).toBeInstanceOf(PopsyncError);
      expect((err as PopsyncError).kind).toBe('protocol');
    }
  });

  it('reads status lines ending in a bare LF and split CRLFs', () => {
    const { responses } = decode(splitAt(b('+OK a\n-ERR b\r\n'), 5, 13), [false, false]);
    expect(responses.map((r) => r.status.line)).toEqual(['+OK a', '-ERR b']);
  });

  it('refuses a status line that never ends instead of buffering forever', () => {
    const d = new ResponseDecoder();
    d.push(Buffer.alloc(MAX_STATUS_LINE, 0x2b));
    expect(d.next()).toBeUndefined();
    d.push(b('x'));
    expect(() => d.next()).toThrow(/longer than/);
  });
});
