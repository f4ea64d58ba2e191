/**
 * Deleting from the source and auditing, into a REAL Cyrus 3.6 (lab/cyrus.ts), which with
 * its default `munge8bit` stores every 8-bit header byte as 'X', keeping the length. popsync
 * used to compare only sizes before deleting, and deleted the originals of munged copies. Now
 * the original stays, with a warning naming munge8bit, and `verify` lists the rewritten copy.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCyrus, type CyrusLab } from '../../lab/cyrus.js';
import { runCli } from '../support/cli.js';
import { startFakePop3 } from '../support/fake-pop3.js';
import { hostileMessage } from '../support/hostile-mail.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';

let cyrus: CyrusLab;
let dir: string;
const closers: Array<{ close(): Promise<void> }> = [];

beforeAll(async () => {
  cyrus = await startCyrus();
  dir = mkdtempSync(join(tmpdir(), 'popsync-cyrus-delete-'));
});
afterAll(async () => {
  await Promise.all(closers.map((c) => c.close()));
  await cyrus?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('sync --delete and verify into Cyrus (munge8bit)', () => {
  it(
    'keeps the original of a munged copy (also with --verify-before-delete), deletes the rest, and verify ' +
      'names munge8bit',
    async () => {
      // A scripted POP3 source: Cyrus refuses bare LF, so every message here is CRLF.
      const served = [
        hostileMessage('8bit-header', 'cy-del-1'),
        hostileMessage('bare-cr', 'cy-del-2'),
        hostileMessage('no-final-newline', 'cy-del-3'),
      ];
      const src = await startFakePop3({ messages: served, user: 'src', password: cyrus.password, pipelining: true });
      closers.push(src);
      const imap = await cyrus.newUser('dst');
      const args = (command: string, extra: string[]) => [
        command,
        '--pop',
        `pop3://src@127.0.0.1:${src.port}`,
        '--pop-tls',
        'none',
        '--imap',
        `imap://${imap}@127.0.0.1:${cyrus.imap.port}`,
        '--imap-tls',
        'none',
        '--pop-password-env',
        'PW',
        '--imap-password-env',
        'PW',
        '--journal',
        join(dir, 'cyrus.sqlite'),
        '--no-progress',
        ...extra,
      ];
      const env = { PW: cyrus.password };
      let r = await runCli(args('sync', []), { env });
      expect(r.code, r.stderr).toBe(0);

      r = await runCli(args('sync', ['--delete', '--verify-before-delete', '--json']), { env });
      expect(r.code, r.stderr).toBe(1);
      const res = JSON.parse(r.stdout);
      expect(res).toMatchObject({ copied: 0, deleted: 2 });
      expect(res.copyProblems).toEqual([
        expect.objectContaining({
          problem: 'differs',
          uidl: 'uid-1',
          detail: expect.stringMatching(
            /same size.*8-bit header bytes replaced by 'X' \(Cyrus munge8bit.*not deleted from the source/,
          ),
        }),
      ]);
      expect(src.mailbox.map((m) => m.body)).toEqual([served[0]]);

      // The default check sees the munged headers too.
      r = await runCli(args('sync', ['--delete']), { env });
      expect(r.code, r.stderr).toBe(1);
      expect(r.stdout).toMatch(/UIDL uid-1: copy differs: .*munge8bit/);
      expect(src.mailbox).toHaveLength(1);

      r = await runCli(['verify', ...args('x', ['--json']).slice(1)], { env });
      expect(r.code, r.stderr).toBe(1);
      const audit = JSON.parse(r.stdout).accounts[0];
      expect(audit).toMatchObject({ checked: 3, same: 2 });
      expect(audit.findings).toEqual([
        expect.objectContaining({
          uidl: 'uid-1',
          status: 'rewritten',
          originalOnSource: true,
          likely: [expect.stringMatching(/Cyrus munge8bit/)],
        }),
      ]);
    },
  );
});
