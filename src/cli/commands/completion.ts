/** `popsync completion bash|zsh|fish`: prints the shell's completion script (cli/completion.ts). */
import { Argument, type Command } from 'commander';
import { commandModel, completionScript, SHELLS, type Shell } from '../completion.js';

export function registerCompletion(program: Command): void {
  program
    .command('completion')
    .description(
      'Print a shell completion script: bash (source <(popsync completion bash)), zsh or fish; its first ' +
        'lines say where to install it.',
    )
    .addArgument(new Argument('<shell>', 'the shell').choices(SHELLS))
    .action((shell: Shell) => {
      process.stdout.write(completionScript(shell, commandModel(program)));
    });
}
