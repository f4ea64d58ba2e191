import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { createLogger, formatLogFileLine, formatLogLine, REDACTED, scrubSecrets } from '../../src/cli/logger.js';
import { PopsyncError } from '../../src/errors.js';

const dir = mkdtempSync(join(tmpdir(), 'popsync-logger-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
afterEach(() => vi.restoreAllMocks());

function sink() {
  let text = '';
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      text += chunk.toString();
      cb();
    },
  });
  return { stream, text: () => text };
}

function fileLines(path: string): Array<Record<string, unknown>> {
  return readFileSync(path, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

describe('log file', () => {
  it('is text lines by default: time, pid, level, message and fields, secrets redacted as in JSON', () => {
    const path = join(dir, 'text.log');
    const logger = createLogger({ logFile: path, stderr: sink().stream });
    logger.info({ folder: 'Archive 2019', password: 'Pw-text-1' }, 'created IMAP folder');
    logger.child({ name: 'alice' }).debug({ n: 3 }, 'RETR');
    const raw = readFileSync(path, 'utf8');
    expect(raw).not.toContain('Pw-text-1');
    const lines = raw.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z \[\d+\] info: created IMAP folder /);
    expect(lines[0]).toMatch(/ folder="Archive 2019" password=\[redacted\]$/);
    expect(lines[1]).toMatch(/ \[\d+\] debug: RETR name=alice n=3$/);
  });

  it('formatLogFileLine keeps a line that is not JSON, escaped', () => {
    expect(formatLogFileLine('not json\x1b[2J\n')).toBe('not json\\x1b[2J\n');
  });

  it('never contains a password logged inside an object, at any depth or case', () => {
    const path = join(dir, 'secrets.log');
    const err = sink();
    const logger = createLogger({ logFile: path, logFormat: 'json', stderr: err.stream });
    logger.info(
      {
        user: 'alice',
        password: 'Pw-top-1',
        options: { host: 'h', pass: 'Pw-one-level-2' },
        deep: { a: { b: { Password: 'Pw-deep-3', accessToken: 'Tok-4' } } },
        list: [{ secret: 'Sec-5' }],
        auth: { user: 'alice', pass: 'Pw-auth-6' },
      },
      'connecting',
    );
    logger.child({ side: 'imap', pw: 'Pw-child-7' }).debug({ token: 'Tok-8' }, 'child line');

    const raw = readFileSync(path, 'utf8');
    for (const secret of [
      'Pw-top-1',
      'Pw-one-level-2',
      'Pw-deep-3',
      'Tok-4',
      'Sec-5',
      'Pw-auth-6',
      'Pw-child-7',
      'Tok-8',
    ]) {
      expect(raw).not.toContain(secret);
    }
    const [first, second] = fileLines(path);
    expect(first).toMatchObject({
      level: 30,
      msg: 'connecting',
      user: 'alice',
      password: REDACTED,
      options: { host: 'h', pass: REDACTED },
      deep: { a: { b: { Password: REDACTED, accessToken: REDACTED } } },
      list: [{ secret: REDACTED }],
      auth: REDACTED,
    });
    expect(second).toMatchObject({ level: 20, msg: 'child line', side: 'imap', pw: REDACTED, token: REDACTED });
    expect(REDACTED).toBe('[redacted]');
  });

  it('is created 0600, gets debug lines, and stderr gets only warnings', () => {
    const path = join(dir, 'levels.log');
    const err = sink();
    const logger = createLogger({ logFile: path, logFormat: 'json', stderr: err.stream });
    logger.debug({ cmd: 'UIDL' }, 'sent');
    logger.warn({ path: '/x', mode: '0644' }, 'password file /x can be read by other users');
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(fileLines(path).map((l) => [l.level, l.msg])).toEqual([
      [20, 'sent'],
      [40, 'password file /x can be read by other users'],
    ]);
    expect(err.text()).toBe('popsync: warning: password file /x can be read by other users (path=/x mode=0644)\n');
  });

  it('tightens an existing log file that others could read', () => {
    const path = join(dir, 'old.log');
    writeFileSync(path, '');
    chmodSync(path, 0o644);
    createLogger({ logFile: path, logFormat: 'json', stderr: sink().stream }).info('x');
    expect(statSync(path).mode & 0o777).toBe(0o600);
  });

  it('keeps one descriptor per file however many loggers write to it (sync --every makes one per cycle)', () => {
    const path = join(dir, 'cycles.log');
    const fds = () => readdirSync('/proc/self/fd').length;
    createLogger({ logFile: path, logFormat: 'json', stderr: sink().stream }).info('cycle 0');
    const before = fds();
    for (let i = 1; i <= 50; i++)
      createLogger({ logFile: path, logFormat: 'json', stderr: sink().stream }).info(`cycle ${i}`);
    expect(fds()).toBe(before);
    expect(fileLines(path)).toHaveLength(51);
  });

  it('creates missing directories 0700, as a first cron run needs', () => {
    const path = join(dir, 'state', 'popsync', 'x.log');
    createLogger({ logFile: path, logFormat: 'json', stderr: sink().stream }).info('x');
    expect(fileLines(path).map((l) => l.msg)).toEqual(['x']);
    expect(statSync(join(dir, 'state')).mode & 0o777).toBe(0o700 & ~process.umask());
    expect(statSync(join(dir, 'state', 'popsync')).mode & 0o777).toBe(0o700 & ~process.umask());
  });

  it('refuses a log file it cannot open with a usage error', () => {
    const notADir = join(dir, 'plain-file');
    writeFileSync(notADir, '');
    let e: unknown;
    try {
      createLogger({ logFile: join(notADir, 'x.log') });
    } catch (x) {
      e = x;
    }
    expect(e).toBeInstanceOf(PopsyncError);
    expect((e as PopsyncError).kind).toBe('usage');
    expect((e as PopsyncError).message).toBe(`--log-file: cannot open ${join(notADir, 'x.log')} (ENOTDIR)`);
  });
});

describe('stderr', () => {
  it('shows warnings by default, not info or debug, and never touches stdout', () => {
    const out = vi.spyOn(process.stdout, 'write');
    const err = sink();
    const logger = createLogger({ stderr: err.stream });
    logger.debug('d');
    logger.info('i');
    logger.warn('server offers no UIDL');
    logger.error({ err: new Error('boom'), password: 'hunter2' }, 'failed');
    expect(err.text()).toBe(
      'popsync: warning: server offers no UIDL\npopsync: error: failed (err="boom" password=[redacted])\n',
    );
    expect(out).not.toHaveBeenCalled();
  });

  it('answers isLevelEnabled as pino does, and a child made before any line logs with its bindings', () => {
    const err = sink();
    const logger = createLogger({ stderr: err.stream });
    // pino's logger is built at the first line logged (README "Start-up"): these come before it.
    const child = logger.child({ account: 'u@h' }).child({ folder: 'INBOX' });
    expect(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'nope'].map((l) => logger.isLevelEnabled?.(l))).toEqual(
      [false, false, false, true, true, true, false],
    );
    expect(createLogger({ verbose: true, stderr: err.stream }).isLevelEnabled?.('debug')).toBe(true);
    expect(createLogger({ quiet: true, stderr: err.stream }).isLevelEnabled?.('warn')).toBe(false);
    child.info('not shown');
    child.warn({ n: 1 }, 'slow');
    logger.warn('parent');
    expect(err.text()).toBe('popsync: warning: slow (account=u@h folder=INBOX n=1)\npopsync: warning: parent\n');
  });

  it('--verbose shows debug lines with a time', () => {
    const err = sink();
    createLogger({ verbose: true, stderr: err.stream }).debug({ n: 3 }, 'RETR');
    expect(err.text()).toMatch(/^\d\d:\d\d:\d\d\.\d{3} debug: RETR n=3\n$/);
  });

  it('--quiet keeps warnings off stderr', () => {
    const err = sink();
    const logger = createLogger({ quiet: true, stderr: err.stream });
    logger.warn('w');
    logger.error('e');
    expect(err.text()).toBe('popsync: error: e\n');
  });

  it('escapes control characters in logged text', () => {
    expect(formatLogLine(JSON.stringify({ level: 40, msg: 'server said \x1b[31mred', resp: 'a b' }), false)).toBe(
      'popsync: warning: server said \\x1b[31mred (resp="a b")\n',
    );
  });
});

describe('scrubSecrets', () => {
  it('survives cycles and leaves errors and buffers alone', () => {
    const cyclic: Record<string, unknown> = { token: 't' };
    cyclic.self = cyclic;
    const error = new Error('e');
    const buf = Buffer.from('x');
    const out = scrubSecrets({ cyclic, error, buf }) as Record<string, Record<string, unknown>>;
    expect(out.cyclic?.token).toBe(REDACTED);
    expect(out.error).toBe(error);
    expect(out.buf).toBe(buf);
  });
});
