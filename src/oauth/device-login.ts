/**
 * The OAuth 2.0 client side of `popsync auth login` and `popsync auth token`: the device
 * authorization grant (RFC 8628) to obtain a refresh token once, with a human typing a code
 * into a browser elsewhere, and the refresh grant that turns it into an access token for
 * each login. The protocol work (request shapes, response validation, error bodies) is
 * oauth4webapi's, a small, audited, dependency-free client; this module only sequences it:
 * discovery when needed, polling at the server's interval, `slow_down`, expiry.
 *
 * No token is ever logged or put into an error: errors carry the OAuth error code and the
 * provider's description, which by RFC 6749 never contain credentials.
 */
import * as oauth from 'oauth4webapi';
import { PopsyncError } from '../errors.js';
import { checkEndpointUrl, type OAuthEndpoints } from './providers.js';

export interface OAuthClient {
  clientId: string;
  /** Google's "TVs and Limited Input devices" clients have one; public clients do not. */
  clientSecret?: string;
}

interface DeviceCodePrompt {
  verificationUri: string;
  verificationUriComplete?: string;
  userCode: string;
  expiresInSeconds: number;
}

export interface LoginDeps {
  /** Told once what to show the human. */
  prompt: (p: DeviceCodePrompt) => void;
  /** Injected so tests do not wait the provider's real interval. */
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  signal?: AbortSignal;
  now?: () => number;
}

export interface TokenSet {
  accessToken: string;
  refreshToken: string;
  /** Epoch ms; undefined when the provider did not say. */
  expiresAt?: number;
}

/** The resolved server: discovery done at most once per login or refresh. */
async function authorizationServer(e: OAuthEndpoints): Promise<oauth.AuthorizationServer> {
  const issuer = checkEndpointUrl(e.issuer, 'the issuer');
  if (e.tokenEndpoint !== undefined && e.deviceAuthorizationEndpoint !== undefined) {
    return {
      issuer: issuer.href.replace(/\/$/, ''),
      token_endpoint: checkEndpointUrl(e.tokenEndpoint, 'the token URL').href,
      device_authorization_endpoint: checkEndpointUrl(e.deviceAuthorizationEndpoint, 'the device authorization URL')
        .href,
    };
  }
  let response: Response;
  try {
    response = await oauth.discoveryRequest(issuer, { algorithm: 'oidc', ...insecure(issuer) });
  } catch (err) {
    throw unreachable(issuer.href, err);
  }
  try {
    const as = await oauth.processDiscoveryResponse(issuer, response);
    return {
      ...as,
      ...(e.tokenEndpoint !== undefined ? { token_endpoint: e.tokenEndpoint } : {}),
      ...(e.deviceAuthorizationEndpoint !== undefined
        ? { device_authorization_endpoint: e.deviceAuthorizationEndpoint }
        : {}),
    };
  } catch (err) {
    throw new PopsyncError('auth', `the OAuth2 discovery document of ${issuer.href} is not usable: ${reason(err)}`, {
      hint: 'check --issuer, or give --device-authorization-url and --token-url',
    });
  }
}

/** oauth4webapi refuses http:// unless told; providers.ts already limited it to loopback. */
function insecure(u: URL): { [oauth.allowInsecureRequests]?: boolean } {
  return u.protocol === 'http:' ? { [oauth.allowInsecureRequests]: true } : {};
}

function clientAuth(c: OAuthClient): oauth.ClientAuth {
  return c.clientSecret === undefined ? oauth.None() : oauth.ClientSecretPost(c.clientSecret);
}

const defaultSleep = (ms: number, signal?: AbortSignal): Promise<void> =>
  new Promise((resolve, reject) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener(
      'abort',
      () => {
        clearTimeout(t);
        reject(new PopsyncError('interrupted', 'login interrupted; nothing was stored'));
      },
      { once: true },
    );
  });

/**
 * Runs the device flow to the end: shows the code, polls until the human approves, refuses,
 * or the code expires. Returns the tokens; storing them is the caller's job.
 */
export async function deviceLogin(
  endpoints: OAuthEndpoints,
  client: OAuthClient,
  scope: string,
  deps: LoginDeps,
): Promise<TokenSet> {
  const as = await authorizationServer(endpoints);
  if (as.device_authorization_endpoint === undefined) {
    throw new PopsyncError('auth', `${as.issuer} offers no device authorization endpoint`, {
      hint: 'give --device-authorization-url, or use a token command of your own (--imap-oauth2-token-command)',
    });
  }
  const c: oauth.Client = { client_id: client.clientId };
  const opts = insecure(new URL(as.device_authorization_endpoint));
  let device: oauth.DeviceAuthorizationResponse;
  try {
    const res = await oauth.deviceAuthorizationRequest(as, c, clientAuth(client), { scope }, opts);
    device = await oauth.processDeviceAuthorizationResponse(as, c, res);
  } catch (err) {
    throw refused('the device authorization request', as.issuer, err);
  }
  deps.prompt({
    verificationUri: device.verification_uri,
    verificationUriComplete: device.verification_uri_complete,
    userCode: device.user_code,
    expiresInSeconds: device.expires_in,
  });
  const now = deps.now ?? Date.now;
  const sleep = deps.sleep ?? defaultSleep;
  const deadline = now() + device.expires_in * 1000;
  // RFC 8628 3.5: 5 s when the server names no interval; slow_down adds 5 s for good.
  let intervalMs = (device.interval ?? 5) * 1000;
  for (;;) {
    await sleep(intervalMs, deps.signal);
    if (now() > deadline) {
      throw new PopsyncError('auth', 'the sign-in code expired before it was approved; nothing was stored', {
        hint: 'run popsync auth login again and enter the code within its lifetime',
      });
    }
    try {
      const res = await oauth.deviceCodeGrantRequest(as, c, clientAuth(client), device.device_code, opts);
      return tokenSet(await oauth.processDeviceCodeResponse(as, c, res), now, undefined);
    } catch (err) {
      if (err instanceof oauth.ResponseBodyError && err.error === 'authorization_pending') continue;
      if (err instanceof oauth.ResponseBodyError && err.error === 'slow_down') {
        intervalMs += 5000;
        continue;
      }
      if (err instanceof oauth.ResponseBodyError && err.error === 'access_denied') {
        throw new PopsyncError('auth', 'the sign-in was refused in the browser; nothing was stored');
      }
      if (err instanceof oauth.ResponseBodyError && err.error === 'expired_token') {
        throw new PopsyncError('auth', 'the sign-in code expired before it was approved; nothing was stored', {
          hint: 'run popsync auth login again and enter the code within its lifetime',
        });
      }
      throw refused('the token request', as.issuer, err);
    }
  }
}

/**
 * A new access token from a refresh token. `invalid_grant` means the refresh token is
 * expired or revoked (a password change, an admin, 6 months unused at Google): only a new
 * login helps, and the error says how.
 */
export async function refreshAccessToken(
  endpoints: OAuthEndpoints,
  client: OAuthClient,
  refreshToken: string,
  relogin: string,
  now: () => number = Date.now,
): Promise<TokenSet> {
  const as = await authorizationServer(endpoints);
  const c: oauth.Client = { client_id: client.clientId };
  if (as.token_endpoint === undefined) throw new PopsyncError('auth', `${as.issuer} publishes no token endpoint`);
  try {
    const res = await oauth.refreshTokenGrantRequest(
      as,
      c,
      clientAuth(client),
      refreshToken,
      insecure(new URL(as.token_endpoint)),
    );
    return tokenSet(await oauth.processRefreshTokenResponse(as, c, res), now, refreshToken);
  } catch (err) {
    if (err instanceof oauth.ResponseBodyError && err.error === 'invalid_grant') {
      throw new PopsyncError('auth', `the stored OAuth2 sign-in was refused by ${as.issuer}: expired or revoked`, {
        hint: `sign in again: ${relogin}`,
      });
    }
    throw refused('the token refresh', as.issuer, err);
  }
}

function tokenSet(r: oauth.TokenEndpointResponse, now: () => number, previousRefresh: string | undefined): TokenSet {
  // Providers that rotate refresh tokens (Microsoft) send a new one; others keep the old.
  const refreshToken = r.refresh_token ?? previousRefresh;
  if (refreshToken === undefined) {
    throw new PopsyncError('auth', 'the provider issued no refresh token', {
      hint: 'include offline_access (or the provider equivalent) in --scope',
    });
  }
  return {
    accessToken: r.access_token,
    refreshToken,
    expiresAt: typeof r.expires_in === 'number' ? now() + r.expires_in * 1000 : undefined,
  };
}

function refused(what: string, issuer: string, err: unknown): PopsyncError {
  if (err instanceof oauth.ResponseBodyError) {
    const desc = err.error_description === undefined ? '' : `: ${err.error_description}`;
    return new PopsyncError('auth', `${issuer} refused ${what} (${err.error}${desc})`, {
      hint: 'check --client-id, the client secret and --scope',
    });
  }
  if (err instanceof TypeError || (err instanceof Error && /fetch failed/i.test(err.message)))
    return unreachable(issuer, err);
  return new PopsyncError('auth', `${what} to ${issuer} failed: ${reason(err)}`);
}

function unreachable(where: string, err: unknown): PopsyncError {
  return new PopsyncError('connection', `cannot reach the OAuth2 provider at ${where}: ${reason(err)}`, {
    hint: 'check the network and the provider URL',
  });
}

function reason(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const cause = err.cause instanceof Error ? ` (${err.cause.message})` : '';
  return `${err.message}${cause}`;
}
