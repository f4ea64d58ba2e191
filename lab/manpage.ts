/**
 * popsync(1), generated from the commander program itself: the same Option objects and help
 * formatter that print `--help`, walked command by command, so the man page cannot disagree
 * with the help text. `npm pack` runs it (package.json `prepack`); the page is not committed,
 * because every helper adding an option would otherwise have to remember to regenerate it.
 *
 * Lives under lab/ (excluded from the package) because only packaging needs it.
 *
 *   tsx lab/manpage.ts man/popsync.1
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { buildProgram } from '../src/cli/main.js';
import { createContext } from '../src/cli/context.js';
import { EXIT_CODES } from '../src/cli/exit.js';
import { packageVersion } from '../src/cli/version.js';

/** Text as roff reads it: backslashes escaped, and no line starting with a control character. */
export function roffText(s: string): string {
  return s
    .replace(/\\/g, '\\e')
    .replace(/-/g, '\\-')
    .split('\n')
    .map((line) => (/^[.']/.test(line) ? `\\&${line}` : line))
    .join('\n');
}

function commandPath(cmd: Command): string {
  const names: string[] = [];
  for (let c: Command | null = cmd; c; c = c.parent) names.unshift(c.name());
  return names.join(' ');
}

function visibleSubcommands(cmd: Command): Command[] {
  return cmd
    .createHelp()
    .visibleCommands(cmd)
    .filter((c) => c.name() !== 'help');
}

/** The commands that do something: `config check`, not `config`. */
function leaves(cmd: Command): Command[] {
  const sub = visibleSubcommands(cmd);
  return sub.length === 0 ? [cmd] : sub.flatMap(leaves);
}

function usageLine(cmd: Command): string {
  const help = cmd.createHelp();
  return [commandPath(cmd), '[options]', ...help.visibleArguments(cmd).map((a) => help.argumentTerm(a))].join(' ');
}

/** The sections of one command and, depth first, of its subcommands. */
function commandSection(cmd: Command, out: string[]): void {
  const help = cmd.createHelp();
  const sub = visibleSubcommands(cmd);
  const options = help.visibleOptions(cmd).filter((o) => o.long !== '--help');
  if (options.length > 0 || sub.length === 0) {
    out.push(`.SS "${roffText(usageLine(cmd))}"`);
    out.push(roffText(help.commandDescription(cmd)));
    for (const o of options) out.push('.TP', `.B ${roffText(help.optionTerm(o))}`, roffText(help.optionDescription(o)));
  }
  for (const c of sub) commandSection(c, out);
}

export function renderManPage(program: Command, version: string): string {
  const help = program.createHelp();
  const commands = visibleSubcommands(program);
  const out = [
    `.TH POPSYNC 1 "" "popsync ${roffText(version)}" "User Commands"`,
    '.SH NAME',
    `popsync \\- ${roffText(help.commandDescription(program).replace(/\.$/, ''))}`,
    '.SH SYNOPSIS',
    ...commands.flatMap(leaves).flatMap((c) => ['.B popsync', roffText(usageLine(c).replace(/^popsync /, '')), '.br']),
    '.SH DESCRIPTION',
    roffText(
      'popsync copies the messages of a POP3 mailbox into an IMAP mailbox exactly once. A SQLite journal ' +
        'records every step, so a run killed at any instant resumes where it stopped. Passwords come from an ' +
        'environment variable, a file or a prompt, never from the command line.',
    ),
    '.SH COMMANDS',
  ];
  for (const c of commands) commandSection(c, out);
  out.push('.SH "EXIT STATUS"');
  for (const e of EXIT_CODES) out.push('.TP', `.B ${e.code}`, roffText(e.meaning));
  out.push(
    '.SH FILES',
    '.TP',
    '.I ~/.local/state/popsync/<user@host>.sqlite',
    roffText(
      'The default journal of a source account ($XDG_STATE_HOME/popsync when set). Created mode 0600. Beside ' +
        "it (and beside a --journal file, or the file a symlinked one names): SQLite's -wal and -shm, the lock " +
        'file .lock, and -step, which a run ' +
        'rewrites after each journal transaction (its start time, pid, host name and a count; no secret) and ' +
        'removes when it ends cleanly. Copy or restore a journal with its -wal and -step, and never delete them ' +
        'after a killed run: without them the journal is refused (exit 5).',
    ),
    '.TP',
    '.I ~/.cache/popsync/code-<key>.bin',
    roffText(
      "A V8 code cache of popsync's own program ($XDG_CACHE_HOME/popsync when set), so that a run does not " +
        'compile it again: written once per build and Node.js version, mode 0600 in a directory of mode 0700, ' +
        'and read only when owned by the user, writable by no one else and whole (its SHA-256 checked). ' +
        'Deleting it is always safe. POPSYNC_NO_CODE_CACHE=1 turns it off; POPSYNC_DEBUG_CODE_CACHE=1 ' +
        'prints a line on what it did.',
    ),
    '.SH "SEE ALSO"',
    roffText(
      'The README shipped with the package (lib/node_modules/popsync/README.md under the npm prefix) has ' +
        'examples for cron, systemd and containers.',
    ),
  );
  return out.join('\n') + '\n';
}

function main(target: string): void {
  const page = renderManPage(buildProgram(createContext(new AbortController().signal)), packageVersion());
  mkdirSync(dirname(target), { recursive: true });
  writeFileSync(target, page);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const target = process.argv[2];
  if (target === undefined) {
    process.stderr.write('usage: tsx lab/manpage.ts OUTPUT\n');
    process.exitCode = 2;
  } else main(target);
}
