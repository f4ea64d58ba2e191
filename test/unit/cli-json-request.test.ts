import { describe, expect, it } from 'vitest';
import { createContext } from '../../src/cli/context.js';
import { jsonCommandPath } from '../../src/cli/json-request.js';
import { buildProgram } from '../../src/cli/main.js';

const program = buildProgram(createContext(new AbortController().signal));

describe('jsonCommandPath: which command a failing line asked for --json', () => {
  it('every command that takes --json, under the name the user typed', () => {
    for (const path of [
      'migrate',
      'sync',
      'plan',
      'status',
      'verify',
      'journal forget-folder',
      'config check',
      'auth list',
    ])
      expect(jsonCommandPath(program, [...path.split(' '), '--json']), path).toBe(path);
    expect(jsonCommandPath(program, ['--json', 'status', '--pop', 'x'])).toBe('status');
  });

  it('none without --json, after --, on a parent command, an unknown one or one without the option', () => {
    expect(jsonCommandPath(program, ['status', '--pop', 'x'])).toBeUndefined();
    expect(jsonCommandPath(program, ['status', '--', '--json'])).toBeUndefined();
    expect(jsonCommandPath(program, ['journal', '--json'])).toBeUndefined();
    expect(jsonCommandPath(program, ['statsu', '--json'])).toBeUndefined();
    expect(jsonCommandPath(program, ['report', 'merge', 'a.json', '--json'])).toBeUndefined();
  });

  it('--format json asks for JSON as --json does, on the commands whose --format offers it', () => {
    expect(jsonCommandPath(program, ['plan', '--format', 'json'])).toBe('plan');
    expect(jsonCommandPath(program, ['plan', '--format=json', '--pop', 'x'])).toBe('plan');
    expect(jsonCommandPath(program, ['report', 'merge', '--format', 'json', 'a.json'])).toBe('report merge');
    expect(jsonCommandPath(program, ['plan', '--format', 'csv'])).toBeUndefined();
    expect(jsonCommandPath(program, ['plan', '--format', 'json-ish'])).toBeUndefined();
    expect(jsonCommandPath(program, ['plan', '--', '--format', 'json'])).toBeUndefined();
    // migrate's --report-format writes a file, not stdout; and migrate has no --format.
    expect(jsonCommandPath(program, ['migrate', '--report-format', 'json'])).toBeUndefined();
    expect(jsonCommandPath(program, ['migrate', '--format', 'json'])).toBeUndefined();
  });
});
