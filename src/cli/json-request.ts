/**
 * Which command a failing command line asked for `--json`. A script reading stdout must get
 * one JSON object whatever command it ran and however it failed, also when commander refused
 * the line before the command's own handler ran, so main.ts decides this from argv and the
 * command tree rather than each command catching its own errors.
 */
import type { Command } from 'commander';

/**
 * The command's path as the user typed it ('status', 'journal forget-folder') when `args`
 * (argv without node and the script) names a command that takes --json and passes it;
 * undefined otherwise (no --json, an unknown command, a parent such as bare `journal`).
 */
export function jsonCommandPath(program: Command, args: readonly string[]): string | undefined {
  const end = args.indexOf('--');
  const own = end < 0 ? args : args.slice(0, end);
  if (!own.includes('--json')) return undefined;
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
  return cmd !== program && cmd.options.some((o) => o.long === '--json') ? path.join(' ') : undefined;
}
