/**
 * What the bench tells a relay process (relay-process.ts) to do, and what that process reports
 * back: the only contract between relay-cli.ts, which starts it, and the process. Kept apart
 * from both so the child's bundle holds none of the launcher (esbuild) and the report's parsing
 * is unit-tested.
 */

/** One relay run: JSON in the child's first argument; the password is in its environment (PW). */
export interface RelaySpec {
  kind: 'raw' | 'safe';
  pop3: number;
  imap: number;
  /** pop3s and imaps, verified against this CA file, when given. */
  caFile?: string;
  popUser: string;
  imapUser: string;
  count: number;
  /** The safe relay's journal, a file that must not exist yet. */
  journal?: string;
}

/** The one line a relay process writes to stdout when its copy is done. */
export interface RelayReport {
  /** The relay's own clock: after both logins to the last tagged OK, as the in-process rows. */
  copyMs: number;
  copied: number;
}

export function formatRelayReport(r: RelayReport): string {
  return `${JSON.stringify(r)}\n`;
}

/** The report in a relay process's stdout; throws unless it is one, for `count` messages. */
export function parseRelayReport(out: string, count: number): RelayReport {
  const lines = out.trim().split('\n');
  let r: Partial<RelayReport>;
  try {
    r = JSON.parse(lines.at(-1) ?? '') as Partial<RelayReport>;
  } catch {
    throw new Error(`relay process wrote no report: ${JSON.stringify(out)}`);
  }
  if (typeof r.copyMs !== 'number' || !(r.copyMs >= 0) || typeof r.copied !== 'number')
    throw new Error(`relay process report is not one: ${JSON.stringify(out)}`);
  if (r.copied !== count) throw new Error(`relay process copied ${r.copied} of ${count}`);
  return { copyMs: r.copyMs, copied: r.copied };
}
