import { describe, expect, it } from 'vitest';
import { resolveAccount, type AccountInput } from '../../src/cli/account.js';
import { cleartextWarning, resolveImapEndpoint, resolvePop3Endpoint } from '../../src/cli/endpoints.js';
import { silentLogger, type Logger } from '../../src/log.js';

describe('cleartextWarning', () => {
  it('warns for tls=none from the URL or the flag, and only then', () => {
    expect(cleartextWarning('pop3', resolvePop3Endpoint({ url: 'pop3://alice@pop.example.net?tls=none' }))).toBe(
      'POP3 alice@pop.example.net:110: tls=none: the password and the mail travel in clear (anyone on the ' +
        'path can read them)',
    );
    expect(cleartextWarning('imap', resolveImapEndpoint({ url: 'imaps://bob@imap.example.net', tls: 'none' }))).toMatch(
      /^IMAP bob@imap\.example\.net:143: tls=none: /,
    );
    expect(cleartextWarning('pop3', resolvePop3Endpoint({ url: 'pop3://alice@pop.example.net' }))).toBeNull();
    // Loopback never leaves the machine (a local bridge, stunnel, the test lab).
    for (const host of ['127.0.0.1', 'localhost', '[::1]'])
      expect(cleartextWarning('imap', resolveImapEndpoint({ url: `imap://bob@${host}:1143?tls=none` }))).toBeNull();
    expect(
      cleartextWarning('imap', resolveImapEndpoint({ url: 'imap://bob@imap.example.net?tls=implicit' })),
    ).toBeNull();
  });
});

describe('resolveAccount', () => {
  it('prints each cleartext warning once per process, however often the account is resolved', async () => {
    const warnings: string[] = [];
    const logger: Logger = {
      ...silentLogger,
      warn: (m: object | string) => void warnings.push(String(m)),
      child: () => logger,
    };
    const input: AccountInput = {
      pop: { url: 'pop3://once@pop.example.net?tls=none', password: 'p' },
      imap: { url: 'imap://once@imap.example.net', tls: 'none', password: 'p' },
      journal: '/nonexistent/j.sqlite',
      timeoutSeconds: 5,
    };
    await resolveAccount(input, { logger, createJournalDir: false });
    await resolveAccount(input, { logger, createJournalDir: false });
    expect(warnings).toEqual([
      expect.stringMatching(/^POP3 once@pop\.example\.net:110: tls=none: the password/),
      expect.stringMatching(/^IMAP once@imap\.example\.net:143: tls=none: the password/),
    ]);
  });
});
