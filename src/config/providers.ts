/**
 * Provider profiles (`--provider gmail`, `provider: gmail` under `destination:`): the
 * destination's address and its published rules in one place, so a user who names the service
 * gets its limits without knowing them. Pure data and a few checks; every figure comes from the
 * provider's documentation (see /README.md "Providers", which also says which of them the tests
 * verify against a Dovecot made to look like the provider and which only follow the documents).
 *
 * A profile only fills in what the user left out: an explicit host, `--daily-budget`,
 * `--max-rate` or size rule always wins, so the same profile runs against the test lab.
 */
import { PopsyncError } from '../errors.js';

export const PROVIDER_NAMES = ['gmail', 'microsoft365', 'outlook', 'fastmail'] as const;
export type ProviderName = (typeof PROVIDER_NAMES)[number];

export interface ProviderProfile {
  name: ProviderName;
  /** For messages: "Gmail", "Microsoft 365". */
  label: string;
  /** The IMAP destination when the user gives no host (implicit TLS on 993 everywhere). */
  imap: { host: string; port: number; tls: 'implicit' };
  /** How a user logs in there, for error hints and the README. */
  login: string;
  /** Passwords are refused on IMAP (Microsoft): without a token command there is nothing to ask for. */
  oauth2Only: boolean;
  /**
   * IMAP connections one mailbox may have open at once, counting every client of its owner.
   * A batch keeps the accounts copying into one mailbox under it (cli/jobs.ts).
   */
  maxConnectionsPerMailbox: number | null;
  /**
   * `--append-connections` when the user gives none: APPEND connections at most, one per folder
   * (imap/append-pool.ts); null leaves popsync's default of 1.
   */
  appendConnections: number | null;
  /** IMAP upload a mailbox may take per day; popsync stops at it (exit 75) and says when to go on. */
  dailyUploadBytes: number | null;
  /**
   * The largest message the service accepts by APPEND, used when its CAPABILITY does not say
   * (RFC 7889 APPENDLIMIT wins when it does). Larger messages are skipped before download.
   */
  appendLimit: number | null;
  /** Folders never to append into, compared without case. */
  refusedFolders: readonly string[];
  /** SPECIAL-USE roles whose folder is never appended into, wherever the server puts it. */
  refusedRoles: readonly string[];
  /** Why those folders are refused: the error says it. */
  refusedWhy: string | null;
}

/** 500 MB as Google writes it; read as decimal megabytes, the lower of the two readings. */
const GMAIL_DAILY_UPLOAD = 500 * 1000 * 1000;
/** What Gmail's CAPABILITY lists (APPENDLIMIT=35651584, 34 MiB): "about 35 MB" in its help. */
const GMAIL_APPEND_LIMIT = 35_651_584;

const MICROSOFT_LOGIN =
  'OAuth2 only (XOAUTH2 with a token from the Microsoft identity platform); passwords are refused on IMAP';

export const PROVIDERS: Readonly<Record<ProviderName, ProviderProfile>> = {
  gmail: {
    name: 'gmail',
    label: 'Gmail',
    imap: { host: 'imap.gmail.com', port: 993, tls: 'implicit' },
    login: 'an app password (needs 2-Step Verification) or OAuth2 (XOAUTH2)',
    oauth2Only: false,
    maxConnectionsPerMailbox: 15,
    // Gmail offers LITERAL-, not LITERAL+: every message over 4 KiB waits a round trip for the
    // server's '+', so one connection moves about one typical message per round trip, and
    // labels written side by side overlap those waits. 3 APPEND connections, imapflow's and a
    // streaming one make 5 of the 15: room for the owner's own clients (phone, desktop), and 3
    // accounts per mailbox in a batch (cli/account-list.ts). Not measured against Gmail itself.
    appendConnections: 3,
    dailyUploadBytes: GMAIL_DAILY_UPLOAD,
    appendLimit: GMAIL_APPEND_LIMIT,
    // Localised accounts say "[Google Mail]"; other languages rename "All Mail" too, which the
    // \All role catches (the guard asks the server which folder plays it).
    refusedFolders: ['[Gmail]/All Mail', '[Google Mail]/All Mail'],
    refusedRoles: ['\\All'],
    refusedWhy:
      'in Gmail every message is already in All Mail: a copy appended there gets no label and is hard to find; ' +
      'copy into INBOX or a label (any other folder name) instead',
  },
  microsoft365: {
    name: 'microsoft365',
    label: 'Microsoft 365',
    imap: { host: 'outlook.office365.com', port: 993, tls: 'implicit' },
    login: MICROSOFT_LOGIN,
    oauth2Only: true,
    maxConnectionsPerMailbox: null,
    appendConnections: null,
    dailyUploadBytes: null,
    appendLimit: null,
    refusedFolders: [],
    refusedRoles: [],
    refusedWhy: null,
  },
  outlook: {
    name: 'outlook',
    label: 'Outlook.com',
    imap: { host: 'outlook.office365.com', port: 993, tls: 'implicit' },
    login: MICROSOFT_LOGIN,
    oauth2Only: true,
    maxConnectionsPerMailbox: null,
    appendConnections: null,
    dailyUploadBytes: null,
    appendLimit: null,
    refusedFolders: [],
    refusedRoles: [],
    refusedWhy: null,
  },
  fastmail: {
    name: 'fastmail',
    label: 'Fastmail',
    imap: { host: 'imap.fastmail.com', port: 993, tls: 'implicit' },
    login: 'an app password (Settings > Privacy & Security > Manage app passwords)',
    oauth2Only: false,
    maxConnectionsPerMailbox: null,
    appendConnections: null,
    dailyUploadBytes: null,
    appendLimit: null,
    refusedFolders: [],
    refusedRoles: [],
    refusedWhy: null,
  },
};

/** The profile called `name`, or a usage error listing the known ones. */
export function providerProfile(name: string): ProviderProfile {
  const key = name.trim().toLowerCase();
  if ((PROVIDER_NAMES as readonly string[]).includes(key)) return PROVIDERS[key as ProviderName];
  throw new PopsyncError('usage', `unknown provider "${name}"; known: ${PROVIDER_NAMES.join(', ')}`);
}

/**
 * Why `n` APPEND connections do not fit the provider's connections per mailbox, or null: the
 * session and the connection for large messages come on top (cli/account-list.ts counts them).
 */
export function appendConnectionsProblem(p: ProviderProfile, n: number): string | null {
  const cap = p.maxConnectionsPerMailbox;
  if (cap === null || n <= cap - 2) return null;
  return (
    `${n} APPEND connections: ${p.label} allows ${cap} IMAP connections per mailbox, and popsync's session ` +
    `and its connection for large messages take two; give at most ${cap - 2}`
  );
}

/**
 * Why `folder` (a routing target: a name, a template or a SPECIAL-USE role) may not receive
 * copies on this provider, or null. Only literal names and roles can be judged before the run;
 * a template that renders to a refused folder is caught by the guard on the connection.
 */
export function refusedFolderProblem(p: ProviderProfile, folder: string): string | null {
  const f = folder.trim().toLowerCase();
  const hit = p.refusedFolders.some((r) => r.toLowerCase() === f) || p.refusedRoles.some((r) => r.toLowerCase() === f);
  return hit ? refusalText(p, folder) : null;
}

/** What the refusal of `folder` says (exit 2). */
export function refusalText(p: ProviderProfile, folder: string): string {
  return `${p.label}: popsync never copies into "${folder}": ${p.refusedWhy ?? 'the provider forbids it'}`;
}

/**
 * Why an IMAP login on this provider cannot work as given, or null: Microsoft takes OAuth2 only,
 * so with neither a token command nor a password option popsync would only ask for a password
 * the server refuses. (A password given on purpose is left alone: the lab takes one.)
 */
export function missingLoginProblem(p: ProviderProfile, side: { password: boolean; token: boolean }): string | null {
  if (!p.oauth2Only || side.password || side.token) return null;
  return `${p.label} takes ${p.login}: give --imap-oauth2-token-command CMD (oauth2_token_command in a config)`;
}

/** What bounds one account's uploads: the user's settings over the provider's published ones. */
export interface TransferLimits {
  provider: ProviderProfile | null;
  /** Average upload bytes per second; null: as fast as it goes. */
  maxRate: number | null;
  /** Upload bytes in any 24 hours, and where that figure comes from (for messages); null: none. */
  dailyBudget: { bytes: number; basis: string } | null;
  /** The provider's message size limit for when the server does not advertise APPENDLIMIT. */
  appendLimit: number | null;
}

export function transferLimits(
  provider: ProviderProfile | null,
  user: { maxRate?: number | undefined; dailyBudget?: number | undefined },
): TransferLimits {
  const daily =
    user.dailyBudget !== undefined
      ? { bytes: user.dailyBudget, basis: 'the daily budget' }
      : provider?.dailyUploadBytes != null
        ? { bytes: provider.dailyUploadBytes, basis: `${provider.label}'s daily IMAP upload limit` }
        : null;
  return {
    provider,
    maxRate: user.maxRate ?? null,
    dailyBudget: daily,
    appendLimit: provider?.appendLimit ?? null,
  };
}
