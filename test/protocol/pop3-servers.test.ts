/**
 * Real POP3 servers that serve mail or logins differently from Dovecot, each imitated by the
 * scripted fake at the one point where it differs (issue 12 part 9):
 * - Courier replaces 8-bit messages by a notice unless the client sends UTF8 (RFC 6856);
 * - GNU Mailutils puts an APOP timestamp in its greeting although APOP fails for most users;
 * - Cyrus refuses logins that come too soon with -ERR [LOGIN-DELAY].
 */

import { describe, expect, it } from 'vitest';
import { connectPop3 } from '../../src/pop3/index.js';
import type { FakePop3Options } from '../support/fake-pop3.js';
import { failure, usePop3Harness } from '../support/pop3-harness.js';

const { fake, connect } = usePop3Harness();

const EIGHT_BIT = Buffer.concat([
  Buffer.from('Subject: '),
  Buffer.from('Grüße', 'utf8'),
  Buffer.from('\r\nFrom: a@b\r\n\r\nkörper\r\n'),
]);

/** Courier's behaviour: UTF8 enables 8-bit content, else the message is wrapped in a notice. */
function courier(capa: string[]): FakePop3Options {
  const utf8 = new Set<number>();
  return {
    messages: [EIGHT_BIT],
    capa,
    handlers: {
      UTF8: (ctx) => {
        utf8.add(ctx.connection);
        ctx.reply('+OK UTF8 enabled');
      },
      RETR: (ctx) => {
        if (utf8.has(ctx.connection)) return ctx.useDefault();
        ctx.replyMulti(
          '+OK',
          `From: Mail Delivery Subsystem <postmaster>\r\nSubject: Cannot display Unicode content\r\nDate: ` +
            `${Date.now()}\r\n\r\n...\r\n`,
        );
      },
    },
  };
}

describe('Courier: UTF8 (RFC 6856)', () => {
  it('sends UTF8 after logging in when CAPA offers it, and gets the message as stored', async () => {
    const pop = await fake(courier(['TOP', 'UIDL', 'USER', 'UTF8', 'RESP-CODES']));
    const s = await connect(pop);
    await s.list();
    expect(await s.retr(1)).toEqual(EIGHT_BIT);
    const verbs = pop.received.map((r) => r.verb);
    expect(verbs.indexOf('UTF8')).toBeGreaterThan(verbs.indexOf('PASS'));
  });

  it('with PIPELINING, UTF8 goes in one write with STAT, LIST and UIDL, ahead of every RETR', async () => {
    const pop = await fake({ ...courier(['TOP', 'UIDL', 'USER', 'UTF8', 'RESP-CODES']), pipelining: true });
    const s = await connect(pop);
    await Promise.all([s.list(), s.uidl()]);
    expect(await s.retr(1)).toEqual(EIGHT_BIT);
    const start = pop.received.slice(pop.received.findIndex((r) => r.verb === 'PASS') + 1);
    expect(start.map((r) => [r.verb, r.repliesBefore])).toEqual([
      ['UTF8', 4],
      ['STAT', 4],
      ['LIST', 4],
      ['UIDL', 4],
      ['RETR', 8],
    ]);
  });

  it('sends no UTF8 to a server that does not offer it, and a refusal is not an error', async () => {
    const plain = await fake({ messages: [EIGHT_BIT] });
    await connect(plain);
    expect(plain.commands('UTF8')).toEqual([]);
    const refusing = await fake({ capa: ['USER', 'UTF8'], handlers: { UTF8: (ctx) => ctx.reply('-ERR not now') } });
    const s = await connect(refusing);
    // UTF8 is not waited for: it only has to go before the commands after it, which still work.
    expect((await s.stat()).count).toBe(0);
    expect(refusing.commands('UTF8')).toEqual(['UTF8']);
  });
});

describe('GNU Mailutils: auto falls back after a refused method', () => {
  const mailutils = (extra: FakePop3Options = {}): FakePop3Options => ({
    apop: true,
    sasl: [],
    capa: ['TOP', 'UIDL', 'USER', 'RESP-CODES'],
    handlers: { APOP: (ctx) => ctx.reply('-ERR [AUTH] APOP authentication failed') },
    ...extra,
  });

  it('tries APOP, then USER/PASS, and logs in', async () => {
    const pop = await fake(mailutils());
    await connect(pop);
    expect(pop.received.map((r) => r.verb)).toEqual(expect.arrayContaining(['APOP', 'USER', 'PASS']));
    const verbs = pop.received.map((r) => r.verb);
    expect(verbs.indexOf('USER')).toBeGreaterThan(verbs.indexOf('APOP'));
  });

  it('never retries with another method when the user chose one', async () => {
    const pop = await fake(mailutils());
    const err = await failure(connectPop3(pop.clientOptions({ auth: 'apop' })));
    expect(err.kind).toBe('auth');
    expect(pop.commands('USER')).toEqual([]);
  });

  it('reports every refusal when all offered methods fail', async () => {
    const pop = await fake(mailutils());
    const err = await failure(connectPop3(pop.clientOptions({ password: 'wrong' })));
    expect(err.kind).toBe('auth');
    expect(err.context.hint).toMatch(/tried APOP, then USER\/PASS/);
  });

  it(
    'stops at a refusal that blames the credentials ([AUTH]) when the next method sends the same ' + 'password',
    async () => {
      const pop = await fake({ apop: true, capa: ['USER', 'SASL PLAIN LOGIN', 'RESP-CODES', 'AUTH-RESP-CODE'] });
      const err = await failure(connectPop3(pop.clientOptions({ password: 'wrong' })));
      expect(err.kind).toBe('auth');
      expect(pop.received.map((r) => r.verb).filter((v) => ['AUTH', 'APOP', 'USER', 'PASS'].includes(v))).toEqual([
        'AUTH',
      ]);
    },
  );

  it(
    'a server that hangs up after the first refusal ends in that refusal (exit 3), not a lost ' + 'connection',
    async () => {
      const pop = await fake(
        mailutils({
          handlers: {
            APOP: (ctx) => {
              ctx.reply('-ERR [AUTH] APOP authentication failed');
              ctx.drop();
            },
          },
        }),
      );
      const err = await failure(connectPop3(pop.clientOptions()));
      expect(err.kind).toBe('auth');
      expect(err.context.hint).toMatch(/closed the connection after refusing APOP/);
    },
  );
});

describe('Cyrus: [LOGIN-DELAY]', () => {
  const cyrus = (delay: string | null, refusals: number): FakePop3Options => {
    let refused = 0;
    return {
      sasl: [],
      capa: ['TOP', 'UIDL', 'USER', 'RESP-CODES', ...(delay === null ? [] : [`LOGIN-DELAY ${delay}`])],
      handlers: {
        PASS: (ctx) => {
          if (refused++ < refusals) return ctx.reply('-ERR [LOGIN-DELAY] Minimum time between mail checks violated');
          return ctx.useDefault();
        },
      },
    };
  };

  it('waits out a short delay stated in CAPA once, then logs in', { timeout: 20_000 }, async () => {
    const pop = await fake(cyrus('1', 1));
    await connect(pop);
    expect(pop.connections).toBe(2);
  });

  it('gives up at once, as temporary, on a long or unstated delay', async () => {
    for (const delay of ['900', null, 'USER']) {
      const pop = await fake(cyrus(delay, 1));
      const err = await failure(connectPop3(pop.clientOptions()));
      expect(err.kind, String(delay)).toBe('temporary');
      expect(err.context.responseCode).toBe('LOGIN-DELAY');
      expect(err.context.hint).toMatch(delay === '900' ? /one login every 900 s/ : /did not say how long/);
      expect(pop.connections).toBe(1);
    }
  });

  it('gives up after one wait when refused again', { timeout: 20_000 }, async () => {
    const pop = await fake(cyrus('1', 5));
    const err = await failure(connectPop3(pop.clientOptions()));
    expect(err.kind).toBe('temporary');
    expect(err.context.hint).toMatch(/waited the 1 s/);
    expect(pop.connections).toBe(2);
  });

  it('a wait is interrupted by the abort signal', { timeout: 20_000 }, async () => {
    const pop = await fake(cyrus('30', 1));
    const ac = new AbortController();
    const p = connectPop3(pop.clientOptions({ signal: ac.signal }));
    setTimeout(() => ac.abort(), 200);
    expect((await failure(p)).kind).toBe('interrupted');
  });
});
