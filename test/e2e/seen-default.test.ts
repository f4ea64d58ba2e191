/**
 * Seen flags are mapped by default (issue 10 part 5): the `status-header` step decides on the
 * command line and in a config without `seen:` alike, so mail a previous client marked read
 * (`Status: RO`) arrives read and the rest unread; `--seen none` keeps everything unread.
 * Against the real Dovecot.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Lab } from '../../lab/dovecot.js';
import { runCli } from '../support/cli.js';
import { useLab, labArgs } from '../support/lab-fixture.js';
import { destinationMessages } from '../support/mailboxes.js';

let lab: Lab;
let dir: string;
useLab('seen', {}, (l, d) => {
  lab = l;
  dir = d;
});

const mail = (subject: string, status?: string) =>
  Buffer.from(
    `From: a@example.net\r\nTo: b@example.net\r\nSubject: ${subject}\r\n` +
      `${status === undefined ? '' : `Status: ${status}\r\n`}Message-ID: <${subject}@example.net>\r\n\r\nbody\r\n`,
  );

/** Subject -> whether the copy carries \Seen. */
async function seenBySubject(imap: string): Promise<Record<string, boolean>> {
  const out: Record<string, boolean> = {};
  for (const m of await destinationMessages(lab, imap)) {
    const subject = /^Subject: (.*)$/m.exec(m.body.toString())![1]!.trim();
    out[subject] = m.flags.includes('\\Seen');
  }
  return out;
}

async function seeded(): Promise<string> {
  const pop = lab.newUser('src');
  await lab.seedPop3(pop, [mail('read', 'RO'), mail('old-unread', 'O'), mail('new')]);
  return pop;
}

describe('seen policy defaults', () => {
  it('the command line maps Status: R to \\Seen by default', async () => {
    const pop = await seeded();
    const imap = lab.newUser('dst');
    const r = await runCli(labArgs('migrate', lab, pop, imap, join(dir, `${pop}.sqlite`), ['--no-progress']), {
      env: { PW: lab.password },
    });
    expect(r.code, r.stderr).toBe(0);
    expect(await seenBySubject(imap)).toEqual({ read: true, 'old-unread': false, new: false });
  });

  it('--seen none keeps everything unread; a bad step is exit 2 before connecting', async () => {
    const pop = await seeded();
    const imap = lab.newUser('dst');
    const args = labArgs('migrate', lab, pop, imap, join(dir, `${pop}.sqlite`), ['--no-progress', '--seen', 'none']);
    const r = await runCli(args, { env: { PW: lab.password } });
    expect(r.code, r.stderr).toBe(0);
    expect(await seenBySubject(imap)).toEqual({ read: false, 'old-unread': false, new: false });
    const bad = await runCli([...args, '--seen', 'status-headr'], { env: { PW: lab.password } });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('unknown seen step "status-headr"');
  });

  it('a config without seen: agrees with the command line', async () => {
    const pop = await seeded();
    const imap = lab.newUser('dst');
    const config = join(dir, `${pop}.yml`);
    writeFileSync(
      config,
      [
        'accounts:',
        `  - source: { url: 'pop3://${pop}@127.0.0.1:${lab.pop3.port}', tls: none, password_env: PW }`,
        `    destination: { url: 'imap://${imap}@127.0.0.1:${lab.imap.port}', tls: none, password_env: PW }`,
        `    journal: ${pop}.sqlite`,
        '',
      ].join('\n'),
    );
    const r = await runCli(['migrate', '--config', config, '--no-progress'], { env: { PW: lab.password } });
    expect(r.code, r.stderr).toBe(0);
    expect(await seenBySubject(imap)).toEqual({ read: true, 'old-unread': false, new: false });
  });
});
