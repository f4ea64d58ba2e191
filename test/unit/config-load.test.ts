/** popsync.yml: every kind of mistake names its key path and line; a valid file resolves as documented. */
import { describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfigFile, MAX_CONFIG_BYTES, parseConfig, readBounded } from '../../src/config/load.js';
import { configuredAccounts } from '../../src/config/resolve.js';
import { PopsyncError } from '../../src/errors.js';
import { ROOT } from '../support/cli.js';

const base = `accounts:
  - name: a
    source: { url: 'pop3s://u@pop.example', password_env: P }
    destination: { url: 'imaps://u@imap.example', password_env: I }
`;

function errorOf(text: string): PopsyncError {
  try {
    parseConfig(text, 'popsync.yml');
  } catch (e) {
    expect(e).toBeInstanceOf(PopsyncError);
    expect((e as PopsyncError).kind).toBe('config');
    return e as PopsyncError;
  }
  throw new Error('expected a config error');
}

describe('config errors name the key and the line', () => {
  it('unknown key', () => {
    expect(errorOf(base.replace('password_env: P', 'pasword_env: P')).message).toBe(
      'popsync.yml:3: accounts[0].source.pasword_env: unknown key (did you mean password_env?)',
    );
  });
  it('two misspelt keys: one line each, each with the key meant at its own level', () => {
    const text =
      base.replace('  - name: a\n', '  - nmae: a\n').replace('password_env: I', 'password-env: I') +
      '    folders: X\n    zzzzzz: 1\n';
    expect(errorOf(text).message.split('\n')).toEqual([
      'popsync.yml:2: accounts[0].nmae: unknown key (did you mean name?)',
      'popsync.yml:4: accounts[0].destination.password-env: unknown key (did you mean password_env?)',
      'popsync.yml:5: accounts[0].folders: unknown key (did you mean folder?)',
      'popsync.yml:6: accounts[0].zzzzzz: unknown key',
    ]);
  });
  it("a side written as a URL, the command line's side names, a side's key beside it: each says what to do", () => {
    const text = `accounts:
  - name: a
    source: pop3s://u@pop.example
    pasword_env: P
    imap: { url: 'imaps://u@imap.example', password_env: I }
`;
    expect(errorOf(text).message.split('\n')).toEqual([
      'popsync.yml:2: accounts[0].destination: missing (expected object)',
      'popsync.yml:3: accounts[0].source: expected keys, not a URL on its own: write the URL as url: under ' +
        "source:, beside the password key (source: { url: 'pop3s://user@host', password_env: NAME })",
      'popsync.yml:4: accounts[0].pasword_env: unknown key here (password_env belongs under source: or ' +
        'destination:)',
      'popsync.yml:5: accounts[0].imap: unknown key (did you mean destination?)',
    ]);
  });
  it('bad regular expression', () => {
    const e = errorOf(
      `${base}    rules:\n      - folder: X\n      - match:\n          subject: { regex: '([a-' }\n        folder: Y\n`,
    );
    expect(e.message).toMatch(
      /^popsync\.yml:8: accounts\[0\]\.rules\[1\]\.match\.subject\.regex: invalid regular expression: /,
    );
  });
  it('unknown template', () => {
    expect(errorOf(`${base}    folder: 'Archive/{yaer}'\n`).message).toMatch(
      /^popsync\.yml:5: accounts\[0\]\.folder: invalid template: unknown template "\{yaer\}"/,
    );
  });
  it('bad duration, size and date', () => {
    const e = errorOf(
      `${base}    rules:\n      - match: { older_than: 30 days }\n        folder: A\n      - match: { ` +
        `larger_than: 10XB }\n        folder: B\n      - match: { before: 2020-02-31 }\n        folder: C\n`,
    );
    const lines = e.message.split('\n');
    expect(lines[0]).toMatch(/^popsync\.yml:6: accounts\[0\]\.rules\[0\]\.match\.older_than: invalid duration/);
    expect(lines[1]).toMatch(/^popsync\.yml:8: accounts\[0\]\.rules\[1\]\.match\.larger_than: invalid size/);
    expect(lines[2]).toMatch(/^popsync\.yml:10: accounts\[0\]\.rules\[2\]\.match\.before: invalid date/);
  });
  it('skip_larger_than: a size, resolved in bytes, the account beating defaults', () => {
    expect(errorOf(`${base}    skip_larger_than: 25 parsecs\n`).message).toMatch(
      /^popsync\.yml:5: accounts\[0\]\.skip_larger_than: invalid size/,
    );
    const cfg = (extra: string) => ({
      config: parseConfig(`defaults:\n  skip_larger_than: 25MB\n${base}${extra}`, 'popsync.yml'),
      dir: '/',
      path: 'popsync.yml',
    });
    expect(configuredAccounts(cfg(''))[0]!.routing.skipLargerThan).toBe(25 * 1024 * 1024);
    expect(configuredAccounts(cfg('    skip_larger_than: 512KB\n'))[0]!.routing.skipLargerThan).toBe(512 * 1024);
  });
  it('append_connections: under destination, a whole number from 1 to 16', () => {
    const withKey = (v: string) => base.replace('password_env: I }', `password_env: I, append_connections: ${v} }`);
    expect(errorOf(withKey('0')).message).toMatch(/^popsync\.yml:4: accounts\[0\]\.destination\.append_connections: /);
    expect(errorOf(withKey('17')).message).toMatch(/accounts\[0\]\.destination\.append_connections: /);
    const loaded = { config: parseConfig(withKey('3'), 'popsync.yml'), dir: '/', path: 'popsync.yml' };
    expect(configuredAccounts(loaded)[0]!.imap.appendConnections).toBe(3);
    const none = { config: parseConfig(base, 'popsync.yml'), dir: '/', path: 'popsync.yml' };
    expect(configuredAccounts(none)[0]!.imap.appendConnections).toBeUndefined();
  });
  it('every: an interval of at least a second, the account beating defaults', () => {
    expect(errorOf(`${base}    every: 0.5s\n`).message).toMatch(
      /^popsync\.yml:5: accounts\[0\]\.every: invalid interval; write e\.g\. 5m, 90s or 300 \(seconds\), at least 1s/,
    );
    expect(errorOf(`${base}    every: often\n`).message).toMatch(
      /^popsync\.yml:5: accounts\[0\]\.every: invalid interval/,
    );
    const cfg = (extra: string) => ({
      config: parseConfig(`defaults:\n  every: 5m\n${base}${extra}`, 'popsync.yml'),
      dir: '/',
      path: 'popsync.yml',
    });
    expect(configuredAccounts(cfg(''))[0]!.everyMs).toBe(300_000);
    expect(configuredAccounts(cfg('    every: 90\n'))[0]!.everyMs).toBe(90_000);
    const none = { config: parseConfig(base, 'popsync.yml'), dir: '/', path: 'popsync.yml' };
    expect(configuredAccounts(none)[0]!.everyMs).toBeUndefined();
  });
  it('unknown SPECIAL-USE role', () => {
    expect(errorOf(`${base}    folder: '\\Spam'\n`).message).toMatch(
      /^popsync\.yml:5: accounts\[0\]\.folder: unknown SPECIAL-USE role "\\Spam"/,
    );
  });
  it('unknown seen step and bad flag', () => {
    expect(errorOf(`${base}    seen: [status-header, sometimes]\n`).message).toMatch(
      /^popsync\.yml:5: accounts\[0\]\.seen\[1\]: unknown seen step "sometimes"/,
    );
    expect(errorOf(`${base}    flags: ['two words']\n`).message).toMatch(
      /^popsync\.yml:5: accounts\[0\]\.flags\[0\]: invalid flag/,
    );
  });
  it('wrong type, bad enum, two password sources, duplicate keys and names', () => {
    expect(errorOf(base.replace("url: 'pop3s://u@pop.example'", 'port: "995"')).message).toMatch(
      /^popsync\.yml:3: accounts\[0\]\.source\.port: expected number/,
    );
    expect(errorOf(base.replace("url: 'pop3s://u@pop.example'", 'tls: maybe')).message).toMatch(
      /^popsync\.yml:3: accounts\[0\]\.source\.tls: Invalid option/,
    );
    expect(errorOf(base.replace('password_env: I', 'password_env: I, password_file: f')).message).toMatch(
      /^popsync\.yml:4: accounts\[0\]\.destination\.password_file: give the password one way only/,
    );
    expect(errorOf(`${base}    journal: a\n    journal: b\n`).message).toBe('popsync.yml:6: duplicate key');
    expect(errorOf(`${base}${base.replace('accounts:\n', '')}`).message).toMatch(
      /^popsync\.yml:5: accounts\[1\]\.name: duplicate account name "a"/,
    );
  });
  it('empty file and missing accounts', () => {
    expect(errorOf('').message).toMatch(/empty/);
    expect(errorOf('defaults: {}\n').message).toMatch(/^popsync\.yml:1: accounts: /);
  });
  it('a pattern of the wrong shape says what shapes exist', () => {
    expect(errorOf(`${base}    rules:\n      - match: { from: { rgx: 'a' } }\n        folder: X\n`).message).toMatch(
      /^popsync\.yml:6: accounts\[0\]\.rules\[0\]\.match\.from: expected a glob string, \{glob: \.\.\., case_sensitive/,
    );
  });
});

describe('a valid config', () => {
  const loaded = loadConfigFile(join(ROOT, 'fixtures', 'config', 'full.yml'));
  const [alice, bob] = configuredAccounts(loaded);

  it('resolves paths against the file, defaults under accounts', () => {
    expect(alice!.journal).toBe(join(ROOT, 'fixtures', 'config', 'alice.sqlite'));
    expect(alice!.imap.passwordFile).toBe(join(ROOT, 'fixtures', 'config', 'secrets', 'imap-alice'));
    expect(alice!.batchMessages).toBe(100);
    expect(alice!.timeoutSeconds).toBe(120);
    expect(alice!.routing.flags).toEqual(['$Migrated']);
    expect(alice!.routing.seen.map((s) => s.kind)).toEqual(['status-header', 'older-than', 'none']);
    expect(alice!.routing.rules.map((r) => r.name)).toEqual(['lists', 'big', 'old', 'rule 4']);
    expect(alice!.routing.rules[1]!.match.largerThan).toBe(10 * 1024 * 1024);
    expect(bob!.routing).toMatchObject({ arrivalDate: false, defaultFolder: 'INBOX', seen: [{ kind: 'all' }] });
    expect(bob!.pop).toMatchObject({ host: 'pop.example.net', port: 995, passwordCommand: 'pass show pop/bob' });
  });
  it('command-line flags beat the account, which beats defaults', () => {
    const [a] = configuredAccounts(loaded, { folder: 'Other', batchMessages: 7, flags: [] });
    expect(a!.routing.defaultFolder).toBe('Other');
    expect(a!.routing.flags).toEqual([]);
    expect(a!.batchMessages).toBe(7);
  });
  it('--account picks by name or position, and names the choices otherwise', () => {
    expect(configuredAccounts(loaded, {}, 'bob').map((a) => a.name)).toEqual(['bob']);
    expect(configuredAccounts(loaded, {}, '1').map((a) => a.name)).toEqual(['alice']);
    expect(() => configuredAccounts(loaded, {}, 'carol')).toThrow(/accounts: alice, bob/);
  });
});

describe('lineOf: where a loaded file writes a key, for errors found after loading', () => {
  it('the line of exactly that key; null for a key the file does not write, an index past the list', () => {
    const dir = mkdtempSync(join(tmpdir(), 'popsync-config-'));
    try {
      const file = join(dir, 'lines.yml');
      writeFileSync(
        file,
        `${base}  - name: b\n    source:\n      url: 'x'\n      password_env: P\n    journal: j\n` +
          `    destination: { url: 'imaps://u@imap.example', password_env: I }\n`,
      );
      const { lineOf } = loadConfigFile(file);
      expect(lineOf?.(['accounts', 0, 'source', 'url'])).toBe(3);
      expect(lineOf?.(['accounts', 1, 'source', 'url'])).toBe(7);
      expect(lineOf?.(['accounts', 1, 'journal'])).toBe(9);
      expect(lineOf?.(['accounts', 1])).toBe(5);
      expect(lineOf?.(['accounts', 1, 'destination', 'url'])).toBe(10);
      // Not written (account b has no tls key, a none journal; there is no third account): no guess.
      expect(lineOf?.(['accounts', 1, 'source', 'tls'])).toBeNull();
      expect(lineOf?.(['accounts', 0, 'journal'])).toBeNull();
      expect(lineOf?.(['accounts', 2, 'journal'])).toBeNull();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('config files that would exhaust memory are refused with exit 2', () => {
  /** Nine levels of nine aliases each: 9^9 strings once expanded ("billion laughs"). */
  function aliasBomb(): string {
    const lines = ['l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]'];
    for (let i = 1; i < 9; i++)
      lines.push(
        `l${i}: &l${i} [${Array(9)
          .fill(`*l${i - 1}`)
          .join(', ')}]`,
      );
    return `${base}${lines.map((l) => `# ${l}`).join('\n')}\n${lines.join('\n')}\n`;
  }

  it('an alias bomb, before expanding it', () => {
    expect(errorOf(aliasBomb()).message).toBe(
      'popsync.yml: too many YAML alias expansions (over 100); write the settings out, or share them with `defaults:`',
    );
  });

  it('a few aliases for shared settings are fine', () => {
    const text =
      `x-pw: &pw { password_env: P }\naccounts:\n  - name: a\n    source: { url: ` +
      `'pop3s://u@pop.example', password_env: P }\n    destination: { url: 'imaps://u@imap.example', ` +
      `password_env: I }\n`;
    // The shape check rejects the unknown top-level key, not the alias: the alias limit is not in the way.
    expect(errorOf(text).message).toMatch(/x-pw: unknown key/);
  });

  it('a file over the size limit, without parsing it', () => {
    const dir = mkdtempSync(join(tmpdir(), 'popsync-config-'));
    try {
      const file = join(dir, 'huge.yml');
      writeFileSync(file, base + `# ${'x'.repeat(MAX_CONFIG_BYTES)}\n`);
      const e = (() => {
        try {
          loadConfigFile(file);
        } catch (err) {
          return err as PopsyncError;
        }
        throw new Error('expected a config error');
      })();
      expect(e.kind).toBe('config');
      expect(e.message).toBe(
        `the config file ${file} is larger than 512 KB; popsync reads config files up to that size`,
      );
      // Just under the limit still loads.
      writeFileSync(file, base + `# ${'x'.repeat(MAX_CONFIG_BYTES - base.length - 10)}\n`);
      expect(loadConfigFile(file).config.accounts).toHaveLength(1);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('readBounded counts what it reads, for files whose size fstat does not know', () => {
    expect(readBounded('/dev/zero', 1000)).toBeNull();
    expect(readBounded('/dev/null', 1000)).toEqual(Buffer.alloc(0));
  });
});
