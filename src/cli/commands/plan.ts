/**
 * `popsync plan`: the dry run. Takes the same options as migrate (or a config file), asks the
 * source only UIDL, LIST and `TOP n 0` (headers, never bodies), reads the journal without
 * writing it (Journal.peek), and asks the destination only what exists (LOGIN, capabilities,
 * LIST/STATUS, SPECIAL-USE). The routing is the one migrate compiles from the same options, so
 * the plan says what the run will do. Decisions live in mapping/plan-report.ts; this file
 * gathers inputs and prints.
 */
import { InvalidArgumentError, Option, type Command } from 'commander';
import { headerHash, identify, needsHeaders, withRekeys } from '../../engine/identity.js';
import { joinListing, planCopy } from '../../engine/plan.js';
import { PopsyncError, isPopsyncError } from '../../errors.js';
import type { ImapSink } from '../../imap/types.js';
import { Journal, type MeasuredRate } from '../../journal/journal.js';
import type { Logger } from '../../log.js';
import { decodedHeader } from '../../mapping/decode.js';
import { messageIdOf, parseHeaders } from '../../mapping/headers.js';
import { appendLimitOf, buildPlanReport, type RoutedMessage } from '../../report/plan-report.js';
import { resolveRoles } from '../../engine/roles.js';
import { compileRouting } from '../../mapping/rules.js';
import type { Pop3Session } from '../../pop3/types.js';
import { PLAN_FORMATS, renderPlan, type PlanFormat } from '../../report/plan-render.js';
import type { PlanReport } from '../../report/plan-types.js';
import { formatBytes } from '../../report/summary.js';
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

/**
 * TOP commands in flight at once: pipelined, but bounded so 20,000 headers never sit in memory
 * together with their promises.
 */
const TOP_CHUNK = 500;
/** Stated in the report when no --rate is given; a modest broadband upload. */
const DEFAULT_RATE_MB = 1;

function rateOption(v: string): number {
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0)
    throw new InvalidArgumentError('--rate must be a number of megabytes per second above 0');
  return n;
}

/**
 * The rate the estimate uses: --rate when given, else what earlier runs of this account
 * measured (their servers and network, not a guess), else the stated assumption.
 */
export function rateFor(
  rateMBps: number | undefined,
  measured: () => MeasuredRate | null,
): { bytesPerSecond: number; basis: string } {
  if (rateMBps !== undefined) return { bytesPerSecond: rateMBps * 1024 * 1024, basis: `--rate ${rateMBps} MB/s` };
  const m = measured();
  if (m !== null) {
    const bps = (m.bytes / m.ms) * 1000;
    return {
      bytesPerSecond: bps,
      basis: `measured: ${m.runs} earlier run${m.runs === 1 ? '' : 's'}, ${formatBytes(Math.round(bps))}/s`,
    };
  }
  return {
    bytesPerSecond: DEFAULT_RATE_MB * 1024 * 1024,
    basis: `assumed ${DEFAULT_RATE_MB} MB/s (no --rate given; measure with a small migrate run)`,
  };
}

async function topAll(
  source: Pop3Session,
  ns: number[],
  logger: Logger,
): Promise<Map<number, Buffer | { error: string }>> {
  const out = new Map<number, Buffer | { error: string }>();
  for (let i = 0; i < ns.length; i += TOP_CHUNK) {
    const chunk = ns.slice(i, i + TOP_CHUNK);
    // The POP3 client pipelines when the server advertises PIPELINING: one burst per chunk.
    const got = await Promise.all(
      chunk.map((n) =>
        source.top(n, 0).then(
          (b): Buffer | { error: string } => b,
          (e: unknown) => {
            // -ERR for one message (deleted meanwhile, TOP refused) fails that message only.
            if (isPopsyncError(e) && e.kind === 'server') return { error: `the POP3 server refused TOP: ${e.message}` };
            throw e;
          },
        ),
      ),
    );
    chunk.forEach((n, k) => {
      out.set(n, got[k]!);
    });
    logger.debug({ done: Math.min(i + TOP_CHUNK, ns.length), of: ns.length }, 'TOP');
  }
  return out;
}

async function planAccount(
  job: AccountJob,
  o: { logger: Logger; rateMBps?: number; now?: () => Date },
): Promise<PlanReport> {
  const now = o.now ?? (() => new Date());
  const account = await resolveAccount(job.input, { logger: o.logger, createJournalDir: false });
  const routing = compileRouting(job.routing);
  const rows = Journal.peek(account.journalPath, { source: account.sourceKey }, account.sourceKey) ?? new Map();
  let sink: ImapSink | null = null;
  let source: Pop3Session | null = null;
  try {
    sink = await account.openSink();
    const roles = await resolveRoles(sink, routing.roles);
    const appendLimit = appendLimitOf(sink.capabilities);
    source = await account.openSource();
    const [sizes, uidls] = await Promise.all([source.list(), source.uidl()]);
    const listed = joinListing(sizes, uidls);
    const started = Date.now();
    // Identified as a run would (shared UIDLs, reused ones), without writing: the plan then
    // reads the journal as that run would leave it.
    const known = await topAll(source, needsHeaders(listed, rows, true), o.logger);
    const hashes = new Map([...known].flatMap(([n, h]) => (Buffer.isBuffer(h) ? [[n, headerHash(h)] as const] : [])));
    const id = identify(listed, rows, hashes, { uidlSupported: true, now: now() });
    const listing = id.listing;
    const identified = withRekeys(rows, id.rekeys);
    const plan = planCopy(listing, identified);
    const wanted = [...plan.copy, ...plan.invalid].sort((a, b) => a.n - b.n);
    const headers = new Map([
      ...known,
      ...(await topAll(
        source,
        wanted.map((m) => m.n).filter((n) => !known.has(n)),
        o.logger,
      )),
    ]);
    o.logger.info({ messages: wanted.length, ms: Date.now() - started }, 'read headers with TOP n 0');
    await source.quit().catch(() => undefined);
    source = null;

    const routed = new Map<number, RoutedMessage | { error: string }>();
    const at = now();
    for (const m of wanted) {
      const h = headers.get(m.n)!;
      if (!Buffer.isBuffer(h)) {
        routed.set(m.n, h);
        continue;
      }
      const fields = parseHeaders(h);
      routed.set(m.n, {
        routing: routing.route({ fields, size: m.size }, { now: at, roles }),
        subject: decodedHeader(fields, 'subject'),
        from: decodedHeader(fields, 'from'),
        messageId: messageIdOf(fields),
      });
    }
    const folders = new Set<string>();
    for (const r of routed.values()) if (!('error' in r)) folders.add(r.routing.folder);
    for (const m of plan.skip) {
      const f = identified.get(m.uidl)?.folder;
      if (f) folders.add(f);
    }
    const existing = new Set<string>();
    for (const f of folders) {
      try {
        await sink.status(f);
        existing.add(f);
      } catch (e) {
        // STATUS on a missing folder is the answer "would be created", not a failure.
        if (!(isPopsyncError(e) && e.kind === 'server')) throw e;
      }
    }
    const rate = rateFor(o.rateMBps, () =>
      Journal.measuredRate(account.journalPath, { source: account.sourceKey }, account.sourceKey),
    );
    return buildPlanReport({
      source: account.pop.display,
      destination: account.imap.display,
      generatedAt: at,
      listing,
      plan,
      rows: identified,
      routed,
      existingFolders: existing,
      appendLimit,
      skipLargerThan: job.routing.skipLargerThan ?? null,
      rate,
    });
  } finally {
    source?.destroy();
    await sink?.close().catch(() => undefined);
  }
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
    .option('--output <file>', 'write the report to this file instead of stdout (required for html)')
    .option('--rate <MBps>', 'transfer rate in megabytes per second for the time estimate', rateOption)
    .option(
      '--report <file>',
      'with --accounts: one batch report, a row per account, totals and failures first (.html, .csv, .json)',
    )
    .option('-v, --verbose', 'log protocol steps to stderr (passwords are never logged)')
    .option('--log-file <path>', 'also write a JSON-lines debug log to this file (mode 0600)');
  addReportDirOption(cmd);
  cmd.action((opts: Record<string, unknown>, command: Command) => runPlan(opts, command, ctx));
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
    const texts: string[] = [];
    const batch = batchReportTarget(opts);
    // A list plans every account whatever one of them says (a wrong password, a server down):
    // the failure is reported under its name, and the exit code is the worst.
    const { worst, rows } = await planBatch(jobs, async (job, index) => {
      const report = await planAccount(job, {
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
