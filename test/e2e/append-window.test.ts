/**
 * The APPEND window against real Dovecot (engine/copier.ts, imap/pipeline.ts): the next batch's
 * intent is journaled and its APPEND written while the last one's tagged reply is outstanding.
 * A relay (append-relay.ts) holds Dovecot's replies on popsync's APPEND connection until a
 * second APPEND command begins, so the proof is a count of commands, never a time: without the
 * window the second command never comes while the first is unanswered.
 */
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { realisticMix } from '../../lab/corpus.js';
import type { Lab } from '../../lab/dovecot.js';
import { DEFAULT_APPEND_WINDOW } from '../../src/defaults.js';
import { startAppendRelay, type AppendRelay, type AppendRelayOptions } from '../support/append-relay.js';
import { runCli } from '../support/cli.js';
import { labArgs, useLab } from '../support/lab-fixture.js';
import { destinationMessages, digests, sourceMessages } from '../support/mailboxes.js';

let lab: Lab;
let dir: string;
useLab('window', {}, (l, d) => {
  lab = l;
  dir = d;
});

const relays: AppendRelay[] = [];
afterAll(async () => {
  await Promise.all(relays.map((r) => r.close()));
});

interface Summary {
  copied: number;
  reconciled: number;
  reconnects: number;
}

/** Twelve messages in batches of four: three MULTIAPPEND commands, one per batch. */
async function migrateVia(options: AppendRelayOptions, seed: number) {
  const pop = lab.newUser('src');
  const imap = lab.newUser('dst');
  await lab.seedPop3(pop, realisticMix(12, seed));
  const expected = digests(await sourceMessages(lab, pop));
  const relay = await startAppendRelay(lab.imap.port, options);
  relays.push(relay);
  const journal = join(dir, `${pop}.sqlite`);
  // Without the window the held reply never comes: this timeout then ends the pass.
  const args = labArgs('migrate', lab, pop, imap, journal, [
    '--no-progress',
    '--json',
    '--batch-messages',
    '4',
    '--timeout',
    '20',
  ]);
  args[args.indexOf(`imap://${imap}@127.0.0.1:${lab.imap.port}`)] = `imap://${imap}@127.0.0.1:${relay.port}`;
  const r = await runCli(args, { env: { PW: lab.password } });
  expect(r.code, r.stderr).toBe(0);
  expect(digests((await destinationMessages(lab, imap)).map((m) => m.body)), 'each message once').toEqual(expected);
  return { relay, summary: JSON.parse(r.stdout) as Summary, rerun: () => runCli(args, { env: { PW: lab.password } }) };
}

describe('the APPEND window', () => {
  it("writes the next batch's APPEND before the last one's tagged reply, within the window", async () => {
    const { relay, summary } = await migrateVia({}, 71);
    expect(relay.writtenWhileUnanswered(), 'APPENDs begun while an earlier one was unanswered').toBeGreaterThan(0);
    expect(relay.peakUnanswered()).toBeLessThanOrEqual(DEFAULT_APPEND_WINDOW);
    expect(relay.appendCommands()).toBe(3);
    expect(summary).toMatchObject({ copied: 12, reconnects: 0 });
  });

  it('a drop with two batches unanswered leaves both to reconciliation; each message arrives once', async () => {
    // Dovecot stored both batches; their OKs are held, then the link is cut.
    const { relay, summary, rerun } = await migrateVia({ cutAfterReplies: 2 }, 72);
    expect(relay.cuts(), 'the link was cut once').toBe(1);
    expect(relay.writtenWhileUnanswered()).toBeGreaterThan(0);
    // Both outstanding batches found by content after reconnecting; the third appended then.
    expect(summary).toMatchObject({ reconnects: 1, reconciled: 8, copied: 4 });
    const again = await rerun();
    expect(again.code, again.stderr).toBe(0);
    expect(JSON.parse(again.stdout)).toMatchObject({ copied: 0, reconciled: 0 });
  });
});
