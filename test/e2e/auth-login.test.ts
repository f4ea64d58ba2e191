/**
 * `popsync auth login / token / list / logout` as a user runs them: the built binary against
 * a real OAuth2 server (oauth2-mock-server, with the device grant added by
 * test/support/oauth-device-provider.ts). The provider approves after the first poll, so a
 * login takes about two of its 1 s intervals.
 */
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../support/cli.js';
import { startDeviceProvider, type DeviceProvider } from '../support/oauth-device-provider.js';

let p: DeviceProvider;
let state: string;
beforeAll(async () => {
  p = await startDeviceProvider({ autoApproveAfter: 1 });
  state = mkdtempSync(join(tmpdir(), 'popsync-auth-'));
});
afterAll(async () => {
  await p.close();
  rmSync(state, { recursive: true, force: true });
});

const env = () => ({ XDG_STATE_HOME: state });
const login = (name: string, extra: string[] = []) =>
  runCli(
    [
      'auth',
      'login',
      '--provider',
      'generic',
      '--issuer',
      p.issuer,
      '--client-id',
      'popsync-e2e',
      '--name',
      name,
      ...extra,
    ],
    { env: env() },
  );

describe('popsync auth', () => {
  it(
    'login shows the URL and code, stores the refresh token 0600 in a 0700 folder, and token prints a fresh ' +
      'access token',
    async () => {
      const r = await login('work');
      expect(r.stderr).toContain(`open ${p.issuer}/activate`);
      expect(r.stderr).toContain(`enter the code: ${p.userCodes.at(-1)}`);
      expect(r.code).toBe(0);
      const file = join(state, 'popsync', 'oauth', 'work.json');
      expect(statSync(file).mode & 0o777).toBe(0o600);
      expect(statSync(join(state, 'popsync', 'oauth')).mode & 0o777).toBe(0o700);
      const stored = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
      expect(stored.refreshToken).toBe(p.refreshTokens.at(-1));
      expect(Object.keys(stored)).not.toContain('accessToken'); // access tokens are never written
      expect(JSON.stringify(stored)).not.toMatch(/eyJ/); // nor any JWT

      const t1 = await runCli(['auth', 'token', 'work'], { env: env() });
      expect(t1.code).toBe(0);
      const token = t1.stdout.trim();
      expect(token.split('.')).toHaveLength(3); // the mock server's signed JWT
      expect(t1.stderr).toBe('');
      // Rotation: the provider spent the old refresh token; the file holds the new one.
      expect(JSON.parse(readFileSync(file, 'utf8')).refreshToken).toBe(p.refreshTokens.at(-1));
      const t2 = await runCli(['auth', 'token', 'work'], { env: env() });
      expect(t2.code).toBe(0);
      expect(t2.stdout.trim()).not.toBe(token); // minted per call: every login gets a new one

      const list = await runCli(['auth', 'list', '--json'], { env: env() });
      expect(JSON.parse(list.stdout)).toEqual([expect.objectContaining({ name: 'work', provider: 'generic' })]);
      expect(list.stdout).not.toContain(p.refreshTokens.at(-1)!);
    },
  );

  it('a revoked sign-in is exit 3 saying how to log in again, with no token in the message', async () => {
    const r = await login('gone');
    expect(r.code).toBe(0);
    const rt = JSON.parse(readFileSync(join(state, 'popsync', 'oauth', 'gone.json'), 'utf8')).refreshToken as string;
    p.revokeAll();
    const t = await runCli(['auth', 'token', 'gone'], { env: env() });
    expect(t.code).toBe(3);
    expect(t.stdout).toBe('');
    expect(t.stderr).toMatch(/expired or revoked/);
    expect(t.stderr).toContain('popsync auth login --provider generic --client-id popsync-e2e --name gone');
    expect(t.stderr).not.toContain(rt);
  });

  it('an unknown name, a world-readable file and a bad provider are clear errors', async () => {
    const none = await runCli(['auth', 'token', 'nobody'], { env: env() });
    expect(none.code).toBe(3);
    expect(none.stderr).toMatch(/no stored sign-in named "nobody"/);

    const file = join(state, 'popsync', 'oauth', 'open.json');
    writeFileSync(file, '{}', { mode: 0o644 });
    const open = await runCli(['auth', 'token', 'open'], { env: env() });
    expect(open.code).toBe(2);
    expect(open.stderr).toMatch(/readable by others/);

    const bad = await runCli(['auth', 'login', '--provider', 'yahoo', '--client-id', 'x'], { env: env() });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/unknown --provider yahoo/);

    const out = await runCli(['auth', 'logout', 'work'], { env: env() });
    expect(out.code).toBe(0);
    expect((await runCli(['auth', 'token', 'work'], { env: env() })).code).toBe(3);
  });
});
