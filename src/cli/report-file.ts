/**
 * Report files: `plan --output` and `migrate`/`sync --report`. Where the file goes (one per
 * account when a config runs several), which format a name asks for, and writing it so that a
 * reader (a browser reloading, a script polling) never sees half of it.
 */
import { basename, dirname, extname, join } from 'node:path';
import { Option, type Command } from 'commander';
import type { RunResult } from '../engine/types.js';
import { PopsyncError } from '../errors.js';
import { BATCH_FORMATS, type BatchFormat, type BatchReport } from '../report/batch-report.js';
import { PLAN_FORMATS, type PlanFormat, type PlanReport } from '../report/plan-types.js';
import { writePrivateFile } from './private-file.js';
import { makeDirs } from './make-dirs.js';

/**
 * A report names senders and subjects: it is written 0600 like the journal, through an
 * exclusive temporary file (private-file.ts), so a reader never sees half of it and a planted
 * symlink never redirects it.
 */
export function writeAtomically(path: string, text: string): void {
  try {
    writePrivateFile(path, text);
  } catch (e) {
    throw new PopsyncError('usage', `cannot write ${path}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
  }
}

export interface ReportTarget {
  path: string;
  format: PlanFormat;
}

const BY_EXTENSION: Record<string, PlanFormat> = {
  '.html': 'html',
  '.htm': 'html',
  '.csv': 'csv',
  '.md': 'markdown',
  '.markdown': 'markdown',
  '.json': 'json',
};

/** The format a file name asks for; anything unknown gets the terminal table, which reads anywhere. */
export function reportFormatFor(path: string): PlanFormat {
  return BY_EXTENSION[extname(path).toLowerCase()] ?? 'table';
}

export function addReportOptions(cmd: Command): Command {
  return addReportDirOption(
    cmd
      .option(
        '--report <file>',
        'after the run, write what it did per message (the report `plan` prints); with --accounts, one batch report: ' +
          'a row per account, totals and failures first (.html, .csv, .json)',
      )
      .addOption(
        new Option(
          '--report-format <format>',
          'report format (default: from the file name: .html, .csv, .md, .json, else table)',
        ).choices([...PLAN_FORMATS]),
      ),
  );
}

export function addReportDirOption(cmd: Command): Command {
  return cmd.option(
    '--report-dir <dir>',
    "write each account's report into this folder as <name>.json and <name>.html (created 0700 when missing)",
  );
}

/**
 * The report file for one account of `count`. One account: the name as given. Several: the
 * account's name before the extension (`report.alice.html`), because every format holds one
 * source and one destination, and a combined file would mix two journals' meanings of
 * "already copied".
 */
export function reportTarget(
  opts: Record<string, unknown>,
  account: { name?: string | undefined; index: number; count: number },
): ReportTarget | undefined {
  if (typeof opts.report !== 'string') {
    if (opts.reportFormat !== undefined) throw new PopsyncError('usage', '--report-format needs --report FILE');
    return undefined;
  }
  // A list's --report is the batch report (batchReportTarget); its accounts' reports go to --report-dir.
  if (typeof opts.accounts === 'string') return undefined;
  const given = opts.report;
  const format = (opts.reportFormat as PlanFormat | undefined) ?? reportFormatFor(given);
  if (account.count <= 1) return { path: given, format };
  const tag = (account.name ?? String(account.index + 1)).replace(/[^A-Za-z0-9@._-]+/g, '_');
  const ext = extname(given);
  return { path: join(dirname(given), `${basename(given, ext)}.${tag}${ext}`), format };
}

/** Every report file of one account: `--report` (one account, or a config's) and `--report-dir`. */
export function accountReportTargets(
  opts: Record<string, unknown>,
  account: { name?: string | undefined; index: number; count: number },
): ReportTarget[] {
  const one = reportTarget(opts, account);
  return [...(one ? [one] : []), ...reportDirTargets(opts, account)];
}

/**
 * `--report-dir DIR`: the account's report as JSON (for scripts) and HTML (for people), named
 * by the account as its journal is. An account without a name (one given by flags) is
 * `account`, or its position in a config.
 */
function reportDirTargets(
  opts: Record<string, unknown>,
  account: { name?: string | undefined; index: number; count: number },
): ReportTarget[] {
  if (typeof opts.reportDir !== 'string') return [];
  const tag = fileTag(account.name ?? (account.count <= 1 ? 'account' : String(account.index + 1)));
  return [
    { path: join(opts.reportDir, `${tag}.json`), format: 'json' },
    { path: join(opts.reportDir, `${tag}.html`), format: 'html' },
  ];
}

/** A name safe as one path component: CSV names already are (no '/'), config names may not be. */
function fileTag(name: string): string {
  const tag = name.replace(/[^A-Za-z0-9@._+-]+/g, '_');
  return tag === '.' || tag === '..' ? `_${tag}` : tag;
}

export interface BatchReportTarget {
  path: string;
  format: BatchFormat;
}

const BATCH_BY_EXTENSION: Record<string, BatchFormat> = {
  '.html': 'html',
  '.htm': 'html',
  '.csv': 'csv',
  '.json': 'json',
};

/** The format of a batch report file: from --report-format when given (html, csv, json, table), else the name. */
export function batchFormatFor(path: string, given?: unknown): BatchFormat {
  if (given !== undefined) {
    if (!(BATCH_FORMATS as readonly unknown[]).includes(given))
      throw new PopsyncError('usage', `a batch report is html, csv, json or table, not ${String(given)}`);
    return given as BatchFormat;
  }
  return BATCH_BY_EXTENSION[extname(path).toLowerCase()] ?? 'table';
}

/** `--report FILE` with `--accounts`: where the one batch report goes. */
export function batchReportTarget(opts: Record<string, unknown>): BatchReportTarget | undefined {
  if (typeof opts.accounts !== 'string' || typeof opts.report !== 'string') return undefined;
  return { path: opts.report, format: batchFormatFor(opts.report, opts.reportFormat) };
}

export async function writeBatchReport(report: BatchReport, target: BatchReportTarget): Promise<void> {
  const { renderBatch } = await import('../report/batch-render.js');
  // Made here, not refused: a missing folder found only after hours of batch would lose the report.
  ensureDir(dirname(target.path));
  writeAtomically(target.path, renderBatch(report, target.format));
}

/** Writes a plan or run report in each format asked for; the renderers load only when one is. */
export async function writePlanReports(report: PlanReport, targets: readonly ReportTarget[]): Promise<void> {
  if (targets.length === 0) return;
  const { renderPlan } = await import('../report/plan-render.js');
  for (const t of targets) {
    ensureDir(dirname(t.path));
    writeAtomically(t.path, renderPlan(report, t.format));
  }
}

/** Renders and writes the report of one finished run, named by its account when it has one. */
export async function writeRunReport(
  result: RunResult,
  targets: readonly ReportTarget[],
  name?: string,
  now: Date = new Date(),
): Promise<void> {
  const { buildRunReport } = await import('../report/run-report.js');
  await writePlanReports(buildRunReport(result, now, name), targets);
}

/** A report folder is made 0700: its files name senders and subjects. */
function ensureDir(dir: string): void {
  try {
    makeDirs(dir, 0o700);
  } catch (e) {
    throw new PopsyncError('usage', `cannot create ${dir}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
  }
}
