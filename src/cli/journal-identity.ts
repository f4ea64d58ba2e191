/**
 * Which journal belongs to a POP3 mailbox, and under which key. A second journal for a
 * mailbox already copied starts from nothing, so two spellings of one mailbox must never get
 * two journals: `src@localhost`, `src@127.0.0.1` and `src@LOCALHOST.` used to make three.
 *
 * The key is "user@host", host canonical:
 * - case-insensitive (DNS is), a trailing dot dropped, internationalised names in their ASCII
 *   (punycode) form, IPv6 written one way (`::1`, not `0:0:0:0:0:0:0:1`);
 * - every loopback spelling (`localhost`, `localhost.localdomain`, `127.x.y.z`, `::1`, the
 *   IPv4-mapped `::ffff:127.0.0.1`) is `localhost`: they all reach this machine.
 * Other names of one machine (a CNAME, a second A record) are not guessed at: resolving them
 * would tie a mailbox's identity to DNS of the day.
 *
 * The user part keeps its case. Most POP3 servers treat it case-insensitively, but not all
 * (Dovecot with a passwd or SQL user database without `%Lu`, popa3d, qpopper: system users,
 * where `Bob` and `bob` can be two people). Folding would then hand one person's journal to
 * another: their UIDLs can coincide, their messages would count as copied and, with
 * `--delete`, be deleted without a copy. Not folding costs at worst a second journal, which
 * is a duplicate risk, never a loss; `--journal` names the one to use.
 *
 * The port and TLS mode are not part of the key: they are how we reach the mailbox, and
 * switching 110+STLS to 995 must not make every message look new.
 *
 * Journals made before this rule are bound to the key spelled as it was then. They keep
 * working: without --journal, a default file under another spelling of the same mailbox is
 * found when the canonical one does not exist, and a journal bound to another spelling of the
 * same mailbox is used under the key it is bound to.
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { isIPv4, isIPv6 } from 'node:net';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { domainToASCII } from 'node:url';
import { PopsyncError } from '../errors.js';
import { keyAt, type KeyedFile } from '../config/key-path.js';
import { Journal } from '../journal/journal.js';

const LOOPBACK_NAMES = new Set(['localhost', 'localhost.localdomain', 'ip6-localhost', 'ip6-loopback']);

function canonicalIPv6(h: string): string {
  // The URL parser writes IPv6 the one RFC 5952 way.
  return new URL(`http://[${h}]`).hostname.slice(1, -1);
}

export function canonicalHost(host: string): string {
  let h = host.trim().toLowerCase();
  if (h.startsWith('[') && h.endsWith(']')) h = h.slice(1, -1);
  h = h.replace(/\.+$/, '');
  if (isIPv4(h)) return h.startsWith('127.') ? 'localhost' : h;
  if (isIPv6(h)) {
    const v6 = canonicalIPv6(h);
    if (v6 === '::1') return 'localhost';
    // IPv4-mapped loopback, which the URL parser writes in hex: ::ffff:7fxx:xxxx.
    if (/^::ffff:7f[0-9a-f]{2}:[0-9a-f]{1,4}$/.test(v6)) return 'localhost';
    return v6;
  }
  // Only a name with non-ASCII letters needs punycode.
  if (/[^\x20-\x7e]/.test(h)) h = domainToASCII(h) || h;
  return LOOPBACK_NAMES.has(h) ? 'localhost' : h;
}

/** The mailbox's identity: the journal's binding and row key. */
export function sourceKeyOf(pop: { user: string; host: string }): string {
  const host = canonicalHost(pop.host);
  return `${pop.user}@${host.includes(':') ? `[${host}]` : host}`;
}

/** Whether two keys name one mailbox (a journal bound to either serves both). */
export function sameMailbox(a: string, b: string): boolean {
  const split = (k: string) => {
    const at = k.lastIndexOf('@');
    return at < 0 ? null : { user: k.slice(0, at), host: canonicalHost(k.slice(at + 1)) };
  };
  const x = split(a);
  const y = split(b);
  return x !== null && y !== null && x.user === y.user && x.host === y.host;
}

/** Where a journal goes when the user names none: one file per source mailbox, like getmail's oldmail. */
export function defaultJournalPath(sourceKey: string, env: NodeJS.ProcessEnv = process.env): string {
  const base = env.XDG_STATE_HOME || join(homedir(), '.local', 'state');
  return join(base, 'popsync', `${sourceKey.replace(/[^A-Za-z0-9@._-]+/g, '_')}.sqlite`);
}

export interface JournalLocation {
  path: string;
  /** The key the journal at `path` is bound to when that is a spelling of this mailbox; else the canonical key. */
  sourceKey: string;
}

/**
 * The journal of a mailbox: `explicit` (--journal) when given; else the default file of the
 * canonical key; else the one default file another spelling of this mailbox made (journals
 * from before canonical keys, e.g. `src@127.0.0.1.sqlite` for `src@localhost`). Two such
 * files are two journals of one mailbox: which one knows what is not ours to guess.
 */
export function locateJournal(
  pop: { user: string; host: string },
  explicit?: string,
  env: NodeJS.ProcessEnv = process.env,
  origin: JournalOrigin = JOURNAL_OPTION,
): JournalLocation {
  const key = sourceKeyOf(pop);
  const path = explicit === undefined ? defaultFor(key, env) : refuseDirectory(explicit, origin);
  const bound = Journal.boundSource(path);
  return { path, sourceKey: bound !== null && bound !== key && sameMailbox(bound, key) ? bound : key };
}

/**
 * Where the user wrote a journal's path, so an error about the path names that place: a
 * config file's `journal:` is not fixed by changing a --journal the user never gave.
 */
export interface JournalOrigin {
  /** What the message starts with, before the path: '--journal ', 'FILE:LINE: accounts[0].journal: '. */
  prefix: string;
  /** What to do instead, for a directory at `path`. */
  hint(path: string): string;
}

const fileIn = (spelling: string) => (path: string) =>
  `give the journal file itself, e.g. ${spelling}${join(path, 'alice.sqlite')}`;

const JOURNAL_OPTION: JournalOrigin = { prefix: '--journal ', hint: fileIn('--journal ') };

/** A config file's `journal:` key of the account at `index`, named as other config errors name keys. */
export function configJournal(file: KeyedFile, index: number): JournalOrigin {
  return { prefix: `${keyAt(file, ['accounts', index, 'journal'])}: `, hint: fileIn('journal: ') };
}

/** `--journal-dir DIR`'s file of one account (DIR/NAME.sqlite). */
export function journalDirEntry(dir: string): JournalOrigin {
  return {
    prefix: `--journal-dir ${dir}: `,
    hint: (path) => `move ${path} away, or give another --journal-dir`,
  };
}

/**
 * `path`, unless it is a directory (`--journal ~/state/`): SQLite's word for opening one is
 * 'disk I/O error', which every command turned into a hint about restoring a corrupt journal.
 */
export function refuseDirectory(path: string, origin: JournalOrigin = JOURNAL_OPTION): string {
  let st: ReturnType<typeof statSync> | null = null;
  try {
    st = statSync(path);
  } catch {
    // Not there (yet) or not readable: the journal's own open says which, as before.
  }
  if (st?.isDirectory())
    throw new PopsyncError('usage', `${origin.prefix}${path} is a directory, not a journal`, {
      hint: origin.hint(path),
    });
  // /dev/null, a FIFO: SQLite's 'disk I/O error' read as a corrupt journal to restore.
  if (st !== null && !st.isFile())
    throw new PopsyncError('usage', `${origin.prefix}${path} is not a regular file, not a journal`, {
      hint: 'give the path of an existing journal, or of a file popsync can create',
    });
  return path;
}

/**
 * The folder a journal is about to be created or written in, for commands that write one
 * (migrate, sync): a missing folder or a file in its place was reported as the lock file's
 * ENOENT/ENOTDIR, which names a file the user never gave. Only the default journal's folder is
 * created; a --journal or config path is used as given.
 */
export function checkJournalFolder(path: string, origin: JournalOrigin = JOURNAL_OPTION): void {
  const folder = dirname(path);
  let st: ReturnType<typeof statSync> | null = null;
  try {
    st = statSync(folder);
  } catch {
    // Missing, or not reachable: said below.
  }
  if (st === null)
    throw new PopsyncError('usage', `${origin.prefix}${path}: the folder ${folder} does not exist`, {
      hint: `create it (mkdir -p ${folder}), or give a journal in an existing folder`,
    });
  if (!st.isDirectory())
    throw new PopsyncError('usage', `${origin.prefix}${path}: ${folder} is not a folder`, {
      hint: 'give a journal path whose folder exists',
    });
}

/**
 * No journal where a command that never creates one (status, journal forget-folder) looked.
 * migrate and sync create it (the hint used to say 'run a sync first' to someone who had run
 * migrate), and the usual cause is a path other than theirs: with a run given --journal and
 * this command only the --pop account, it looks at the default journal instead.
 * `defaultFor`: the account whose default journal this is, when no --journal was given.
 */
export function missingJournal(command: string, path: string, defaultFor: string | null): PopsyncError {
  return defaultFor === null
    ? new PopsyncError('journal', `no journal at ${path}`, {
        hint:
          'popsync migrate and popsync sync create the journal on their first run: ' +
          'check that this is the --journal PATH they were given, or run one of them first',
      })
    : new PopsyncError('journal', `no journal at ${path}, the default journal of ${defaultFor}`, {
        hint:
          'popsync migrate and popsync sync create it there on their first run, unless given --journal PATH: ' +
          `then give ${command} the same --journal PATH`,
      });
}

function defaultFor(key: string, env: NodeJS.ProcessEnv): string {
  const path = defaultJournalPath(key, env);
  if (existsSync(path)) return path;
  const dir = dirname(path);
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return path;
  }
  const others = names
    .filter((n) => n.endsWith('.sqlite') && sameMailbox(n.slice(0, -'.sqlite'.length), key))
    .sort()
    .map((n) => join(dir, n));
  if (others.length === 0) return path;
  if (others.length === 1) return others[0]!;
  throw new PopsyncError(
    'journal',
    `${others.length} journals belong to ${key}, each under another spelling of its host: ${others.join(', ')}`,
    {
      account: key,
      hint:
        'pick the one to keep with --journal PATH (popsync status --journal PATH shows what each knows) ' +
        'and move the others aside',
    },
  );
}
