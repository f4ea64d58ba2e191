/**
 * OAuth2 access tokens from a command the user names (--pop-oauth2-token-command,
 * --imap-oauth2-token-command, `oauth2_token_command` in a config): run through the shell once
 * for every login, each connection and each reconnect, so a run that outlives a token keeps
 * going with a fresh one. The first line of its stdout is the token (`popsync auth token NAME`,
 * `gcloud auth print-access-token`, `oama access EMAIL` all print exactly that).
 *
 * It runs unattended, in the middle of a run: stdin is closed, so a command that would prompt
 * fails at once instead of hanging the run. What it prints, on stdout or stderr, is never shown
 * or logged, even on failure (it may be a token or a refresh token); a failure names only the
 * exit status, and is exit 3 (auth): without a token there is no login.
 */

import { PopsyncError } from '../errors.js';
import type { Side } from './endpoints.js';
import { optionName } from './endpoints.js';

/** Bound on one run: a token helper that needs longer (a browser sign-in) belongs before the run. */
const TOKEN_COMMAND_TIMEOUT_MS = 60_000;
/** An access token is a few KB at most (JWTs included); more is not a token and is not kept. */
const MAX_OUTPUT_BYTES = 64 * 1024;

const LABEL: Record<Side, string> = { pop3: 'POP3', imap: 'IMAP' };

export async function tokenFromCommand(
  side: Side,
  command: string,
  timeoutMs = TOKEN_COMMAND_TIMEOUT_MS,
): Promise<string> {
  const what = `the ${LABEL[side]} token command (${optionName(side, 'oauth2-token-command')})`;
  const hint = 'run the command by hand to see its messages; popsync shows none of its output, which may hold a token';
  const fail = (message: string): PopsyncError => new PopsyncError('auth', `${what} ${message}`, { hint });
  // Loaded here, not with the program: only OAuth 2 accounts with a token command run one.
  const { spawn } = await import('node:child_process');
  return new Promise((resolve, reject) => {
    const child = spawn(command, { shell: true, stdio: ['ignore', 'pipe', 'ignore'] });
    const chunks: Buffer[] = [];
    let size = 0;
    let settled = false;
    const settle = (err: PopsyncError | null, token?: string): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (err !== null) reject(err);
      else resolve(token ?? '');
    };
    // Settle at once on timeout: a grandchild of the shell may hold stdout open long after the
    // shell itself is killed, and 'close' would wait for it.
    const timer = setTimeout(() => {
      child.kill('SIGTERM');
      child.stdout.destroy();
      settle(fail(`did not finish within ${Math.round(timeoutMs / 1000)} s`));
    }, timeoutMs);
    child.stdout.on('data', (c: Buffer) => {
      // Only the first line matters; the rest is read and dropped so the command never blocks.
      if (size < MAX_OUTPUT_BYTES) chunks.push(c.subarray(0, MAX_OUTPUT_BYTES - size));
      size += c.length;
    });
    child.on('error', (e) => {
      settle(fail(`could not be started (${(e as NodeJS.ErrnoException).code ?? 'error'})`));
    });
    child.on('close', (code, signal) => {
      if (code !== 0) {
        settle(fail(signal !== null ? `was killed by ${signal}` : `exited with status ${code}`));
        return;
      }
      const token = firstLine(Buffer.concat(chunks).toString('utf8'));
      if (token === '') settle(fail('printed no token (its first line of output was empty)'));
      else settle(null, token);
    });
  });
}

/** The first line without its line end and surrounding blanks (a token never holds any). */
export function firstLine(text: string): string {
  const nl = text.indexOf('\n');
  return (nl === -1 ? text : text.slice(0, nl)).trim();
}
