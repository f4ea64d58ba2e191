/**
 * The POP3 client against servers that misbehave on purpose: endless replies, trickles, lying
 * sizes, UIDLs RFC 1939 does not allow, and a server that echoes the password. Each must end in
 * a clear PopsyncError naming the server and the command, with bounded memory and time (the
 * process-level RSS and wall-clock bounds are in pop3-hostile-cli.test.ts).
 */

import { describe, expect, it } from 'vitest';
import type { Logger } from '../../src/log.js';
import { isOverCeiling, SMALL_REPLY_MAX } from '../../src/pop3/limits.js';
import { connectPop3 } from '../../src/pop3/index.js';
import type { FakeContext } from '../support/fake-pop3.js';
import { failure, usePop3Harness } from '../support/pop3-harness.js';

const { fake, connect } = usePop3Harness();

/** Resolves once the client has hung up on this connection. */
function hungUp(ctx: FakeContext): { closed: () => boolean } {
  let closed = false;
  const watch = async (): Promise<void> => {
    while ((await ctx.readLine()) !== null);
    closed = true;
  };
  void watch();
  return { closed: () => closed };
}

/** Writes `status`, then `unit` over and over until the client hangs up; counts what it wrote. */
function flood(status: string, unit: string, sent: { bytes: number }) {
  return async (ctx: FakeContext): Promise<void> => {
    ctx.write(`${status}\r\n`);
    const h = hungUp(ctx);
    const chunk = unit.repeat(Math.max(1, Math.floor(16384 / unit.length)));
    while (!h.closed() && sent.bytes < 64 * 1024 * 1024) {
      ctx.write(chunk);
      sent.bytes += chunk.length;
      await new Promise((r) => setTimeout(r, 1));
    }
  };
}

/** Writes `text` one byte every `everyMs` until done or the client hangs up. */
function trickle(text: string, everyMs: number) {
  return async (ctx: FakeContext): Promise<void> => {
    const h = hungUp(ctx);
    for (const ch of text) {
      if (h.closed()) return;
      ctx.write(ch);
      await new Promise((r) => setTimeout(r, everyMs));
    }
  };
}

const MSG = 'Subject: hi\r\n\r\nhello\r\n';

describe('reply ceilings', () => {
  it(
    'an endless CAPA ends in a protocol error naming the server and CAPA, after little more than the ' + 'ceiling',
    async () => {
      const sent = { bytes: 0 };
      const pop = await fake({
        handlers: { CAPA: flood('+OK', 'X-JUNK AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\r\n', sent) },
      });
      const err = await failure(connectPop3(pop.clientOptions()));
      expect(err.kind).toBe('protocol');
      expect(err.message).toContain(`127.0.0.1:${pop.port}`);
      expect(err.message).toMatch(/more than 64 KiB in reply to CAPA/);
      // The client stopped reading at the ceiling (plus what was in flight), not at the flood's cap.
      expect(sent.bytes).toBeLessThan(16 * 1024 * 1024);
    },
  );

  it('an endless LIST or UIDL is bounded by the count STAT gave', async () => {
    for (const [verb, pipelining] of [
      ['LIST', false],
      ['UIDL', false],
      ['LIST', true],
      ['UIDL', true],
    ] as const) {
      const sent = { bytes: 0 };
      const pop = await fake({
        messages: [MSG, MSG],
        pipelining,
        handlers: { [verb]: flood('+OK', '1 1234567\r\n', sent) },
      });
      const s = await connect(pop);
      const err = await failure(verb === 'LIST' ? s.list() : s.uidl());
      expect(err.kind, verb).toBe('protocol');
      expect(err.message).toMatch(new RegExp(`127\\.0\\.0\\.1:${pop.port} sent more than .* in reply to ${verb}`));
      expect(pop.commands('STAT')).toEqual(['STAT']);
    }
  });

  it('a LIST within its ceiling for many messages is fine, and STAT is asked once per session', async () => {
    const pop = await fake({ messages: Array.from({ length: 500 }, (_, i) => `Subject: ${i}\r\n\r\nx\r\n`) });
    const s = await connect(pop);
    const [sizes, uidls] = await Promise.all([s.list(), s.uidl()]);
    expect(sizes).toHaveLength(500);
    expect(uidls).toHaveLength(500);
    expect(pop.commands('STAT')).toHaveLength(1);
  });

  it(
    'an endless RETR or TOP is cut at twice its LIST size plus the slack, naming the command and ' + 'message',
    async () => {
      for (const verb of ['RETR', 'TOP'] as const) {
        const sent = { bytes: 0 };
        const pop = await fake({ messages: [MSG], handlers: { [verb]: flood('+OK', 'more and more body\r\n', sent) } });
        const s = await connect(pop);
        await s.list();
        const err = await failure(verb === 'RETR' ? s.retr(1) : s.top(1, 0));
        expect(err.kind, verb).toBe('protocol');
        expect(err.message).toMatch(new RegExp(`in reply to ${verb} 1`));
        expect(err.context.messageNumber).toBe(1);
        expect(sent.bytes).toBeLessThan(16 * 1024 * 1024);
      }
    },
  );

  it('marks only the reply that broke its ceiling as over it, not the commands queued behind it', async () => {
    const sent = { bytes: 0 };
    const endless = flood('+OK', 'body line\r\n', sent);
    const pop = await fake({
      messages: [MSG, MSG],
      pipelining: true,
      handlers: { RETR: (ctx, a) => (a[0] === '1' ? endless(ctx) : ctx.useDefault()) },
    });
    const s = await connect(pop);
    await s.list();
    const [first, second] = await Promise.all([failure(s.retr(1)), failure(s.retr(2))]);
    expect(isOverCeiling(first)).toBe(true);
    expect(isOverCeiling(second)).toBe(false);
    expect(second.context.messageNumber).toBe(2);
  });

  it('each RETR is bounded by its own LIST size, whether LIST numbered the messages in order or not', async () => {
    // Message 2 listed small beside a large one: RETR 2 bounded by that one's size would take
    // megabytes more. Not 1, 2, 3... in order: out of order, a number missing or listed twice,
    // and the same through the general parser (two spaces are not a plain line).
    const listings = [
      '1 4000000\r\n2 20\r\n',
      '2 20\r\n1 4000000\r\n',
      '2 20\r\n3 4000000\r\n',
      '1 4000000\r\n1 4000000\r\n2 20\r\n',
      '2  20\r\n1  4000000\r\n',
      '1  4000000\r\n2  20\r\n',
    ];
    for (const listing of listings) {
      const sent = { bytes: 0 };
      const pop = await fake({
        messages: [MSG, MSG, MSG],
        handlers: {
          LIST: (ctx, a) => (a[0] ? ctx.useDefault() : ctx.replyMulti('+OK', listing)),
          RETR: flood('+OK', 'body line\r\n', sent),
        },
      });
      const s = await connect(pop);
      await s.list();
      const err = await failure(s.retr(2));
      expect(err.kind, listing).toBe('protocol');
      expect(sent.bytes, listing).toBeLessThan(1024 * 1024);
      // The size came from the listing read, not from a LIST n.
      expect(pop.commands('LIST'), listing).toEqual(['LIST']);
    }
  });

  it('a RETR without a LIST first asks LIST n for its ceiling', async () => {
    const sent = { bytes: 0 };
    const pop = await fake({ messages: [MSG], handlers: { RETR: flood('+OK', 'body line\r\n', sent) } });
    const s = await connect(pop);
    const err = await failure(s.retr(1));
    expect(err.kind).toBe('protocol');
    expect(pop.commands('LIST')).toEqual(['LIST 1']);
  });

  it('a server whose LIST counts LF line ends but sends CRLF, and adds headers, still delivers', async () => {
    // 5,000 empty lines: the CRLF message is twice its LF-counted size.
    const body = `Subject: lf\r\n\r\n${'\r\n'.repeat(5000)}`;
    const lfSize = body.replace(/\r\n/g, '\n').length;
    const added = `X-UIDL: 1234\r\nStatus: RO\r\n`;
    const pop = await fake({
      messages: [body],
      handlers: {
        LIST: (ctx, a) => (a[0] ? ctx.reply(`+OK 1 ${lfSize}`) : ctx.replyMulti('+OK', `1 ${lfSize}\r\n`)),
        RETR: (ctx) => ctx.replyMulti('+OK', added + body),
      },
    });
    const s = await connect(pop);
    await s.list();
    expect((await s.retr(1)).toString('latin1')).toBe(added + body);
  });

  it('endless SASL continuations end at the ceiling instead of being answered forever', async () => {
    const sent = { bytes: 0 };
    const pop = await fake({
      handlers: {
        AUTH: async (ctx) => {
          const h = hungUp(ctx);
          while (!h.closed() && sent.bytes < 8 * 1024 * 1024) {
            ctx.write('+ \r\n'.repeat(1000));
            sent.bytes += 4000;
            await new Promise((r) => setTimeout(r, 1));
          }
        },
      },
    });
    const err = await failure(connectPop3(pop.clientOptions({ auth: 'plain' })));
    expect(err.kind).toBe('protocol');
    expect(err.message).toMatch(/in reply to AUTH PLAIN/);
    expect(sent.bytes).toBeLessThan(SMALL_REPLY_MAX * 64);
  });
});

describe('reply pace', () => {
  it(
    'a trickle of one byte every 100 ms ends in a protocol error although every read is within --timeout',
    { timeout: 30_000 },
    async () => {
      const pop = await fake({ handlers: { CAPA: trickle(`+OK\r\n${'X-JUNK\r\n'.repeat(1000)}.\r\n`, 100) } });
      const err = await failure(connectPop3(pop.clientOptions({ timeoutMs: 500 })));
      expect(err.kind).toBe('protocol');
      expect(err.message).toMatch(new RegExp(`127\\.0\\.0\\.1:${pop.port} sends its reply to CAPA too slowly`));
      expect(err.context.hint).toMatch(/--timeout/);
    },
  );

  it('a RETR body trickle ends the same way, naming RETR and the message', { timeout: 30_000 }, async () => {
    const pop = await fake({ messages: [MSG], handlers: { RETR: trickle(`+OK\r\n${'y'.repeat(200)}`, 100) } });
    const s = await connect(pop, { timeoutMs: 500 });
    await s.list();
    const err = await failure(s.retr(1));
    expect(err.message).toMatch(/reply to RETR 1 too slowly/);
    expect(err.context.messageNumber).toBe(1);
  });

  it('a slow but steady transfer, and a pause shorter than --timeout, are fine', { timeout: 30_000 }, async () => {
    const body = `Subject: slow\r\n\r\n${'z'.repeat(78)}\r\n`.repeat(400); // ~38 KB
    const pop = await fake({
      messages: [body],
      handlers: {
        RETR: async (ctx) => {
          await new Promise((r) => setTimeout(r, 300)); // thinks before answering
          const wire = Buffer.concat([Buffer.from('+OK\r\n'), Buffer.from(body), Buffer.from('.\r\n')]);
          for (let i = 0; i < wire.length; i += 4096) {
            ctx.write(wire.subarray(i, i + 4096));
            await new Promise((r) => setTimeout(r, 100)); // ~40 KB/s
          }
        },
      },
    });
    const s = await connect(pop, { timeoutMs: 500 });
    await s.list();
    expect((await s.retr(1)).toString('latin1')).toBe(body);
  });

  it('the longest --timeout does not overflow the pace timer into a busy loop', { timeout: 30_000 }, async () => {
    const warnings: string[] = [];
    const onWarning = (w: Error): void => void warnings.push(w.name);
    process.on('warning', onWarning);
    try {
      // The credit of a large reply on top of the longest grace: re-armed after each pause.
      const body = `Subject: big\r\n\r\n${'q'.repeat(1000)}\r\n`.repeat(4000); // ~4 MB
      const pop = await fake({ messages: [body] });
      const s = await connect(pop, { timeoutMs: 2_147_483_000 });
      await s.list();
      const chunks: Buffer[] = [];
      for await (const c of s.retrStream(1)) {
        chunks.push(c as Buffer);
        await new Promise((r) => setImmediate(r)); // a slow reader: the socket pauses and resumes
      }
      expect(Buffer.concat(chunks).length).toBe(body.length);
      await new Promise((r) => setTimeout(r, 50));
      expect(warnings).not.toContain('TimeoutOverflowWarning');
    } finally {
      process.off('warning', onWarning);
    }
  });

  it('a paused stream reader is not blamed on the server', { timeout: 30_000 }, async () => {
    const body = `Subject: big\r\n\r\n${'q'.repeat(1000)}\r\n`.repeat(2000); // ~2 MB
    const pop = await fake({ messages: [body] });
    const s = await connect(pop, { timeoutMs: 300 });
    await s.list();
    const stream = s.retrStream(1);
    const chunks: Buffer[] = [];
    await new Promise((r) => setTimeout(r, 1000)); // nobody reads: the socket is paused
    for await (const c of stream) chunks.push(c as Buffer);
    expect(Buffer.concat(chunks).toString('latin1')).toBe(body);
  });
});

describe('LIST', () => {
  it('reads lines with other spacing or words after the size as before; refuses a size that is no number', async () => {
    const pop = await fake({
      messages: [MSG, MSG, MSG, MSG],
      handlers: { LIST: (ctx) => ctx.replyMulti('+OK', '1 100\r\n  2\t200 octets\r\n\r\n3 300\n4  400\r\n') },
    });
    expect(await (await connect(pop)).list()).toEqual([
      { n: 1, size: 100 },
      { n: 2, size: 200 },
      { n: 3, size: 300 },
      { n: 4, size: 400 },
    ]);
    const bad = await fake({
      messages: [MSG, MSG],
      handlers: { LIST: (ctx) => ctx.replyMulti('+OK', '1 100\r\n2 2x0\r\n') },
    });
    const err = await failure((await connect(bad)).list());
    expect(err.kind).toBe('protocol');
    expect(err.message).toContain('LIST size');
  });

  it('reads a listing as plain only when every line is: a bad line between plain ones is still refused', async () => {
    // The plain path reads line after line from where the last ended (a sticky regular
    // expression); one that searched on would step over the bad line and return the others.
    const pop = await fake({
      messages: [MSG, MSG, MSG],
      handlers: {
        LIST: (ctx) => ctx.replyMulti('+OK', '1 100\r\nx 5\r\n2 200\r\n'),
        UIDL: (ctx) => ctx.replyMulti('+OK', '1 aaa\r\nx bbb\r\n2 ccc\r\n'),
      },
    });
    const list = await failure((await connect(pop)).list());
    expect([list.kind, list.message]).toEqual(['protocol', expect.stringContaining('LIST line')]);
    const uidl = await failure((await connect(pop)).uidl());
    expect([uidl.kind, uidl.message]).toEqual(['protocol', expect.stringContaining('UIDL line')]);
  });

  it('takes plain lines that end in LF alone, and sizes and numbers up to 15 digits, exactly', async () => {
    const pop = await fake({
      messages: [MSG, MSG],
      handlers: {
        LIST: (ctx) => ctx.replyMulti('+OK', '1 999999999999999\n000000000000002 0\r\n'),
        UIDL: (ctx) => ctx.replyMulti('+OK', '1 a\n2 ~!\r\n'),
      },
    });
    expect(await (await connect(pop)).list()).toEqual([
      { n: 1, size: 999999999999999 },
      { n: 2, size: 0 },
    ]);
    expect(await (await connect(pop)).uidl()).toEqual([
      { n: 1, uidl: 'a' },
      { n: 2, uidl: '~!' },
    ]);
  });
});

describe('UIDL', () => {
  it('keeps a UIDL whole and marks one with bytes outside 0x21-0x7E as a fault of that message', async () => {
    const pop = await fake({
      messages: [MSG, MSG, MSG, MSG, MSG],
      handlers: {
        UIDL: (ctx) =>
          ctx.write(
            Buffer.concat([
              Buffer.from('+OK\r\n1 abc-123\r\n2 has space\r\n3 tab\there\r\n4 caf'),
              Buffer.from([0xe9]),
              Buffer.from('\r\n5 trailing  \r\n.\r\n'),
            ]),
          ),
      },
    });
    const s = await connect(pop);
    const u = await s.uidl();
    expect(u.map((e) => e.uidl)).toEqual(['abc-123', '', '', '', 'trailing']);
    expect(u[1]!.fault).toMatch(/"has\\x20space".*0x21-0x7E/);
    expect(u[2]!.fault).toContain('"tab\\x09here"');
    expect(u[3]!.fault).toContain('"caf\\xe9"');
    expect(u[0]!.fault).toBeUndefined();
  });

  it('reads a UIDL line with a long run of blanks inside in linear time, as the fault of that message', async () => {
    // The UIDL and its trailing blanks were one expression, `(.*?)[ \t\r]*$`, which tried every
    // split of a run of blanks between them: 40,000 spaces took a second, 400,000 100 s
    // (quadratic); the listing's ceiling is 256 bytes per message STAT counts (limits.ts). Now
    // milliseconds: the test's 10 s is a 100-fold margin, not a measurement.
    const blanks = ' '.repeat(400_000);
    const pop = await fake({
      messages: [MSG],
      handlers: {
        STAT: (ctx) => ctx.reply('+OK 2000 2000'),
        UIDL: (ctx) => ctx.replyMulti('+OK', `1 a${blanks}b\r\n2 c \t\r\n`),
      },
    });
    const u = await (await connect(pop)).uidl();
    expect(u.map((e) => [e.n, e.uidl])).toEqual([
      [1, ''],
      [2, 'c'],
    ]);
    expect(u[0]!.fault).toContain('"a\\x20\\x20');
  }, 10_000);
});

describe('a server that echoes the password', () => {
  function capturingLogger(): { logger: Logger; text: () => string } {
    const entries: unknown[] = [];
    const logger: Logger = {
      debug: (o, m) => void entries.push([o, m]),
      info: (o, m) => void entries.push([o, m]),
      warn: (o, m) => void entries.push([o, m]),
      error: (o, m) => void entries.push([o, m]),
      child: () => logger,
    };
    return { logger, text: () => JSON.stringify(entries) };
  }

  it('never lets it into the error, the server text or the log, whatever the login method', async () => {
    const pw = 'Echo-Me-9';
    for (const auth of ['user', 'plain', 'login'] as const) {
      const pop = await fake({
        password: 'something-else',
        handlers: {
          PASS: (ctx, a) => ctx.reply(`-ERR [AUTH] password ${a.join(' ')} is wrong`),
          AUTH: async (ctx, a) => {
            if ((a[0] ?? '').toUpperCase() === 'PLAIN') return ctx.reply(`-ERR [AUTH] bad credentials ${a[1] ?? ''}`);
            ctx.write('+ VXNlcm5hbWU6\r\n');
            const u = await ctx.readLine();
            ctx.write('+ UGFzc3dvcmQ6\r\n');
            const p = await ctx.readLine();
            ctx.reply(`-ERR [AUTH] ${u} ${p} means ${Buffer.from(p ?? '', 'base64').toString()} is wrong`);
          },
        },
      });
      const { logger, text } = capturingLogger();
      const err = await failure(connectPop3(pop.clientOptions({ password: pw, auth, logger })));
      expect(err.kind, auth).toBe('auth');
      const seen = JSON.stringify({ m: err.message, c: err.context, cause: String(err.cause), log: text() });
      expect(seen, auth).not.toContain(pw);
      expect(seen, auth).not.toContain(Buffer.from(pw).toString('base64'));
      expect(seen, auth).not.toContain(Buffer.from(`\0alice\0${pw}`).toString('base64'));
      expect(err.context.serverResponse, auth).toContain('****');
    }
  });

  it('never lets it into the error of a streamed RETR answered -ERR, at any log level but debug', async () => {
    // A RETR's +OK is passed on unredacted when nothing logs it (its text is shown nowhere): an
    // -ERR must still be redacted, as its text becomes the message's error.
    const pw = 'Echo-Me-9';
    const pop = await fake({
      password: pw,
      messages: ['Subject: a\r\n\r\nhi\r\n', 'Subject: b\r\n\r\nhi\r\n'],
      handlers: {
        RETR: (ctx, [n]) =>
          n === '1'
            ? ctx.reply(`-ERR [IN-USE] ${pw} holds the lock`)
            : ctx.replyMulti(`+OK ${pw}`, 'Subject: b\r\n\r\n'),
      },
    });
    const { logger: all, text } = capturingLogger();
    // Debug off, as in any run without --log-file.
    const logger: Logger = { ...all, isLevelEnabled: (l) => l !== 'debug', child: () => logger };
    const s = await connect(pop, { password: pw, logger });
    const refused = s.retrStream(1);
    const read = s.retrStream(2);
    const err = await failure(refused.read() as Promise<Buffer | null>);
    expect(err.message).toContain('****');
    expect(JSON.stringify({ m: err.message, c: err.context, cause: String(err.cause), log: text() })).not.toContain(pw);
    expect((await read.read())?.toString()).toBe('Subject: b\r\n\r\n');
  });

  it('redacts it from a malformed line too', async () => {
    const pop = await fake({ handlers: { PASS: (ctx, a) => ctx.reply(`?? ${a.join(' ')}`) } });
    const err = await failure(connectPop3(pop.clientOptions({ password: 'Echo-Me-9', auth: 'user' })));
    expect(err.kind).toBe('protocol');
    expect(JSON.stringify({ m: err.message, c: err.context, cause: String(err.cause) })).not.toContain('Echo-Me-9');
  });
});
