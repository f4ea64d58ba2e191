/**
 * Some POP3 servers show only part of a mailbox: WildDuck lists the newest 250, Gmail's
 * "recent" mode the last 30 days, others cap at a round number. Copying "everything listed"
 * from such a server is not copying the mailbox, and popsync must not let anyone believe it
 * is. Two signs, both judged here as a pure function of this run and the runs before it:
 *
 * - the listing holds the same round count as the previous run although new messages arrived
 *   (and popsync deleted nothing), so older ones must have dropped out of view. "New" means
 *   unknown to the journal, which says "arrived since the previous run" only when that run
 *   ended 'ok': an interrupted run (or one that set messages aside, which are not journaled)
 *   leaves messages it listed unknown, and resuming it once made a 500-message migration look
 *   like a window of 500;
 * - messages copied earlier are no longer listed although popsync did not delete them.
 *
 * Either may have an innocent cause (another client deleting mail), so the words say "may".
 */
export interface WindowInput {
  listed: number;
  /** Listed messages the journal had not seen. */
  newCount: number;
  /** Copied messages missing from the listing for the first time, not deleted by popsync. */
  vanished: number;
  /** Earlier finished runs of this account, newest first; `result` as the journal records it. */
  previous: ReadonlyArray<{ listed: number | null; deleted: number | null; result: string | null }>;
}

function isRoundCount(n: number): boolean {
  return n >= 100 && n % 50 === 0;
}

export function windowWarnings(w: WindowInput): string[] {
  const out: string[] = [];
  const last = w.previous[0];
  if (
    isRoundCount(w.listed) &&
    w.newCount > 0 &&
    last?.result === 'ok' &&
    last.listed === w.listed &&
    (last.deleted ?? 0) === 0
  ) {
    out.push(
      `the server listed exactly ${w.listed} messages again although new ones arrived: it may show only the ` +
        `newest ${w.listed} messages of the mailbox, so older ones may never be offered for copying`,
    );
  }
  if (w.vanished > 0) {
    out.push(
      `${w.vanished} message${w.vanished === 1 ? '' : 's'} copied earlier ${w.vanished === 1 ? 'is' : 'are'} ` +
        `no longer listed by the server, and popsync did not delete ${w.vanished === 1 ? 'it' : 'them'}: ` +
        `another client may have deleted ${w.vanished === 1 ? 'it' : 'them'}, or the server may list only a ` +
        `window of the mailbox`,
    );
  }
  return out;
}
