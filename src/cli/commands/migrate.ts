/**
 * `popsync migrate`: copy every message of a POP3 mailbox into IMAP, resumable. Thin on
 * purpose: decisions live in engine/ and mapping/, words for the user in report/ and
 * cli/exit.ts. Throws PopsyncError; never exits the process itself.
 */
import type { Command } from 'commander';
import { runEngine } from '../../engine/run.js';
import { Journal } from '../../journal/journal.js';
import { singleFolderRouter } from '../../mapping/route.js';
import { resolveAccount } from '../account.js';
import type { CommandContext } from '../context.js';
import { addAccountOptions, addOutputOptions, addRoutingOptions, addTransferOptions, outputOptions, sideFlags } from '../options.js';

export function registerMigrate(program: Command, ctx: CommandContext): void {
  const cmd = program
    .command('migrate')
    .description('Copy every message of a POP3 mailbox into an IMAP folder. Safe to kill and rerun: the journal resumes it.');
  addAccountOptions(cmd);
  addRoutingOptions(cmd);
  addTransferOptions(cmd);
  addOutputOptions(cmd);
  cmd.addHelpText(
    'after',
    `\nExample:\n  POP_PW=... IMAP_PW=... popsync migrate --pop pop3s://alice@pop.example.net \\\n    --imap imaps://alice@imap.example.net --pop-password-env POP_PW --imap-password-env IMAP_PW \\\n    --journal ./alice.sqlite`,
  );
  cmd.action(async (opts: Record<string, unknown>) => {
    const out = ctx.startOutput(outputOptions(opts));
    try {
      const account = await resolveAccount(
        { pop: sideFlags(opts, 'pop'), imap: sideFlags(opts, 'imap'), ...(typeof opts.journal === 'string' ? { journal: opts.journal } : {}), timeoutSeconds: opts.timeout as number },
        { logger: out.logger },
      );
      out.logger.debug({ journal: account.journalPath }, 'journal');
      const journal = Journal.open(account.journalPath, { source: account.sourceKey });
      try {
        const result = await runEngine({
          command: 'migrate',
          account: account.sourceKey,
          sourceDisplay: account.pop.display,
          destination: account.imap.display,
          journal,
          openSource: account.openSource,
          openSink: account.openSink,
          route: singleFolderRouter({ folder: opts.folder as string, flags: opts.flag as string[], keepCopyDate: opts.arrivalDate === false }),
          logger: out.logger,
          batchMessages: opts.batchMessages as number,
          batchBytes: (opts.batchMb as number) * 1024 * 1024,
          retry: { maxAttempts: opts.reconnectAttempts as number },
          progress: out.progress,
          signal: ctx.signal,
        });
        out.finish(result);
      } finally {
        journal.close();
      }
    } finally {
      out.stop();
    }
  });
}
