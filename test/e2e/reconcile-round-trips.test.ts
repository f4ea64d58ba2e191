/**
 * Reconciling interrupted copies at 30 ms round trip (issue 11 part 4), against the real Dovecot
 * through lab/slow-proxy.ts: rows an older popsync journaled without fingerprints, whose messages
 * are read again from the source, and rows whose candidate copies have no Message-ID to tell them
 * apart, so each row's copy is not its first candidate. What is counted is the writes that carry
 * those commands (a client waiting for each reply writes one per message), never seconds.
 */
import { describe, expect, it } from 'vitest';
import type { Lab } from '../../lab/dovecot.js';
import { copiedThenInterrupted } from '../support/interrupted.js';
import { runAtRoundTrip, useLab } from '../support/lab-fixture.js';
import { destinationMessages } from '../support/mailboxes.js';

let lab: Lab;
let dir: string;
useLab('reconcile-rtt', {}, (l, d) => {
  lab = l;
  dir = d;
});

const mail = (i: number) =>
  Buffer.from(
    `From: a@example.net\r\nTo: b@example.net\r\nSubject: old ${i}\r\nMessage-ID: <old${i}@example.net>\r\n` +
      `\r\n${'body line\r\n'.repeat(1 + (i % 40))}`,
  );

/** Chunks one direction of a relay carried that hold `pattern`: the client's writes of it, near enough. */
function counter(pattern: RegExp) {
  const seen = new Map<number, number>();
  return {
    observe: (conn: number, dir: 'up' | 'down', chunk: Buffer) => {
      if (dir === 'up' && pattern.test(chunk.toString('latin1'))) seen.set(conn, (seen.get(conn) ?? 0) + 1);
    },
    total: () => [...seen.values()].reduce((a, b) => a + b, 0),
  };
}

describe('reconciling rows journaled before fingerprints, at 30 ms RTT', () => {
  it('reads the messages again, and the candidate copies, a window of commands per round trip', async () => {
    const count = 150;
    // What a popsync before schema v5 left when it was killed with every APPEND sent and none
    // confirmed: each row 'appending', with the sha256 of what it sent but no fingerprint.
    const { pop, imap, journal } = await copiedThenInterrupted(
      lab,
      dir,
      Array.from({ length: count }, (_, i) => mail(i + 1)),
      `UPDATE messages SET state = 'appending', dest_uid = NULL, fingerprint = NULL`,
    );

    const retrs = counter(/^RETR /m);
    const fetches = counter(/ UID FETCH .*BODY/i);
    const second = await runAtRoundTrip(lab, 'migrate', pop, imap, journal, {
      pop3: retrs.observe,
      imap: fetches.observe,
    });
    expect(second.code, second.stderr).toBe(0);
    expect(JSON.parse(second.stdout)).toMatchObject({ reconciled: count, copied: 0 });
    expect(await destinationMessages(lab, imap)).toHaveLength(count);
    // One message at a time was a write (and a round trip) per message on each side.
    console.log(`reconcile at 30 ms: ${retrs.total()} writes of RETR, ${fetches.total()} of FETCH BODY`);
    expect(retrs.total()).toBeLessThanOrEqual(10);
    expect(fetches.total()).toBeLessThanOrEqual(10);
  });
});

describe('reconciling interrupted copies of messages without a Message-ID, at 30 ms RTT', () => {
  it("reads every row's candidate copies a round of FETCHes at a time, not one body per round trip", async () => {
    const count = 60;
    // No Message-ID: every row's candidates are all 60 copies, so its first candidate is the
    // same for every row and only one body was read ahead of the rows' own copies. Killed with
    // every APPEND sent and none confirmed (this popsync's rows: with fingerprints).
    const { pop, imap, journal } = await copiedThenInterrupted(
      lab,
      dir,
      Array.from({ length: count }, (_, i) =>
        Buffer.from(`From: a@example.net\r\nSubject: no id ${i}\r\n\r\n${'line\r\n'.repeat(1 + (i % 30))}`),
      ),
      `UPDATE messages SET state = 'appending', dest_uid = NULL`,
    );

    const fetches = counter(/ UID FETCH .*BODY/i);
    const second = await runAtRoundTrip(lab, 'migrate', pop, imap, journal, { imap: fetches.observe });
    expect(second.code, second.stderr).toBe(0);
    expect(JSON.parse(second.stdout)).toMatchObject({ reconciled: count, copied: 0 });
    expect(await destinationMessages(lab, imap)).toHaveLength(count);
    console.log(`reconcile without Message-IDs at 30 ms: ${fetches.total()} writes of FETCH BODY`);
    expect(fetches.total()).toBeLessThanOrEqual(10);
  });
});
