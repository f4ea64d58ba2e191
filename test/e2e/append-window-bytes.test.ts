/**
 * The APPEND window bounded by bytes (engine/append-window.ts) against the real Dovecot, behind a
 * relay that delays the IMAP side 100 ms each way (lab/slow-proxy.ts): batches of small mail,
 * far below the byte cap, go out more than two per round trip and never more than
 * APPEND_WINDOW_MAX. Counted as APPEND commands written and not yet answered as popsync sees it
 * (a reply reaches popsync when the relay forwards it), never as time.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Lab } from '../../lab/dovecot.js';
import { startSlowProxy } from '../../lab/slow-proxy.js';
import { APPEND_WINDOW_MAX, DEFAULT_APPEND_WINDOW } from '../../src/defaults.js';
import { runCli } from '../support/cli.js';
import { loopbackArgs, useLab } from '../support/lab-fixture.js';
import { shortNotes } from '../support/mailboxes.js';

let lab: Lab;
let dir: string;
useLab('append-window-bytes', {}, (l, d) => {
  lab = l;
  dir = d;
});

describe('the APPEND window on small mail', () => {
  it(`has more than ${DEFAULT_APPEND_WINDOW} batches outstanding, never more than ${APPEND_WINDOW_MAX}`, async () => {
    const pop = lab.newUser('src');
    const imap = lab.newUser('dst');
    const count = 1500;
    await lab.seedPop3(pop, shortNotes(count, 'win', 5, 20));
    const delay = 100;
    let written = 0;
    let answered = 0;
    let most = 0;
    const slow = await startSlowProxy(lab.imap.port, delay, (_conn, dir, chunk) => {
      const s = chunk.toString('latin1');
      if (dir === 'up') {
        written += (s.match(/^P\d+ APPEND /gm) ?? []).length;
        most = Math.max(most, written - answered);
        return;
      }
      // popsync reads the reply when the relay forwards it, `delay` later (in order, as here).
      const n = (s.match(/^P\d+ (OK|NO|BAD)\b/gm) ?? []).length;
      if (n > 0)
        setTimeout(() => {
          answered += n;
        }, delay);
    });
    try {
      const r = await runCli(
        loopbackArgs('migrate', { pop3: lab.pop3.port, imap: slow.port }, pop, imap, join(dir, `${pop}.sqlite`), [
          '--json',
          '--no-progress',
        ]),
        { env: { PW: lab.password } },
      );
      expect(r.code, r.stderr).toBe(0);
      expect(JSON.parse(r.stdout)).toMatchObject({ copied: count, reconciled: 0 });
    } finally {
      await slow.close();
    }
    console.log(`small mail behind a 200 ms round trip: ${written} APPENDs, at most ${most} outstanding`);
    expect(written).toBe(count / 100);
    expect(most).toBeGreaterThan(DEFAULT_APPEND_WINDOW);
    expect(most).toBeLessThanOrEqual(APPEND_WINDOW_MAX);
  });
});
