/**
 * `sync --delete` at 30 ms round trip against the real Dovecot (lab/slow-proxy.ts): with its
 * TOPs and DELEs bounded to DELETE_IN_FLIGHT awaiting replies (engine/deleter.ts), the server
 * still never waits a round trip per message: counted at the relay, the times the server had
 * answered every TOP or DELE written while more were to come, never seconds.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Lab } from '../../lab/dovecot.js';
import { runAtRoundTrip, useLab } from '../support/lab-fixture.js';
import { shortNotes } from '../support/mailboxes.js';

let lab: Lab;
let dir: string;
useLab('delete-in-flight', {}, (l, d) => {
  lab = l;
  dir = d;
});

describe('sync --delete at 30 ms RTT', () => {
  it('keeps the server fed: a wait per window of TOPs or DELEs at most, not one per message', async () => {
    const pop = lab.newUser('src');
    const imap = lab.newUser('dst');
    const count = 1500;
    await lab.seedPop3(pop, shortNotes(count, 'del', 5, 10));
    // Per phase: commands written and replies seen; a wait is a write of more when every
    // command written so far was answered (the server had nothing left to do for a round trip).
    let phase: 'TOP' | 'DELE' | '' = '';
    let written = 0;
    let answered = 0;
    const waits = { TOP: 0, DELE: 0 };
    const sent = { TOP: 0, DELE: 0 };
    const seen = (_conn: number, dir: 'up' | 'down', chunk: Buffer): void => {
      const s = chunk.toString('latin1');
      if (dir === 'up') {
        for (const verb of ['TOP', 'DELE'] as const) {
          const n = (s.match(verb === 'TOP' ? /^TOP /gm : /^DELE /gm) ?? []).length;
          if (n === 0) continue;
          if (phase !== verb) {
            phase = verb;
            written = 0;
            answered = 0;
          }
          if (written > 0 && written === answered) waits[verb]++;
          written += n;
          sent[verb] += n;
        }
      } else if (phase === 'TOP') answered += (s.match(/\r\n\.\r\n/g) ?? []).length;
      else if (phase === 'DELE') answered += (s.match(/^(\+OK|-ERR)/gm) ?? []).length;
    };
    const res = await runAtRoundTrip(lab, 'sync', pop, imap, join(dir, `${pop}.sqlite`), { pop3: seen }, ['--delete']);
    expect(res.code, res.stderr).toBe(0);
    expect(JSON.parse(res.stdout)).toMatchObject({ copied: count, deleted: count });
    console.log(`sync --delete of ${count} at 30 ms: server waits TOP ${waits.TOP}, DELE ${waits.DELE}`);
    expect(sent).toEqual({ TOP: count, DELE: count });
    // A window of DELETE_IN_FLIGHT answered faster than a round trip costs a wait (1,500 / 512:
    // 3); a round trip per message would be 1,500, one per batch of 100 15.
    expect(waits.TOP).toBeLessThan(count / 100);
    expect(waits.DELE).toBeLessThan(count / 100);
  });
});
