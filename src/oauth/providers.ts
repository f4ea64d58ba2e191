/**
 * Where each identity provider runs its OAuth 2.0 device authorization grant (RFC 8628) and
 * which scopes give IMAP and POP3 access. Pure data: the login flow (device-login.ts) and the
 * token helper (access-token.ts) read it; nothing here talks to the network.
 *
 * Google: https://developers.google.com/identity/protocols/oauth2/limited-input-device;
 * the scope https://mail.google.com/ covers IMAP and POP3. Microsoft: the identity platform's
 * device code flow, with the Exchange Online IMAP and POP scopes and offline_access for a
 * refresh token. `generic` is any provider that publishes OpenID Connect or RFC 8414
 * discovery (or whose two endpoints are given), for self-hosted Keycloak, Authentik, Dex...
 */
import { PopsyncError } from '../errors.js';

export type OAuthProviderName = 'google' | 'microsoft' | 'generic';

export const OAUTH_PROVIDERS: readonly OAuthProviderName[] = ['google', 'microsoft', 'generic'];

/** Where to ask: either an issuer to discover, or the two endpoints themselves. */
export interface OAuthEndpoints {
  issuer: string;
  /** Absent: read from the issuer's discovery document. */
  deviceAuthorizationEndpoint?: string;
  tokenEndpoint?: string;
}

export interface ProviderRequest {
  provider: OAuthProviderName;
  /** Microsoft: the directory (tenant) id or domain; default `organizations` (work accounts). */
  tenant?: string;
  issuer?: string;
  deviceAuthorizationUrl?: string;
  tokenUrl?: string;
  scope?: string;
}

export interface ProviderSettings {
  endpoints: OAuthEndpoints;
  scope: string;
}

const GOOGLE_SCOPE = 'https://mail.google.com/';
const MICROSOFT_SCOPE =
  'https://outlook.office.com/IMAP.AccessAsUser.All https://outlook.office.com/POP.AccessAsUser.All offline_access';

/** The endpoints and scope for a login; throws PopsyncError('usage') when generic lacks them. */
export function providerSettings(r: ProviderRequest): ProviderSettings {
  switch (r.provider) {
    case 'google':
      return {
        endpoints: {
          issuer: 'https://accounts.google.com',
          deviceAuthorizationEndpoint: r.deviceAuthorizationUrl ?? 'https://oauth2.googleapis.com/device/code',
          tokenEndpoint: r.tokenUrl ?? 'https://oauth2.googleapis.com/token',
        },
        scope: r.scope ?? GOOGLE_SCOPE,
      };
    case 'microsoft': {
      const tenant = encodeURIComponent(r.tenant ?? 'organizations');
      const base = `https://login.microsoftonline.com/${tenant}/oauth2/v2.0`;
      return {
        endpoints: {
          issuer: `https://login.microsoftonline.com/${tenant}/v2.0`,
          deviceAuthorizationEndpoint: r.deviceAuthorizationUrl ?? `${base}/devicecode`,
          tokenEndpoint: r.tokenUrl ?? `${base}/token`,
        },
        scope: r.scope ?? MICROSOFT_SCOPE,
      };
    }
    case 'generic': {
      const issuer = r.issuer ?? originOf(r.tokenUrl);
      if (issuer === undefined || (r.issuer === undefined && r.deviceAuthorizationUrl === undefined)) {
        throw new PopsyncError(
          'usage',
          '--provider generic needs --issuer URL (discovery) or both --device-authorization-url and --token-url',
        );
      }
      return {
        endpoints: { issuer, deviceAuthorizationEndpoint: r.deviceAuthorizationUrl, tokenEndpoint: r.tokenUrl },
        scope: r.scope ?? 'openid offline_access',
      };
    }
  }
}

function originOf(url: string | undefined): string | undefined {
  if (url === undefined) return undefined;
  try {
    return new URL(url).origin;
  } catch {
    return undefined;
  }
}

/**
 * Plain http is accepted only on loopback (a provider under test, or a local one behind a
 * tunnel): a token endpoint reached in clear over a network would hand out refresh tokens
 * to anyone on the path.
 */
export function checkEndpointUrl(url: string, what: string): URL {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new PopsyncError('usage', `${what} is not a URL: ${url}`);
  }
  if (u.protocol === 'https:') return u;
  if (u.protocol === 'http:' && isLoopback(u.hostname)) return u;
  throw new PopsyncError('usage', `${what} must be https:// (plain http only on loopback): ${url}`);
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '[::1]' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}
