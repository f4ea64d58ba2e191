/**
 * Small mail at 30 ms round trip (issue 11 part 4), against the real Dovecot through
 * lab/slow-proxy.ts: the receiver keeps enough RETRs written ahead that the POP3 side is not held
 * to one batch (100 messages) per round trip. Counted at the relay: RETRs written and not yet
 * answered, never seconds.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Lab } from '../../lab/dovecot.js';
import { RETRS_AHEAD_MAX } from '../../src/defaults.js';
import { runAtRoundTrip, useLab } from '../support/lab-fixture.js';
import { shortNotes } from '../support/mailboxes.js';

let lab: Lab;
let dir: string;
useLab('retr-ahead', {}, (l, d) => {
  lab = l;
  dir = d;
});

describe('small mail at 30 ms RTT', () => {
  it('has several batches of RETRs in flight, not one', async () => {
    const pop = lab.newUser('src');
    const imap = lab.newUser('dst');
    const count = 1000;
    await lab.seedPop3(pop, shortNotes(count, 'note', 10, 30));
    // RETRs written minus replies the server finished, from the first RETR on; and how often the
    // server had answered every RETR written (it waited for popsync: a round trip each time).
    let written = 0;
    let answered = 0;
    let most = 0;
    let dry = 0;
    const seen = (_conn: number, dir: 'up' | 'down', chunk: Buffer): void => {
      const s = chunk.toString('latin1');
      if (dir === 'up') {
        const n = (s.match(/^RETR /gm) ?? []).length;
        if (n > 0 && written === answered && written > 0 && written < count) dry++;
        written += n;
      } else if (written > 0) answered += (s.match(/\r\n\.\r\n/g) ?? []).length;
      most = Math.max(most, written - answered);
    };
    const res = await runAtRoundTrip(lab, 'migrate', pop, imap, join(dir, `${pop}.sqlite`), { pop3: seen });
    expect(res.code, res.stderr).toBe(0);
    expect(JSON.parse(res.stdout)).toMatchObject({ copied: count });
    console.log(`small mail at 30 ms: at most ${most} RETRs in flight; the server ran dry ${dry} times`);
    expect(written).toBe(count);
    // A batch's count (100) was the most before.
    expect(most).toBeGreaterThan(RETRS_AHEAD_MAX / 2);
  });
});
