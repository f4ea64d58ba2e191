/**
 * OAuth2 logins against real parts: Dovecot's oauth2 passdb checks every XOAUTH2/OAUTHBEARER
 * token against a real OAuth2 server (oauth2-mock-server, test/support/oauth2-lab.ts), which
 * signed it and refuses it once it has expired. popsync gets its tokens from a token command,
 * run for every login. Both APPEND paths: our pipelined connection (Dovecot as it is) and
 * imapflow (a lab with `imapWithout`, which hides LITERAL+ and UIDPLUS).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Lab } from '../../lab/dovecot.js';
import { hugeMessage, realisticMix } from '../../lab/corpus.js';
import { runCli } from '../support/cli.js';
import { appendUidCount, startCuttingProxy } from '../support/cutting-proxy.js';
import { startFakeImap } from '../support/fake-imap.js';
import { useLab } from '../support/lab-fixture.js';
import { destinationMessages, digests, sourceMessages } from '../support/mailboxes.js';
import { type OAuth2Lab, startOAuth2Lab } from '../support/oauth2-lab.js';

let oauth: OAuth2Lab;
// Started before the labs (whose config names its URL): vitest runs beforeAll hooks in order.
beforeAll(async () => {
  oauth = await startOAuth2Lab();
});
afterAll(async () => {
  await oauth?.close();
});
const introspection = { introspectionUrl: '' };
// Only the expiry test shortens tokens; every other test starts with long-lived ones.
beforeEach(() => {
  oauth.setTokenLifetime(3600);
});

/** migrate over plaintext loopback with token commands on both sides; no password anywhere. */
function oauthArgs(
  lab: Lab,
  pop: string,
  imap: string,
  journal: string,
  o: { auth: string; popCount?: string; imapCount?: string; imapPort?: number; extra?: string[] },
): string[] {
  return [
    'migrate',
    '--pop',
    `pop3://${pop}@127.0.0.1:${lab.pop3.port}`,
    '--pop-tls',
    'none',
    '--pop-auth',
    o.auth,
    '--pop-oauth2-token-command',
    oauth.tokenCommand(pop, o.popCount),
    '--imap',
    `imap://${imap}@127.0.0.1:${o.imapPort ?? lab.imap.port}`,
    '--imap-tls',
    'none',
    '--imap-auth',
    o.auth,
    '--imap-oauth2-token-command',
    oauth.tokenCommand(imap, o.imapCount),
    '--journal',
    journal,
    '--no-progress',
    '--json',
    ...(o.extra ?? []),
  ];
}

function lines(file: string): number[] {
  return readFileSync(file, 'utf8').trim().split('\n').map(Number);
}

function oauthLab(name: string, imapWithout: string[] | undefined): () => { lab: Lab; dir: string } {
  let lab: Lab | undefined;
  let dir: string | undefined;
  // The lab's config must name the OAuth2 server, which starts in the file's first beforeAll.
  beforeAll(() => {
    introspection.introspectionUrl = oauth.introspectionUrl;
  });
  useLab(
    name,
    {
      get oauth2() {
        return introspection;
      },
      ...(imapWithout ? { imapWithout } : {}),
    },
    (l, d) => {
      lab = l;
      dir = d;
    },
  );
  return () => ({ lab: lab!, dir: dir! });
}

describe('pipelined APPEND path (Dovecot as it is)', () => {
  const ctx = oauthLab('oauth2', undefined);

  for (const auth of ['xoauth2', 'oauthbearer']) {
    it(`migrates with ${auth} on POP3 and IMAP, each message once, a token fetched per login`, async () => {
      const { lab, dir } = ctx();
      const pop = lab.newUser('src');
      const imap = lab.newUser('dst');
      await lab.seedPop3(pop, realisticMix(30, 3));
      const source = await sourceMessages(lab, pop);
      const popCount = join(dir, `${pop}.pop-tokens`);
      const imapCount = join(dir, `${imap}.imap-tokens`);
      writeFileSync(popCount, '');
      writeFileSync(imapCount, '');
      const before = { ...oauth.checks };
      const r = await runCli(oauthArgs(lab, pop, imap, join(dir, `${pop}.sqlite`), { auth, popCount, imapCount }));
      expect(r.code, r.stderr).toBe(0);
      expect(JSON.parse(r.stdout)).toMatchObject({ copied: source.length, failed: [] });
      expect(digests((await destinationMessages(lab, imap)).map((m) => m.body))).toEqual(digests(source));
      // POP3 logs in once; IMAP twice (the APPEND connection and imapflow's), each with its own token.
      expect(lines(popCount)).toHaveLength(1);
      expect(lines(imapCount)).toHaveLength(2);
      expect(oauth.checks.active - before.active).toBe(3);
      const logins = await lab.countLogLines(
        new RegExp(`Login: user=<(${pop}|${imap})>, method=${auth.toUpperCase()}`),
      );
      expect(logins).toBe(3);
      // No token in what popsync printed.
      expect(r.stdout + r.stderr).not.toMatch(/eyJ[\w-]{20,}/);
    });
  }

  it(
    'tokens that expire during the run: every reconnect logs in with a fresh one, each message once',
    {
      timeout: 180_000,
    },
    async () => {
      const { lab, dir } = ctx();
      const pop = lab.newUser('src');
      const imap = lab.newUser('dst');
      await lab.seedPop3(pop, realisticMix(16, 5));
      const source = await sourceMessages(lab, pop);
      // The IMAP link is cut each time the server has stored 4 more messages, before popsync hears
      // so, and at each cut every token issued so far expires: a reconnect that logged in with a
      // token it already had would be refused. (Expired at a point of the run, not after a time:
      // a 2 s lifetime ran out between fetch and login on a loaded machine.)
      let stored = 0;
      let cuts = 0;
      const proxy = await startCuttingProxy(lab.imap.port, {
        cutServerData: ({ chunk }) => {
          const before = stored;
          stored += appendUidCount(chunk);
          const cut = Math.floor(stored / 4) > Math.floor(before / 4);
          if (cut) {
            oauth.expireIssued();
            cuts++;
          }
          return cut;
        },
      });
      const imapCount = join(dir, `${imap}.imap-tokens`);
      writeFileSync(imapCount, '');
      const before = { ...oauth.checks };
      try {
        const r = await runCli(
          oauthArgs(lab, pop, imap, join(dir, `${pop}.sqlite`), {
            auth: 'xoauth2',
            imapCount,
            imapPort: proxy.port,
            extra: ['--batch-messages', '2', '--reconnect-attempts', '20'],
          }),
          { timeoutMs: 180_000 },
        );
        expect(r.code, r.stderr).toBe(0);
        expect(proxy.cuts()).toBeGreaterThanOrEqual(2);
        expect(JSON.parse(r.stdout).reconnects).toBeGreaterThanOrEqual(2);
      } finally {
        await proxy.close();
      }
      expect(digests((await destinationMessages(lab, imap)).map((m) => m.body))).toEqual(digests(source));
      // Two IMAP logins at the start, and after each cut at least the APPEND connection's again,
      // each with a token fetched after the cut (an older one is expired by then).
      expect(lines(imapCount).length).toBeGreaterThanOrEqual(2 + cuts);
      expect(oauth.checks.expired - before.expired, 'no login ever offered an expired token').toBe(0);
    },
  );

  it('a token command that fails is exit 3 naming its exit status, never its output', async () => {
    const { lab, dir } = ctx();
    const pop = lab.newUser('src');
    await lab.seedPop3(pop, realisticMix(2, 1));
    const args = oauthArgs(lab, pop, lab.newUser('dst'), join(dir, `${pop}.sqlite`), { auth: 'xoauth2' });
    args[args.indexOf('--imap-oauth2-token-command') + 1] = 'echo leaked-refresh-token-1; echo oops >&2; exit 7';
    const r = await runCli(args);
    expect(r.code, r.stderr).toBe(3);
    expect(r.stderr).toContain('--imap-oauth2-token-command');
    expect(r.stderr).toContain('exited with status 7');
    expect(r.stdout + r.stderr).not.toContain('leaked-refresh-token-1');
    expect(r.stdout + r.stderr).not.toContain('oops');
    expect(r.stderr).not.toMatch(/\n\s+at /);

    args[args.indexOf('--imap-oauth2-token-command') + 1] = 'true';
    const empty = await runCli(args);
    expect(empty.code, empty.stderr).toBe(3);
    expect(empty.stderr).toContain('printed no token');
  });

  it('a token the server refuses is exit 3', async () => {
    const { lab, dir } = ctx();
    const pop = lab.newUser('src');
    await lab.seedPop3(pop, realisticMix(1, 1));
    const args = oauthArgs(lab, pop, lab.newUser('dst'), join(dir, `${pop}.sqlite`), { auth: 'oauthbearer' });
    // A token signed by the server, but for another user: Dovecot's passdb compares the username.
    args[args.indexOf('--imap-oauth2-token-command') + 1] = oauth.tokenCommand('someone-else');
    const r = await runCli(args);
    expect(r.code, r.stderr).toBe(3);
    expect(r.stderr).not.toMatch(/eyJ[\w-]{20,}/);
  });

  it('--imap-auth xoauth2 on a server without it is exit 3 listing what the server offers', async () => {
    const { lab, dir } = ctx();
    const pop = lab.newUser('src');
    await lab.seedPop3(pop, realisticMix(1, 1));
    const fake = await startFakeImap({ capabilities: ['IMAP4rev1', 'UIDPLUS', 'LITERAL+', 'AUTH=PLAIN'] });
    try {
      const args = oauthArgs(lab, pop, 'alice', join(dir, `${pop}.sqlite`), { auth: 'xoauth2', imapPort: fake.port });
      const r = await runCli(args);
      expect(r.code, r.stderr).toBe(3);
      expect(r.stderr).toContain('does not offer AUTHENTICATE XOAUTH2');
      expect(r.stderr).toContain('PLAIN, LOGIN command');
      expect(fake.received.some((l) => /AUTHENTICATE|LOGIN/.test(l))).toBe(false);
    } finally {
      await fake.close();
    }
  });
});

describe('imapflow APPEND path (a lab without LITERAL+ and UIDPLUS)', () => {
  const ctx = oauthLab('oauth2-imapflow', ['UIDPLUS', 'LITERAL+']);

  for (const auth of ['xoauth2', 'oauthbearer']) {
    it(`migrates with ${auth} through imapflow, each message once`, async () => {
      const { lab, dir } = ctx();
      const pop = lab.newUser('src');
      const imap = lab.newUser('dst');
      await lab.seedPop3(pop, realisticMix(12, 9));
      const source = await sourceMessages(lab, pop);
      const imapCount = join(dir, `${imap}.imap-tokens`);
      writeFileSync(imapCount, '');
      const r = await runCli(oauthArgs(lab, pop, imap, join(dir, `${pop}.sqlite`), { auth, imapCount }));
      expect(r.code, r.stderr).toBe(0);
      expect(JSON.parse(r.stdout)).toMatchObject({ copied: source.length, failed: [] });
      expect(digests((await destinationMessages(lab, imap)).map((m) => m.body))).toEqual(digests(source));
      // Two logins, each with its own token: the APPEND connection learns only after logging in
      // that the server lacks LITERAL+ and UIDPLUS, closes, and imapflow's connection carries it all.
      expect(lines(imapCount)).toHaveLength(2);
      const logins = await lab.countLogLines(new RegExp(`Login: user=<${imap}>, method=${auth.toUpperCase()}`));
      expect(logins).toBe(2);
    });
  }
});

describe('a message too large for memory on an XOAUTH2 server without LITERAL+, MULTIAPPEND or SASL-IR', () => {
  // Nothing to pipeline with, so imapflow carries the small messages; the large one, kept in a
  // temporary file, goes down a streaming connection of popsync's own, which logs in as imapflow's
  // did (XOAUTH2, its response after the server's empty challenge): never read whole for imapflow.
  const ctx = oauthLab('oauth2-streaming', ['UIDPLUS', 'LITERAL+', 'MULTIAPPEND', 'SASL-IR']);

  it('streams it over a connection that logs in with XOAUTH2 too, each message once', async () => {
    const { lab, dir } = ctx();
    const pop = lab.newUser('src');
    const imap = lab.newUser('dst');
    await lab.seedPop3(pop, [...realisticMix(3, 4), hugeMessage(6 * 1024 * 1024, 8)]);
    const source = await sourceMessages(lab, pop);
    const imapCount = join(dir, `${imap}.imap-tokens`);
    writeFileSync(imapCount, '');
    const r = await runCli(
      // Batches of 4 MB: in a batch's room (10 MB by default) the 6 MB message would stay in memory.
      oauthArgs(lab, pop, imap, join(dir, `${pop}.sqlite`), {
        auth: 'xoauth2',
        imapCount,
        extra: ['--verbose', '--batch-mb', '4'],
      }),
    );
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ copied: source.length, failed: [] });
    expect(digests((await destinationMessages(lab, imap)).map((m) => m.body))).toEqual(digests(source));
    expect(r.stderr).toContain('IMAP APPEND connection ready (streaming, one at a time)');
    expect(r.stderr).not.toMatch(/too large to hold in memory|allows no APPEND connection/);
    // popsync's logins (imapflow's, the streaming one, and any that found nothing to pipeline with),
    // each by XOAUTH2 with a token of its own.
    const logins = await lab.countLogLines(new RegExp(`Login: user=<${imap}>, method=XOAUTH2`));
    expect(logins).toBeGreaterThanOrEqual(2);
    expect(lines(imapCount)).toHaveLength(logins);
  });
});
