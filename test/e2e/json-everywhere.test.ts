/**
 * `--json` on the commands that print data and lacked it (issue 10 part 5): `plan --json` is
 * `--format json`, `config check --json` prints what a config resolves to, with secrets masked.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Lab } from '../../lab/dovecot.js';
import { runCli } from '../support/cli.js';
import { labArgs, useLab } from '../support/lab-fixture.js';

let lab: Lab;
let dir: string;
useLab('json', {}, (l, d) => {
  lab = l;
  dir = d;
});

describe('--json', () => {
  it('plan --json prints the same object as plan --format json; with another --format it is exit 2', async () => {
    const pop = lab.newUser('src');
    const imap = lab.newUser('dst');
    await lab.seedPop3(pop, [Buffer.from('From: a@example.net\r\nSubject: x\r\nMessage-ID: <x@y>\r\n\r\nbody\r\n')]);
    const args = labArgs('plan', lab, pop, imap, join(dir, `${pop}.sqlite`));
    const json = await runCli([...args, '--json'], { env: { PW: lab.password } });
    const format = await runCli([...args, '--format', 'json'], { env: { PW: lab.password } });
    expect(json.code, json.stderr).toBe(0);
    const strip = (s: string) => ({ ...JSON.parse(s), generatedAt: null });
    expect(strip(json.stdout)).toEqual(strip(format.stdout));
    expect(JSON.parse(json.stdout).totals).toMatchObject({ messages: 1 });
    const both = await runCli([...args, '--json', '--format', 'csv'], { env: { PW: lab.password } });
    expect(both.code).toBe(2);
    expect(both.stderr).toContain('--json and --format csv contradict each other');
  });

  it('config check --json: one object per file, accounts resolved, passwords never shown', async () => {
    const config = join(dir, 'check.yml');
    writeFileSync(
      config,
      [
        'accounts:',
        '  - name: alice',
        "    source: { url: 'pop3s://alice@pop.example.net', password_env: POP_PW }",
        "    destination: { url: 'imaps://alice@imap.example.net', password_env: IMAP_PW }",
        '',
      ].join('\n'),
      { mode: 0o600 },
    );
    const r = await runCli(['config', 'check', config, '--json'], { env: { POP_PW: 'Sekr1t-pop' } });
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out).toMatchObject({ path: config, ok: true });
    expect(out.accounts).toHaveLength(1);
    expect(out.accounts[0]).toMatchObject({
      name: 'alice',
      source: { endpoint: 'alice@pop.example.net:995 (tls implicit)' },
      seen: ['status-header'],
      defaultFolder: 'INBOX',
    });
    expect(r.stdout).not.toContain('Sekr1t-pop');
  });
});
