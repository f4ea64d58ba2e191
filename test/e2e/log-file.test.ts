/**
 * --log-file (issue 10 part 5): its missing folders are created 0700, the file 0600; by default
 * readable text lines, with --log-format json JSON lines; one result line per run and account,
 * also when the run fails. Against the real Dovecot.
 */
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Lab } from '../../lab/dovecot.js';
import { runCli } from '../support/cli.js';
import { labArgs, useLab } from '../support/lab-fixture.js';

let lab: Lab;
let dir: string;
useLab('log-file', {}, (l, d) => {
  lab = l;
  dir = d;
});

const mail = (n: number) => Buffer.from(`From: a@example.net\r\nSubject: ${n}\r\nMessage-ID: <${n}@x>\r\n\r\nbody\r\n`);

describe('--log-file', () => {
  it('creates its folder 0700 and writes text lines, one result line per run', async () => {
    const pop = lab.newUser('src');
    const imap = lab.newUser('dst');
    await lab.seedPop3(pop, [mail(1), mail(2)]);
    const log = join(dir, 'new', 'logs', `${pop}.log`);
    const args = labArgs('sync', lab, pop, imap, join(dir, `${pop}.sqlite`), ['--quiet', '--log-file', log]);
    for (let i = 0; i < 2; i++) {
      const r = await runCli(args, { env: { PW: lab.password } });
      expect(r.code, r.stderr).toBe(0);
    }
    expect(statSync(join(dir, 'new', 'logs')).mode & 0o777).toBe(0o700);
    expect(statSync(log).mode & 0o777).toBe(0o600);
    const lines = readFileSync(log, 'utf8').trimEnd().split('\n');
    // Text, not JSON: "2026-11-29T16:40:01.123Z [4242] debug: ..."
    for (const l of lines)
      expect(l).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z \[\d+\] (debug|info|warning|error): /);
    const results = lines.filter((l) => / info: result /.test(l));
    expect(results).toHaveLength(2);
    expect(results[0]).toMatch(/command=sync outcome=ok exitCode=0 .*listed=2 copied=2 /);
    expect(results[1]).toMatch(/outcome=ok .*copied=0 .*alreadyCopied=2 /);
    expect(readFileSync(log, 'utf8')).not.toContain(lab.password);
  });

  it('the result line counts copies found in the destination (adopted), not only those made', async () => {
    // Source and destination are one Dovecot mailbox: every message is already "copied".
    const user = lab.newUser('same');
    await lab.seedPop3(user, [mail(1), mail(2), mail(3)]);
    const log = join(dir, `${user}.log`);
    const args = labArgs('sync', lab, user, user, join(dir, `${user}.sqlite`), ['--quiet', '--log-file', log]);
    const r = await runCli(args, { env: { PW: lab.password } });
    expect(r.code, r.stderr).toBe(0);
    expect(readFileSync(log, 'utf8')).toMatch(/ info: result .*copied=0 .*adopted=3 /);
  });

  it('--log-format json writes JSON lines; a failed run has its result line too', async () => {
    const pop = lab.newUser('src');
    const imap = lab.newUser('dst');
    const log = join(dir, `${pop}.jsonl`);
    const args = labArgs('sync', lab, pop, imap, join(dir, `${pop}.sqlite`), [
      '--log-file',
      log,
      '--log-format',
      'json',
    ]);
    args[args.indexOf('PW')] = 'WRONG_PW';
    const r = await runCli(args, { env: { PW: lab.password, WRONG_PW: 'not-the-password' } });
    expect(r.code, r.stderr).toBe(3);
    const records = readFileSync(log, 'utf8')
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    const results = records.filter((x) => x.msg === 'result');
    expect(results).toEqual([expect.objectContaining({ command: 'sync', outcome: 'error', kind: 'auth' })]);
  });
});
