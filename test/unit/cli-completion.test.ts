import { describe, expect, it } from 'vitest';
import { commandModel, completionScript, type CommandSpec } from '../../src/cli/completion.js';
import { createContext } from '../../src/cli/context.js';
import { buildProgram } from '../../src/cli/main.js';

const model = commandModel(buildProgram(createContext(new AbortController().signal)));

function leaves(cs: readonly CommandSpec[], path: string[] = []): Array<{ path: string[]; c: CommandSpec }> {
  return cs.flatMap((c) =>
    c.subcommands.length === 0 || c.name === 'completion'
      ? [{ path: [...path, c.name], c }]
      : leaves(c.subcommands, [...path, c.name]),
  );
}

describe('popsync completion', () => {
  it('the model is the commander program: every visible command, hidden ones and help left out', () => {
    const names = model.map((c) => c.name);
    expect(names).toEqual(
      expect.arrayContaining(['migrate', 'plan', 'sync', 'status', 'verify', 'journal', 'completion']),
    );
    expect(names).not.toContain('exit-codes');
    expect(names).not.toContain('help');
    const sync = model.find((c) => c.name === 'sync')!;
    expect(sync.options.find((o) => o.long === '--every')).toMatchObject({ takesValue: true });
    expect(sync.options.find((o) => o.long === '--log-format')).toMatchObject({ choices: ['text', 'json'] });
    expect(sync.options.find((o) => o.long === '--quiet')).toMatchObject({ short: '-q', takesValue: false });
    expect(model.find((c) => c.name === 'completion')!.subcommands.map((s) => s.name)).toEqual(['bash', 'zsh', 'fish']);
  });

  it('each shell script names every command and every option of every command', () => {
    const bash = completionScript('bash', model);
    const zsh = completionScript('zsh', model);
    const fish = completionScript('fish', model);
    for (const { path, c } of leaves(model)) {
      const name = path.at(-1)!;
      expect(bash, name).toMatch(new RegExp(`\\b${name}\\)`));
      expect(fish, name).toContain(`-a ${name}`);
      for (const o of c.options) {
        const long = o.long!;
        expect(bash, `${path.join(' ')} ${long}`).toMatch(new RegExp(`words="[^"]*${long}( |")`));
        expect(zsh, `${path.join(' ')} ${long}`).toContain(o.short ? `{${o.short},${long}}'[` : `'${long}[`);
        expect(fish, `${path.join(' ')} ${long}`).toContain(`-l ${long.slice(2)} `);
      }
    }
  });

  it('descriptions cannot break out of the quoting of zsh and fish', () => {
    const hostile: CommandSpec[] = [
      {
        name: 'x',
        description: "it's [a] test: with 'quotes' \\ and more",
        options: [{ long: '--y', takesValue: true, description: "a 'b' [c]: d" }],
        subcommands: [],
      },
    ];
    const zsh = completionScript('zsh', hostile);
    expect(zsh).toContain("'x:it s a test with quotes and more'");
    expect(zsh).toContain("'--y[a b c d]:value:_files'");
    expect(completionScript('fish', hostile)).toContain("-d 'a  b  [c]: d'");
  });
});
