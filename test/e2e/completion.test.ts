/**
 * `popsync completion bash` works in a real bash: the script is sourced and its function run
 * as bash's programmable completion would run it, for commands, subcommands, options, option
 * values with fixed choices, and a value that should fall back to file names. (zsh and fish
 * are not installed here; their scripts are checked structurally in test/unit.)
 */
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { runCli } from '../support/cli.js';

let script: string;

/** The words bash would offer for `line` (completing its last word; '' after a trailing space). */
function complete(line: string): string[] {
  const words = line.split(' ');
  const program = [
    script,
    `COMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')})`,
    `COMP_CWORD=${words.length - 1}`,
    '_popsync',
    // biome-ignore lint/suspicious/noTemplateCurlyInString: a bash array expansion, not a JS placeholder
    'printf "%s\\n" "${COMPREPLY[@]}"',
  ].join('\n');
  return execFileSync('bash', ['--norc', '-c', program], { encoding: 'utf8' })
    .split('\n')
    .filter((w) => w !== '');
}

describe('popsync completion bash', () => {
  it('completes commands, subcommands, options and choices; files for other values', async () => {
    const r = await runCli(['completion', 'bash']);
    expect(r.code, r.stderr).toBe(0);
    script = r.stdout;
    expect(complete('popsync mi')).toEqual(['migrate']);
    expect(complete('popsync s')).toEqual(['sync', 'status']);
    expect(complete('popsync sync --ev')).toEqual(['--every']);
    expect(complete('popsync sync --pop pop3s://a@b --log-format ')).toEqual(['text', 'json']);
    expect(complete('popsync sync --pop-tls s')).toEqual(['starttls']);
    expect(complete('popsync journal ')).toEqual(['forget-folder', '-h', '--help']);
    expect(complete('popsync journal forget-folder --fo')).toEqual(['--folder']);
    expect(complete('popsync completion ').slice(0, 3)).toEqual(['bash', 'zsh', 'fish']);
    // A value of an option without choices: nothing here, so bash falls back to file names.
    expect(complete('popsync migrate --journal ')).toEqual([]);
  });

  it('refuses a shell it does not know: exit 2', async () => {
    const r = await runCli(['completion', 'tcsh']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/bash, zsh, fish/);
  });
});
