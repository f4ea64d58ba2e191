/**
 * One SASL module (src/net/sasl.ts) behind every login popsync makes: POP3 AUTH and both IMAP
 * connections (imapflow's, whose login imapflow-adapter.ts replaces, and our APPEND connection).
 * The scripted servers check the bytes each mechanism sends; the Dovecot proofs are in e2e.
 */

import { describe, expect, it } from 'vitest';
import { PopsyncError } from '../../src/errors.js';
import { failure, usePop3Harness } from '../support/pop3-harness.js';
import { FAKE_PASSWORD, FAKE_USER } from '../support/fake-imap.js';
import { fakeImapSinks } from '../support/fake-imap-sink.js';

const { fake: fakePop, connect: connectPop } = usePop3Harness();

/** A token source that counts its calls, the way a token command runs once per login. */
function tokenSource(token: string | (() => string)): { calls: number; fetch: () => Promise<string> } {
  const src = {
    calls: 0,
    fetch: async () => {
      src.calls++;
      return typeof token === 'string' ? token : token();
    },
  };
  return src;
}

describe('POP3 logins through the shared SASL module', () => {
  it('XOAUTH2 and OAUTHBEARER log in with the token, fetched anew for every connection', async () => {
    const pop = await fakePop({ sasl: ['PLAIN', 'XOAUTH2', 'OAUTHBEARER'], token: 'tok-1', messages: ['hi\r\n'] });
    const src = tokenSource('tok-1');
    for (const auth of ['xoauth2', 'oauthbearer'] as const) {
      const s = await connectPop(pop, { password: '', accessToken: src.fetch, auth });
      expect((await s.stat()).count).toBe(1);
    }
    // auto with a token: OAUTHBEARER (RFC 7628) where offered.
    await connectPop(pop, { password: '', accessToken: src.fetch });
    expect(src.calls).toBe(3);
    expect(pop.commands('AUTH').map((l) => l.split(' ')[1])).toEqual(['XOAUTH2', 'OAUTHBEARER', 'OAUTHBEARER']);
    const ir = Buffer.from(pop.commands('AUTH')[1]!.split(' ')[2]!, 'base64').toString('utf8');
    expect(ir).toBe(`n,a=${FAKE_USER_POP},\x01host=127.0.0.1\x01port=${pop.port}\x01auth=Bearer tok-1\x01\x01`);
  });

  it('a token too long for the AUTH line goes as the answer to the empty challenge (RFC 5034 §4)', async () => {
    const long = 'x'.repeat(400);
    const pop = await fakePop({ sasl: ['XOAUTH2'], token: long });
    await connectPop(pop, { password: '', accessToken: async () => long, auth: 'xoauth2' });
    expect(pop.commands('AUTH')).toEqual(['AUTH XOAUTH2']);
  });

  it('a refused token is exit 3 (auth), and the token appears nowhere in the error', async () => {
    const pop = await fakePop({ sasl: ['XOAUTH2'], token: 'good' });
    const err = await failure(
      connectPop(pop, { password: '', accessToken: async () => 'bad-token-123', auth: 'xoauth2' }),
    );
    expect(err.kind).toBe('auth');
    expect(JSON.stringify({ m: err.message, c: err.context })).not.toContain('bad-token-123');
  });

  it('a mechanism the server does not offer is exit 3 naming what it offers', async () => {
    const pop = await fakePop({ sasl: ['PLAIN'] });
    const err = await failure(connectPop(pop, { password: '', accessToken: async () => 't', auth: 'xoauth2' }));
    expect(err.kind).toBe('auth');
    expect(err.message).toContain('XOAUTH2');
    expect(err.context.hint).toContain('AUTH PLAIN');
    expect(pop.commands('AUTH')).toEqual([]);
  });

  it('an admin login is SASL PLAIN with the mailbox user as authzid; an admin not allowed is refused', async () => {
    const pop = await fakePop({ sasl: ['PLAIN', 'LOGIN'], admins: ['root'] });
    await connectPop(pop, { adminUser: 'root' });
    const ir = Buffer.from(pop.commands('AUTH')[0]!.split(' ')[2]!, 'base64').toString('utf8');
    expect(ir).toBe(`${FAKE_USER_POP}\0root\0${FAKE_PASSWORD_POP}`);
    const err = await failure(connectPop(pop, { adminUser: 'mallory' }));
    expect(err.kind).toBe('auth');
  });
});

/** The fake POP3 server's default account. */
const FAKE_USER_POP = 'alice';
const FAKE_PASSWORD_POP = 'secret';

const OAUTH_CAPS = ['IMAP4rev1', 'UIDPLUS', 'LITERAL+', 'SASL-IR', 'AUTH=PLAIN', 'AUTH=XOAUTH2', 'AUTH=OAUTHBEARER'];

const imap = fakeImapSinks();

async function rejection(p: Promise<unknown>): Promise<PopsyncError> {
  const err = await p.then(
    () => {
      throw new Error('expected a rejection');
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(PopsyncError);
  return err as PopsyncError;
}

describe('IMAP logins on both connections through the shared SASL module', () => {
  for (const saslIr of [true, false]) {
    for (const mechanism of ['xoauth2', 'oauthbearer'] as const) {
      const name = `${mechanism.toUpperCase()} ${saslIr ? 'with' : 'without'} SASL-IR`;
      it(`${name} on the APPEND connection and imapflow's`, async () => {
        const src = tokenSource('tok-A');
        const caps = saslIr ? OAUTH_CAPS : OAUTH_CAPS.filter((c) => c !== 'SASL-IR');
        const { fake, sink } = await imap(
          { capabilities: caps, tokens: { [FAKE_USER]: 'tok-A' } },
          { password: '', accessToken: src.fetch, auth: mechanism, appendPath: 'pipelined' },
        );
        // One login per connection, each with a token of its own.
        expect(fake.logins).toEqual([
          { mechanism: mechanism.toUpperCase(), user: FAKE_USER },
          { mechanism: mechanism.toUpperCase(), user: FAKE_USER },
        ]);
        expect(src.calls).toBe(2);
        const out = await sink.appendBatch('INBOX', [{ body: Buffer.from('Subject: x\r\n\r\nx\r\n'), flags: [] }]);
        expect(out[0]!.ok).toBe(true);
        expect(sink.appendCounts?.pipelined).toBe(1);
        expect(fake.received.join('\n')).not.toContain('tok-A');
      });
    }
  }

  it('imapflow alone (no pipelined path) logs in with the token too, OAUTHBEARER first under auto', async () => {
    const { fake, sink } = await imap(
      { capabilities: OAUTH_CAPS, tokens: { [FAKE_USER]: 't1' } },
      { password: '', accessToken: async () => 't1', appendPath: 'imapflow' },
    );
    expect(fake.logins).toEqual([{ mechanism: 'OAUTHBEARER', user: FAKE_USER }]);
    const out = await sink.appendBatch('INBOX', [{ body: Buffer.from('Subject: y\r\n\r\ny\r\n'), flags: [] }]);
    expect(out[0]!.ok).toBe(true);
    expect(sink.appendCounts?.imapflow).toBe(1);
  });

  for (const appendPath of ['pipelined', 'imapflow'] as const) {
    it(`a refused token is 'auth' on the ${appendPath} path, and the token is in no error text`, async () => {
      const err = await rejection(
        imap(
          { capabilities: OAUTH_CAPS, tokens: { [FAKE_USER]: 'good' } },
          { password: '', accessToken: async () => 'stale-token-xyz', auth: 'xoauth2', appendPath },
        ),
      );
      expect(err.kind).toBe('auth');
      expect(JSON.stringify({ m: err.message, c: err.context })).not.toContain('stale-token-xyz');
    });

    it(`--imap-auth xoauth2 on a server without it is 'auth' listing what it offers (${appendPath})`, async () => {
      const err = await rejection(
        imap(
          { capabilities: ['IMAP4rev1', 'UIDPLUS', 'LITERAL+', 'AUTH=PLAIN'] },
          { password: '', accessToken: async () => 't', auth: 'xoauth2', appendPath },
        ),
      );
      expect(err.kind).toBe('auth');
      expect(err.message).toContain('XOAUTH2');
      expect(err.context.hint).toBe('it offers PLAIN, LOGIN command');
    });

    it(`an admin login sends PLAIN with the mailbox user as authzid (${appendPath})`, async () => {
      const { fake } = await imap(
        { capabilities: OAUTH_CAPS, users: { root: 'rootpw', [FAKE_USER]: FAKE_PASSWORD } },
        { password: 'rootpw', adminUser: 'root', appendPath },
      );
      expect(fake.logins.length).toBeGreaterThan(0);
      for (const l of fake.logins) expect(l).toEqual({ mechanism: 'PLAIN', user: 'root', authzid: FAKE_USER });
    });
  }

  it("--imap-auth login uses the LOGIN command on imapflow's connection", async () => {
    const { fake } = await imap({ capabilities: OAUTH_CAPS }, { auth: 'login', appendPath: 'imapflow' });
    expect(fake.received.some((l) => /^\S+ LOGIN "?alice"? \*\*\*\*$/.test(l))).toBe(true);
    expect(fake.logins).toEqual([]);
  });
});
