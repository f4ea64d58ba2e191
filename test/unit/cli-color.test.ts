import { clearLine, cursorTo, moveCursor } from 'node:readline';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { colorAllowed } from '../../src/cli/color.js';
import { createContext } from '../../src/cli/context.js';
import { buildProgram } from '../../src/cli/main.js';
import { outputOptions } from '../../src/cli/options.js';
import type { ProgressEvent } from '../../src/engine/types.js';
import { loadTtyLibraries } from '../../src/report/progress.js';

describe('colorAllowed', () => {
  it('is no for any non-empty NO_COLOR and for --no-color', () => {
    expect(colorAllowed({}, true)).toBe(true);
    expect(colorAllowed({ NO_COLOR: '' }, true)).toBe(true);
    expect(colorAllowed({ NO_COLOR: '1' }, true)).toBe(false);
    expect(colorAllowed({ NO_COLOR: 'false' }, true)).toBe(false);
    expect(colorAllowed({}, false)).toBe(false);
  });

  it('--no-color and --no-progress are accepted by every command, --no-color read by outputOptions', () => {
    const program = buildProgram(createContext(new AbortController().signal));
    const leaves = (c: typeof program): Array<typeof program> =>
      c.commands.length === 0 ? [c] : c.commands.flatMap(leaves);
    for (const cmd of leaves(program).filter((c) => c.name() !== 'exit-codes')) {
      expect(
        cmd.options.some((o) => o.long === '--no-color'),
        cmd.name(),
      ).toBe(true);
      // --no-progress too: `status --no-progress` was "unknown option", so a wrapper could not pass it blindly.
      expect(cmd.options.filter((o) => o.long === '--no-progress').length, cmd.name()).toBe(1);
    }
    expect(outputOptions({ color: false }).color).toBe(false);
    expect(outputOptions({}).color).toBe(true);
  });
});

describe('progress on a terminal', () => {
  beforeAll(() => loadTtyLibraries());
  const stderr = process.stderr as unknown as Record<string, unknown>;
  const saved = ['isTTY', 'columns', 'cursorTo', 'moveCursor', 'clearLine'].map((k) => [k, stderr[k]] as const);
  afterEach(() => {
    vi.unstubAllEnvs();
    vi.restoreAllMocks();
    for (const [k, v] of saved) stderr[k] = v;
  });

  /** stderr of a short copy drawn by startOutput, with stderr pretending to be a terminal. */
  function drawn(color: boolean): string {
    let err = '';
    // What ora and cli-progress use of a tty.WriteStream (vitest's stderr is a pipe).
    Object.assign(stderr, {
      isTTY: true,
      columns: 100,
      cursorTo: (x: number, y?: number) => cursorTo(process.stderr, x, y),
      moveCursor: (dx: number, dy: number) => moveCursor(process.stderr, dx, dy),
      clearLine: (dir: -1 | 0 | 1) => clearLine(process.stderr, dir),
    });
    vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
      err += String(chunk);
      return true;
    });
    const out = createContext(new AbortController().signal).startOutput({
      json: false,
      progress: true,
      color,
      quiet: false,
      verbose: false,
    });
    const events: ProgressEvent[] = [
      { type: 'phase', phase: 'connect-source', detail: 'alice@pop.example.net:995' },
      { type: 'plan', toCopy: 2, toCopyBytes: 2048, alreadyCopied: 0, newToJournal: false },
      { type: 'phase', phase: 'copying' },
      { type: 'message', uidl: 'u1', bytes: 1024, outcome: 'copied' },
      { type: 'message', uidl: 'u2', bytes: 1024, outcome: 'copied' },
    ];
    events.forEach(out.progress);
    out.stop();
    return err;
  }

  it('draws with escapes by default (so the checks below can fail)', () => {
    vi.stubEnv('NO_COLOR', '');
    expect(drawn(true)).toContain('\x1b[');
  });

  it('NO_COLOR=1: plain lines, no escape at all', () => {
    vi.stubEnv('NO_COLOR', '1');
    const err = drawn(true);
    expect(err).toContain('popsync: 2 messages (2.0 KiB) to copy');
    expect(err).not.toContain('\x1b');
  });

  it('--no-color: plain lines, no escape at all', () => {
    const err = drawn(false);
    expect(err).toContain('popsync: 2 messages (2.0 KiB) to copy');
    expect(err).not.toContain('\x1b');
  });
});
