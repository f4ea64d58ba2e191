/**
 * Where passwords come from. Never from argv (endpoints.ts refuses URL passwords for the same
 * reason): an environment variable, a file, a command (password managers, config files), or a
 * no-echo prompt when a human is at a terminal. Exactly one source per side, so there is never
 * a question of which one won.
 *
 * Error messages name the variable, file or command that failed but never contain what it
 * held or printed: a half-right password in a cron mail is still a leak.
 */

import { open } from 'node:fs/promises';
import { Writable } from 'node:stream';
import { PopsyncError } from '../errors.js';
import { silentLogger, type Logger } from '../log.js';
import { optionName, type Side } from './endpoints.js';

/** The password options for one side, as given. At most one may be set. */
export interface PasswordSource {
  /** --pop-password-env NAME: the name of an environment variable. */
  env?: string;
  /** --pop-password-file PATH */
  file?: string;
  /** password_command from a config file: run through the shell, stdout is the password. */
  command?: string;
}

/** The world the resolver reads; tests pass fakes, main.ts passes nothing. */
export interface SecretDeps {
  env?: Readonly<Record<string, string | undefined>>;
  /** Prompt input; a prompt is only offered when `isTTY` is true. */
  stdin?: NodeJS.ReadableStream & { isTTY?: boolean };
  /** Prompt output. stderr, because stdout belongs to the report. */
  stderr?: NodeJS.WritableStream;
  logger?: Logger;
  /** "user@host:port", shown in the prompt so the user knows which password is asked for. */
  account?: string;
  /** Bound on password_command; default 120 s (long enough for a pinentry dialog). */
  commandTimeoutMs?: number;
}

const LABEL: Record<Side, string> = { pop3: 'POP3', imap: 'IMAP' };

/**
 * The password for one side, from exactly one source. With no source it prompts when stdin is
 * a terminal and otherwise fails with PopsyncError('usage') naming the options to use.
 */
export async function resolvePassword(side: Side, source: PasswordSource, deps: SecretDeps = {}): Promise<string> {
  const given = (['env', 'file', 'command'] as const).filter((k) => source[k] !== undefined);
  if (given.length > 1) {
    throw new PopsyncError(
      'usage',
      `give the ${LABEL[side]} password one way only, not ${given.map((k) => sourceName(side, k)).join(' and ')}`,
    );
  }
  if (source.env !== undefined) return passwordFromEnv(side, source.env, deps.env ?? process.env);
  if (source.file !== undefined) return passwordFromFile(side, source.file, deps.logger ?? silentLogger);
  if (source.command !== undefined) return passwordFromCommand(side, source.command, deps.commandTimeoutMs);

  const stdin = deps.stdin ?? process.stdin;
  if (stdin.isTTY !== true) {
    throw new PopsyncError(
      'usage',
      `no ${LABEL[side]} password: stdin is not a terminal, so popsync cannot ask for it`,
      {
        hint: `use ${optionName(side, 'password-env')} NAME or ${optionName(side, 'password-file')} PATH`,
      },
    );
  }
  const who = deps.account === undefined ? '' : ` for ${deps.account}`;
  return promptPassword(`${LABEL[side]} password${who}: `, { input: stdin, output: deps.stderr ?? process.stderr });
}

/** The value of environment variable `name`; missing or empty is a usage error naming it. */
function passwordFromEnv(side: Side, name: string, env: Readonly<Record<string, string | undefined>>): string {
  const value = env[name];
  if (value === undefined || value === '') {
    throw new PopsyncError(
      'usage',
      `${optionName(side, 'password-env')}: environment variable ${name} is ` +
        `${value === undefined ? 'not set' : 'empty'}`,
    );
  }
  return value;
}

/**
 * The file's contents minus ONE trailing newline (what `echo pw > file` adds; anything else,
 * including spaces, is part of the password). Warns, like fetchmail, when the file is
 * readable by group or others, but still uses it: refusing would break working setups.
 */
/** Password files already warned about in this process. */
const warnedOpenFiles = new Set<string>();

export async function passwordFromFile(side: Side, path: string, logger: Logger = silentLogger): Promise<string> {
  const opt = optionName(side, 'password-file');
  let text: string;
  try {
    const fh = await open(path, 'r');
    try {
      const st = await fh.stat();
      if (!st.isFile()) throw new PopsyncError('usage', `${opt}: ${path} is not a regular file`);
      // Once per file and process: both sides may share one file, and `sync --every` reads it every cycle.
      if (process.platform !== 'win32' && (st.mode & 0o077) !== 0 && !warnedOpenFiles.has(path)) {
        warnedOpenFiles.add(path);
        logger.warn(
          { path, mode: (st.mode & 0o777).toString(8).padStart(4, '0') },
          `password file ${path} can be read by other users; run: chmod 600 ${path}`,
        );
      }
      text = await fh.readFile('utf8');
    } finally {
      await fh.close();
    }
  } catch (e) {
    if (e instanceof PopsyncError) throw e;
    const code = (e as NodeJS.ErrnoException).code ?? 'error';
    throw new PopsyncError('usage', `${opt}: cannot read ${path} (${code})`, {}, { cause: e });
  }
  const pw = stripOneNewline(text);
  if (pw === '') throw new PopsyncError('usage', `${opt}: ${path} is empty`);
  return pw;
}

/**
 * Runs `command` through the shell and returns its stdout minus one trailing newline.
 * stdin and stderr stay the user's, so unlockers such as `pass` or `gpg` can ask for a
 * passphrase and show their own errors; stdout is captured and never shown, even on failure.
 */
export async function passwordFromCommand(side: Side, command: string, timeoutMs = 120_000): Promise<string> {
  const what = `${LABEL[side]} password_command`;
  // Loaded here, not with the program: most runs take their passwords from elsewhere.
  const { spawn } = await import('node:child_process');
  return new Promise((resolve, reject) => {
    const child = spawn(command, { shell: true, stdio: ['inherit', 'pipe', 'inherit'] });
    const chunks: Buffer[] = [];
    let settled = false;
    const settle = (err: PopsyncError | null, pw?: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (err !== null) reject(err);
      else resolve(pw ?? '');
    };
    // Settle at once on timeout: a grandchild of the shell may hold stdout open long after
    // the shell itself is killed, and 'close' would wait for it.
    const timer = setTimeout(() => {
      child.kill('SIGTERM');
      child.stdout.destroy();
      settle(new PopsyncError('config', `${what} did not finish within ${timeoutMs / 1000} s`));
    }, timeoutMs);
    child.stdout.on('data', (c: Buffer) => chunks.push(c));
    child.on('error', (e) => {
      settle(
        new PopsyncError(
          'config',
          `${what} could not be started (${(e as NodeJS.ErrnoException).code ?? e.message})`,
          {},
          { cause: e },
        ),
      );
    });
    child.on('close', (code, signal) => {
      if (code !== 0) {
        const how = signal !== null ? `was killed by ${signal}` : `exited with status ${code}`;
        settle(
          new PopsyncError('config', `${what} ${how}; its output is not shown because it may contain the password`),
        );
        return;
      }
      const pw = stripOneNewline(Buffer.concat(chunks).toString('utf8'));
      if (pw === '') settle(new PopsyncError('config', `${what} printed nothing`));
      else settle(null, pw);
    });
  });
}

/**
 * Asks for a password without echoing it. readline runs in terminal mode (raw input, so the
 * line discipline does not echo either) with its output muted; only the prompt and the final
 * newline reach the real output. Ctrl-C rejects with 'interrupted', end of input with 'usage'.
 */
export async function promptPassword(
  prompt: string,
  io: { input: NodeJS.ReadableStream; output: NodeJS.WritableStream },
): Promise<string> {
  const { createInterface } = await import('node:readline');
  return new Promise((resolve, reject) => {
    let muted = false;
    const sink = new Writable({
      write(chunk: Buffer | string, _enc, cb) {
        if (!muted) io.output.write(chunk);
        cb();
      },
    });
    const rl = createInterface({ input: io.input, output: sink, terminal: true, historySize: 0 });
    let settled = false;
    const finish = (err: PopsyncError | null, value?: string) => {
      if (settled) return;
      settled = true;
      muted = false;
      io.output.write('\n');
      rl.close();
      if (err !== null) reject(err);
      else resolve(value ?? '');
    };
    rl.on('SIGINT', () => finish(new PopsyncError('interrupted', 'interrupted at the password prompt')));
    rl.on('close', () => finish(new PopsyncError('usage', 'no password entered')));
    io.output.write(prompt);
    muted = true;
    rl.question('', (answer) => {
      if (answer === '') finish(new PopsyncError('usage', 'no password entered'));
      else finish(null, answer);
    });
  });
}

function stripOneNewline(s: string): string {
  if (s.endsWith('\r\n')) return s.slice(0, -2);
  if (s.endsWith('\n')) return s.slice(0, -1);
  return s;
}

function sourceName(side: Side, k: 'env' | 'file' | 'command'): string {
  return k === 'command' ? 'password_command' : optionName(side, `password-${k}`);
}
