import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { Command } from 'commander';
import { buildProgram } from '../../src/cli/main.js';
import { createContext } from '../../src/cli/context.js';
import { EXIT_CODES } from '../../src/cli/exit.js';
import { packageVersion } from '../../src/cli/version.js';
import { renderManPage, roffText } from '../../lab/manpage.js';

const program = () => buildProgram(createContext(new AbortController().signal));

function allCommands(cmd: Command): Command[] {
  return [cmd, ...cmd.commands.flatMap(allCommands)];
}

describe('man page', () => {
  const page = renderManPage(program(), '9.8.7');

  it('documents every option of every command, as --help spells it', () => {
    for (const cmd of allCommands(program()).slice(1)) {
      const help = cmd.createHelp();
      for (const o of help.visibleOptions(cmd).filter((x) => x.long !== '--help')) {
        expect(page, `${cmd.name()} ${o.flags}`).toContain(roffText(help.optionTerm(o)));
        expect(page, `${cmd.name()} ${o.flags}`).toContain(roffText(help.optionDescription(o)));
      }
    }
  });

  it('has the exit-code table and the version', () => {
    expect(page).toMatch(/^\.TH POPSYNC 1 "" "popsync 9\.8\.7"/);
    for (const e of EXIT_CODES) expect(page).toContain(`.B ${e.code}\n${roffText(e.meaning)}`);
  });

  it('never starts a text line with a roff control character', () => {
    const body = page.split('\n').filter((l) => !/^\.(TH|SH|SS|TP|B|I|PP|br)( |$)/.test(l));
    for (const l of body) expect(l).not.toMatch(/^[.']/);
  });

  it('escapes backslashes and hyphens', () => {
    expect(roffText("--flag '\\Seen'")).toBe("\\-\\-flag '\\eSeen'");
    expect(roffText(".hidden\n'quoted")).toBe("\\&.hidden\n\\&'quoted");
  });
});

describe('--version', () => {
  it('is the version in package.json', () => {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
    expect(packageVersion()).toBe(pkg.version);
    expect(program().version()).toBe(pkg.version);
  });
});
