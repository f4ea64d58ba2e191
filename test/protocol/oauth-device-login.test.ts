/**
 * The OAuth2 client of `popsync auth` (src/oauth/device-login.ts) against a real OAuth2 server
 * (oauth2-mock-server mints the tokens; test/support/oauth-device-provider.ts adds the device
 * grant it lacks). In-process with an injected sleep: the polling logic is exercised, no test
 * waits the provider's interval.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isPopsyncError, type PopsyncError } from '../../src/errors.js';
import { deviceLogin, refreshAccessToken } from '../../src/oauth/device-login.js';
import { providerSettings } from '../../src/oauth/providers.js';
import { startDeviceProvider, type DeviceProvider } from '../support/oauth-device-provider.js';

let p: DeviceProvider;
beforeAll(async () => {
  p = await startDeviceProvider();
});
afterAll(async () => {
  await p.close();
});

const client = { clientId: 'popsync-test' };

function settings() {
  return providerSettings({ provider: 'generic', issuer: p.issuer });
}

async function caught(f: () => Promise<unknown>): Promise<PopsyncError> {
  try {
    await f();
  } catch (e) {
    if (isPopsyncError(e)) return e;
    throw e;
  }
  throw new Error('expected a PopsyncError');
}

describe('device login', () => {
  it('shows the code, polls while pending, and returns tokens once approved', async () => {
    const shown: string[] = [];
    let polls = 0;
    const s = settings();
    const tokens = await deviceLogin(s.endpoints, client, s.scope, {
      prompt: (q) => shown.push(`${q.verificationUri} ${q.userCode}`),
      sleep: async (ms) => {
        expect(ms).toBe(1000); // the provider's interval: 1 s
        polls += 1;
        if (polls === 3) p.decide('approved');
      },
    });
    expect(shown).toEqual([`${p.issuer}/activate ${p.userCodes.at(-1)}`]);
    expect(polls).toBe(3);
    // The mock server's signed JWT, whose subject it sets for code grants.
    const payload = JSON.parse(Buffer.from(tokens.accessToken.split('.')[1]!, 'base64url').toString()) as {
      sub: string;
    };
    expect(payload.sub).toBe('johndoe');
    expect(tokens.refreshToken).toBe(p.refreshTokens.at(-1));
  });

  it('a refusal in the browser is an auth error (exit 3) and stores nothing', async () => {
    const s = settings();
    const e = await caught(() =>
      deviceLogin(s.endpoints, client, s.scope, { prompt: () => {}, sleep: async () => p.decide('denied') }),
    );
    expect(e.kind).toBe('auth');
    expect(e.message).toMatch(/refused in the browser/);
  });

  it('a code nobody approves expires with a hint to log in again', async () => {
    const s = settings();
    let t = 0;
    const e = await caught(() =>
      deviceLogin(s.endpoints, client, s.scope, {
        prompt: () => {},
        now: () => t,
        sleep: async () => {
          t += 601_000; // past the provider's expires_in of 600 s
        },
      }),
    );
    expect(e.kind).toBe('auth');
    expect(e.context.hint).toMatch(/auth login again/);
  });
});

describe('refresh', () => {
  it('mints a new access token and follows refresh-token rotation', async () => {
    const s = settings();
    const first = await deviceLogin(s.endpoints, client, s.scope, {
      prompt: () => {},
      sleep: async () => p.decide('approved'),
    });
    const second = await refreshAccessToken(s.endpoints, client, first.refreshToken, 'popsync auth login ...');
    expect(second.accessToken).not.toBe(first.accessToken);
    expect(second.refreshToken).not.toBe(first.refreshToken);
    expect(second.refreshToken).toBe(p.refreshTokens.at(-1));
    // The spent one is refused now, as a rotating provider does.
    const e = await caught(() => refreshAccessToken(s.endpoints, client, first.refreshToken, 'RELOGIN-HINT'));
    expect(e.kind).toBe('auth');
    expect(e.message).toMatch(/expired or revoked/);
    expect(e.context.hint).toContain('RELOGIN-HINT');
    // No token in what a user reads.
    expect(`${e.message} ${e.context.hint}`).not.toContain(first.refreshToken);
  });

  it('an unreachable provider is a connection error naming it', async () => {
    const e = await caught(() =>
      refreshAccessToken(
        { issuer: 'http://127.0.0.1:9', tokenEndpoint: 'http://127.0.0.1:9/token', deviceAuthorizationEndpoint: 'x' },
        client,
        'rt',
        'hint',
      ),
    );
    expect(['connection', 'usage']).toContain(e.kind);
  });

  it('refuses plain http to a provider that is not on loopback', async () => {
    const e = await caught(() => refreshAccessToken({ issuer: 'http://login.example.com' }, client, 'rt', 'hint'));
    expect(e.kind).toBe('usage');
    expect(e.message).toMatch(/must be https/);
  });
});
