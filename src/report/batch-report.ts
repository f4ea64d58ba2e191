/**
 * The report of a batch (`plan`/`migrate`/`sync --accounts ... --report FILE`): one row per
 * account, the totals over them, and the accounts that did not end well. Several shards of one
 * list each write their own; `popsync report merge` folds them into one (mergeBatchReports).
 *
 * Pure: rows in, report out, no clock and no files. A row holds the counts only, never a
 * message's subject or sender (those stay in the per-account reports of `--report-dir`) and
 * never a password: the endpoints are the displays `user@host:port` and an error is the text a
 * user already saw on stderr, which the POP3/IMAP layers redact before any error carries it.
 */
import type { RunResult } from '../engine/types.js';
import type { PlanReport } from './plan-types.js';

/**
 * The formats a batch report is written in (batch-render.ts). Here, not there, so that the
 * options naming them do not load the renderers, which only a run writing a report needs.
 */
export const BATCH_FORMATS = ['html', 'csv', 'json', 'table'] as const;
export type BatchFormat = (typeof BATCH_FORMATS)[number];

/** What `kind` says in every batch report's JSON: how `report merge` tells ours from any JSON. */
export const BATCH_REPORT_KIND = 'popsync-batch-report';

export type BatchCommand = 'plan' | 'migrate' | 'sync';

/** ok: exit 0; partial: some messages failed (exit 1); error: the account stopped (exit 2 and up). */
type AccountOutcome = 'ok' | 'partial' | 'error';

export interface BatchAccountRow {
  name: string;
  /** `user@host:port`; null when the account stopped before its endpoints were known. */
  source: string | null;
  destination: string | null;
  command: BatchCommand;
  outcome: AccountOutcome;
  exitCode: number;
  /** Why the account stopped (outcome 'error'); null otherwise. */
  error: string | null;
  listed: number;
  listedBytes: number;
  /** Plan: messages the next run would copy; a run: listed messages the journal had not seen. */
  new: number;
  newBytes: number;
  /** A run: copied by it (interrupted earlier copies it confirmed included); a plan: 0. */
  copied: number;
  copiedBytes: number;
  /**
   * A run: copies found already in the destination and adopted, not copied (a new, lost or
   * second journal); their bytes are not in copiedBytes. A plan: 0. Reports written before it
   * existed lack it and read as 0 (parseBatchReport).
   */
  adopted: number;
  alreadyCopied: number;
  /** A run: messages that failed; a plan: messages that would fail. */
  failed: number;
  deleted: number;
  startedAt: string | null;
  durationMs: number | null;
  /**
   * A run that wrote over one IMAP connection, one APPEND at a time, because the destination
   * refused a second one for the user: why, in the server's words as the run's summary gives
   * them (RunResult.oneImapConnection, redacted by then). Null otherwise, for a plan, for an
   * account stopped by an error, and in a report written before rows carried it
   * (parseBatchReport): what made one account of a batch slow, where the batch is read.
   */
  oneImapConnection: string | null;
}

interface BatchTotals {
  accounts: number;
  outcomes: Record<AccountOutcome, number>;
  listed: number;
  listedBytes: number;
  new: number;
  newBytes: number;
  copied: number;
  copiedBytes: number;
  adopted: number;
  alreadyCopied: number;
  failed: number;
  deleted: number;
}

export interface BatchReport {
  kind: typeof BATCH_REPORT_KIND;
  version: 1;
  generatedAt: string;
  /** The command of every row; 'mixed' only in a merge of reports of different commands. */
  command: BatchCommand | 'mixed';
  totals: BatchTotals;
  /** In list order; a merge sorts by name (shards interleave the list). */
  accounts: BatchAccountRow[];
}

function outcomeOf(exitCode: number): AccountOutcome {
  return exitCode === 0 ? 'ok' : exitCode === 1 ? 'partial' : 'error';
}

/** The row of an account whose migrate or sync run finished (exit 0 or 1). */
export function rowFromRun(name: string, result: RunResult, exitCode: number): BatchAccountRow {
  const copied = result.copied + result.reconciled;
  // The engine counts a copy that an interrupted run left unconfirmed, and this run found, both
  // as reconciled and (settled before planning) as already copied; a row counts it once, as
  // copied. A finished run settled every listed message: what it did not copy, adopt, fail or
  // skip was there before.
  const already = result.listed - copied - result.adopted - result.failed.length - result.skippedByRule;
  return {
    name,
    source: result.source,
    destination: result.destination,
    command: result.command,
    outcome: outcomeOf(exitCode),
    exitCode,
    error: null,
    listed: result.listed,
    listedBytes: result.listedBytes,
    new: result.newMessages,
    newBytes: 0,
    copied,
    copiedBytes: result.copiedBytes,
    adopted: result.adopted,
    alreadyCopied: Math.max(0, Math.min(result.alreadyCopied, already)),
    failed: result.failed.length,
    deleted: result.deleted,
    startedAt: result.startedAt,
    durationMs: result.durationMs,
    oneImapConnection: result.oneImapConnection ?? null,
  };
}

/** The row of an account `plan` planned. */
export function rowFromPlan(name: string, plan: PlanReport): BatchAccountRow {
  const t = plan.totals;
  return {
    name,
    source: plan.source,
    destination: plan.destination,
    command: 'plan',
    outcome: 'ok',
    exitCode: 0,
    error: null,
    listed: t.messages,
    listedBytes: t.bytes,
    new: t.new,
    newBytes: t.newBytes,
    copied: 0,
    copiedBytes: 0,
    adopted: 0,
    alreadyCopied: t.alreadyCopied,
    failed: t.wouldFail,
    deleted: 0,
    startedAt: null,
    durationMs: null,
    oneImapConnection: null,
  };
}

/** The row of an account that stopped with an error (exit 2 and up): its counts are unknown, so 0. */
export function rowFromError(name: string, command: BatchCommand, exitCode: number, error: string): BatchAccountRow {
  return {
    name,
    source: null,
    destination: null,
    command,
    outcome: outcomeOf(exitCode),
    exitCode,
    error,
    listed: 0,
    listedBytes: 0,
    new: 0,
    newBytes: 0,
    copied: 0,
    copiedBytes: 0,
    adopted: 0,
    alreadyCopied: 0,
    failed: 0,
    deleted: 0,
    startedAt: null,
    durationMs: null,
    oneImapConnection: null,
  };
}

function batchTotals(rows: readonly BatchAccountRow[]): BatchTotals {
  const t: BatchTotals = {
    accounts: rows.length,
    outcomes: { ok: 0, partial: 0, error: 0 },
    listed: 0,
    listedBytes: 0,
    new: 0,
    newBytes: 0,
    copied: 0,
    copiedBytes: 0,
    adopted: 0,
    alreadyCopied: 0,
    failed: 0,
    deleted: 0,
  };
  for (const r of rows) {
    t.outcomes[r.outcome]++;
    t.listed += r.listed;
    t.listedBytes += r.listedBytes;
    t.new += r.new;
    t.newBytes += r.newBytes;
    t.copied += r.copied;
    t.copiedBytes += r.copiedBytes;
    t.adopted += r.adopted;
    t.alreadyCopied += r.alreadyCopied;
    t.failed += r.failed;
    t.deleted += r.deleted;
  }
  return t;
}

export function buildBatchReport(rows: readonly BatchAccountRow[], generatedAt: Date): BatchReport {
  const commands = new Set(rows.map((r) => r.command));
  const [only] = commands;
  return {
    kind: BATCH_REPORT_KIND,
    version: 1,
    generatedAt: generatedAt.toISOString(),
    command: commands.size > 1 ? 'mixed' : (only ?? 'migrate'),
    totals: batchTotals(rows),
    accounts: [...rows],
  };
}

/** The accounts that did not end 0, worst exit code first, then by name: what a reader looks at first. */
export function batchFailures(report: BatchReport): BatchAccountRow[] {
  return report.accounts
    .filter((r) => r.exitCode !== 0)
    .sort((a, b) => b.exitCode - a.exitCode || a.name.localeCompare(b.name));
}

/** A report `report merge` was given, with the file it came from (for the errors). */
export interface NamedReport {
  file: string;
  report: BatchReport;
}

/**
 * Several shards' reports as one. An account in more than one (a shard retried after it
 * failed, a list run twice) counts once: the row from the report generated last, since a
 * retry's outcome replaces the first try's. Totals are recomputed over the rows kept, never
 * added up from the inputs, which would count such an account twice.
 */
export function mergeBatchReports(inputs: readonly NamedReport[], generatedAt: Date): BatchReport {
  const byName = new Map<string, { row: BatchAccountRow; at: string }>();
  const ordered = [...inputs].sort((a, b) => a.report.generatedAt.localeCompare(b.report.generatedAt));
  for (const { report } of ordered)
    for (const row of report.accounts) byName.set(row.name, { row, at: report.generatedAt });
  const rows = [...byName.values()].map((v) => v.row).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return buildBatchReport(rows, generatedAt);
}

/**
 * The batch report in `text` (a file's contents), or why it is not one. Checked field by
 * field, so a hand-edited or truncated file is named rather than merged into wrong totals.
 */
export function parseBatchReport(text: string): BatchReport | { problem: string } {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return { problem: 'not JSON' };
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return { problem: 'not a JSON object' };
  const o = value as Record<string, unknown>;
  if (o.kind !== BATCH_REPORT_KIND) {
    // A per-account report (`--report-dir`, or --report of one account) is a PlanReport.
    if (o.version === 1 && typeof o.source === 'string' && Array.isArray(o.messages))
      return { problem: "one account's report, not a batch report (merge the JSON of --report FILE.json)" };
    return { problem: `not a popsync batch report (no "kind": "${BATCH_REPORT_KIND}")` };
  }
  if (o.version !== 1) return { problem: `batch report version ${String(o.version)}; this popsync reads version 1` };
  if (typeof o.generatedAt !== 'string' || !Array.isArray(o.accounts))
    return { problem: 'a batch report without generatedAt or accounts' };
  for (const [i, r] of (o.accounts as unknown[]).entries()) {
    const bad = rowProblem(r);
    if (bad !== null) return { problem: `account ${i + 1}: ${bad}` };
    // A report from before rows counted adoption: none is known, so none is claimed.
    const row = r as Record<string, unknown>;
    if (row.adopted === undefined) row.adopted = 0;
    else if (!isCount(row.adopted))
      return { problem: `account ${i + 1}: ${row.name}: adopted is not a number of 0 or more` };
    // Nor before rows said an account ran over one IMAP connection: none is claimed.
    if (row.oneImapConnection === undefined) row.oneImapConnection = null;
    else if (row.oneImapConnection !== null && typeof row.oneImapConnection !== 'string')
      return { problem: `account ${i + 1}: ${row.name}: oneImapConnection is neither text nor null` };
  }
  return value as BatchReport;
}

const NUMBER_FIELDS = [
  'exitCode',
  'listed',
  'listedBytes',
  'new',
  'newBytes',
  'copied',
  'copiedBytes',
  'alreadyCopied',
  'failed',
  'deleted',
] as const;

function rowProblem(r: unknown): string | null {
  if (r === null || typeof r !== 'object') return 'not an object';
  const row = r as Record<string, unknown>;
  if (typeof row.name !== 'string' || row.name === '') return 'no name';
  for (const k of NUMBER_FIELDS) if (!isCount(row[k])) return `${row.name}: ${k} is not a number of 0 or more`;
  if (!['plan', 'migrate', 'sync'].includes(row.command as string)) return `${row.name}: unknown command`;
  if (row.outcome !== outcomeOf(row.exitCode as number)) return `${row.name}: outcome does not match exitCode`;
  return null;
}

function isCount(v: unknown): boolean {
  return typeof v === 'number' && Number.isFinite(v) && v >= 0;
}
