/**
 * What a batch of accounts has done so far, and that state as text: the few lines a terminal
 * redraws (batchViewLines) and the one line a log or a pipe gets now and then
 * (batchPlainLine). Fed by the batch loop (account started, ended) and each account's own
 * progress events. Pure: the clock is passed in, nothing is written here (batch-screen.ts
 * draws).
 *
 * The rate and the ETA are per account, not per message: a batch of thousands of small
 * mailboxes is bounded by logins and listings as much as by bytes, and the accounts that have
 * not started yet have no message counts at all, so the only honest forecast is "accounts
 * left at the pace accounts have been finishing".
 */
import type { Phase, ProgressEvent } from '../engine/types.js';
import { formatBytes, formatEta, printable } from './summary.js';

interface Running {
  name: string;
  phase: Phase | null;
  toCopy: number;
  done: number;
  /** Bytes of the messages copied (not of those adopted, recognised or failed). */
  bytes: number;
}

const PHASE_WORD: Record<Phase, string> = {
  'connect-source': 'connecting',
  'connect-destination': 'connecting',
  listing: 'listing',
  reconciling: 'checking',
  copying: 'copying',
  finishing: 'finishing',
};

/** Running accounts shown one per line under the totals; the rest are counted. */
const RUNNING_SHOWN = 6;

export class BatchTally {
  private readonly running = new Map<string, Running>();
  ok = 0;
  notOk = 0;
  messages = 0;
  /**
   * Bytes copied: the rate is of these alone. A message found already in the destination
   * (adopted) or known under another UIDL (recognised) was not copied, and a new journal over
   * a filled destination showed megabytes a second while copying nothing.
   */
  bytes = 0;
  failedMessages = 0;
  /** Settled without a copy, said apart as the single account's progress says them. */
  adoptedMessages = 0;
  recognisedMessages = 0;
  readonly startedAt: number;

  constructor(
    readonly command: string,
    readonly accounts: number,
    now: number,
  ) {
    this.startedAt = now;
  }

  get finished(): number {
    return this.ok + this.notOk;
  }

  get waiting(): number {
    return Math.max(0, this.accounts - this.finished - this.running.size);
  }

  get runningCount(): number {
    return this.running.size;
  }

  start(name: string): void {
    this.running.set(name, { name, phase: null, toCopy: 0, done: 0, bytes: 0 });
  }

  event(name: string, e: ProgressEvent): void {
    const r = this.running.get(name);
    if (r === undefined) return;
    if (e.type === 'phase') r.phase = e.phase;
    else if (e.type === 'plan') r.toCopy = e.toCopy;
    else if (e.type === 'message') {
      r.done++;
      this.messages++;
      if (e.outcome === 'copied') {
        r.bytes += e.bytes;
        this.bytes += e.bytes;
      } else if (e.outcome === 'failed') this.failedMessages++;
      else if (e.outcome === 'adopted') this.adoptedMessages++;
      else this.recognisedMessages++;
    }
  }

  end(name: string, exitCode: number): void {
    this.running.delete(name);
    if (exitCode === 0) this.ok++;
    else this.notOk++;
  }

  /** Accounts in the order they started, so lines do not jump around between redraws. */
  runningAccounts(): readonly Running[] {
    return [...this.running.values()];
  }
}

/** Milliseconds left at the pace accounts have been finishing, or null before the first one. */
export function etaMs(t: BatchTally, now: number): number | null {
  const elapsed = now - t.startedAt;
  if (t.finished === 0 || elapsed <= 0) return null;
  return ((t.accounts - t.finished) * elapsed) / t.finished;
}

function perMinute(n: number, ms: number): string {
  return ms <= 0 ? '-' : ((n * 60_000) / ms).toFixed(n * 60_000 >= ms * 10 ? 0 : 1);
}

function countsText(t: BatchTally): string {
  return (
    `${t.finished}/${t.accounts} accounts: ${t.ok} done, ${t.notOk} failed, ` +
    `${t.runningCount} running, ${t.waiting} waiting`
  );
}

function flowText(t: BatchTally, now: number): string {
  const elapsed = now - t.startedAt;
  const rate = elapsed > 0 ? `${formatBytes(Math.round((t.bytes * 1000) / elapsed))}/s` : '- B/s';
  const eta = t.finished >= t.accounts ? 'ETA 0s' : etaOrDash(etaMs(t, now));
  const apart = [
    ...(t.adoptedMessages > 0 ? [`${t.adoptedMessages} adopted`] : []),
    ...(t.recognisedMessages > 0 ? [`${t.recognisedMessages} recognised`] : []),
    ...(t.failedMessages > 0 ? [`${t.failedMessages} failed`] : []),
  ];
  const notCopied = apart.length > 0 ? ` (${apart.join(', ')})` : '';
  // "copied" only when some were not: the bytes are the copies' alone, which is then worth saying.
  const bytes = `${formatBytes(t.bytes)}${apart.length > 0 ? ' copied' : ''}`;
  return (
    `${t.messages} messages${notCopied}, ${bytes}, ${rate}, ` + `${perMinute(t.finished, elapsed)} accounts/min, ${eta}`
  );
}

function etaOrDash(ms: number | null): string {
  return ms === null ? 'ETA -' : `ETA ${formatEta(ms)}`;
}

/** Cut to `width` columns (one less than the terminal's: writing the last column wraps on some terminals). */
function clip(line: string, width: number): string {
  const max = Math.max(20, width - 1);
  return line.length <= max ? line : `${line.slice(0, max - 1)}…`;
}

/**
 * The terminal block: the counts, the flow (messages, bytes, rate, accounts per minute, ETA),
 * then the running accounts, each line at most `width` columns.
 */
export function batchViewLines(t: BatchTally, now: number, width: number): string[] {
  const lines = [`popsync ${t.command}: ${countsText(t)}`, `  ${flowText(t, now)}`];
  const running = t.runningAccounts();
  for (const r of running.slice(0, RUNNING_SHOWN)) {
    const what = r.phase === null ? 'starting' : PHASE_WORD[r.phase];
    const progress = r.phase === 'copying' ? ` ${r.done}/${r.toCopy} (${formatBytes(r.bytes)})` : '';
    lines.push(`  ${printable(r.name)}: ${what}${progress}`);
  }
  if (running.length > RUNNING_SHOWN) lines.push(`  ... and ${running.length - RUNNING_SHOWN} more running`);
  return lines.map((l) => clip(l, width));
}

/** One line for a log or a pipe: the counts and the flow. */
export function batchPlainLine(t: BatchTally, now: number): string {
  return `popsync: batch: ${countsText(t)}; ${flowText(t, now)}`;
}
