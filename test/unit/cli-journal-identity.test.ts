/**
 * One journal per mailbox, whatever the spelling of its host: canonical keys, the default path
 * they give, and journals made under an older spelling found and used under the key they are
 * bound to.
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  canonicalHost,
  configJournal,
  defaultJournalPath,
  journalDirEntry,
  locateJournal,
  refuseDirectory,
  sameMailbox,
  sourceKeyOf,
} from '../../src/cli/journal-identity.js';
import { isPopsyncError } from '../../src/errors.js';
import { Journal } from '../../src/journal/journal.js';

describe('canonicalHost', () => {
  it('gives every loopback spelling one name', () => {
    for (const h of [
      'localhost',
      'LOCALHOST',
      'localhost.',
      'Localhost.Localdomain',
      '127.0.0.1',
      '127.1.2.3',
      '::1',
      '[::1]',
      '0:0:0:0:0:0:0:1',
      '::ffff:127.0.0.1',
      '[::FFFF:127.0.0.1]',
    ]) {
      expect(canonicalHost(h), h).toBe('localhost');
    }
  });
  it('folds case and the trailing dot, writes IPv6 one way and names in punycode', () => {
    expect(canonicalHost('Mail.Example.COM.')).toBe('mail.example.com');
    expect(canonicalHost('2001:DB8:0:0:0:0:0:1')).toBe('2001:db8::1');
    expect(canonicalHost('[2001:db8::1]')).toBe('2001:db8::1');
    expect(canonicalHost('Bücher.Example')).toBe('xn--bcher-kva.example');
    expect(canonicalHost('10.0.0.1')).toBe('10.0.0.1');
    expect(canonicalHost('128.0.0.1')).toBe('128.0.0.1');
  });
});

describe('sourceKeyOf', () => {
  it('is one key for src@localhost, src@127.0.0.1 and src@LOCALHOST., and keeps the user as typed', () => {
    const keys = ['localhost', '127.0.0.1', 'LOCALHOST.', '::1'].map((host) => sourceKeyOf({ user: 'src', host }));
    expect(new Set(keys)).toEqual(new Set(['src@localhost']));
    expect(sourceKeyOf({ user: 'SRC', host: 'localhost' })).toBe('SRC@localhost');
    expect(sourceKeyOf({ user: 'a', host: '2001:DB8::1' })).toBe('a@[2001:db8::1]');
    expect(defaultJournalPath(sourceKeyOf({ user: 'src', host: '127.0.0.1' }), { XDG_STATE_HOME: '/s' })).toBe(
      '/s/popsync/src@localhost.sqlite',
    );
  });
  it('sameMailbox compares hosts canonically and users exactly', () => {
    expect(sameMailbox('src@127.0.0.1', 'src@localhost')).toBe(true);
    expect(sameMailbox('src@[::1]', 'src@localhost')).toBe(true);
    expect(sameMailbox('SRC@localhost', 'src@localhost')).toBe(false);
    expect(sameMailbox('a@b@mail.example', 'a@b@MAIL.example.')).toBe(true);
    expect(sameMailbox('nokey', 'src@localhost')).toBe(false);
  });
});

describe('locateJournal', () => {
  let state: string;
  let env: NodeJS.ProcessEnv;
  beforeEach(() => {
    state = mkdtempSync(join(tmpdir(), 'popsync-ident-'));
    env = { XDG_STATE_HOME: state };
    mkdirSync(join(state, 'popsync'));
  });
  afterEach(() => {
    rmSync(state, { recursive: true, force: true });
  });
  const legacy = (name: string, source: string) => {
    const j = Journal.open(join(state, 'popsync', name), { source });
    j.beginAppend(source, [
      {
        uidl: 'u1',
        size: 1,
        sha256: 'a'.repeat(64),
        messageId: null,
        folder: 'INBOX',
        destUidValidity: 1n,
        destUidNext: 1,
      },
    ]);
    j.close();
  };

  it('without a journal yet: the canonical default path and key', () => {
    expect(locateJournal({ user: 'src', host: '127.0.0.1' }, undefined, env)).toEqual({
      path: join(state, 'popsync', 'src@localhost.sqlite'),
      sourceKey: 'src@localhost',
    });
  });

  it('finds a journal made under an older spelling, under any spelling, and uses the key it is bound to', () => {
    legacy('src@127.0.0.1.sqlite', 'src@127.0.0.1');
    for (const host of ['127.0.0.1', 'localhost', 'LOCALHOST.', '::1']) {
      const at = locateJournal({ user: 'src', host }, undefined, env);
      expect(at, host).toEqual({ path: join(state, 'popsync', 'src@127.0.0.1.sqlite'), sourceKey: 'src@127.0.0.1' });
      const j = Journal.open(at.path, { source: at.sourceKey });
      expect(j.get(at.sourceKey, 'u1')?.state).toBe('appending');
      j.close();
    }
    // Another user is another mailbox, also when only the case differs.
    expect(locateJournal({ user: 'SRC', host: 'localhost' }, undefined, env).path).toBe(
      join(state, 'popsync', 'SRC@localhost.sqlite'),
    );
  });

  it(
    '--journal naming an older journal of the same mailbox uses its key; of another mailbox, ours (then ' +
      'open refuses it)',
    () => {
      legacy('old.sqlite', 'src@127.0.0.1');
      const path = join(state, 'popsync', 'old.sqlite');
      expect(locateJournal({ user: 'src', host: 'localhost' }, path, env)).toEqual({
        path,
        sourceKey: 'src@127.0.0.1',
      });
      expect(locateJournal({ user: 'bob', host: 'localhost' }, path, env)).toEqual({
        path,
        sourceKey: 'bob@localhost',
      });
    },
  );

  it('refuses to choose between two journals of one mailbox', () => {
    legacy('src@127.0.0.1.sqlite', 'src@127.0.0.1');
    legacy('src@127.0.0.2.sqlite', 'src@127.0.0.2');
    let caught: unknown;
    try {
      locateJournal({ user: 'src', host: 'localhost' }, undefined, env);
    } catch (e) {
      caught = e;
    }
    expect(isPopsyncError(caught) && caught.kind).toBe('journal');
    expect(String((caught as Error).message)).toMatch(
      /2 journals belong to src@localhost.*src@127\.0\.0\.1\.sqlite.*src@127\.0\.0\.2\.sqlite/,
    );
  });
});

describe('refuseDirectory names where the path was written', () => {
  const dir = mkdtempSync(join(tmpdir(), 'popsync-refuse-'));
  const refusal = (origin?: Parameters<typeof refuseDirectory>[1]) => {
    try {
      refuseDirectory(dir, origin);
    } catch (e) {
      return isPopsyncError(e) ? { message: e.message, hint: e.context.hint } : e;
    }
    return null;
  };

  it("--journal, a config file's key, a --journal-dir entry; a file is passed through", () => {
    expect(refusal()).toEqual({
      message: `--journal ${dir} is a directory, not a journal`,
      hint: `give the journal file itself, e.g. --journal ${join(dir, 'alice.sqlite')}`,
    });
    expect(refusal(configJournal({ path: '/etc/popsync.yml' }, 2))).toEqual({
      message: `/etc/popsync.yml: accounts[2].journal: ${dir} is a directory, not a journal`,
      hint: `give the journal file itself, e.g. journal: ${join(dir, 'alice.sqlite')}`,
    });
    expect(refusal(journalDirEntry('/state'))).toEqual({
      message: `--journal-dir /state: ${dir} is a directory, not a journal`,
      hint: `move ${dir} away, or give another --journal-dir`,
    });
    // With the line that writes the key, when the loaded file knows it.
    const lineOf = (path: ReadonlyArray<PropertyKey>) => (path.join('.') === 'accounts.2.journal' ? 7 : null);
    expect(refusal(configJournal({ path: '/etc/popsync.yml', lineOf }, 2))).toMatchObject({
      message: `/etc/popsync.yml:7: accounts[2].journal: ${dir} is a directory, not a journal`,
    });
    expect(refuseDirectory(join(dir, 'j.sqlite'), configJournal({ path: 'x.yml' }, 0))).toBe(join(dir, 'j.sqlite'));
    rmSync(dir, { recursive: true, force: true });
  });
});
