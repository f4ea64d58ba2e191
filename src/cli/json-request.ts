/**
 * Which command a failing command line asked for JSON. A script reading stdout must get one
 * JSON object whatever command it ran and however it failed, also when commander refused the
 * line before the command's own handler ran, so main.ts decides this from argv and the command
 * tree rather than each command catching its own errors.
 *
 * `--format json` asks for JSON as much as `--json` does (plan documents them as the same, and
 * `report merge` has only the former): a script that asked either way parses stdout, so an
 * error gives it the error object too, not an empty stdout.
 */
import type { Command } from 'commander';

/** `--format json` or `--format=json` among the arguments. */
function asksFormatJson(args: readonly string[]): boolean {
  return args.some((a, i) => a === '--format=json' || (a === '--format' && args[i + 1] === 'json'));
}

/**
 * The command's path as the user typed it ('status', 'journal forget-folder') when `args`
 * (argv without node and the script) names a command that takes --json and passes it, or takes
 * `--format json` and passes that; undefined otherwise (neither, an unknown command, a parent
 * such as bare `journal`).
 */
export function jsonCommandPath(program: Command, args: readonly string[]): string | undefined {
  const end = args.indexOf('--');
  const own = end < 0 ? args : args.slice(0, end);
  const json = own.includes('--json');
  const format = asksFormatJson(own);
  if (!json && !format) return undefined;
  const path: string[] = [];
  let cmd = program;
  for (const arg of own) {
    if (cmd.commands.length === 0) break;
    if (arg.startsWith('-')) continue;
    const sub = cmd.commands.find((c) => c.name() === arg || c.aliases().includes(arg));
    if (sub === undefined) return undefined;
    path.push(sub.name());
    cmd = sub;
  }
  if (cmd === program) return undefined;
  const takes = (name: string) => cmd.options.find((o) => o.long === name);
  const formats = takes('--format')?.argChoices;
  const asked = (json && takes('--json') !== undefined) || (format && formats?.includes('json') === true);
  return asked ? path.join(' ') : undefined;
}
