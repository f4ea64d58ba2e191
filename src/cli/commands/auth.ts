/**
 * `popsync auth`: OAuth2 sign-ins for people without a token tool of their own.
 *
 *   auth login  --provider google|microsoft|generic --client-id ID [--name NAME] ...
 *       runs the device authorization grant (RFC 8628): prints a URL and a code, waits while
 *       the user approves in any browser, stores the refresh token (cli/oauth-store.ts).
 *   auth token NAME
 *       prints a fresh access token on stdout: the token command to give popsync
 *       (`--imap-oauth2-token-command 'popsync auth token NAME'`). popsync runs its token
 *       command for every login, so every connection and reconnect gets a token minted from
 *       the refresh token moments before: a run that outlives a token's hour keeps going, and
 *       a token the server refused is never offered twice.
 *   auth list / auth logout NAME
 *
 * The client secret (Google's device clients have one) comes from a file or an environment
 * variable, never from argv.
 */
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { PopsyncError } from '../../errors.js';
import { OAUTH_PROVIDERS, providerSettings, type OAuthProviderName } from '../../oauth/providers.js';
import { checkSignInName, listSignIns, loadSignIn, removeSignIn, saveSignIn } from '../oauth-store.js';

export function registerAuth(program: Command, ctx: { signal: AbortSignal }): void {
  const auth = program
    .command('auth')
    .description('OAuth2 sign-ins (device code flow) whose tokens popsync uses to log in to Gmail, Microsoft 365...');

  auth
    .command('login')
    .description(
      'Sign in with the OAuth 2.0 device code flow: open the printed URL anywhere, enter the code; ' +
        'the refresh token is stored (0600) for `popsync auth token NAME`.',
    )
    .requiredOption('--provider <name>', `identity provider: ${OAUTH_PROVIDERS.join(', ')}`)
    .requiredOption('--client-id <id>', 'the OAuth2 client id registered with the provider')
    .option('--name <name>', 'name to store the sign-in under (default: the provider name)')
    .option('--client-secret-file <path>', 'file holding the client secret (Google device clients have one)')
    .option('--client-secret-env <var>', 'environment variable holding the client secret')
    .option('--tenant <id>', "Microsoft: directory (tenant) id or domain (default 'organizations')")
    .option('--issuer <url>', 'generic: the issuer URL, whose discovery document names the endpoints')
    .option('--device-authorization-url <url>', 'the device authorization endpoint (overrides discovery)')
    .option('--token-url <url>', 'the token endpoint (overrides discovery)')
    .option('--scope <scopes>', 'scopes to ask for (default: IMAP and POP3 access for the provider)')
    .action(async (o: Record<string, string | undefined>) => {
      const provider = o.provider as OAuthProviderName;
      if (!OAUTH_PROVIDERS.includes(provider))
        throw new PopsyncError('usage', `unknown --provider ${o.provider}; use one of ${OAUTH_PROVIDERS.join(', ')}`);
      const name = checkSignInName(o.name ?? provider);
      const settings = providerSettings({
        provider,
        tenant: o.tenant,
        issuer: o.issuer,
        deviceAuthorizationUrl: o.deviceAuthorizationUrl,
        tokenUrl: o.tokenUrl,
        scope: o.scope,
      });
      const clientSecret = readClientSecret(o.clientSecretFile, o.clientSecretEnv);
      const client = { clientId: o.clientId!, ...(clientSecret === undefined ? {} : { clientSecret }) };
      // The OAuth client (oauth4webapi) loads only for the commands that talk to a provider.
      const { deviceLogin } = await import('../../oauth/device-login.js');
      const tokens = await deviceLogin(settings.endpoints, client, settings.scope, {
        signal: ctx.signal,
        prompt: (p) => {
          const where = p.verificationUriComplete ?? p.verificationUri;
          const minutes = Math.max(1, Math.round(p.expiresInSeconds / 60));
          process.stderr.write(
            `To sign in, open ${where}\nand enter the code: ${p.userCode}\n(valid for ${minutes} min; waiting...)\n`,
          );
        },
      });
      const path = saveSignIn({
        version: 1,
        name,
        provider,
        endpoints: settings.endpoints,
        scope: settings.scope,
        clientId: client.clientId,
        ...(clientSecret === undefined ? {} : { clientSecret }),
        refreshToken: tokens.refreshToken,
        signedInAt: new Date().toISOString(),
      });
      process.stdout.write(
        `Signed in; stored as "${name}" in ${path}.\n` +
          `Log in with it: --imap-oauth2-token-command 'popsync auth token ${name}' (or --pop-...)\n`,
      );
    });

  auth
    .command('token')
    .description('Print a fresh access token for a stored sign-in (use as an --imap/--pop-oauth2-token-command).')
    .argument('<name>', 'the name given to auth login')
    .action(async (name: string) => {
      const s = loadSignIn(name);
      const { refreshAccessToken } = await import('../../oauth/device-login.js');
      const tokens = await refreshAccessToken(
        s.endpoints,
        { clientId: s.clientId, ...(s.clientSecret === undefined ? {} : { clientSecret: s.clientSecret }) },
        s.refreshToken,
        `popsync auth login --provider ${s.provider} --client-id ${s.clientId} --name ${s.name}`,
      );
      // A provider that rotates refresh tokens invalidates the old one: keep the new.
      if (tokens.refreshToken !== s.refreshToken) saveSignIn({ ...s, refreshToken: tokens.refreshToken });
      process.stdout.write(`${tokens.accessToken}\n`);
    });

  auth
    .command('list')
    .description('List the stored sign-ins (names, providers, when; never tokens).')
    .option('--json', 'print a JSON array on stdout')
    .action((o: { json?: boolean }) => {
      const rows = listSignIns().map((s) => ({ name: s.name, provider: s.provider, signedInAt: s.signedInAt }));
      if (o.json) process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
      else if (rows.length === 0) process.stdout.write('no stored sign-ins\n');
      else for (const r of rows) process.stdout.write(`${r.name}\t${r.provider}\t${r.signedInAt}\n`);
    });

  auth
    .command('logout')
    .description('Forget a stored sign-in (deletes its file; revoke the grant at the provider too).')
    .argument('<name>', 'the name given to auth login')
    .action((name: string) => {
      if (!removeSignIn(name)) throw new PopsyncError('usage', `no stored sign-in named "${name}"`);
      process.stdout.write(`forgot "${name}"\n`);
    });
}

function readClientSecret(file: string | undefined, env: string | undefined): string | undefined {
  if (file !== undefined && env !== undefined)
    throw new PopsyncError('usage', 'give the client secret one way only, not --client-secret-file and -env');
  if (env !== undefined) {
    const v = process.env[env];
    if (v === undefined || v === '')
      throw new PopsyncError('usage', `--client-secret-env ${env}: the variable is not set`);
    return v;
  }
  if (file === undefined) return undefined;
  try {
    return readFileSync(file, 'utf8').replace(/\r?\n$/, '');
  } catch (e) {
    throw new PopsyncError(
      'usage',
      `--client-secret-file ${file}: ${(e as NodeJS.ErrnoException).code ?? 'unreadable'}`,
    );
  }
}
