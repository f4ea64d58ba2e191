/**
 * The whole OAuth2 path a user without a token tool takes: `popsync auth login` (device code
 * flow) once per account, then `migrate` with `--*-oauth2-token-command 'popsync auth token
 * NAME'`, against Dovecot's oauth2 passdb. Every token is signed by the real oauth2-mock-server
 * that Dovecot asks about each login (test/support/oauth2-lab.ts); the device grant, which
 * that package lacks, is the small front of test/support/oauth-device-provider.ts.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { realisticMix } from '../../lab/corpus.js';
import type { Lab } from '../../lab/dovecot.js';
import { BIN, runCli } from '../support/cli.js';
import { useLab } from '../support/lab-fixture.js';
import { destinationMessages, digests, sourceMessages } from '../support/mailboxes.js';
import { type OAuth2Lab, startOAuth2Lab } from '../support/oauth2-lab.js';
import { type DeviceProvider, startDeviceProvider } from '../support/oauth-device-provider.js';

let oauth: OAuth2Lab;
let state: string;
const providers: DeviceProvider[] = [];
// Before the lab, whose config names the introspection URL: beforeAll hooks run in order.
const introspection = { introspectionUrl: '' };
beforeAll(async () => {
  oauth = await startOAuth2Lab();
  introspection.introspectionUrl = oauth.introspectionUrl;
  state = mkdtempSync(join(tmpdir(), 'popsync-device-'));
});
afterAll(async () => {
  for (const p of providers) await p.close();
  await oauth?.close();
  rmSync(state, { recursive: true, force: true });
});

let lab: Lab;
let dir: string;
useLab(
  'device',
  {
    get oauth2() {
      return introspection;
    },
  },
  (l, d) => {
    lab = l;
    dir = d;
  },
);

const env = () => ({ XDG_STATE_HOME: state });

/** Signs `user` in through the device flow under `name`; the provider approves after one poll. */
async function signIn(name: string, user: string): Promise<DeviceProvider> {
  const p = await startDeviceProvider({ autoApproveAfter: 1, mint: { tokenUrl: oauth.tokenUrl, subject: user } });
  providers.push(p);
  const r = await runCli(
    ['auth', 'login', '--provider', 'generic', '--issuer', p.issuer, '--client-id', 'popsync-e2e', '--name', name],
    { env: env() },
  );
  expect(r.code, r.stderr).toBe(0);
  return p;
}

const tokenCommand = (name: string) => `'${process.execPath}' '${BIN}' auth token ${name}`;

function migrateArgs(pop: string, imap: string): string[] {
  return [
    'migrate',
    '--pop',
    `pop3://${pop}@127.0.0.1:${lab.pop3.port}`,
    '--pop-tls',
    'none',
    '--pop-auth',
    'xoauth2',
    '--pop-oauth2-token-command',
    tokenCommand('old-pop'),
    '--imap',
    `imap://${imap}@127.0.0.1:${lab.imap.port}`,
    '--imap-tls',
    'none',
    '--imap-auth',
    'oauthbearer',
    '--imap-oauth2-token-command',
    tokenCommand('new-imap'),
    '--journal',
    join(dir, `${pop}.sqlite`),
    '--no-progress',
    '--json',
  ];
}

describe('auth login, then migrate with popsync auth token as the token command', () => {
  it('copies every message once, each login with a token refreshed for it; a revoked sign-in is exit 3', async () => {
    const pop = lab.newUser('src');
    const imap = lab.newUser('dst');
    await lab.seedPop3(pop, realisticMix(12, 7));
    const source = await sourceMessages(lab, pop);
    const popSide = await signIn('old-pop', pop);
    const imapSide = await signIn('new-imap', imap);

    const r = await runCli(migrateArgs(pop, imap), { env: env() });
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ copied: source.length, failed: [] });
    expect(digests((await destinationMessages(lab, imap)).map((m) => m.body))).toEqual(digests(source));
    // One POP3 login, two IMAP logins (APPEND connection and imapflow), each with a fresh token.
    expect(popSide.grants.refresh_token).toBe(1);
    expect(imapSide.grants.refresh_token).toBe(2);
    expect(await lab.countLogLines(new RegExp(`Login: user=<${pop}>, method=XOAUTH2`))).toBe(1);
    expect(await lab.countLogLines(new RegExp(`Login: user=<${imap}>, method=OAUTHBEARER`))).toBe(2);
    expect(r.stdout + r.stderr).not.toMatch(/eyJ[\w-]{20,}/);

    // The provider revokes the IMAP sign-in: the next run stops at login, exit 3, no token shown.
    imapSide.revokeAll();
    await lab.seedPop3(pop, realisticMix(1, 8));
    const again = await runCli(migrateArgs(pop, imap), { env: env() });
    expect(again.code).toBe(3);
    expect(again.stderr).toMatch(/IMAP token command .*exited with status 3/);
    expect(again.stdout + again.stderr).not.toMatch(/eyJ[\w-]{20,}/);
    // Run by hand, as the hint says, the token command tells how to sign in again.
    const byHand = await runCli(['auth', 'token', 'new-imap'], { env: env() });
    expect(byHand.code).toBe(3);
    expect(byHand.stderr).toContain('popsync auth login --provider generic --client-id popsync-e2e --name new-imap');
  });
});
