/**
 * `status --accounts FILE.csv [--journal-dir DIR]`: one line per account of a list and a line
 * of totals, so an operator can see how far a migration of thousands of mailboxes has got
 * without opening thousands of reports. Reads only, like `status`: no password, no server.
 * Folding the per-account statuses into lines and totals is pure (formatListStatus,
 * listTotals); reading the journals is `listStatus`.
 */
import { hostname } from 'node:os';
import type { Command } from 'commander';
import { Journal } from '../journal/journal.js';
import { processAlive, type LockRecord } from '../journal/lock.js';
import { printable } from '../report/summary.js';
import { accountJobs } from './account.js';
import { summarise, type AccountStatus } from './commands/status.js';
import { resolvePop3Endpoint } from './endpoints.js';
import { locateJournal } from './journal-identity.js';

export interface ListedStatus {
  name: string;
  journal: string;
  /** null: no journal yet (the account has not run). */
  status: AccountStatus | null;
}

export type ListState = 'not started' | 'running' | 'ok' | 'partial' | 'error' | 'interrupted' | 'killed';

/** Where an account stands, from its last run and its lock. */
export function stateOf(s: AccountStatus | null): ListState {
  if (s === null || s.lastRun === null) return s?.lock ? 'running' : 'not started';
  if (s.lock) return 'running';
  const r = s.lastRun.result;
  return r === 'ok' || r === 'partial' || r === 'error' || r === 'interrupted' ? r : 'killed';
}

export interface ListTotals {
  accounts: number;
  states: Record<ListState, number>;
  copied: number;
  /** Of `copied`, found already in the destination and adopted. */
  adopted: number;
  failed: number;
  deleted: number;
}

export function listTotals(items: readonly ListedStatus[]): ListTotals {
  const states: Record<ListState, number> = {
    'not started': 0,
    running: 0,
    ok: 0,
    partial: 0,
    error: 0,
    interrupted: 0,
    killed: 0,
  };
  let copied = 0;
  let adopted = 0;
  let failed = 0;
  let deleted = 0;
  for (const i of items) {
    states[stateOf(i.status)]++;
    copied += i.status?.copied ?? 0;
    adopted += i.status?.adopted ?? 0;
    failed += i.status?.failed.length ?? 0;
    deleted += i.status?.deleted ?? 0;
  }
  return { accounts: items.length, states, copied, adopted, failed, deleted };
}

export function formatListStatus(items: readonly ListedStatus[]): string {
  const width = Math.min(40, Math.max(0, ...items.map((i) => i.name.length)));
  const lines = items.map((i) => {
    const s = i.status;
    const state = stateOf(s);
    const head = `${printable(i.name).padEnd(width)}  ${state.padEnd(11)}`;
    if (s === null) return head.trimEnd();
    const last = s.lastRun ? `, last run ${s.lastRun.startedAt} ${s.lastRun.command}` : '';
    const err = s.lastError && state === 'error' ? `: ${printable(s.lastError.error)}` : '';
    const counts = `copied ${s.copied}${adoptedPart(s.adopted)}, failed ${s.failed.length}, deleted ${s.deleted}`;
    return `${head}  ${counts}${last}${err}`;
  });
  const t = listTotals(items);
  const states = (Object.entries(t.states) as Array<[ListState, number]>)
    .filter(([, n]) => n > 0)
    .map(([k, n]) => `${n} ${k}`);
  lines.push(
    `total: ${t.accounts} account${t.accounts === 1 ? '' : 's'} (${states.join(', ')}); ` +
      `copied ${t.copied}${adoptedPart(t.adopted)}, failed ${t.failed}, deleted ${t.deleted}`,
  );
  return lines.join('\n');
}

/** "copied 30 (28 adopted)": of the copies the journal records, those found already in the destination. */
function adoptedPart(adopted: number): string {
  return adopted > 0 ? ` (${adopted} adopted)` : '';
}

/** The statuses of a list's accounts (after --shard), read from their journals. */
export async function listStatus(
  opts: Record<string, unknown>,
  cmd: Pick<Command, 'getOptionValueSource'>,
): Promise<ListedStatus[]> {
  const jobs = await accountJobs(opts, cmd, { createJournalDir: false });
  // A row left by a run killed on this host names nobody: the kernel already freed its lock.
  const holding = (l: LockRecord | null) =>
    l !== null && l.hostname === hostname() && !processAlive(l.pid) ? null : l;
  return jobs.map((job) => {
    const { path, sourceKey } = locateJournal(
      resolvePop3Endpoint(job.input.pop),
      job.input.journal,
      process.env,
      job.input.journalOrigin,
    );
    const snap = Journal.inspect(path);
    const a = snap?.accounts.find((x) => x.account === sourceKey);
    return {
      name: job.input.name!,
      journal: path,
      status: a ? summarise(a.account, a.messages, a.runs, holding(a.lock), undefined, a.adopted) : null,
    };
  });
}
