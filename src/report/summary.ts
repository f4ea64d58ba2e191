/**
 * The end-of-run report: human text for a terminal or a cron mail, and JSON for scripts. Both
 * go to stdout (the CLI's only stdout output); the numbers are the engine's RunResult as is.
 *
 * Also home to the small formatting helpers the other reporters share (sizes, durations), and
 * passes on printable() (src/printable.ts), which the reporters take from here.
 */

import type { MessageFailure, RunResult } from '../engine/types.js';
import { printable } from '../printable.js';

export { printable };

/** Bumped only when a field changes meaning or disappears; scripts can check it. */
export const SUMMARY_JSON_VERSION = 1;

/**
 * Human summary, one fact per line, without a final newline (the caller adds it), e.g.
 *
 *   popsync migrate: alice@pop.example.net:995 -> bob@imap.example.net:993
 *     listed:          120 messages, 3.4 MiB
 *     copied:          100 messages, 3.0 MiB in 1m 02s (49.5 KiB/s over the whole run)
 *     already copied:  15
 *     reconciled:      2
 *     adopted:         1 (found already in the destination; recorded, not copied again)
 *     failed:          3
 *       UIDL abc (#5, 12.0 KiB): too big — server said: "NO [TOOBIG] ..."
 *     reconnects:      1
 */
export function formatSummary(result: RunResult): string {
  const lines: string[] = [];
  lines.push(`popsync ${result.command}: ${printable(result.source)} -> ${printable(result.destination)}`);
  lines.push(row('listed', `${count(result.listed, 'message')}, ${formatBytes(result.listedBytes)}`));

  let copied =
    `${count(result.copied, 'message')}, ${formatBytes(result.copiedBytes)} in ` +
    `${formatDuration(result.durationMs)}`;
  const rate = rateText(result.copiedBytes, result.durationMs);
  // Over the whole run, as the duration before it: the progress lines' rate is the copy phase's
  // alone ('while copying'), and two unlabelled rates for one run read as a contradiction.
  if (rate !== null && result.copied > 0) copied += ` (${rate} over the whole run)`;
  lines.push(row('copied', copied));

  lines.push(row('already copied', String(result.alreadyCopied)));
  lines.push(row('reconciled', String(result.reconciled)));
  // Only when it happened, as below; without these a run that found its mail already in the
  // destination (a new or lost journal) listed 2 messages and accounted for none of them.
  if (result.adopted > 0)
    lines.push(row('adopted', `${result.adopted} (found already in the destination; recorded, not copied again)`));
  if (result.recognised > 0)
    lines.push(row('recognised', `${result.recognised} (copied before under another UIDL; not copied again)`));
  lines.push(row('failed', String(result.failed.length)));
  for (const f of result.failed) lines.push(`    ${formatFailure(f)}`);
  // Only when the rule bit: most configs have none, and the summary's lines are read by people.
  if (result.skippedByRule > 0)
    lines.push(row('skipped by rule', `${result.skippedByRule} (skip_larger_than; not failures)`));
  lines.push(row('reconnects', String(result.reconnects)));
  // Why a run was slow, where people read: the warning scrolled by on stderr long before.
  if (result.oneImapConnection !== null)
    lines.push(row('one connection', `${printable(result.oneImapConnection)}; copied one APPEND at a time`));
  return lines.join('\n');
}

/** One failed message: `UIDL abc (#5, 12.0 KiB, folder Archive): reason — server said: "..."`. */
export function formatFailure(f: MessageFailure): string {
  const where = [
    f.n === null ? null : `#${f.n}`,
    formatBytes(f.size),
    f.folder === null ? null : `folder ${printable(f.folder)}`,
  ]
    .filter((x): x is string => x !== null)
    .join(', ');
  let line = `UIDL ${printable(f.uidl)} (${where}): ${printable(f.reason)}`;
  if (f.serverResponse !== null) line += ` — server said: "${printable(f.serverResponse)}"`;
  return line;
}

/**
 * The RunResult as pretty JSON (no final newline) with a version field first, plus nothing derived: scripts compute
 * rates themselves, and every number here is one the engine counted.
 */
export function summaryJson(result: RunResult): string {
  return JSON.stringify({ version: SUMMARY_JSON_VERSION, ...result }, null, 2);
}

/** 1023 B, 1.0 KiB, 3.4 MiB, 1.2 GiB. Binary units: providers' quotas are in these. */
export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(1)} ${units[i]}`;
}

/** 0.4s, 42s, 1m 02s, 2h 03m 04s. */
export function formatDuration(ms: number): string {
  if (ms < 10_000) return `${(ms / 1000).toFixed(1)}s`;
  const total = Math.round(ms / 1000);
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  const pad = (x: number) => String(x).padStart(2, '0');
  if (h > 0) return `${h}h ${pad(m)}m ${pad(s)}s`;
  if (m > 0) return `${m}m ${pad(s)}s`;
  return `${s}s`;
}

/**
 * An estimate of time left: '1.8s', '16m 35s', or 'under 1s' below a second, where
 * formatDuration's one decimal printed 'about 0.0s left' while messages were still to come.
 */
export function formatEta(ms: number): string {
  return ms < 1000 ? 'under 1s' : formatDuration(ms);
}

/** "49.5 KiB/s", or null when no time has passed (a rate would be infinite or noise). */
export function rateText(bytes: number, ms: number): string | null {
  if (ms <= 0) return null;
  return `${formatBytes(Math.round((bytes * 1000) / ms))}/s`;
}

function count(n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? '' : 's'}`;
}

function row(label: string, value: string): string {
  return `  ${`${label}:`.padEnd(17)}${value}`;
}
