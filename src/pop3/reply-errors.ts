/**
 * Turns a POP3 `-ERR` into a PopsyncError. The RESP-CODE (RFC 2449, RFC 3206) decides the kind,
 * because it decides what the user should do: wait and retry ([IN-USE], [LOGIN-DELAY],
 * [SYS/TEMP]), fix credentials ([AUTH]) or call the provider ([SYS/PERM]). Without a code we fall
 * back on the phase: a refusal while logging in means the credentials, later it means the server,
 * and one in place of the greeting ("-ERR Too many connections"), before anything was sent, means
 * the server turns connections away for now, as IMAP's `* BYE` greeting does (connect-hints.ts).
 */

import { PopsyncError, type ErrorContext, type ErrorKind } from '../errors.js';
import type { StatusLine } from './framing.js';

const TEMPORARY = new Set(['IN-USE', 'LOGIN-DELAY', 'SYS/TEMP']);

function kindForCode(code: string | undefined, fallback: ErrorKind): ErrorKind {
  if (code === undefined) return fallback;
  if (TEMPORARY.has(code)) return 'temporary';
  if (code === 'AUTH') return 'auth';
  if (code === 'SYS/PERM') return 'server';
  return fallback;
}

/**
 * @param label the command as it may be shown (credentials already replaced)
 * @param phase 'greeting' for the server's first line, 'auth' while logging in, 'command' afterwards
 */
export function replyError(
  status: StatusLine,
  label: string,
  phase: 'greeting' | 'auth' | 'command',
  extra: ErrorContext = {},
): PopsyncError {
  const kind = kindForCode(status.code, phase === 'auth' ? 'auth' : phase === 'greeting' ? 'temporary' : 'server');
  const context: ErrorContext = { ...extra, serverResponse: status.line };
  if (status.code !== undefined) context.responseCode = status.code;
  if (kind === 'temporary')
    context.hint =
      phase === 'greeting'
        ? 'The server turns connections away for now (often a limit on connections); run again later.'
        : 'The server asked to try again later (another session may hold the mailbox).';
  const what = phase === 'auth' ? 'POP3 login failed' : `POP3 server refused ${label}`;
  return new PopsyncError(kind, `${what}: ${status.line}`, context);
}
