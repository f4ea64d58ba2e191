/**
 * One error class for everything a user can cause or meet, so the CLI has exactly one place
 * (cli/exit.ts) that turns failures into messages and exit codes. `kind` decides the exit
 * code; `scope` decides how much work the engine abandons (after OfflineIMAP's severities):
 * a message-scope error fails one message and the run goes on, an account-scope error stops
 * that account, a run-scope error stops before any I/O.
 *
 * Context fields carry what a user needs to act (account, message UIDL, the server's own
 * words). They must never carry a secret: constructors take no credentials.
 */

export type ErrorKind =
  | 'usage' // bad command line
  | 'config' // bad config file or option value
  | 'auth' // server rejected the credentials
  | 'connection' // cannot connect, connection lost, timeout
  | 'tls' // certificate rejected, handshake failed, STLS unavailable but required
  | 'temporary' // server says try later: [IN-USE], [LOGIN-DELAY], [SYS/TEMP], throttling
  | 'protocol' // server broke the protocol (unparseable response)
  | 'server' // server refused a command with -ERR / NO / BAD
  | 'message' // one message could not be copied (too big, refused by destination)
  | 'journal' // journal unreadable, newer schema, corrupt
  | 'journal-bound' // journal belongs to another source account
  | 'uidvalidity' // destination folder's UIDVALIDITY changed since the journal saw it
  | 'undecidable' // popsync cannot tell which destination message is its copy: needs a human
  | 'locked' // another run holds this account
  | 'interrupted' // SIGINT / SIGTERM
  | 'internal'; // a bug

export type ErrorScope = 'message' | 'account' | 'run';

export interface ErrorContext {
  account?: string;
  uidl?: string;
  /** POP3 message number or IMAP UID, for humans; the UIDL is the durable name. */
  messageNumber?: number;
  folder?: string;
  /** The server's own response line, verbatim (minus any credential echo). */
  serverResponse?: string;
  /** POP3 RESP-CODE or IMAP response code, e.g. IN-USE, TRYCREATE, OVERQUOTA. */
  responseCode?: string;
  /** What the user can do about it. */
  hint?: string;
  /** The server asked to be left alone this long (ms) before the next try: throttling. */
  retryAfterMs?: number;
}

export class PopsyncError extends Error {
  readonly kind: ErrorKind;
  readonly scope: ErrorScope;
  readonly context: ErrorContext;

  constructor(
    kind: ErrorKind,
    message: string,
    context: ErrorContext = {},
    options?: { cause?: unknown; scope?: ErrorScope },
  ) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'PopsyncError';
    this.kind = kind;
    this.scope = options?.scope ?? defaultScope(kind);
    this.context = context;
  }

  /** A copy with more context; the engine adds the account and message as errors bubble up. */
  with(extra: ErrorContext): PopsyncError {
    const e = new PopsyncError(
      this.kind,
      this.message,
      { ...this.context, ...extra },
      { cause: this.cause, scope: this.scope },
    );
    e.stack = this.stack;
    return e;
  }
}

function defaultScope(kind: ErrorKind): ErrorScope {
  switch (kind) {
    case 'message':
      return 'message';
    case 'usage':
    case 'config':
    case 'locked':
    case 'journal-bound':
    case 'journal':
    case 'internal':
    case 'interrupted':
      return 'run';
    default:
      return 'account';
  }
}

/**
 * Documented exit codes (README "Exit codes"). Cron users branch on these, so they never
 * change meaning. 0 covers both "copied" and "nothing new".
 */
export const ExitCode = {
  ok: 0,
  partial: 1, // the run finished but some messages failed
  usage: 2, // bad command line or config
  auth: 3,
  connection: 4, // connection or TLS failure
  journalBound: 5, // journal belongs to another account, or is unusable
  uidvalidity: 6, // a destination folder needs a human: which copy is ours is undecidable
  locked: 7, // another run holds the account
  internal: 70, // EX_SOFTWARE: a bug in popsync
  temporary: 75, // EX_TEMPFAIL: the server said try later
  interrupted: 130,
} as const;

export function exitCodeFor(kind: ErrorKind): number {
  switch (kind) {
    case 'usage':
    case 'config':
      return ExitCode.usage;
    case 'auth':
      return ExitCode.auth;
    case 'connection':
    case 'tls':
    case 'protocol':
    case 'server':
      return ExitCode.connection;
    case 'temporary':
      return ExitCode.temporary;
    case 'journal':
    case 'journal-bound':
      return ExitCode.journalBound;
    case 'uidvalidity':
    case 'undecidable':
      return ExitCode.uidvalidity;
    case 'locked':
      return ExitCode.locked;
    case 'interrupted':
      return ExitCode.interrupted;
    case 'message':
      return ExitCode.partial;
    case 'internal':
      return ExitCode.internal;
  }
}

export function isPopsyncError(e: unknown): e is PopsyncError {
  return e instanceof PopsyncError;
}

/**
 * A file of popsync's own that Node could not find (a chunk of dist/bundle/ that loads at first
 * use, imapflow's LIST among them, or a package left out of the bundle): a damaged or partial
 * installation, said as one, without a stack. Read where such a load fails: imapflow reports a
 * command's module that failed to load as that command's failure, which was taken for a lost
 * connection (retried, then "run again later"); anywhere else it was an internal error's trace.
 * Null for any other error.
 */
/**
 * popsync's own files missing or changed under it: exit 70 as an internal error is, but not a bug
 * to report ("install popsync again" said, "this is a bug, report it" after it was a contradiction).
 */
export class IncompleteInstallation extends PopsyncError {
  constructor(message: string, context: ErrorContext) {
    super('internal', message, context);
  }

  override with(extra: ErrorContext): PopsyncError {
    const e = new IncompleteInstallation(this.message, { ...this.context, ...extra });
    e.stack = this.stack;
    return e;
  }
}

export function missingModule(err: unknown): PopsyncError | null {
  const code = typeof err === 'object' && err !== null ? (err as { code?: unknown }).code : undefined;
  if (code !== 'ERR_MODULE_NOT_FOUND' && code !== 'MODULE_NOT_FOUND') return null;
  const said = (err as { message?: unknown }).message;
  const first = typeof said === 'string' ? said.split('\n')[0] : String(code);
  // No cause: its text is this message's, with CommonJS's require stack after it.
  return new IncompleteInstallation(`the installation is incomplete: ${first}`, {
    hint: 'install popsync again (its files were changed or removed since it was installed)',
  });
}
