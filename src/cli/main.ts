/**
 * The program: parse the command line, run one command, print its report, set the exit code.
 * Commands return data and throw PopsyncError; this file and cli/exit.ts are the only places
 * that decide what the user sees on failure and which exit code it gets.
 */
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { ExitCode } from '../errors.js';
import type { RunResult } from '../engine/types.js';
import { createProgress } from '../report/progress.js';
import { formatSummary, summaryJson } from '../report/summary.js';
import { migrate, type SideFlags } from './commands/migrate.js';
import { describeError, EXIT_CODES_HELP } from './exit.js';
import { createLogger } from './logger.js';

function positiveInt(name: string) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError(`${name} must be a whole number above 0`);
    return n;
  };
}

const collect = (v: string, prev: string[]): string[] => [...prev, v];

function addSideOptions(cmd: Command, side: 'pop' | 'imap', label: string, scheme: string): Command {
  return cmd
    .option(`--${side} <url>`, `${label} account as a URL, e.g. ${scheme}://user@host[:port] (no password in it)`)
    .option(`--${side}-host <host>`, `${label} host (overrides the URL)`)
    .option(`--${side}-port <port>`, `${label} port`)
    .option(`--${side}-user <user>`, `${label} user name`)
    .addOption(new Option(`--${side}-tls <mode>`, `${label} connection security; 'none' sends the password in clear`).choices(['implicit', 'starttls', 'none']))
    .option(`--${side}-ca-file <path>`, `trust this CA (PEM) for ${label}, on top of the system CAs`)
    .option(`--${side}-insecure`, `do NOT verify the ${label} server's TLS certificate (dangerous)`)
    .option(`--${side}-password-env <name>`, `read the ${label} password from this environment variable`)
    .option(`--${side}-password-file <path>`, `read the ${label} password from this file (one trailing newline is ignored)`);
}

interface GlobalOpts {
  verbose?: boolean;
  quiet?: boolean;
  logFile?: string;
  json?: boolean;
  progress: boolean;
}

function sideFlags(o: Record<string, unknown>, side: 'pop' | 'imap'): SideFlags {
  const pick = (k: string) => o[`${side}${k}`] as string | undefined;
  const f: SideFlags = {};
  const set = <K extends keyof SideFlags>(key: K, v: SideFlags[K] | undefined) => {
    if (v !== undefined) f[key] = v;
  };
  set('url', o[side] as string | undefined);
  set('host', pick('Host'));
  set('port', pick('Port'));
  set('user', pick('User'));
  set('tls', pick('Tls'));
  set('caFile', pick('CaFile'));
  set('passwordEnv', pick('PasswordEnv'));
  set('passwordFile', pick('PasswordFile'));
  if (o[`${side}Insecure`] === true) f.insecure = true;
  if (side === 'pop') set('auth', pick('Auth'));
  return f;
}

export function buildProgram(run: (result: RunResult, opts: GlobalOpts) => void, state: { signal: AbortSignal }): Command {
  const program = new Command('popsync')
    .description('Move mail from POP3 mailboxes into IMAP mailboxes, exactly once, resumable after any crash.')
    .version('0.1.0')
    .showHelpAfterError('(run with --help for usage)')
    .configureOutput({ writeErr: (s) => process.stderr.write(s) })
    .exitOverride();

  const migrateCmd = new Command('migrate')
    .description('Copy every message of a POP3 mailbox into an IMAP folder. Safe to kill and rerun: the journal resumes it.')
    .exitOverride();
  addSideOptions(migrateCmd, 'pop', 'POP3 source', 'pop3s');
  migrateCmd.addOption(new Option('--pop-auth <method>', 'POP3 login method').choices(['auto', 'user', 'apop', 'plain', 'login']).default('auto'));
  addSideOptions(migrateCmd, 'imap', 'IMAP destination', 'imaps');
  migrateCmd
    .option('--journal <path>', 'state journal (SQLite); default ~/.local/state/popsync/<user@host:port>.sqlite')
    .option('--folder <name>', "destination folder, UTF-8, '/' between levels; created when missing", 'INBOX')
    .option('--flag <flag>', 'add this flag or keyword to every copy (repeatable), e.g. \\Seen or $Migrated', collect, [])
    .option('--no-arrival-date', 'give copies the copy time as arrival date instead of the date from their Received:/Date: headers')
    .option('--batch-messages <n>', 'messages fetched per pipelined batch', positiveInt('--batch-messages'), 50)
    .option('--batch-mb <n>', 'megabytes fetched per batch (bounds memory)', positiveInt('--batch-mb'), 16)
    .option('--timeout <seconds>', 'network inactivity timeout', positiveInt('--timeout'), 60)
    .option('--json', 'print the summary as one JSON object on stdout')
    .option('--no-progress', 'no spinner or progress bars')
    .option('-q, --quiet', 'print nothing unless something failed')
    .option('-v, --verbose', 'log protocol steps to stderr (passwords are never logged)')
    .option('--log-file <path>', 'also write a JSON-lines debug log to this file (mode 0600)')
    .addHelpText('after', `\nExample:\n  POP_PW=... IMAP_PW=... popsync migrate --pop pop3s://alice@pop.example.net \\\n    --imap imaps://alice@imap.example.net --pop-password-env POP_PW --imap-password-env IMAP_PW \\\n    --journal ./alice.sqlite\n\n${EXIT_CODES_HELP}`)
    .action(async (opts: Record<string, unknown>) => {
      const g = opts as unknown as GlobalOpts & Record<string, unknown>;
      const logger = createLogger({ verbose: g.verbose === true, quiet: g.quiet === true, ...(g.logFile ? { logFile: g.logFile } : {}) });
      const tty = process.stderr.isTTY === true && g.progress !== false && g.json !== true;
      const progress = createProgress({ tty, quiet: g.quiet === true || g.progress === false });
      try {
        const result = await migrate({
          pop: sideFlags(opts, 'pop'),
          imap: sideFlags(opts, 'imap'),
          ...(typeof opts.journal === 'string' ? { journal: opts.journal } : {}),
          folder: opts.folder as string,
          flags: opts.flag as string[],
          arrivalDate: opts.arrivalDate !== false,
          batchMessages: opts.batchMessages as number,
          batchBytes: (opts.batchMb as number) * 1024 * 1024,
          timeoutSeconds: opts.timeout as number,
          logger,
          progress: progress.listener,
          signal: state.signal,
        });
        progress.stop();
        run(result, g);
      } finally {
        progress.stop();
      }
    });
  program.addCommand(migrateCmd);
  program.addHelpText('after', `\n${EXIT_CODES_HELP}`);
  return program;
}

export async function main(argv: string[]): Promise<void> {
  const controller = new AbortController();
  let interrupts = 0;
  const onSignal = (sig: NodeJS.Signals) => {
    interrupts++;
    if (interrupts > 1) {
      // The journal is consistent at every instant, so leaving now loses nothing.
      process.stderr.write('\npopsync: stopped; run again to resume\n');
      process.exit(ExitCode.interrupted);
    }
    process.stderr.write(`\npopsync: ${sig}: finishing the message in flight (press Ctrl-C again to stop at once)\n`);
    controller.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  const program = buildProgram(
    (result, opts) => {
      if (opts.json) process.stdout.write(summaryJson(result) + '\n');
      else if (!opts.quiet || result.failed.length > 0) process.stdout.write(formatSummary(result) + '\n');
      process.exitCode = result.failed.length > 0 ? ExitCode.partial : ExitCode.ok;
    },
    { signal: controller.signal },
  );
  try {
    await program.parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      // --help and --version end here with code 0; usage mistakes were already printed by commander.
      process.exitCode = err.exitCode === 0 ? 0 : ExitCode.usage;
      return;
    }
    const { code, message } = describeError(err);
    process.stderr.write(message.endsWith('\n') ? message : message + '\n');
    process.exitCode = code;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
