/**
 * Reconciling thousands of interrupted copies that share one Message-ID (automated notices: the
 * same Message-ID, a different body each), against the real Dovecot. Every row's candidates are
 * every copy, so matching each row against each candidate was quadratic in comparisons and kept
 * a candidate list per row (5,000 rows: 12 million entries). What is checked: the result (each
 * message exactly once), the writes of FETCH BODY, and that the run fits a heap far below what
 * that quadratic list needed (--max-old-space-size); the peak RSS is printed.
 */
import { readFileSync } from 'node:fs';
import { ImapFlow } from 'imapflow';
import { describe, expect, it } from 'vitest';
import type { Lab } from '../../lab/dovecot.js';
import { startSlowProxy } from '../../lab/slow-proxy.js';
import { runCli } from '../support/cli.js';
import { copiedThenInterrupted } from '../support/interrupted.js';
import { loopbackArgs, useLab } from '../support/lab-fixture.js';
import { destinationMessages, sha } from '../support/mailboxes.js';

let lab: Lab;
let dir: string;
useLab('reconcile-shared-id', {}, (l, d) => {
  lab = l;
  dir = d;
});

const notice = (i: number) =>
  Buffer.from(
    `From: alerts@bank.example\r\nTo: b@example.net\r\nSubject: Your balance\r\n` +
      `Message-ID: <balance-alert@bank.example>\r\n\r\nYour balance on day ${i} is ${(i * 37) % 1000} EUR.\r\n`,
  );

describe('thousands of interrupted copies sharing one Message-ID', () => {
  it('settles each by content, copies again only the lost ones, reading each copy once', async () => {
    const count = 5_000;
    const lost = 40;
    const messages = Array.from({ length: count }, (_, i) => notice(i));
    // What a kill of a run given --batch-messages 5000 leaves: every row 'appending' with the
    // UIDNEXT saved before its APPEND, and the last APPENDs never stored (their copies removed).
    const { pop, imap, journal, firstPeakRssMb } = await copiedThenInterrupted(
      lab,
      dir,
      messages,
      `UPDATE messages SET state = 'appending', dest_uid = NULL`,
      { peakRss: true },
    );
    const client = new ImapFlow({
      host: lab.imap.host,
      port: lab.imap.port,
      secure: false,
      tls: { ca: [readFileSync(lab.caFile)] },
      auth: { user: imap, pass: lab.password },
      logger: false,
    });
    await client.connect();
    try {
      await client.mailboxOpen('INBOX');
      await client.messageDelete(`${count - lost + 1}:*`, { uid: true });
    } finally {
      await client.logout();
    }

    let fetches = 0;
    const relay = await startSlowProxy(lab.imap.port, 0, (_conn, direction, chunk) => {
      if (direction === 'up' && / UID FETCH .*BODY/i.test(chunk.toString('latin1'))) fetches++;
    });
    let second: Awaited<ReturnType<typeof runCli>>;
    try {
      second = await runCli(
        loopbackArgs('migrate', { pop3: lab.pop3.port, imap: relay.port }, pop, imap, journal, [
          '--json',
          '--no-progress',
        ]),
        // Room for what grows with rows and candidates (this run needs under 32 MB of old
        // space); a list of candidates per row needed more than 96.
        { env: { PW: lab.password, NODE_OPTIONS: '--max-old-space-size=48' }, peakRss: true },
      );
    } finally {
      await relay.close();
    }
    expect(second.code, second.stderr).toBe(0);
    expect(JSON.parse(second.stdout)).toMatchObject({ reconciled: count - lost, copied: lost });
    const stored = await destinationMessages(lab, imap);
    expect(stored.map((m) => sha(m.body)).sort()).toEqual(messages.map((m) => sha(m)).sort());
    console.log(
      `${count} rows sharing one Message-ID: ${fetches} writes of FETCH BODY, peak RSS ` +
        `${second.peakRssMb!.toFixed(0)} MB (the first copy of them: ${firstPeakRssMb!.toFixed(0)} MB)`,
    );
    // 5,000 bodies in rounds of up to 1,000, FETCHes of up to 500 UIDs: about a dozen writes.
    expect(fetches).toBeLessThanOrEqual(20);
  });
});
