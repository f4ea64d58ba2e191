/**
 * Mapping between the engine's folder names and what imapflow needs.
 *
 * The engine (and the user's config) names folders in UTF-8 with '/' between levels, whatever
 * the server uses. We hand imapflow an array of levels rather than a joined string: it joins
 * them with the delimiter from NAMESPACE, prepends the personal namespace prefix (e.g. "INBOX."
 * on Courier/Cyrus) and encodes modified UTF-7, so none of that is repeated here. What is left
 * for us is rejecting names that would silently mean something else on the server.
 */

import { PopsyncError } from '../errors.js';

/**
 * Splits a folder path into levels. 'INBOX' is case-insensitive in IMAP (RFC 3501 5.1), and
 * "inbox/Sub" should land under the real INBOX too, so a first level spelled any way becomes
 * 'INBOX'. Empty levels ("a//b", "/a") are refused: servers disagree on what they mean.
 */
export function folderLevels(path: string): string[] {
  const levels = path.split('/');
  if (path.length === 0 || levels.some((l) => l.length === 0)) {
    throw new PopsyncError('config', `Invalid IMAP folder name "${path}": empty level`, {
      folder: path,
      hint: "Use '/' only between folder levels, e.g. 'Archive/2019'",
    });
  }
  if (levels[0]!.toUpperCase() === 'INBOX') levels[0] = 'INBOX';
  return levels;
}

/**
 * Refuses a level that contains the server's own delimiter: 'Archive/2019.old' on a '.' server
 * would otherwise create 'old' under '2019', a different folder from the one configured.
 */
export function checkLevels(path: string, levels: string[], delimiter: string | null | undefined): void {
  if (!delimiter || delimiter === '/') return;
  const bad = levels.find((l) => l.includes(delimiter));
  if (bad !== undefined) {
    throw new PopsyncError(
      'config',
      `IMAP folder "${path}": level "${bad}" contains the server's hierarchy delimiter "${delimiter}"`,
      {
        folder: path,
        hint: `This server separates folder levels with "${delimiter}"; rename the folder in the config`,
      },
    );
  }
}

/**
 * The full server-side name (decoded) that imapflow will use for these levels: the same rule
 * as its normalizePath(), so LIST results can be compared with it.
 */
export function serverName(
  levels: string[],
  namespace: { prefix?: string | null; delimiter?: string | null } | undefined,
): string {
  const joined = levels.join(namespace?.delimiter ?? '');
  if (joined.toUpperCase() === 'INBOX') return 'INBOX';
  const prefix = namespace?.prefix ?? '';
  return prefix && !joined.startsWith(prefix) ? prefix + joined : joined;
}
