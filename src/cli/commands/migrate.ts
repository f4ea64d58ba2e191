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
import { withLockedJournal } from '../../engine/lock.js';
import { runEngine } from '../../engine/run.js';
import { ExitCode, isPopsyncError } from '../../errors.js';
import { compileRouting, engineRouter } from '../../mapping/rules.js';
import { resolvingRoles } from '../../mapping/roles.js';
import { accountJobs, resolveAccount, type AccountJob } from '../account.js';
import type { CommandContext, CommandOutput } from '../context.js';
import { describeError } from '../exit.js';
import { addAccountOptions, addConfigOptions, addOutputOptions, addRoutingOptions, addTransferOptions, outputOptions } from '../options.js';

async function migrateOne(job: AccountJob, out: CommandOutput, ctx: CommandContext): Promise<void> {
  const account = await resolveAccount(job.input, { logger: out.logger });
  const routing = compileRouting(job.routing);
  const sink = resolvingRoles(routing.roles, account.openSink);
  out.logger.debug({ journal: account.journalPath }, 'journal');
  // The account lock: two overlapping runs on one account must never both copy.
  await withLockedJournal(account.journalPath, account.sourceKey, { command: 'migrate', logger: out.logger, signal: ctx.signal }, async (journal) => {
    const result = await runEngine({
      command: 'migrate',
      account: account.sourceKey,
      sourceDisplay: account.pop.display,
      destination: account.imap.display,
      journal,
      openSource: account.openSource,
      openSink: sink.openSink,
      route: engineRouter(routing, { roles: sink.roles }),
      logger: out.logger,
      batchMessages: job.batchMessages,
      batchBytes: job.batchBytes,
      retry: { maxAttempts: job.reconnectAttempts },
      progress: out.progress,
      signal: ctx.signal,
    });
    out.finish(result);
  });
}

export function registerMigrate(program: Command, ctx: CommandContext): void {
  const cmd = program
    .command('migrate')
    .description('Copy every message of a POP3 mailbox into an IMAP folder. Safe to kill and rerun: the journal resumes it.');
  addConfigOptions(cmd);
  addAccountOptions(cmd);
  addRoutingOptions(cmd);
  addTransferOptions(cmd);
  addOutputOptions(cmd);
  cmd.addHelpText(
    'after',
    `\nExamples:\n  POP_PW=... IMAP_PW=... popsync migrate --pop pop3s://alice@pop.example.net \\\n    --imap imaps://alice@imap.example.net --pop-password-env POP_PW --imap-password-env IMAP_PW \\\n    --journal ./alice.sqlite\n  popsync migrate --config popsync.yml [--account alice]`,
  );
  cmd.action(async (opts: Record<string, unknown>, command: Command) => {
    const jobs = accountJobs(opts, command);
    let worst: number = ExitCode.ok;
    for (const job of jobs) {
      const out = ctx.startOutput(outputOptions(opts));
      try {
        await migrateOne(job, out, ctx);
        worst = Math.max(worst, Number(process.exitCode ?? 0));
      } catch (e) {
        // One account alone behaves as before: the error goes to main.ts.
        if (jobs.length === 1 || (isPopsyncError(e) && e.kind === 'interrupted')) throw e;
        const { code, message } = describeError(e);
        const who = job.input.name ?? job.input.pop.user ?? 'account';
        process.stderr.write(`popsync: account ${who}:\n${message}`);
        worst = Math.max(worst, code);
      } finally {
        out.stop();
      }
    }
    process.exitCode = worst;
  });
}
