/**
 * A destination without UIDPLUS at 30 ms round trip (issue 11 part 4), against the real Dovecot
 * (UIDPLUS hidden, lab/imap-front.ts) through lab/slow-proxy.ts: each copy's UID is found by
 * content right after its batch, and the copies' bodies are read in one FETCH per batch, not one
 * per message (a round trip each). Counted at the relay: the writes carrying a body FETCH.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Lab } from '../../lab/dovecot.js';
import { runAtRoundTrip, useLab } from '../support/lab-fixture.js';

let lab: Lab;
let dir: string;
useLab('no-uidplus-rtt', { imapWithout: ['UIDPLUS'] }, (l, d) => {
  lab = l;
  dir = d;
});

const note = (i: number) =>
  Buffer.from(
    `Subject: note ${i}\r\nMessage-ID: <nu${i}@example.net>\r\n\r\n${'Line of a note.\r\n'.repeat(10 + (i % 30))}`,
  );

describe('learning UIDs without UIDPLUS, at 30 ms RTT', () => {
  it("reads a batch's copies in one FETCH, not one per message", async () => {
    const pop = lab.newUser('src');
    const imap = lab.newUser('dst');
    const count = 300;
    await lab.seedPop3(
      pop,
      Array.from({ length: count }, (_, i) => note(i + 1)),
    );
    let fetches = 0;
    const res = await runAtRoundTrip(lab, 'migrate', pop, imap, join(dir, `${pop}.sqlite`), {
      imap: (_conn, dir, chunk) => {
        if (dir === 'up' && /UID FETCH [^\r\n]*BODY/i.test(chunk.toString('latin1'))) fetches++;
      },
    });
    expect(res.code, res.stderr).toBe(0);
    expect(JSON.parse(res.stdout)).toMatchObject({ copied: count });
    // Three batches of 100: one body FETCH each (300 before: a round trip per copy).
    console.log(`no UIDPLUS at 30 ms: ${fetches} writes of a body FETCH for ${count} copies`);
    expect(fetches).toBeGreaterThan(0);
    expect(fetches).toBeLessThanOrEqual(6);
  });
});
