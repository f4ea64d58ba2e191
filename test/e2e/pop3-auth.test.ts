/**
 * Every POP3 login method and both TLS modes against real Dovecot (the scripted fake proves
 * the wire details; this proves a real server agrees): USER/PASS, AUTH PLAIN, AUTH LOGIN, APOP
 * and auto, over STLS and implicit TLS, each verified against the lab's CA.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { Lab } from '../../lab/dovecot.js';
import { connectPop3 } from '../../src/pop3/index.js';
import type { Pop3AuthMethod } from '../../src/pop3/types.js';
import { useLab } from '../support/lab-fixture.js';

let lab: Lab;
useLab('pop3-auth', {}, (l) => {
  lab = l;
});

const body = Buffer.from('Subject: auth\r\nMessage-ID: <auth@lab>\r\n\r\nhello\r\n');

describe('POP3 login against Dovecot', () => {
  for (const auth of ['auto', 'user', 'plain', 'login', 'apop'] as Pop3AuthMethod[]) {
    it(`logs in with ${auth} over STLS and retrieves the exact bytes`, async () => {
      const user = lab.newUser('auth');
      await lab.seedPop3(user, [body]);
      const s = await connectPop3({
        host: '127.0.0.1',
        port: lab.pop3.port,
        tls: 'starttls',
        ca: [readFileSync(lab.caFile)],
        user,
        password: lab.password,
        auth,
      });
      expect(await s.retr(1)).toEqual(body);
      await s.quit();
    });
  }

  it('logs in over implicit TLS (pop3s) with the lab CA, and refuses it without', async () => {
    const user = lab.newUser('auth');
    await lab.seedPop3(user, [body]);
    const s = await connectPop3({
      host: '127.0.0.1',
      port: lab.pop3s.port,
      tls: 'implicit',
      ca: [readFileSync(lab.caFile)],
      user,
      password: lab.password,
    });
    expect((await s.stat()).count).toBe(1);
    await s.quit();
    await expect(
      connectPop3({ host: '127.0.0.1', port: lab.pop3s.port, tls: 'implicit', user, password: lab.password }),
    ).rejects.toMatchObject({ kind: 'tls' });
  });

  // Last: a failed login makes Dovecot delay later logins from 127.0.0.1 (anvil's auth penalty).
  it('reports a wrong APOP password as auth, without the password', async () => {
    const user = lab.newUser('auth');
    const err = await connectPop3({
      host: '127.0.0.1',
      port: lab.pop3.port,
      tls: 'none',
      user,
      password: 'not-the-password',
      auth: 'apop',
    }).catch((e: unknown) => e);
    expect(err).toMatchObject({ kind: 'auth' });
    expect(JSON.stringify({ m: (err as Error).message, c: (err as { context: unknown }).context })).not.toContain(
      'not-the-password',
    );
  });
});
