/**
 * A destination whose NAMESPACE announces a personal prefix holding a line break (a hostile or
 * broken server): no folder under it can be named in any IMAP command. Through the real binary
 * against the scripted servers: the messages routed there fail with a reason naming the folder
 * and the cause, the rest are copied, exit 1; it is not taken for a lost connection.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { runCli } from '../support/cli.js';
import { startFakeImap, FAKE_PASSWORD, FAKE_USER, type FakeImap } from '../support/fake-imap.js';
import { startFakePop3, type FakePop3 } from '../support/fake-pop3.js';

const dir = mkdtempSync(join(tmpdir(), 'popsync-namespace-'));
let servers: Array<FakePop3 | FakeImap> = [];
afterEach(async () => {
  await Promise.all(servers.map((s) => s.close()));
  servers = [];
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function message(i: number): string {
  return `From: a${i}@example.org\r\nSubject: message ${i}\r\nMessage-ID: <m${i}@example.org>\r\n\r\nbody ${i}\r\n`;
}

describe('a NAMESPACE prefix no command can carry', () => {
  it("fails the messages of the folder under it, naming folder and cause (exit 1); INBOX's are copied", async () => {
    const pop = await startFakePop3({ user: 'src', password: 'pop-pw', messages: [1, 2, 3].map(message) });
    const imap = await startFakeImap({
      capabilities: ['IMAP4rev1', 'UIDPLUS', 'LITERAL+', 'NAMESPACE'],
      namespacePrefix: 'Mail\r\n.',
      delimiter: '.',
    });
    servers.push(pop, imap);
    // Its own directory: a retry of this test must not meet the first attempt's journal.
    const config = join(mkdtempSync(join(dir, 'run-')), 'namespace.yml');
    writeFileSync(
      config,
      [
        'accounts:',
        `  - source: { url: 'pop3://src@127.0.0.1:${pop.port}', tls: none, password_env: POP_PW }`,
        `    destination: { url: 'imap://${FAKE_USER}@127.0.0.1:${imap.port}', tls: none, password_env: IMAP_PW }`,
        '    journal: namespace.sqlite',
        '    reconnect_attempts: 1',
        '    rules:',
        `      - match: { subject: 'message 2' }`,
        '        folder: Archive',
        '',
      ].join('\n'),
    );
    const env = { POP_PW: 'pop-pw', IMAP_PW: FAKE_PASSWORD };
    const r = await runCli(['migrate', '--config', config, '--no-progress', '--json'], { env });
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).not.toContain('reconnecting');
    expect(r.stderr).not.toMatch(/connection (lost|failed)/);
    const summary = JSON.parse(r.stdout);
    expect(summary).toMatchObject({ copied: 2, reconnects: 0 });
    expect(summary.failed).toEqual([
      expect.objectContaining({
        uidl: expect.any(String),
        reason: expect.stringMatching(/IMAP folder "Archive" cannot be named in any IMAP command: .*line break or NUL/),
      }),
    ]);
    expect(imap.mailboxes.get('INBOX')!.messages.map((m) => m.body.toString())).toEqual([1, 3].map((i) => message(i)));
    expect(imap.appends).toHaveLength(2);
    // Without --json the summary names the account, and the failed message with the folder and cause;
    // the next run tries it again, and fails it the same way.
    const text = await runCli(['migrate', '--config', config, '--no-progress'], { env });
    expect(text.code, text.stderr).toBe(1);
    const out = text.stdout + text.stderr;
    expect(out).toContain(`popsync migrate: src@127.0.0.1:${pop.port} -> ${FAKE_USER}@127.0.0.1:${imap.port}`);
    expect(out).toMatch(/UIDL \S+ \(#2, .*folder Archive\): IMAP folder "Archive" cannot be named in any IMAP command/);
    expect(text.stderr).not.toMatch(/\n\s+at /);
    expect(imap.appends).toHaveLength(2);
  });
});
