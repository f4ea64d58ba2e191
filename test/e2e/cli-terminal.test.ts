/**
 * Progress on a real terminal, as a user at a shell sees it: the built binary under script(1)
 * on a pseudo-terminal 100 columns wide, against the lab. Unit tests draw the bars through the
 * sources; only the binary shows what the bundle does with the terminal libraries (its chunk of
 * cli-progress, a CommonJS package, exported only `default`, and the first bar threw "MultiBar
 * is not a constructor" as an internal error).
 */
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { realisticMix } from '../../lab/corpus.js';
import type { Lab } from '../../lab/dovecot.js';
import { BIN, runCli } from '../support/cli.js';
import { labArgs, useLab } from '../support/lab-fixture.js';

let lab: Lab;
let dir: string;

useLab('tty', {}, (l, d) => {
  lab = l;
  dir = d;
});

/** What a 100x30 terminal received from `args`, with the exit code echoed after it. */
function onTerminal(args: string[], env: Record<string, string> = {}): Promise<string> {
  // Arguments are lab user names, ports and temp paths: no quoting needed beyond single quotes.
  const command = `stty cols 100 rows 30; node ${BIN} ${args.map((a) => `'${a}'`).join(' ')}; echo "exit=$?"`;
  return new Promise((resolve) => {
    const child = spawn('script', ['-qfec', command, '/dev/null'], {
      env: { ...process.env, PW: lab.password, HOME: dir, NO_COLOR: '', ...env },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const out: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.on('close', () => resolve(Buffer.concat(out).toString('utf8')));
  });
}

let traces = 0;
/** A journal of its own per run: a retried test gets new lab users, which a used journal would refuse. */
let journals = 0;

/**
 * `onTerminal`, and which of the terminal libraries' chunks (ora, cli-progress) the run loaded: the
 * program's CommonJS files, which src/code-cache.ts compiles and puts in require's cache, read from
 * that cache at exit. Every file of the program is listed too, so that a run that lists none (the
 * files loaded some other way, unseen here) fails instead of passing for loading nothing.
 */
async function tracedOnTerminal(args: string[]): Promise<{ out: string; tty: string[]; program: string[] }> {
  const list = join(dir, `loaded-${++traces}.txt`);
  const preload = join(dir, `trace-${traces}.cjs`);
  writeFileSync(list, '');
  writeFileSync(
    preload,
    "const { appendFileSync } = require('node:fs');\n" +
      "process.on('exit', () => appendFileSync(" +
      `${JSON.stringify(list)}, Object.keys(require.cache).join('\\n')));\n`,
  );
  const out = await onTerminal(args, { NODE_OPTIONS: `--require=${preload}` });
  const program = readFileSync(list, 'utf8')
    .split('\n')
    .filter((p) => p.includes('/dist/bundle/'))
    .map((p) => p.split('/').pop() ?? '');
  const tty = program
    .filter((f) => /^(ora|cli-progress)-\w+\.cjs$/.test(f))
    .map((f) => f.split('-').slice(0, -1).join('-'))
    .sort();
  return { out, tty, program };
}

describe('progress on a terminal', () => {
  it('draws the bars while copying and ends with the summary', async () => {
    const pop = lab.newUser('src');
    const imap = lab.newUser('dst');
    await lab.seedPop3(pop, realisticMix(3, 41));
    const { out, tty, program } = await tracedOnTerminal(
      labArgs('migrate', lab, pop, imap, join(dir, `bars-${++journals}.sqlite`)),
    );
    expect(out).not.toContain('internal error');
    expect(out).toMatch(/exit=0/);
    expect(out).toContain('3 messages');
    expect(out).toMatch(/ messages \S+ 100% 3\/3 \| ETA 0s/);
    expect(tty).toEqual(['cli-progress', 'ora']);
    expect(program).toContain('popsync.cjs');
  }, 60_000);

  it('a run that draws nothing at a terminal loads neither ora nor cli-progress (~20 ms)', async () => {
    const version = await tracedOnTerminal(['--version']);
    expect(version.out).toMatch(/exit=0/);
    expect(version.tty).toEqual([]);
    expect(version.program).toContain('popsync.cjs');
    const pop = lab.newUser('src');
    const imap = lab.newUser('dst');
    await lab.seedPop3(pop, realisticMix(1, 42));
    const json = await tracedOnTerminal(
      labArgs('migrate', lab, pop, imap, join(dir, `json-${++journals}.sqlite`), ['--json']),
    );
    expect(json.out).toMatch(/exit=0/);
    expect(json.out).toContain('"copied": 1');
    expect(json.tty).toEqual([]);
    expect(json.program).toContain('popsync.cjs');
  }, 60_000);

  it('a new journal over a destination that has the mail says it adopts, not copies', async () => {
    const pop = lab.newUser('src');
    const imap = lab.newUser('dst');
    await lab.seedPop3(pop, realisticMix(2, 43));
    const first = await onTerminal(labArgs('migrate', lab, pop, imap, join(dir, 'first.sqlite')));
    expect(first).toMatch(/exit=0/);
    // sync draws progress only on a terminal; a second journal knows nothing of the copies.
    const out = await onTerminal(labArgs('sync', lab, pop, imap, join(dir, 'second.sqlite')));
    expect(out).toMatch(/exit=0/);
    expect(out).toContain('adopting them (recorded, not copied again)');
    expect(out).toMatch(/ messages \S+ 100% 2\/2, 2 adopted \| ETA 0s/);
  }, 60_000);
});

describe('the plan line says what the journal knows', () => {
  it('a journal with no record of the mailbox does not promise copies the destination already has', async () => {
    const pop = lab.newUser('src');
    const imap = lab.newUser('dst');
    await lab.seedPop3(pop, realisticMix(2, 44));
    const env = { PW: lab.password };
    const first = await runCli(labArgs('migrate', lab, pop, imap, join(dir, 'plan-first.sqlite')), { env });
    expect(first.code, first.stderr).toBe(0);
    // A second journal finds both copies in the destination: its first line must not read "2 to copy, 0 already
    // copied" and then copy nothing.
    const second = await runCli(labArgs('migrate', lab, pop, imap, join(dir, 'plan-second.sqlite')), { env });
    expect(second.code, second.stderr).toBe(0);
    expect(second.stderr).toMatch(/popsync: 2 messages \(\S+ \S+\) to copy, or to adopt if the destination has them /);
    expect(second.stderr).toContain('has them already (this journal has no record of them)\n');
    expect(second.stderr).not.toContain('0 already copied');
    expect(second.stdout).toMatch(/adopted:\s+2/);
    // A journal that knows the mailbox counts as before.
    await lab.seedPop3(pop, realisticMix(1, 45));
    const third = await runCli(labArgs('migrate', lab, pop, imap, join(dir, 'plan-first.sqlite')), { env });
    expect(third.code, third.stderr).toBe(0);
    expect(third.stderr).toMatch(/popsync: 1 message \(\S+ \S+\) to copy, 2 already copied\n/);
  }, 60_000);
});
