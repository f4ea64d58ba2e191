/**
 * `popsync plan`: the dry run. Takes the same options as migrate (or a config file) and prints
 * what the run would do, message by message: app/plan-account.ts is that run with its side
 * effects switched off. This file only parses, calls and prints.
 */
import { InvalidArgumentError, Option, type Command } from 'commander';
import { PopsyncError, isPopsyncError } from '../../errors.js';
import { PLAN_FORMATS, type PlanFormat } from '../../report/plan-types.js';
import type { PlanReport } from '../../report/plan-types.js';
import { buildBatchReport, rowFromError, rowFromPlan, type BatchAccountRow } from '../../report/batch-report.js';
import { accountJobs, resolveAccount, type AccountJob } from '../account.js';
import { describeError } from '../exit.js';
import { accountName, errorLine } from '../jobs.js';
import type { CommandContext } from '../context.js';
import {
  accountReportTargets,
  addReportDirOption,
  batchReportTarget,
  writeAtomically,
  writeBatchReport,
  writePlanReports,
} from '../report-file.js';
import {
  addAccountListOptions,
  addAccountOptions,
  addConfigOptions,
  addRoutingOptions,
  addTransferOptions,
  outputOptions,
} from '../options.js';

function rateOption(v: string): number {
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0)
    throw new InvalidArgumentError('--rate must be a number of megabytes per second above 0');
  return n;
}

export function registerPlan(program: Command, ctx: CommandContext): void {
  const cmd = program
    .command('plan')
    .description(
      'Dry run: show where every message would go, with which flags and date, and what would fail. Reads ' +
        'headers only (TOP n 0); writes nothing.',
    );
  addConfigOptions(cmd);
  addAccountListOptions(cmd);
  addAccountOptions(cmd);
  addRoutingOptions(cmd);
  addTransferOptions(cmd);
  cmd
    .addOption(new Option('--format <format>', 'output format').choices([...PLAN_FORMATS]).default('table'))
    .option('--json', 'the same as --format json, as every other command says it')
    .option('--output <file>', 'write the report to this file instead of stdout (required for html)')
    .option('--rate <MBps>', 'transfer rate in megabytes per second for the time estimate', rateOption)
    .option(
      '--report <file>',
      'with --accounts: one batch report, a row per account, totals and failures first (.html, .csv, .json)',
    )
    .option('-v, --verbose', 'log protocol steps to stderr (passwords are never logged)')
    .option('--log-file <path>', 'also write a debug log of text lines to this file (mode 0600)');
  addReportDirOption(cmd);
  cmd.action((opts: Record<string, unknown>, command: Command) => {
    if (opts.json === true) {
      if (command.getOptionValueSource('format') === 'cli' && opts.format !== 'json')
        throw new PopsyncError('usage', `--json and --format ${String(opts.format)} contradict each other`);
      return runPlan({ ...opts, format: 'json' }, command, ctx);
    }
    return runPlan(opts, command, ctx);
  });
}

/**
 * What `plan` does; also `migrate --dry-run` and `sync --dry-run`, with their own options
 * (the ones plan shares mean the same), so a dry run is the plan and cannot drift from it.
 */
async function runPlan(opts: Record<string, unknown>, command: Command, ctx: CommandContext): Promise<void> {
  const format = opts.format as PlanFormat;
  const output = typeof opts.output === 'string' ? opts.output : undefined;
  if (format === 'html' && output === undefined) throw new PopsyncError('usage', '--format html needs --output FILE');
  const jobs = await accountJobs(opts, command, { createJournalDir: false });
  if (jobs.length > 1 && format !== 'table' && format !== 'markdown') {
    throw new PopsyncError(
      'usage',
      `--format ${format} holds one account's plan; ` +
        `${typeof opts.accounts === 'string' ? opts.accounts : 'the config'} has ${jobs.length}`,
      {
        hint:
          typeof opts.accounts === 'string'
            ? 'use --format table or markdown for a list'
            : 'pick one with --account NAME',
      },
    );
  }
  if (opts.report !== undefined && typeof opts.accounts !== 'string')
    throw new PopsyncError('usage', 'plan --report FILE is the batch report of --accounts', {
      hint: "for one account's plan use --output FILE",
    });
  const out = ctx.startOutput({ ...outputOptions(opts), progress: false, json: false });
  try {
    // Loaded here, not with the CLI: previewing and the four renderers are a dozen modules that
    // every other command (migrate, sync: their --dry-run included) would load at start-up.
    const [{ planAccount }, { renderPlan }] = await Promise.all([
      import('../../app/plan-account.js'),
      import('../../report/plan-render.js'),
    ]);
    const texts: string[] = [];
    const batch = batchReportTarget(opts);
    // A list plans every account whatever one of them says (a wrong password, a server down):
    // the failure is reported under its name, and the exit code is the worst.
    const { worst, rows } = await planBatch(jobs, async (job, index) => {
      const account = await resolveAccount(job.input, { logger: out.logger, createJournalDir: false });
      const report = await planAccount(account, job, {
        logger: out.logger,
        ...(typeof opts.rate === 'number' ? { rateMBps: opts.rate } : {}),
      });
      texts.push(renderPlan(report, format));
      const name = job.input.name;
      const named = name === undefined ? report : { ...report, name };
      await writePlanReports(named, accountReportTargets(opts, { name, index, count: jobs.length }));
      return report;
    });
    const text = texts.join('\n');
    if (output !== undefined) writeAtomically(output, text);
    else process.stdout.write(text);
    if (batch) await writeBatchReport(buildBatchReport(rows, new Date()), batch);
    process.exitCode = worst;
  } finally {
    out.stop();
  }
}

/** Plans each job in turn; with several, one that fails is reported on stderr and the rest go on. */
async function planBatch(
  jobs: readonly AccountJob[],
  one: (job: AccountJob, index: number) => Promise<PlanReport>,
): Promise<{ worst: number; rows: BatchAccountRow[] }> {
  let worst = 0;
  const rows: BatchAccountRow[] = [];
  for (const [index, job] of jobs.entries()) {
    const name = accountName(job);
    try {
      rows.push(rowFromPlan(name, await one(job, index)));
    } catch (e) {
      if (jobs.length === 1 || (isPopsyncError(e) && e.kind === 'interrupted')) throw e;
      const { code, message } = describeError(e);
      process.stderr.write(`popsync: account ${name}:\n${message}`);
      rows.push(rowFromError(name, 'plan', code, errorLine(e)));
      worst = Math.max(worst, code);
    }
  }
  return { worst, rows };
}

/** `migrate --dry-run` / `sync --dry-run`: the plan as a table, or as JSON with --json. */
export function dryRun(opts: Record<string, unknown>, command: Command, ctx: CommandContext): Promise<void> {
  if (opts.every !== undefined) throw new PopsyncError('usage', '--dry-run prints one plan: drop --every');
  // A dry run writes no report: --report and --report-dir describe the real run's outcome.
  const { report: _report, reportDir: _dir, reportFormat: _format, ...planOpts } = opts;
  return runPlan({ ...planOpts, format: opts.json === true ? 'json' : 'table' }, command, ctx);
}
