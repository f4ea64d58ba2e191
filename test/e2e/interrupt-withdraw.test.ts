/**
 * Ctrl-C / SIGTERM while the APPEND window is full and the next batch is already prepared (its
 * intent journaled so that it goes the moment a reply frees the window): against the real
 * Dovecot, through a relay that delays the IMAP replies so the window stays full. The batches
 * being appended finish, the prepared one is never written and its intent is withdrawn: nothing
 * is left 'appending' for the next run to look for, and the next run copies every message
 * exactly once.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import type { Lab } from '../../lab/dovecot.js';
import { startSlowProxy } from '../../lab/slow-proxy.js';
import { runCli, startCli } from '../support/cli.js';
import { labArgs, loopbackArgs, useLab } from '../support/lab-fixture.js';
import { destinationMessages } from '../support/mailboxes.js';

let lab: Lab;
let dir: string;

useLab('interrupt-withdraw', {}, (l, d) => {
  lab = l;
  dir = d;
});

const mail = (i: number) =>
  Buffer.from(
    `From: a@example.net\r\nTo: b@example.net\r\nSubject: message ${i}\r\nMessage-ID: <w${i}@example.net>\r\n` +
      `\r\nbody ${i}\r\n`,
  );

/** The journal's rows by state, read beside the running popsync (WAL: a reader never blocks it). */
function states(journal: string): Record<string, number> {
  if (!existsSync(journal)) return {};
  const db = new Database(journal, { readonly: true, fileMustExist: true });
  try {
    const rows = db.prepare('SELECT state, COUNT(*) AS n FROM messages GROUP BY state').all() as Array<{
      state: string;
      n: number;
    }>;
    return Object.fromEntries(rows.map((r) => [r.state, r.n]));
  } catch {
    return {}; // not created yet
  } finally {
    db.close();
  }
}

const subjects = async (user: string): Promise<string[]> =>
  (await destinationMessages(lab, user)).map((m) => /Subject: (.*)\r\n/.exec(m.body.toString())![1]!);

describe('interrupted with a batch prepared behind a full APPEND window', () => {
  it('withdraws its intent: nothing left appending, and the rerun copies each message once', async () => {
    const pop = lab.newUser('src');
    const imap = lab.newUser('dst');
    const count = 8;
    await lab.seedPop3(
      pop,
      Array.from({ length: count }, (_, i) => mail(i + 1)),
    );
    const journal = join(dir, `${pop}.sqlite`);
    // Each IMAP reply comes 0.8 s after its command: the two batches of the window wait that long.
    const slow = await startSlowProxy(lab.imap.port, 400);
    try {
      const run = startCli(
        loopbackArgs('migrate', { pop3: lab.pop3.port, imap: slow.port }, pop, imap, journal, [
          '--batch-messages',
          '1',
          '--no-progress',
        ]),
        { env: { PW: lab.password } },
      );
      // One message per batch: a third intent before any outcome is the batch prepared while the
      // window (two batches) is full; its APPEND waits for the first reply.
      let seen: Record<string, number> = {};
      for (let i = 0; i < 3000; i++) {
        seen = states(journal);
        if ((seen.appending ?? 0) >= 3 || (seen.done ?? 0) > 0) break;
        await new Promise((r) => setTimeout(r, 10));
      }
      expect(seen).toEqual({ appending: 3 });
      run.child.kill('SIGTERM');
      const r = await run.done;
      expect(r.code, r.stderr).toBe(130);
      expect(r.stderr).not.toMatch(/\n\s+at /);
    } finally {
      await slow.close();
    }
    // The two batches being appended were finished; the prepared one was never written, and its
    // row is gone rather than left 'appending' for the next run to search the destination for.
    expect(states(journal)).toEqual({ done: 2 });
    expect(await subjects(imap)).toEqual(['message 1', 'message 2']);
    const again = await runCli(labArgs('migrate', lab, pop, imap, journal, ['--json', '--no-progress']), {
      env: { PW: lab.password },
    });
    expect(again.code, again.stderr).toBe(0);
    expect(JSON.parse(again.stdout)).toMatchObject({ copied: count - 2, reconciled: 0, failed: [] });
    expect(await subjects(imap)).toEqual(Array.from({ length: count }, (_, i) => `message ${i + 1}`));
  });
});
