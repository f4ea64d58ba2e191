/**
 * A folder name the destination refuses (issue 10 part 5) fails the messages routed there,
 * with the server's own words, and exit 1; messages for other folders are still copied, and a
 * later run with a name the server accepts copies the rest. Against the real Dovecot, which
 * refuses a mailbox name longer than its limit.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Lab } from '../../lab/dovecot.js';
import { runCli } from '../support/cli.js';
import { useLab } from '../support/lab-fixture.js';
import { destinationMessages } from '../support/mailboxes.js';

let lab: Lab;
let dir: string;
useLab('folder-refused', {}, (l, d) => {
  lab = l;
  dir = d;
});

const mail = (subject: string, list?: string) =>
  Buffer.from(
    `From: a@example.net\r\nTo: b@example.net\r\nSubject: ${subject}\r\n` +
      `${list === undefined ? '' : `List-Id: <${list}>\r\n`}Message-ID: <${subject}@example.net>\r\n\r\nbody\r\n`,
  );

describe('a folder name the server refuses', () => {
  it('fails only the messages routed there, with the server words, exit 1; the others are copied', async () => {
    const pop = lab.newUser('src');
    const imap = lab.newUser('dst');
    await lab.seedPop3(pop, [mail('one', 'dev.example.net'), mail('two'), mail('three', 'dev.example.net')]);
    const tooLong = 'x'.repeat(400);
    const config = join(dir, `${pop}.yml`);
    writeFileSync(
      config,
      [
        'accounts:',
        `  - source: { url: 'pop3://${pop}@127.0.0.1:${lab.pop3.port}', tls: none, password_env: PW }`,
        `    destination: { url: 'imap://${imap}@127.0.0.1:${lab.imap.port}', tls: none, password_env: PW }`,
        `    journal: ${pop}.sqlite`,
        '    rules:',
        `      - match: { list_id: dev.example.net }`,
        `        folder: ${tooLong}`,
        '',
      ].join('\n'),
    );
    const r = await runCli(['migrate', '--config', config, '--no-progress', '--json'], { env: { PW: lab.password } });
    expect(r.code, r.stderr).toBe(1);
    const summary = JSON.parse(r.stdout);
    expect(summary.copied).toBe(1);
    expect(summary.failed).toHaveLength(2);
    for (const f of summary.failed) {
      expect(f.reason).toMatch(/CREATE .* refused/);
      // Dovecot's own words, verbatim.
      expect(f.serverResponse).toMatch(/^NO /);
    }
    expect(r.stderr).not.toMatch(/\n\s+at /);
    // Without --json: each failed message names the folder's refusal and Dovecot's words.
    const text = await runCli(['migrate', '--config', config, '--no-progress'], { env: { PW: lab.password } });
    expect(text.code, text.stderr).toBe(1);
    expect(text.stdout + text.stderr).toContain('Mailbox name too long');
    expect((await destinationMessages(lab, imap)).map((m) => /Subject: (\w+)/.exec(m.body.toString())![1])).toEqual([
      'two',
    ]);
  });
});
