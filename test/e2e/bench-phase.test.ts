/**
 * The bench's like-for-like figure for popsync (lab/bench-phase.ts): popsync's copy phase is
 * read off its connections by the relays it goes through, a zero-delay one (loopback) and a
 * delaying one (the 30 ms section). Against the lab Dovecot, with batches small enough that
 * several APPEND replies come: the relays must pass popsync's run through intact, and the
 * phase must have seen the first RETR and every APPEND's tagged OK (their APPENDUID sets count
 * every copy). Bounded work, no timing asserted.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CopyPhase } from '../../lab/bench-phase.js';
import { benchMix } from '../../lab/corpus.js';
import type { Lab } from '../../lab/dovecot.js';
import { startSlowProxy } from '../../lab/slow-proxy.js';
import { runCli } from '../support/cli.js';
import { loopbackArgs, useLab } from '../support/lab-fixture.js';
import { destinationMessages } from '../support/mailboxes.js';

let lab: Lab;
let dir: string;

useLab('bench-phase', { pop3Rawlog: false }, (l, d) => {
  lab = l;
  dir = d;
});

let tries = 0;

describe('bench copy phase', () => {
  for (const delayMs of [0, 5]) {
    it(`sees popsync's first RETR and every APPEND reply through a relay holding chunks ${delayMs} ms`, async () => {
      const count = 24;
      const [src, dst] = [`phase-src-${delayMs}-${++tries}`, `phase-dst-${delayMs}-${tries}`];
      await lab.seedPop3(src, benchMix(count, 9));
      const phase = new CopyPhase(delayMs);
      const pop3 = await startSlowProxy(lab.pop3.port, delayMs, phase.pop3);
      const imap = await startSlowProxy(lab.imap.port, delayMs, phase.imap);
      try {
        const res = await runCli(
          loopbackArgs('migrate', { pop3: pop3.port, imap: imap.port }, src, dst, join(dir, `${src}.sqlite`), [
            '--batch-messages',
            '5',
            '--json',
            '--no-progress',
          ]),
          { env: { PW: lab.password } },
        );
        expect(res.code, res.stderr).toBe(0);
        expect(JSON.parse(res.stdout)).toMatchObject({ copied: count });
        expect(await destinationMessages(lab, dst)).toHaveLength(count);
        // One reply per batch of 5, each naming its copies' UIDs: all of them were seen.
        expect(phase.appendOks).toBeGreaterThanOrEqual(Math.ceil(count / 5));
        expect(phase.confirmed).toBe(count);
        expect(phase.ms).not.toBeNull();
        expect(phase.ms!).toBeGreaterThan(0);
      } finally {
        await pop3.close();
        await imap.close();
      }
    });
  }
});
