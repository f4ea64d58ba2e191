/**
 * The completion scripts work in the real shells (test/scripts/ensure-env.sh installs zsh and
 * fish): for commands, subcommands, options, option values with fixed choices, and values that
 * fall back to file names.
 * - bash: the script is sourced and its function run as programmable completion would run it.
 * - zsh: an interactive zsh on a pseudo-terminal runs compinit, loads the script and gets the
 *   line and a TAB (test/support/zsh-complete.zsh prints what the completion system offered).
 * - fish: `complete -C` prints what fish would offer for the line.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT, runCli } from '../support/cli.js';

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

describe('popsync completion zsh and fish, in the real shells', () => {
  const dir = mkdtempSync(join(tmpdir(), 'popsync-completion-'));
  const scripts = { zsh: join(dir, '_popsync'), fish: join(dir, 'popsync.fish') };
  beforeAll(async () => {
    for (const shell of ['zsh', 'fish'] as const) {
      const r = await runCli(['completion', shell]);
      expect(r.code, r.stderr).toBe(0);
      writeFileSync(scripts[shell], r.stdout);
    }
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const zsh = (line: string): string[] =>
    execFileSync('zsh', ['-f', join(ROOT, 'test', 'support', 'zsh-complete.zsh'), scripts.zsh, line], {
      encoding: 'utf8',
      timeout: 60_000,
    })
      .split('\n')
      .filter((w) => w !== '')
      .sort();
  // fish prints "word<TAB>description" per match.
  const fish = (line: string): string[] =>
    execFileSync('fish', ['--no-config', '-c', `source ${scripts.fish}; complete -C ${JSON.stringify(line)}`], {
      encoding: 'utf8',
      timeout: 60_000,
    })
      .split('\n')
      .filter((w) => w !== '')
      .map((w) => w.split('\t')[0]!)
      .sort();

  it.each([
    ['zsh', zsh],
    ['fish', fish],
  ] as const)('%s completes commands, subcommands, options and choices; files for other values', (_, complete) => {
    expect(complete('popsync mi')).toEqual(['migrate']);
    expect(complete('popsync s')).toEqual(['status', 'sync']);
    expect(complete('popsync sync --ev')).toEqual(['--every']);
    expect(complete('popsync sync --pop pop3s://a@b --log-format ')).toEqual(['json', 'text']);
    expect(complete('popsync sync --pop-tls s')).toEqual(['starttls']);
    expect(complete('popsync journal ')).toContain('forget-folder');
    expect(complete('popsync journal forget-folder --fo')).toEqual(['--folder']);
    expect(complete('popsync completion ')).toEqual(['bash', 'fish', 'zsh']);
    // A value of an option without choices: file names.
    // (zsh also offers the folders on the way, as it completes a path a component at a time.)
    expect(complete(`popsync migrate --journal ${dir}/popsync.f`).filter((w) => w.endsWith('.fish'))).toEqual([
      expect.stringMatching(/popsync\.fish$/),
    ]);
  });
});
