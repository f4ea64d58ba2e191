/**
 * Deleting from the source and auditing, into a REAL Courier IMAP (lab/courier.ts), which
 * strips a bare CR from what it stores. The copy of such a message is smaller than what was
 * copied: its original stays on the source, with a warning naming the bare-CR stripping, and
 * `verify` lists it; copies Courier stored as sent let their originals go.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCourier, type CourierLab } from '../../lab/courier.js';
import { runCli } from '../support/cli.js';
import { startFakePop3 } from '../support/fake-pop3.js';
import { hostileMessage } from '../support/hostile-mail.js';

let courier: CourierLab;
let dir: string;
const closers: Array<{ close(): Promise<void> }> = [];

beforeAll(async () => {
  courier = await startCourier();
  dir = mkdtempSync(join(tmpdir(), 'popsync-courier-delete-'));
});
afterAll(async () => {
  await Promise.all(closers.map((c) => c.close()));
  await courier?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('sync --delete and verify into Courier (bare CR stripped)', () => {
  it(
    'keeps the original of a copy Courier stripped of its bare CRs, deletes the rest, and verify ' + 'names it',
    async () => {
      const served = [
        hostileMessage('bare-cr', 'co-del-1'),
        hostileMessage('8bit-header', 'co-del-2'),
        hostileMessage('nul', 'co-del-3'),
      ];
      const src = await startFakePop3({ messages: served, user: 'src', password: courier.password, pipelining: true });
      closers.push(src);
      const imap = await courier.newUser('dst');
      const args = (command: string, extra: string[]) => [
        command,
        '--pop',
        `pop3://src@127.0.0.1:${src.port}`,
        '--pop-tls',
        'none',
        '--imap',
        `imap://${imap}@127.0.0.1:${courier.imap.port}`,
        '--imap-tls',
        'none',
        '--pop-password-env',
        'PW',
        '--imap-password-env',
        'PW',
        '--journal',
        join(dir, 'courier.sqlite'),
        '--no-progress',
        ...extra,
      ];
      const env = { PW: courier.password };
      let r = await runCli(args('sync', []), { env });
      expect(r.code, r.stderr).toBe(0);

      // The default check: the stripped copy is smaller, so its bytes are looked at.
      r = await runCli(args('sync', ['--delete', '--json']), { env });
      expect(r.code, r.stderr).toBe(1);
      const res = JSON.parse(r.stdout);
      expect(res.copyProblems).toEqual([
        expect.objectContaining({
          problem: 'differs',
          uidl: 'uid-1',
          detail: expect.stringMatching(/bytes, not .*bare CR stripped \(Courier\).*not deleted from the source/),
        }),
      ]);
      // Courier keeps NUL and 8-bit headers as sent (measured): those originals go.
      expect(res.deleted).toBe(2);
      expect(src.mailbox.map((m) => m.body)).toEqual([served[0]]);

      r = await runCli(['verify', ...args('x', ['--json']).slice(1)], { env });
      expect(r.code, r.stderr).toBe(1);
      const audit = JSON.parse(r.stdout).accounts[0];
      expect(audit).toMatchObject({ checked: 3, same: 2 });
      expect(audit.findings).toEqual([
        expect.objectContaining({
          uidl: 'uid-1',
          originalOnSource: true,
          likely: [expect.stringMatching(/bare CR stripped \(Courier\)/)],
        }),
      ]);
    },
  );
});
