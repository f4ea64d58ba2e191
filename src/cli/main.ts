/**
 * The program: parse the command line, run one command, set the exit code. Commands register
 * themselves (cli/commands/*), return data through their output and throw PopsyncError; this
 * file and cli/exit.ts are the only places that decide what the user sees on failure.
 */
import { Command, CommanderError } from 'commander';
import { ExitCode, PopsyncError } from '../errors.js';
import { registerAuth } from './commands/auth.js';
import { registerCompletion } from './commands/completion.js';
import { registerMigrate } from './commands/migrate.js';
import { registerPlan } from './commands/plan.js';
import { registerReport } from './commands/report.js';
import { registerConfig } from './commands/config.js';
import { registerJournal } from './commands/journal.js';
import { registerStatus } from './commands/status.js';
import { registerSync } from './commands/sync.js';
import { registerVerify } from './commands/verify.js';
import { createContext, type CommandContext } from './context.js';
import { describeError, EXIT_CODES_HELP, EXIT_CODES_POINTER, writeErrorJson } from './exit.js';
import { announce, loadTtyLibraries } from '../report/progress.js';
import { interruptNotice } from '../app/interrupt.js';
import { packageVersion } from './version.js';
import { jsonCommandPath } from './json-request.js';

/** Each command adds itself to the program; the order is the order in --help. */
const COMMANDS: ReadonlyArray<readonly [string, (program: Command, ctx: CommandContext) => void]> = [
  ['migrate', registerMigrate],
  ['plan', registerPlan],
  ['sync', registerSync],
  ['status', registerStatus],
  ['verify', registerVerify],
  ['journal', registerJournal],
  ['config', registerConfig],
  ['auth', registerAuth],
  ['report', registerReport],
  ['completion', registerCompletion],
];

/** Commands that read the whole program (the completion scripts list every command's options). */
const WHOLE_PROGRAM: ReadonlySet<string> = new Set(['completion']);

/**
 * The program; with `only` naming a command, that command alone (its options, help, errors and
 * exit codes are the same), as a run of it needs no other: building all ten cost every process
 * ~4 ms of CPU. Anything else (no command, `help`, a mistyped name) gets them all.
 */
export function buildProgram(ctx: CommandContext, only?: string): Command {
  const program = new Command('popsync')
    .description('Move mail from POP3 mailboxes into IMAP mailboxes, exactly once, resumable after any crash.')
    .version(packageVersion())
    .showHelpAfterError('(run with --help for usage)')
    .configureOutput({
      writeErr: (s) => process.stderr.write(s),
      // Commander's "error: unknown option '--bogus'" in popsync's own form, as every other
      // error reads: cron mail from several tools says which one spoke. Commands inherit it.
      outputError: (s, write) => write(s.replace(/^error: /, 'popsync: ')),
    })
    .exitOverride();
  const one = WHOLE_PROGRAM.has(only ?? '') ? undefined : COMMANDS.find(([name]) => name === only);
  for (const [, register] of one ? [one] : COMMANDS) register(program, ctx);
  // Accepted by every command, so a wrapper script can pass it blindly (see cli/color.ts).
  for (const cmd of leafCommands(program)) {
    cmd.option('--no-color', 'no colour or terminal escapes: plain progress lines (also NO_COLOR=1)');
    // Likewise --no-progress: a command that draws none (status, report, config check ...) accepts
    // it and does nothing with it, as a wrapper passes it to every command it runs.
    if (!cmd.options.some((o) => o.long === '--no-progress'))
      cmd.option('--no-progress', 'accepted and ignored: this command draws no progress');
  }
  for (const cmd of program.commands) {
    cmd.exitOverride();
    cmd.showHelpAfterError('(run with --help for usage)');
    cmd.addHelpText('after', `\n${EXIT_CODES_POINTER}`);
  }
  program.addHelpText('after', `\n${EXIT_CODES_POINTER}`);
  registerExitCodesTopic(program);
  return program;
}

function leafCommands(cmd: Command): Command[] {
  return cmd.commands.length === 0 ? [cmd] : cmd.commands.flatMap(leafCommands);
}

/**
 * `popsync help exit-codes`: commander's help command shows the help of the command it names,
 * so the topic is a hidden command whose help is the table (hidden: not a thing to run, and
 * not in the command list or the man page, which has its own EXIT STATUS section).
 */
function registerExitCodesTopic(program: Command): void {
  program
    .command('exit-codes', { hidden: true })
    .description('The exit codes and what they mean.')
    .configureHelp({ formatHelp: () => `${EXIT_CODES_HELP}\n` })
    .exitOverride()
    .action(() => {
      process.stdout.write(`${EXIT_CODES_HELP}\n`);
    });
}

/** Commands that store mail: the first signal lets them finish the batches being stored. */
const COPYING_COMMANDS: ReadonlySet<string> = new Set(['migrate', 'sync']);

/**
 * Whether the command about to run may draw a spinner and bars (cli/context.ts decides, per
 * account): only then are ora and cli-progress loaded, ~20 ms of CPU at a terminal. `--version`,
 * `status`, `plan`, a `--json` or `--no-progress` run there draw none and load neither.
 */
function mayDrawProgress(action: Command): boolean {
  const o = action.opts();
  return (
    COPYING_COMMANDS.has(action.name()) &&
    o.progress !== false &&
    o.json !== true &&
    o.quiet !== true &&
    o.dryRun !== true
  );
}

export async function main(argv: string[]): Promise<void> {
  // `popsync ... | head` closes stdout early: that is the reader's choice, not a crash.
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
      throw e;
    });
  }
  const controller = new AbortController();
  const idle = { between: false };
  let interrupts = 0;
  const command = argv.slice(2).find((a) => !a.startsWith('-'));
  let jsonCommand: string | undefined;
  const onSignal = (sig: NodeJS.Signals) => {
    interrupts++;
    if (!COPYING_COMMANDS.has(command ?? '')) {
      // plan, verify, status and config only read (a plan file is written synchronously, so
      // never half): there is no batch to finish, and they do not watch the signal.
      const text = `interrupted (${sig}); nothing was changed`;
      if (jsonCommand !== undefined) writeErrorJson(new PopsyncError('interrupted', text), jsonCommand);
      process.stderr.write(`\npopsync: ${text}\n`);
      process.exit(ExitCode.interrupted);
    }
    if (idle.between) {
      // `sync --every` between cycles: nothing is in flight, the loop ends and exits 0.
      controller.abort();
      return;
    }
    if (interrupts > 1) {
      // The journal is consistent at every instant, so leaving now loses nothing.
      process.stderr.write('\npopsync: stopped; run again to resume\n');
      process.exit(ExitCode.interrupted);
    }
    announce(interruptNotice(sig));
    controller.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  // A script that asked any command for --json reads one object from stdout, also when the run
  // fails or the command line itself was wrong (commander stops before the command's handler).
  // migrate and sync print theirs per account; writeErrorJson never prints one error twice.
  try {
    // Only when the command comes first: `popsync --help migrate` shows the whole program's help.
    const program = buildProgram(createContext(controller.signal, idle), argv[2]);
    jsonCommand = jsonCommandPath(program, argv.slice(2));
    program.hook('preAction', async (_program, action) => {
      if (process.stderr.isTTY === true && mayDrawProgress(action)) await loadTtyLibraries();
    });
    await program.parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      // --help and --version end here with code 0; usage mistakes were already printed by commander.
      process.exitCode = err.exitCode === 0 ? 0 : ExitCode.usage;
      if (err.exitCode !== 0 && jsonCommand !== undefined) writeErrorJson(err, jsonCommand);
      return;
    }
    if (jsonCommand !== undefined) writeErrorJson(err, jsonCommand);
    const { code, message } = describeError(err);
    process.exitCode = code;
    const text = message.endsWith('\n') || message === '' ? message : message + '\n';
    // Interrupted: a connect the interrupt abandoned (interrupt.ts) may hold its socket until
    // --timeout. Everything of ours is closed by now (journal, lock), so nothing is lost by not waiting.
    if (code === ExitCode.interrupted) process.stderr.write(text, () => process.exit(code));
    else process.stderr.write(text);
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
