import { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { describeError, EXIT_CODES, EXIT_CODES_HELP, exitCodeForResult, exitCodesHelp } from '../../src/cli/exit.js';
import type { RunResult } from '../../src/engine/types.js';
import { emptyRunResult } from '../../src/engine/recorder.js';
import { missingModule, PopsyncError } from '../../src/errors.js';
import { mapCommandError } from '../../src/imap/errors.js';

function commanderFailure(argv: string[]): unknown {
  const program = new Command('popsync')
    .exitOverride()
    .configureOutput({ outputError: () => {}, writeOut: () => {}, writeErr: () => {} })
    .version('0.1.0')
    .option('--journal <path>');
  try {
    program.parse(argv, { from: 'user' });
  } catch (e) {
    return e;
  }
  throw new Error('commander accepted the arguments');
}

describe('PopsyncError', () => {
  it('prints the message and every context line, no stack', () => {
    const e = new PopsyncError('server', 'the destination refused the message', {
      account: 'alice@pop.example.net:995',
      uidl: '000001a2b3',
      messageNumber: 17,
      folder: 'Archive/2019',
      serverResponse: 'NO [OVERQUOTA] Mailbox is full',
      responseCode: 'OVERQUOTA',
      hint: 'free some space in the destination and run again',
    });
    expect(describeError(e)).toEqual({
      code: 4,
      message: [
        'popsync: the destination refused the message',
        '  account: alice@pop.example.net:995',
        '  message: UIDL 000001a2b3 (#17)',
        '  folder: Archive/2019',
        '  server said: "NO [OVERQUOTA] Mailbox is full"',
        '  hint: free some space in the destination and run again',
        '',
      ].join('\n'),
    });
  });

  it('prints only the lines it has, the response code when the server text is missing, and the cause', () => {
    const e = new PopsyncError(
      'connection',
      'cannot connect to pop.example.net:995',
      { responseCode: 'SYS/TEMP', messageNumber: 3 },
      { cause: new Error('connect ECONNREFUSED 10.0.0.1:995') },
    );
    expect(describeError(e).message).toBe(
      [
        'popsync: cannot connect to pop.example.net:995',
        '  message: #3',
        '  server response code: SYS/TEMP',
        '  cause: connect ECONNREFUSED 10.0.0.1:995',
        '',
      ].join('\n'),
    );
  });

  it('maps kinds to the documented exit codes', () => {
    const code = (k: ConstructorParameters<typeof PopsyncError>[0]) => describeError(new PopsyncError(k, 'x')).code;
    expect([
      code('usage'),
      code('config'),
      code('auth'),
      code('tls'),
      code('journal-bound'),
      code('uidvalidity'),
      code('locked'),
      code('temporary'),
      code('interrupted'),
    ]).toEqual([2, 2, 3, 4, 5, 6, 7, 75, 130]);
  });

  it('escapes control characters a server sent', () => {
    const e = new PopsyncError('server', 'refused', { serverResponse: '-ERR \x1b[2J\x1b[31mgotcha\r\nfake line' });
    const { message } = describeError(e);
    expect(message).toContain('  server said: "-ERR \\x1b[2J\\x1b[31mgotcha\\x0d\\x0afake line"');
    expect(message).not.toContain('\x1b');
  });

  it('never prints a stack, even for an internal PopsyncError, which asks for a report', () => {
    const e = new PopsyncError('internal', 'journal row in impossible state appended->appending');
    const { code, message } = describeError(e);
    expect(code).toBe(70);
    expect(message).not.toMatch(/\n\s+at /);
    expect(message).toContain('This is a bug in popsync. Please report it');
  });
});

describe('a login refusal', () => {
  it("says the server's words once, and not imapflow's empty 'Command failed' beside them", () => {
    const pop = new PopsyncError('auth', 'POP3 login failed: -ERR [AUTH] Authentication failed.', {
      account: 'alice@pop.example.net:995',
      serverResponse: '-ERR [AUTH] Authentication failed.',
    });
    expect(describeError(pop).message).toBe(
      'popsync: POP3 login failed: -ERR [AUTH] Authentication failed.\n  account: alice@pop.example.net:995\n',
    );
    const imap = new PopsyncError(
      'auth',
      'IMAP server imap.example.net:993 rejected the login for bob: NO [AUTHENTICATIONFAILED] Authentication failed.',
      {
        serverResponse: 'NO [AUTHENTICATIONFAILED] Authentication failed.',
        hint: 'Check the IMAP user name and password',
      },
      { cause: new Error('Command failed') },
    );
    const text = describeError(imap).message;
    expect(text).not.toContain('server said');
    expect(text).not.toContain('cause: Command failed');
    expect(text).toContain('  hint: Check the IMAP user name and password\n');
  });
});

describe('commander errors', () => {
  it("a usage mistake is exit 2 with commander's message in our format", () => {
    expect(describeError(commanderFailure(['--bogus']))).toEqual({
      code: 2,
      message: "popsync: unknown option '--bogus'\n(see popsync --help)\n",
    });
    expect(describeError(commanderFailure(['--journal'])).message).toBe(
      "popsync: option '--journal <path>' argument missing\n(see popsync --help)\n",
    );
  });

  it('--help and --version are exit 0 with nothing more to print', () => {
    expect(describeError(commanderFailure(['--help']))).toEqual({ code: 0, message: '' });
    expect(describeError(commanderFailure(['--version']))).toEqual({ code: 0, message: '' });
  });
});

describe('bugs', () => {
  it('are exit 70 with the stack and a request to report', () => {
    const err = new TypeError("Cannot read properties of undefined (reading 'uid')");
    const { code, message } = describeError(err);
    expect(code).toBe(70);
    expect(message.split('\n')[0]).toBe('popsync: internal error (a bug in popsync)');
    expect(message).toContain("TypeError: Cannot read properties of undefined (reading 'uid')\n    at ");
    expect(message.endsWith('Please report it with this output and `popsync --version`.\n')).toBe(true);
  });

  it('a file of popsync missing (a chunk loaded at first use) is an incomplete installation, no stack', () => {
    // As Node's loader throws it; imapflow passes it on as its LIST command's failure.
    const err = Object.assign(
      new Error("Cannot find module '/opt/popsync/dist/bundle/list-F3CLFHF6.js' imported from /opt/x.js"),
      { code: 'ERR_MODULE_NOT_FOUND' },
    );
    const said =
      "popsync: the installation is incomplete: Cannot find module '/opt/popsync/dist/bundle/list-F3CLFHF6.js' " +
      'imported from /opt/x.js\n  hint: install popsync again';
    const { code, message } = describeError(err);
    expect(code).toBe(70);
    expect(message).toContain(said);
    expect(message).not.toContain('    at ');
    // Installing again is the remedy: not also "this is a bug, report it", nor once the engine adds the account.
    expect(message).not.toContain('This is a bug');
    expect(describeError((missingModule(err) as PopsyncError).with({ account: 'a@b' })).message).toBe(
      `${said} (its files were changed or removed since it was installed)\n`.replace(
        '\n  hint',
        '\n  account: a@b\n  hint',
      ),
    );
    // Not a lost connection, which would be retried and end in "run again later" (exit 4).
    const mapped = mapCommandError(err, 'LIST (SPECIAL-USE)', undefined);
    expect([mapped.kind, describeError(mapped).message]).toEqual(['internal', expect.stringContaining(said)]);
    // CommonJS's require() adds its require stack: not shown either.
    const cjs = Object.assign(new Error("Cannot find module 'x'\nRequire stack:\n- /opt/a.js"), {
      code: 'MODULE_NOT_FOUND',
    });
    expect(describeError(cjs).message).not.toContain('Require stack');
  });

  it('handle thrown non-errors', () => {
    expect(describeError('oops')).toEqual({
      code: 70,
      message:
        'popsync: internal error (a bug in popsync)\nthrown value: oops\nPlease report it with this output ' +
        'and `popsync --version`.\n',
    });
    expect(describeError({ a: 1 }).message).toContain('thrown value: {"a":1}');
  });
});

describe('the exit code of a finished run', () => {
  it('exitCodeForResult: 0 unless a message failed', () => {
    const base: RunResult = { ...emptyRunResult('migrate', 's', 'd', '2025-01-01T00:00:00.000Z'), durationMs: 1 };
    expect(exitCodeForResult(base)).toBe(0);
    expect(
      exitCodeForResult({
        ...base,
        failed: [{ uidl: 'u', n: 1, size: 1, folder: null, reason: 'r', serverResponse: null }],
      }),
    ).toBe(1);
  });
});

describe('exit code table', () => {
  it('lists every code once, in order', () => {
    expect(EXIT_CODES.map((e) => e.code)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 70, 75, 130]);
  });

  it('renders a help section', () => {
    const lines = exitCodesHelp().split('\n');
    expect(lines[0]).toBe('Exit codes:');
    expect(lines).toContain('  0    done, including "nothing new to copy"');
    expect(lines).toContain('  2    bad command line, option value or configuration');
    expect(lines).toContain('  130  interrupted (SIGINT/SIGTERM); rerunning resumes');
    // Three meanings wrap under themselves to stay within 80 columns.
    expect(lines).toContain('       needs a human');
    expect(lines).toHaveLength(15);
    expect(lines.filter((l) => l.length > 80)).toEqual([]);
    expect(EXIT_CODES_HELP).toBe(exitCodesHelp());
  });
});
