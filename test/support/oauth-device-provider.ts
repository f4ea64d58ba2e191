/**
 * An OAuth2 provider for `popsync auth` tests: the real oauth2-mock-server mints and signs
 * every token (refresh grants included), and a small front in this file adds the one thing
 * that package lacks, the device authorization grant (RFC 8628): the device endpoint, the
 * `device_code` grant at the token endpoint (pending until the test approves, then exchanged
 * with the mock server for real tokens), and a discovery document naming both. The front
 * can also revoke refresh tokens, which the mock server never does.
 */
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { OAuth2Server } from 'oauth2-mock-server';

type Decision = 'pending' | 'approved' | 'denied';

export interface DeviceProvider {
  /** The front's URL: issuer, discovery and the two endpoints. */
  issuer: string;
  /** Every user code handed out, newest last. */
  userCodes: string[];
  /** Approve (or deny) the newest device code; `autoApproveAfter` does it by itself. */
  decide(d: Decision): void;
  /** Refresh tokens the provider will refuse from now on (invalid_grant). */
  revokeAll(): void;
  /** Grants seen at the token endpoint, by grant type. */
  grants: Record<string, number>;
  /** Refresh tokens handed out, in order (rotation: each refresh hands out a new one). */
  refreshTokens: string[];
  close(): Promise<void>;
}

export interface DeviceProviderOptions {
  autoApproveAfter?: number;
  /**
   * Mint through this token endpoint of an oauth2-mock-server already running (the one a
   * Dovecot lab checks tokens against, test/support/oauth2-lab.ts) instead of a private one,
   * with `subject` as every token's `sub` (the mail user Dovecot logs in).
   */
  mint?: { tokenUrl: string; subject: string };
}

export async function startDeviceProvider(o: DeviceProviderOptions = {}): Promise<DeviceProvider> {
  const mock = new OAuth2Server();
  await mock.issuer.keys.generate('RS256');
  // Real providers never hand out the same token twice; the mock's JWTs carry no id, so two
  // minted within one second would be byte-identical.
  mock.service.on('beforeTokenSigning', (token: { payload: Record<string, unknown> }) => {
    token.payload.jti = randomBytes(8).toString('hex');
  });
  await mock.start(0, '127.0.0.1');
  const mockUrl = mock.issuer.url!;
  const tokenUrl = o.mint?.tokenUrl ?? `${mockUrl}/token`;
  /** The mock sets `sub` from a password grant's username: device and refresh grants become one. */
  const asGrant = (params: Record<string, string>): Record<string, string> =>
    o.mint === undefined
      ? params
      : { grant_type: 'password', username: o.mint.subject, client_id: params.client_id ?? '' };

  const devices = new Map<string, { decision: Decision; polls: number; userCode: string }>();
  let newest: string | undefined;
  const revoked = new Set<string>();
  let revokeAllBefore = false;
  const grants: Record<string, number> = {};
  const refreshTokens: string[] = [];
  const userCodes: string[] = [];

  const server = createServer((req, res) => {
    void handle(req, res).catch((e: unknown) => send(res, 500, { error: 'server_error', detail: String(e) }));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', issuer);
    if (req.method === 'GET' && url.pathname === '/.well-known/openid-configuration') {
      return send(res, 200, {
        issuer,
        token_endpoint: `${issuer}/token`,
        device_authorization_endpoint: `${issuer}/device`,
        jwks_uri: `${mockUrl}/jwks`,
        response_types_supported: ['code'],
        subject_types_supported: ['public'],
        id_token_signing_alg_values_supported: ['RS256'],
        grant_types_supported: ['refresh_token', 'urn:ietf:params:oauth:grant-type:device_code'],
      });
    }
    const body = new URLSearchParams(await readBody(req));
    if (req.method === 'POST' && url.pathname === '/device') {
      const deviceCode = randomBytes(16).toString('hex');
      const userCode = `${randomBytes(2).toString('hex')}-${randomBytes(2).toString('hex')}`.toUpperCase();
      devices.set(deviceCode, { decision: 'pending', polls: 0, userCode });
      newest = deviceCode;
      userCodes.push(userCode);
      return send(res, 200, {
        device_code: deviceCode,
        user_code: userCode,
        verification_uri: `${issuer}/activate`,
        expires_in: 600,
        interval: 1,
      });
    }
    if (req.method === 'POST' && url.pathname === '/token') {
      const grant = body.get('grant_type') ?? '';
      grants[grant] = (grants[grant] ?? 0) + 1;
      if (grant === 'urn:ietf:params:oauth:grant-type:device_code') {
        const d = devices.get(body.get('device_code') ?? '');
        if (d === undefined) return send(res, 400, { error: 'invalid_grant' });
        d.polls += 1;
        if (d.decision === 'pending' && o.autoApproveAfter !== undefined && d.polls > o.autoApproveAfter)
          d.decision = 'approved';
        if (d.decision === 'pending') return send(res, 400, { error: 'authorization_pending' });
        if (d.decision === 'denied') return send(res, 400, { error: 'access_denied' });
        devices.delete(body.get('device_code')!);
        return forward(res, {
          grant_type: 'authorization_code',
          code: 'device',
          client_id: body.get('client_id') ?? '',
        });
      }
      if (grant === 'refresh_token') {
        const rt = body.get('refresh_token') ?? '';
        if (revokeAllBefore || revoked.has(rt) || !refreshTokens.includes(rt))
          return send(res, 400, { error: 'invalid_grant', error_description: 'Token has been expired or revoked.' });
        // Rotation, as Microsoft does: the old refresh token is spent.
        revoked.add(rt);
        return forward(res, { grant_type: 'refresh_token', refresh_token: rt, client_id: body.get('client_id') ?? '' });
      }
      return send(res, 400, { error: 'unsupported_grant_type' });
    }
    send(res, 404, { error: 'not_found' });
  }

  /** The mock server mints the tokens; its id_token names the mock as issuer, so it is dropped. */
  async function forward(res: ServerResponse, params: Record<string, string>): Promise<void> {
    const r = await fetch(tokenUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams(asGrant(params)).toString(),
    });
    const json = (await r.json()) as Record<string, unknown>;
    delete json.id_token;
    if (typeof json.refresh_token === 'string') refreshTokens.push(json.refresh_token);
    send(res, r.status, json);
  }

  return {
    issuer,
    userCodes,
    grants,
    refreshTokens,
    decide(d) {
      if (newest !== undefined) devices.get(newest)!.decision = d;
    },
    revokeAll() {
      revokeAllBefore = true;
    },
    async close() {
      await new Promise<void>((r) => server.close(() => r()));
      await mock.stop();
    },
  };
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let s = '';
    req.setEncoding('utf8');
    req.on('data', (d: string) => {
      s += d;
    });
    req.on('end', () => resolve(s));
    req.on('error', reject);
  });
}

function send(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
  res.end(JSON.stringify(body));
}
