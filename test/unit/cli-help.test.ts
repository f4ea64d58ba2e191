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
