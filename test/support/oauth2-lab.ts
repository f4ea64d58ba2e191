/**
 * The OAuth2 server the OAuth2 end-to-end tests run Dovecot against: the real
 * oauth2-mock-server signs every access token (RS256, password grant, `sub` = the user), and
 * Dovecot's oauth2 passdb (lab/dovecot.ts `oauth2`) asks it about each token at each login.
 *
 * One step is ours: the package's own /introspect answers `active: true` for anything without
 * looking at the token, so this file adds /introspect-checked to the same server, which checks
 * the JWT's signature against the issuer's key and its `exp` against the clock, as a provider
 * does, and answers RFC 7662 JSON (`active`, `username`, `exp`). So a token that expired
 * during a run (its time ran out, or the test expired it: expireIssued) is refused by Dovecot
 * for real.
 *
 * Tokens are fetched by a token command (tokenCommand) that runs test/support/oauth2-token.mjs:
 * a password-grant request, the access token on stdout, one line appended to a count file.
 */
import { createPublicKey, verify } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { join } from 'node:path';
import { OAuth2Server } from 'oauth2-mock-server';
import { ROOT } from './cli.js';

export interface OAuth2Lab {
  /** Where Dovecot's oauth2 passdb POSTs tokens. */
  introspectionUrl: string;
  /** The server's token endpoint (password grant: `sub` = the username). */
  tokenUrl: string;
  /** A shell command printing a fresh token for `user`, counting its runs in `countFile`. */
  tokenCommand(user: string, countFile?: string): string;
  /** Lifetime of tokens issued from now on, in seconds (default 3600). */
  setTokenLifetime(seconds: number): void;
  /**
   * Every token issued so far is expired from now on, as if its lifetime had just run out: a
   * test can let tokens expire at a point of the run (a cut) instead of after a time, which a
   * loaded machine stretched past a token's whole life between fetching and using it.
   */
  expireIssued(): void;
  /** Introspections answered, by verdict. */
  readonly checks: { active: number; expired: number; invalid: number };
  close(): Promise<void>;
}

export async function startOAuth2Lab(): Promise<OAuth2Lab> {
  const server = new OAuth2Server();
  await server.issuer.keys.generate('RS256');
  let lifetime = 3600;
  // Tokens are numbered as issued; those up to `expiredUpTo` are expired (expireIssued).
  let issued = 0;
  let expiredUpTo = 0;
  server.service.on('beforeTokenSigning', (token: { payload: Record<string, unknown> }) => {
    token.payload.exp = (token.payload.iat as number) + lifetime;
    token.payload.n = ++issued;
  });
  const checks = { active: 0, expired: 0, invalid: 0 };
  server.service.addRoute('POST', '/introspect-checked', (req: IncomingMessage, res: ServerResponse) => {
    const body = (req as IncomingMessage & { body?: Record<string, unknown> }).body ?? {};
    const verdict = check(typeof body.token === 'string' ? body.token : '');
    checks[verdict.kind]++;
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(verdict.kind === 'active' ? verdict.answer : { active: false }));
  });
  await server.start(0, '127.0.0.1');
  // The issuer names itself `localhost`, which may resolve to ::1 first; it listens on 127.0.0.1.
  const url = server.issuer.url!.replace('//localhost:', '//127.0.0.1:');

  function check(token: string): { kind: 'active'; answer: object } | { kind: 'expired' | 'invalid' } {
    const [h, p, sig] = token.split('.');
    if (h === undefined || p === undefined || sig === undefined) return { kind: 'invalid' };
    try {
      const header = JSON.parse(Buffer.from(h, 'base64url').toString('utf8')) as { kid?: string; alg?: string };
      const jwk = server.issuer.keys.get(header.kid);
      if (jwk === undefined || header.alg !== 'RS256') return { kind: 'invalid' };
      const key = createPublicKey({ key: jwk as import('node:crypto').JsonWebKey, format: 'jwk' });
      if (!verify('RSA-SHA256', Buffer.from(`${h}.${p}`), key, Buffer.from(sig, 'base64url')))
        return { kind: 'invalid' };
      const claims = JSON.parse(Buffer.from(p, 'base64url').toString('utf8')) as {
        sub?: string;
        exp?: number;
        n?: number;
      };
      if (typeof claims.exp !== 'number' || claims.exp * 1000 <= Date.now()) return { kind: 'expired' };
      if (typeof claims.n !== 'number' || claims.n <= expiredUpTo) return { kind: 'expired' };
      return { kind: 'active', answer: { active: true, username: claims.sub, exp: claims.exp, token_type: 'Bearer' } };
    } catch {
      return { kind: 'invalid' };
    }
  }

  return {
    introspectionUrl: `${url}/introspect-checked`,
    tokenUrl: `${url}/token`,
    tokenCommand: (user, countFile) =>
      [process.execPath, join(ROOT, 'test', 'support', 'oauth2-token.mjs'), `${url}/token`, user, countFile ?? '']
        .map((a) => `'${a}'`)
        .join(' '),
    setTokenLifetime: (seconds) => {
      lifetime = seconds;
    },
    expireIssued: () => {
      expiredUpTo = issued;
    },
    checks,
    close: () => server.stop(),
  };
}
