/**
 * `popsync verify`: an audit of the destination against the journal, for the end of a migration
 * and for cron. Every copy the journal records must still be in its folder with the bytes that
 * were copied (sha256 of the stored message, streamed); what is missing, rewritten (with the
 * server setting that likely did it), different or there twice is listed by UIDL, and the exit
 * code is 1. It catches what a server does to mail after the APPEND, which no other step can.
 *
 * Reads only: the journal is opened read-only (safe while a sync runs), the destination is
 * read with EXAMINE and BODY.PEEK, and the POP3 server is never contacted (no POP3 password;
 * the POP3 user and host only name the journal).
 */
import type { Command } from 'commander';
import { auditCopies } from '../../engine/verifier.js';
import type { AuditFinding, AuditReport } from '../../engine/verify.js';
import { ExitCode, PopsyncError } from '../../errors.js';
import { Journal } from '../../journal/journal.js';
import type { Logger } from '../../log.js';
import { printable } from '../../report/summary.js';
import { accountJobs, resolveAccount, type AccountJob } from '../account.js';
import type { CommandContext } from '../context.js';
import { describeError } from '../exit.js';
import { addAccountOptions, addConfigOptions, addOutputOptions, outputOptions, sideFlags } from '../options.js';

const VERIFY_JSON_VERSION = 1;

interface AccountAudit extends AuditReport {
  /** The journal key. */
  account: string;
  /** The source as given (`user@host:port`), as the runs' summaries name it. */
  source: string;
  journal: string;
  destination: string;
}

const LABEL: Record<AuditFinding['status'], string> = {
  missing: 'missing',
  rewritten: 'rewritten',
  differs: 'different',
  unknown: 'cannot check',
  duplicated: 'duplicated',
};

/** Human output: one line when all is well, else one line per finding under a header. */
function formatAudit(a: AccountAudit): string {
  const head =
    `popsync verify: ${a.checked} cop${a.checked === 1 ? 'y' : 'ies'} of ${printable(a.source)} ` +
    `checked in ${printable(a.destination)}`;
  if (a.findings.length === 0) return `${head}: all as copied`;
  const lines = [`${head}: ${a.same} as copied, ${a.findings.length} finding${a.findings.length === 1 ? '' : 's'}`];
  for (const f of a.findings) lines.push(`  UIDL ${printable(f.uidl)}: ${LABEL[f.status]}: ${printable(f.detail)}`);
  return lines.join('\n');
}

async function auditOne(job: AccountJob, logger: Logger): Promise<AccountAudit> {
  const account = await resolveAccount(job.input, { logger, createJournalDir: false, source: false });
  const rows = Journal.peek(account.journalPath, { source: account.sourceKey }, account.sourceKey);
  if (rows === null)
    throw new PopsyncError('journal', `no journal at ${account.journalPath}`, {
      account: account.pop.display,
      hint: 'verify checks what a sync or migrate recorded: run one first, or name the journal with --journal',
    });
  const sink = await account.openSink();
  try {
    const report = await auditCopies(sink, [...rows.values()]);
    return {
      account: account.sourceKey,
      source: account.pop.display,
      journal: account.journalPath,
      destination: account.imap.display,
      ...report,
    };
  } finally {
    await sink.close().catch(() => undefined);
  }
}

/**
 * The generic 'no POP3 server given: use pop3s://...' read, to someone auditing the destination
 * with --journal and no --pop, as if verify would connect to POP3. It does not: the account's
 * user and host pick the journal and the rows in it.
 */
function requireSource(opts: Record<string, unknown>): void {
  const pop = sideFlags(opts, 'pop');
  // --account without --config has its own message (accountJobs): not this one.
  if ([opts.config, opts.account, pop.url, pop.host].some((v) => typeof v === 'string')) return;
  throw new PopsyncError('usage', 'verify needs the POP3 account whose copies it checks (--pop pop3s://user@host)', {
    hint:
      'its user and host pick the journal and the rows in it (also with --journal); ' +
      'verify never connects to the POP3 server and needs no POP3 password',
  });
}

export function registerVerify(program: Command, ctx: CommandContext): void {
  const cmd = program
    .command('verify')
    .description(
      'Audit the destination against the journal: every copy still there, byte for byte; missing, rewritten ' +
        'or duplicated copies listed by UIDL (exit 1). Reads only; needs no POP3 password.',
    );
  addConfigOptions(cmd);
  addAccountOptions(cmd);
  addOutputOptions(cmd);
  cmd.addHelpText(
    'after',
    '\nExample (weekly, after a migration):\n  popsync verify --pop pop3s://alice@pop.example.net \\\n' +
      '    --imap imaps://alice@imap.example.net --imap-password-file ~/.popsync/imap \\\n    --quiet',
  );
  cmd.action(async (opts: Record<string, unknown>, command: Command) => {
    const o = outputOptions(opts);
    const out = ctx.startOutput({ ...o, progress: false });
    try {
      requireSource(opts);
      const jobs = await accountJobs(opts, command);
      const audits: AccountAudit[] = [];
      const errors: Array<{ account: string; error: string }> = [];
      let worst: number = ExitCode.ok;
      for (const job of jobs) {
        try {
          const a = await auditOne(job, out.logger);
          audits.push(a);
          if (a.findings.length > 0) worst = Math.max(worst, ExitCode.partial);
          if (!o.json && (a.findings.length > 0 || !o.quiet)) process.stdout.write(formatAudit(a) + '\n');
        } catch (e) {
          // One account alone reports through main.ts; with several, the others are still audited.
          if (jobs.length === 1) throw e;
          const { code, message } = describeError(e);
          const name = job.input.name ?? job.input.pop.user ?? 'account';
          process.stderr.write(`popsync: account ${name}:\n${message}`);
          errors.push({ account: name, error: message.trim() });
          worst = Math.max(worst, code);
        }
      }
      if (o.json)
        process.stdout.write(
          JSON.stringify({ version: VERIFY_JSON_VERSION, ok: worst === ExitCode.ok, accounts: audits, errors }) + '\n',
        );
      process.exitCode = worst;
    } finally {
      out.stop();
    }
  });
}
