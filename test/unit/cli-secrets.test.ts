import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Writable } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { passwordFromCommand, passwordFromFile, promptPassword, resolvePassword } from '../../src/cli/secrets.js';
import { PopsyncError } from '../../src/errors.js';
import type { Logger } from '../../src/log.js';

const dir = mkdtempSync(join(tmpdir(), 'popsync-secrets-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, content: string, mode = 0o600): string {
  const p = join(dir, name);
  writeFileSync(p, content);
  chmodSync(p, mode);
  return p;
}

async function rejection(p: Promise<unknown>): Promise<PopsyncError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof PopsyncError) return e;
    throw e;
  }
  throw new Error('expected a PopsyncError, the promise resolved');
}

function recordingLogger() {
  const warnings: Array<{ obj: unknown; msg: string | undefined }> = [];
  const logger: Logger = {
    debug: () => {},
    info: () => {},
    warn: (obj, msg) => warnings.push({ obj, msg }),
    error: () => {},
    child: () => logger,
  };
  return { logger, warnings };
}

function fakeTty() {
  const input = Object.assign(new PassThrough(), { isTTY: true, setRawMode: () => input });
  let out = '';
  const output = new Writable({
    write(chunk: Buffer, _enc, cb) {
      out += chunk.toString();
      cb();
    },
  });
  return { input, output, written: () => out };
}

describe('environment variable', () => {
  it('returns the value as is', async () => {
    expect(await resolvePassword('pop3', { env: 'POP_PW' }, { env: { POP_PW: ' pw with spaces\n' } })).toBe(
      ' pw with spaces\n',
    );
  });

  it('names a missing or empty variable', async () => {
    const missing = await rejection(resolvePassword('pop3', { env: 'POP_PW' }, { env: {} }));
    expect(missing.kind).toBe('usage');
    expect(missing.message).toBe('--pop-password-env: environment variable POP_PW is not set');
    const empty = await rejection(resolvePassword('imap', { env: 'IMAP_PW' }, { env: { IMAP_PW: '' } }));
    expect(empty.message).toBe('--imap-password-env: environment variable IMAP_PW is empty');
  });
});

describe('password file', () => {
  it('strips exactly one trailing newline', async () => {
    expect(await passwordFromFile('pop3', file('a', 'hunter2\n'))).toBe('hunter2');
    expect(await passwordFromFile('pop3', file('b', 'hunter2\r\n'))).toBe('hunter2');
    expect(await passwordFromFile('pop3', file('c', 'hunter2\n\n'))).toBe('hunter2\n');
    expect(await passwordFromFile('pop3', file('d', ' hunter2 '))).toBe(' hunter2 ');
  });

  it('warns when group or others can read it, and not when it is 0600', async () => {
    const { logger, warnings } = recordingLogger();
    const open = file('open', 'pw\n', 0o644);
    expect(await resolvePassword('pop3', { file: open }, { logger })).toBe('pw');
    expect(warnings).toEqual([
      {
        obj: { path: open, mode: '0644' },
        msg: `password file ${open} can be read by other users; run: chmod 600 ${open}`,
      },
    ]);
    await passwordFromFile('pop3', file('closed', 'pw\n', 0o600), logger);
    expect(warnings).toHaveLength(1);
    // Once per file: both sides may use it, and sync --every reads it every cycle.
    await passwordFromFile('imap', open, logger);
    await passwordFromFile('pop3', open, logger);
    expect(warnings).toHaveLength(1);
  });

  it('refuses a missing, empty or non-regular file without quoting contents', async () => {
    const missing = await rejection(passwordFromFile('imap', join(dir, 'nope')));
    expect(missing.kind).toBe('usage');
    expect(missing.message).toBe(`--imap-password-file: cannot read ${join(dir, 'nope')} (ENOENT)`);
    expect((await rejection(passwordFromFile('pop3', file('empty', '\n')))).message).toBe(
      `--pop-password-file: ${join(dir, 'empty')} is empty`,
    );
    expect((await rejection(passwordFromFile('pop3', dir))).message).toBe(
      `--pop-password-file: ${dir} is not a regular file`,
    );
  });
});

describe('password_command', () => {
  it('returns stdout minus one trailing newline', async () => {
    expect(await passwordFromCommand('imap', "printf 's3cret\\n'")).toBe('s3cret');
    expect(await resolvePassword('imap', { command: "printf 'a b\\n\\n'" })).toBe('a b\n');
  });

  it('fails with a config error that does not echo the output', async () => {
    const e = await rejection(passwordFromCommand('pop3', "printf 'LeakedSecret'; exit 3"));
    expect(e.kind).toBe('config');
    expect(e.message).toBe(
      'POP3 password_command exited with status 3; its output is not shown because it may contain the password',
    );
    expect(JSON.stringify({ m: e.message, c: e.context })).not.toContain('LeakedSecret');
  });

  it('refuses empty output and a command that hangs', async () => {
    expect((await rejection(passwordFromCommand('pop3', 'true'))).message).toBe(
      'POP3 password_command printed nothing',
    );
    const hung = await rejection(passwordFromCommand('imap', 'sleep 5', 200));
    expect(hung.message).toBe('IMAP password_command did not finish within 0.2 s');
  });
});

describe('choosing a source', () => {
  it('refuses two sources at once', async () => {
    const e = await rejection(resolvePassword('pop3', { env: 'X', file: '/tmp/x' }, { env: { X: 'pw' } }));
    expect(e.message).toBe('give the POP3 password one way only, not --pop-password-env and --pop-password-file');
  });

  it('without a source and without a terminal, says which options to use', async () => {
    const stdin = Object.assign(new PassThrough(), { isTTY: false });
    const e = await rejection(resolvePassword('imap', {}, { stdin }));
    expect(e.kind).toBe('usage');
    expect(e.message).toBe('no IMAP password: stdin is not a terminal, so popsync cannot ask for it');
    expect(e.context.hint).toBe('use --imap-password-env NAME or --imap-password-file PATH');
  });

  it('prompts on a terminal, naming the account, without echoing the answer', async () => {
    const tty = fakeTty();
    const answer = resolvePassword(
      'pop3',
      {},
      { stdin: tty.input, stderr: tty.output, account: 'alice@pop.example.net:995' },
    );
    tty.input.write('hunter2\r');
    expect(await answer).toBe('hunter2');
    expect(tty.written()).toBe('POP3 password for alice@pop.example.net:995: \n');
  });
});

describe('the prompt', () => {
  it('rejects with interrupted on Ctrl-C', async () => {
    const tty = fakeTty();
    const p = promptPassword('pw: ', { input: tty.input, output: tty.output });
    tty.input.write('abc\x03');
    const e = await rejection(p);
    expect(e.kind).toBe('interrupted');
    expect(tty.written()).not.toContain('abc');
  });

  it('rejects an empty answer and end of input', async () => {
    const a = fakeTty();
    const p1 = promptPassword('pw: ', { input: a.input, output: a.output });
    a.input.write('\r');
    expect((await rejection(p1)).message).toBe('no password entered');

    const b = fakeTty();
    const p2 = promptPassword('pw: ', { input: b.input, output: b.output });
    b.input.end();
    expect((await rejection(p2)).kind).toBe('usage');
  });
});
