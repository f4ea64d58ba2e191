/** popsync.yml keys for OAuth2 and admin logins: oauth2_token_command, admin_user, auth on both sides. */
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { configuredAccounts } from '../../src/config/resolve.js';
import { PopsyncError } from '../../src/errors.js';

function load(source: string, destination: string) {
  const text = `accounts:\n  - source: { ${source} }\n    destination: { ${destination} }\n`;
  return configuredAccounts({ path: '/etc/popsync.yml', dir: '/etc', config: parseConfig(text, '/etc/popsync.yml') });
}

function errorOf(source: string, destination: string): string {
  try {
    load(source, destination);
  } catch (e) {
    expect(e).toBeInstanceOf(PopsyncError);
    return (e as PopsyncError).message;
  }
  throw new Error('expected a config error');
}

describe('OAuth2 and admin keys', () => {
  it('reach the side flags the command line also fills', () => {
    const [a] = load(
      "url: 'pop3s://u@pop.example', auth: oauthbearer, oauth2_token_command: 'popsync auth token pop'",
      "url: 'imaps://u@imap.example', auth: plain, admin_user: admin, password_file: admin.pw",
    );
    expect(a!.pop).toMatchObject({ auth: 'oauthbearer', oauth2TokenCommand: 'popsync auth token pop' });
    expect(a!.imap).toMatchObject({ auth: 'plain', adminUser: 'admin', passwordFile: '/etc/admin.pw' });
  });

  it('refuse a token command beside a password, an admin with a token, and a POP3-only method for IMAP', () => {
    expect(errorOf("url: 'pop3s://u@p', password_env: P, oauth2_token_command: t", "url: 'imaps://u@i'")).toContain(
      'give oauth2_token_command or password_env, not both',
    );
    expect(errorOf("url: 'pop3s://u@p'", "url: 'imaps://u@i', oauth2_token_command: t, admin_user: a")).toContain(
      'an admin login uses the admin password',
    );
    expect(errorOf("url: 'pop3s://u@p'", "url: 'imaps://u@i', auth: apop")).toContain('destination.auth');
  });
});
