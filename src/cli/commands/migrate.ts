/**
 * `popsync migrate`: copy every message of a POP3 mailbox into IMAP, resumable. Thin on
 * purpose: decisions live in engine/ and mapping/, words for the user in report/ and
 * cli/exit.ts. Throws PopsyncError; never exits the process itself.
 *
 * With a config file of several accounts, the accounts run one after another; a failure of
 * one is reported and the next still runs, and the exit code is the highest any account got
 * (so cron sees the worst). An interruption stops them all.
 */
import type { Command } from 'commander';
import { dryRun } from './plan.js';
import { accountJobs } from '../account.js';
import type { CommandContext } from '../context.js';
import { writeErrorJson } from '../exit.js';
import { batchView, namesAccounts, runAccountJob, runJobs, tee } from '../jobs.js';
import { addReportOptions, accountReportTargets, batchReportTarget } from '../report-file.js';
import {
  addAccountListOptions,
  addAccountOptions,
  addConfigOptions,
  addLockOptions,
  addOutputOptions,
  addParallelOptions,
  addRoutingOptions,
  addTransferOptions,
  outputOptions,
  parallelOptions,
} from '../options.js';

export function registerMigrate(program: Command, ctx: CommandContext): void {
  const cmd = program
    .command('migrate')
    .description(
      'Copy every message of a POP3 mailbox into IMAP: one folder, or the folders chosen by config rules. ' +
        'Safe to kill and rerun: the journal resumes it.',
    );
  addConfigOptions(cmd);
  addAccountListOptions(cmd);
  addParallelOptions(cmd);
  addAccountOptions(cmd);
  addRoutingOptions(cmd);
  addTransferOptions(cmd);
  addOutputOptions(cmd);
  addLockOptions(cmd);
  addReportOptions(cmd);
  cmd.addHelpText(
    'after',
    `\nExamples:\n  POP_PW=... IMAP_PW=... popsync migrate --pop pop3s://alice@pop.example.net \\\n    ` +
      `--imap imaps://alice@imap.example.net \\\n    --pop-password-env POP_PW --imap-password-env IMAP_PW \\\n    ` +
      `--journal ./alice.sqlite\n  popsync migrate --config popsync.yml [--account alice]`,
  );
  cmd.option('--dry-run', 'print the plan (what `popsync plan` prints; --json for its JSON) and change nothing');
  cmd.action(async (opts: Record<string, unknown>, command: Command) => {
    if (opts.dryRun === true) return dryRun(opts, command, ctx);
    // --json: one object per account also when it fails (exit.ts errorJson), as for sync.
    const json = outputOptions(opts).json;
    const jobs = await accountJobs(opts, command).catch((e: unknown) => {
      if (json) writeErrorJson(e, 'migrate');
      throw e;
    });
    const wait = typeof opts.wait === 'number' ? opts.wait : undefined;
    const named = namesAccounts(opts);
    // A Map, not jobs.indexOf per job: a list of 100,000 accounts would be 5e9 comparisons.
    const position = new Map(jobs.map((j, i) => [j, i]));
    const batchReport = batchReportTarget(opts);
    const view = batchView(outputOptions(opts), 'migrate', jobs.length);
    process.exitCode = await runJobs(
      jobs,
      async (job, hooks) => {
        const o = outputOptions(opts);
        const out = ctx.startOutput(
          hooks.ownProgress ? o : { ...o, progress: false },
          named ? job.input.name : undefined,
        );
        try {
          const where = { name: job.input.name, index: position.get(job)!, count: jobs.length };
          const reports = accountReportTargets(opts, where);
          const result = await runAccountJob(job, {
            command: 'migrate',
            logger: out.logger,
            progress: tee(out.progress, hooks.progress),
            signal: ctx.signal,
            reports,
            ...(job.input.name === undefined ? {} : { name: job.input.name }),
            ...(wait === undefined ? {} : { waitSeconds: wait }),
          });
          hooks.result(result);
          return out.finish(result);
        } catch (e) {
          if (json) writeErrorJson(e, 'migrate', process.stdout, named ? job.input.name : undefined);
          throw e;
        } finally {
          out.stop();
        }
      },
      {
        ...parallelOptions(opts),
        signal: ctx.signal,
        ...(named && !json ? { total: outputOptions(opts).quiet ? 'failures' : 'always' } : {}),
        ...(batchReport ? { report: { command: 'migrate' as const, target: batchReport } } : {}),
        ...(view ? { view } : {}),
      },
    );
  });
}
