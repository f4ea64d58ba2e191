import { afterEach, describe, expect, it, vi } from 'vitest';
import { buildProgram } from '../../src/cli/main.js';
import { createContext } from '../../src/cli/context.js';
import { EXIT_CODES, EXIT_CODES_POINTER } from '../../src/cli/exit.js';

/** What `popsync ...args` writes to stdout before commander's exitOverride throws. */
async function stdoutOf(...args: string[]): Promise<string> {
  let out = '';
  const spy = vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    out += String(chunk);
    return true;
  });
  try {
    await buildProgram(createContext(new AbortController().signal)).parseAsync(['node', 'popsync', ...args]);
  } catch {
    // --help ends with a CommanderError (exit code 0) under exitOverride
  } finally {
    spy.mockRestore();
  }
  return out;
}

afterEach(() => vi.restoreAllMocks());

describe('exit-code table, printed once', () => {
  it('popsync help exit-codes prints every code with its meaning', async () => {
    const out = await stdoutOf('help', 'exit-codes');
    expect(out.split('\n')[0]).toBe('Exit codes:');
    // Each meaning in full, words in order, wrapped under itself where it would pass 80 columns.
    for (const e of EXIT_CODES)
      expect(out.replace(/\n {7}/g, ' ')).toContain(`  ${String(e.code).padEnd(5)}${e.meaning}`);
    expect(out).toContain('\n  1    the run finished');
  });

  it.each([
    [['help', 'exit-codes']],
    [['--help']],
    ...['migrate', 'sync', 'plan', 'status', 'verify', 'config', 'journal', 'auth', 'report', 'completion'].map((c) => [
      [c, '--help'],
    ]),
  ])('%j fits an 80-column terminal', async (args) => {
    const out = await stdoutOf(...args);
    expect(out.length).toBeGreaterThan(0);
    expect(out.split('\n').filter((l) => l.length > 80)).toEqual([]);
  });

  it.each([
    ['migrate'],
    ['sync'],
    ['plan'],
    ['status'],
    ['verify'],
  ])('%s --help points to it instead of repeating it', async (cmd) => {
    const out = await stdoutOf(cmd, '--help');
    expect(out).toContain('--help');
    expect(out).toContain(EXIT_CODES_POINTER);
    expect(out).not.toContain(EXIT_CODES[EXIT_CODES.length - 1]!.meaning);
  });

  it('the topic is not listed as a command', async () => {
    const out = await stdoutOf('--help');
    expect(out).toContain(EXIT_CODES_POINTER);
    expect(out).not.toMatch(/^\s+exit-codes/m);
  });
});

describe('a run builds only the command it runs', () => {
  const names = (only?: string) =>
    buildProgram(createContext(new AbortController().signal), only).commands.map((c) => c.name());
  it('migrate alone (and the hidden exit-codes topic); the same migrate as in the whole program', () => {
    expect(names('migrate')).toEqual(['migrate', 'exit-codes']);
    const alone = buildProgram(createContext(new AbortController().signal), 'migrate').commands[0]!;
    const whole = buildProgram(createContext(new AbortController().signal)).commands.find(
      (c) => c.name() === 'migrate',
    )!;
    expect(alone.options.map((o) => o.flags)).toEqual(whole.options.map((o) => o.flags));
    expect(alone.helpInformation()).toBe(whole.helpInformation());
  });
  it('all of them for no command, help, an option first, a mistyped name, and completion', () => {
    const all = names();
    expect(all).toContain('sync');
    expect(all.length).toBeGreaterThan(10);
    for (const first of [undefined, 'help', '--help', 'migrat', 'completion']) expect(names(first)).toEqual(all);
  });
});
