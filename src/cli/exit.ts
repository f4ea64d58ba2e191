/**
 * The one place that turns a failure into what the user reads and the exit code cron sees.
 * Commands throw; main.ts catches once and calls reportError / reportAndExit.
 *
 * Three kinds of failure, three treatments:
 *   - PopsyncError: something the user can act on. A message plus the context that locates it
 *     (account, message, folder, the server's own words, a hint); never a stack trace.
 *   - CommanderError: a bad command line, exit 2 (help and --version, exit 0). For commander's
 *     message to be printed once and in our format, main.ts configures the program with
 *     `.exitOverride()` and `.configureOutput({ outputError: () => {} })`.
 *   - Anything else is a bug in popsync: exit 70 with the stack and a request to report it; a file
 *     of popsync that cannot be found (errors.ts missingModule) is said without the stack.
 */

import { CommanderError } from 'commander';
import { opensslReason } from '../connect-hints.js';
import {
  ExitCode,
  exitCodeFor,
  IncompleteInstallation,
  isPopsyncError,
  missingModule,
  type PopsyncError,
} from '../errors.js';
import type { RunResult } from '../engine/types.js';
import { printable, SUMMARY_JSON_VERSION } from '../report/summary.js';

export interface ErrorReport {
  code: number;
  /** Ready to write to stderr, newline-terminated; '' when there is nothing to say. */
  message: string;
}

const COMMANDER_ALREADY_SHOWN = new Set(['commander.helpDisplayed', 'commander.help', 'commander.version']);

/** Message and exit code for anything thrown. Pure; never throws. */
export function describeError(err: unknown): ErrorReport {
  if (isPopsyncError(err)) {
    return { code: exitCodeFor(err.kind), message: describePopsyncError(err) };
  }
  if (err instanceof CommanderError) {
    const code = err.exitCode === 0 ? ExitCode.ok : ExitCode.usage;
    if (COMMANDER_ALREADY_SHOWN.has(err.code)) return { code, message: '' };
    const text = err.message.replace(/^error: /, '');
    return { code, message: `popsync: ${printable(text)}\n(see popsync --help)\n` };
  }
  const missing = missingModule(err);
  if (missing !== null) return { code: ExitCode.internal, message: describePopsyncError(missing) };
  return { code: ExitCode.internal, message: describeBug(err) };
}

/**
 * What `--json` prints when a run ends in an error instead of a summary, so a script reading
 * stdout always gets exactly one object: the exit code, and the same facts the text on
 * stderr gives (kind, message, account, message UIDL, folder, server response, hint).
 */
/** `name`: the account's, in a batch (--accounts, --parallel), where objects of many accounts interleave. */
function errorJson(err: unknown, command: string, name?: string): string {
  const { code } = describeError(err);
  let error: Record<string, unknown>;
  if (isPopsyncError(err)) {
    error = { kind: err.kind, message: err.message, ...err.context };
  } else if (err instanceof CommanderError) {
    error = { kind: 'usage', message: err.message.replace(/^error: /, '') };
  } else {
    error = { kind: 'internal', message: err instanceof Error ? err.message : safeString(err) };
  }
  return JSON.stringify({
    version: SUMMARY_JSON_VERSION,
    ...(name !== undefined ? { name } : {}),
    command,
    ok: false,
    exitCode: code,
    error,
  });
}

/** Errors whose JSON object is already written: one object per account, never two. */
const writtenAsJson = new WeakSet<object>();

/** errorJson as a line on `stream` (stdout), once per error however many layers catch it. */
export function writeErrorJson(
  err: unknown,
  command: string,
  stream: NodeJS.WritableStream = process.stdout,
  name?: string,
): void {
  if (typeof err === 'object' && err !== null) {
    if (writtenAsJson.has(err)) return;
    writtenAsJson.add(err);
  }
  stream.write(errorJson(err, command, name) + '\n');
}

/** Exit code of a run that finished: 0 (even when nothing was new), or 1 if any message failed. */
export function exitCodeForResult(result: RunResult): number {
  return result.failed.length > 0 ? ExitCode.partial : ExitCode.ok;
}

const MEANING: Record<keyof typeof ExitCode, string> = {
  ok: 'done, including "nothing new to copy"',
  partial: 'the run finished, but some messages were not copied, or a copy is missing or changed (see the report)',
  usage: 'bad command line, option value or configuration',
  auth: 'a server rejected the credentials',
  connection: 'connection, TLS or protocol failure',
  journalBound: 'the journal is unusable or belongs to another account',
  uidvalidity: 'popsync cannot tell which message in a destination folder is its copy: needs a human',
  locked: 'another popsync run holds this account, or its journal is kept busy',
  internal: 'a bug in popsync (please report it)',
  temporary: 'the server said to try again later, or the daily upload budget is spent; rerun later',
  interrupted: 'interrupted (SIGINT/SIGTERM); rerunning resumes',
};

/** The exit-code table, in code order, for docs and tests. */
export const EXIT_CODES: ReadonlyArray<{ code: number; name: keyof typeof ExitCode; meaning: string }> = (
  Object.keys(ExitCode) as Array<keyof typeof ExitCode>
)
  .map((name) => ({ code: ExitCode[name], name, meaning: MEANING[name] }))
  .sort((a, b) => a.code - b.code);

/** Help text is read in 80-column terminals; a meaning that does not fit goes on under itself. */
const HELP_COLUMNS = 80;

/** An "Exit codes:" section (no surrounding blank lines): what `popsync help exit-codes` prints. */
export function exitCodesHelp(): string {
  const indent = ' '.repeat(7);
  const lines = ['Exit codes:'];
  for (const e of EXIT_CODES) {
    let line = `  ${String(e.code).padEnd(5)}`;
    for (const word of e.meaning.split(' ')) {
      if (line.trim() !== String(e.code) && line.length + 1 + word.length > HELP_COLUMNS) {
        lines.push(line);
        line = indent + word;
      } else line += (line.endsWith(' ') ? '' : ' ') + word;
    }
    lines.push(line);
  }
  return lines.join('\n');
}

/** exitCodesHelp(), computed once. */
export const EXIT_CODES_HELP: string = exitCodesHelp();

/**
 * What every command's --help says instead of the table: eleven lines under each of seven
 * commands buried the options people opened --help for.
 */
export const EXIT_CODES_POINTER = 'Exit codes: popsync help exit-codes (also in popsync(1) and the README).';

function describePopsyncError(e: PopsyncError): string {
  const c = e.context;
  // A config error lists one problem per line (file:line: key: what); those line breaks are
  // ours. Anywhere else a line break came from outside and is shown escaped.
  const lines =
    e.kind === 'config'
      ? e.message.split('\n').map((l, i) => `${i === 0 ? 'popsync: ' : ''}${printable(l)}`)
      : [`popsync: ${printable(e.message)}`];
  if (c.account !== undefined) lines.push(`  account: ${printable(c.account)}`);
  if (c.uidl !== undefined || c.messageNumber !== undefined) {
    const parts: string[] = [];
    if (c.uidl !== undefined) parts.push(`UIDL ${printable(c.uidl)}`);
    if (c.messageNumber !== undefined) parts.push(`#${c.messageNumber}`);
    lines.push(`  message: ${parts.length === 2 ? `${parts[0]} (${parts[1]})` : parts[0]}`);
  }
  if (c.folder !== undefined) lines.push(`  folder: ${printable(c.folder)}`);
  if (c.serverResponse !== undefined) {
    // A login refusal carries the server's words in its message already ("POP3 login failed:
    // -ERR [AUTH] Authentication failed."): the same text again on the next line is noise.
    if (!e.message.includes(c.serverResponse)) lines.push(`  server said: "${printable(c.serverResponse)}"`);
  } else if (c.responseCode !== undefined) {
    lines.push(`  server response code: ${printable(c.responseCode)}`);
  }
  // A low-level cause (ECONNREFUSED, a certificate error) often says what the message cannot.
  // OpenSSL's text is cut to its reason: its hex codes and source paths help nobody here.
  const cause = e.cause instanceof Error ? opensslReason(e.cause.message) : '';
  // imapflow's "Command failed" wraps every NO or BAD whose words are shown above: it says nothing.
  const said = c.serverResponse !== undefined && cause === 'Command failed';
  if (cause !== '' && !said && !e.message.includes(cause)) lines.push(`  cause: ${printable(cause)}`);
  if (c.hint !== undefined) lines.push(`  hint: ${printable(c.hint)}`);
  if (e.kind === 'internal' && !(e instanceof IncompleteInstallation))
    lines.push('This is a bug in popsync. Please report it with this output and `popsync --version`.');
  return lines.join('\n') + '\n';
}

function describeBug(err: unknown): string {
  const detail =
    err instanceof Error ? (err.stack ?? `${err.name}: ${err.message}`) : `thrown value: ${safeString(err)}`;
  return [
    'popsync: internal error (a bug in popsync)',
    detail,
    'Please report it with this output and `popsync --version`.',
    '',
  ].join('\n');
}

function safeString(v: unknown): string {
  try {
    return typeof v === 'string' ? v : (JSON.stringify(v) ?? String(v));
  } catch {
    return String(v);
  }
}
