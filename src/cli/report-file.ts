/**
 * Report files: `plan --output` and `migrate`/`sync --report`. Where the file goes (one per
 * account when a config runs several), which format a name asks for, and writing it so that a
 * reader (a browser reloading, a script polling) never sees half of it.
 */
import { basename, dirname, extname, join } from 'node:path';
import { Option, type Command } from 'commander';
import type { RunResult } from '../engine/types.js';
import { PopsyncError } from '../errors.js';
import { PLAN_FORMATS, type PlanFormat } from '../report/plan-types.js';
import { writePrivateFile } from './private-file.js';

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
  return cmd
    .option(
      '--report <file>',
      'after the run, write what it did per message (the report `plan` prints, with copied/failed/skipped); ' +
        'one file per account with several',
    )
    .addOption(
      new Option(
        '--report-format <format>',
        'report format (default: from the file name: .html, .csv, .md, .json, else table)',
      ).choices([...PLAN_FORMATS]),
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
  const given = opts.report;
  const format = (opts.reportFormat as PlanFormat | undefined) ?? reportFormatFor(given);
  if (account.count <= 1) return { path: given, format };
  const tag = (account.name ?? String(account.index + 1)).replace(/[^A-Za-z0-9@._-]+/g, '_');
  const ext = extname(given);
  return { path: join(dirname(given), `${basename(given, ext)}.${tag}${ext}`), format };
}

/** Renders and writes the report of one finished run; the renderers load only when a report is asked for. */
export async function writeRunReport(result: RunResult, target: ReportTarget, now: Date = new Date()): Promise<void> {
  const [{ renderPlan }, { buildRunReport }] = await Promise.all([
    import('../report/plan-render.js'),
    import('../report/run-report.js'),
  ]);
  writeAtomically(target.path, renderPlan(buildRunReport(result, now), target.format));
}
