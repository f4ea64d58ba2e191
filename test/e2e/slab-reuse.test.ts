/**
 * Received bodies live in slabs reused from batch to batch (engine/slabs.ts). A slab given back
 * while its bytes may still be written down the APPEND connection or to a spool file would put
 * another message's bytes into a copy. The hooked launcher overwrites every slab the moment it
 * is given back (poisonSlabs), so any such read shows in the destination: each copy read back
 * from Dovecot must be byte for byte its source message. Covered: many small batches in the
 * APPEND window, messages spilling to a spool file between in-memory ones of the same batch
 * (the arena rewinds under them), a drop with batches unanswered (their memory is not
 * recycled; the next pass receives them again), and a MULTIAPPEND refused for one message, whose
 * neighbours go again one by one from the same bodies (scripted server: Dovecot refuses none).
 * And without UIDPLUS (a window of one batch; each copy's UID found by content before the batch
 * is released).
 */
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { hugeMessage, realisticMix, toCrlf } from '../../lab/corpus.js';
import type { Lab } from '../../lab/dovecot.js';
import { startAppendRelay } from '../support/append-relay.js';
import { runCli } from '../support/cli.js';
import { FAKE_PASSWORD, startFakeImap } from '../support/fake-imap.js';
import { startFakePop3 } from '../support/fake-pop3.js';
import { labArgs, loopbackArgs, useLab } from '../support/lab-fixture.js';
import { destinationMessages, digests, sourceMessages } from '../support/mailboxes.js';

let lab: Lab;
let dir: string;
useLab('slabs', { pop3Rawlog: false }, (l, d) => {
  lab = l;
  dir = d;
});

/** Batches of 3 messages or 1 MB: many batches in flight, each big one spilling mid-batch. */
const SMALL_BATCHES = ['--no-progress', '--json', '--batch-messages', '3', '--batch-mb', '1'];

const closing: Array<{ close(): Promise<void> }> = [];
afterAll(async () => {
  await Promise.all(closing.map((r) => r.close()));
});

/** Small mail with three messages past the 1 MB spill point among them, each inside a batch. */
function corpus(seed: number): Buffer[] {
  const mail = realisticMix(40, seed);
  mail.splice(4, 0, hugeMessage(1_300_000, seed + 1));
  mail.splice(17, 0, hugeMessage(1_100_000, seed + 2));
  mail.splice(31, 0, hugeMessage(2_600_000, seed + 3));
  return mail;
}

async function seeded(seed: number) {
  const pop = lab.newUser('src');
  const imap = lab.newUser('dst');
  await lab.seedPop3(pop, corpus(seed));
  const expected = digests(await sourceMessages(lab, pop));
  const journal = join(dir, `${pop}.sqlite`);
  const args = labArgs('migrate', lab, pop, imap, journal, SMALL_BATCHES);
  return { imap, expected, args };
}

describe('slabs of received bodies', () => {
  it('are never reused while a copy still reads them: every copy is its source, byte for byte', async () => {
    const { imap, expected, args } = await seeded(81);
    const r = await runCli(args, { env: { PW: lab.password }, hooks: { poisonSlabs: true } });
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ copied: 43 });
    expect(digests((await destinationMessages(lab, imap)).map((m) => m.body))).toEqual(expected);
  });

  it('nor after a drop with batches unanswered, retried on a new connection', async () => {
    const { imap, expected, args } = await seeded(82);
    const relay = await startAppendRelay(lab.imap.port, { cutAfterReplies: 2 });
    closing.push(relay);
    args[args.indexOf(`imap://${imap}@127.0.0.1:${lab.imap.port}`)] = `imap://${imap}@127.0.0.1:${relay.port}`;
    const r = await runCli(args, { env: { PW: lab.password }, hooks: { poisonSlabs: true } });
    expect(r.code, r.stderr).toBe(0);
    expect(relay.cuts(), 'the link was cut once').toBe(1);
    expect(JSON.parse(r.stdout)).toMatchObject({ reconnects: 1 });
    expect(digests((await destinationMessages(lab, imap)).map((m) => m.body))).toEqual(expected);
  });

  it('nor while a refused MULTIAPPEND goes again message by message', async () => {
    const REFUSED = 'X-Refuse: this one';
    const mail = realisticMix(24, 83).map((m) => toCrlf(m));
    // One message in each of two batches of 6 refuses its whole MULTIAPPEND.
    for (const k of [2, 15]) mail[k] = Buffer.concat([Buffer.from(`${REFUSED}\r\n`), mail[k]!]);
    const pop = await startFakePop3({ messages: mail, user: 'src', password: FAKE_PASSWORD, pipelining: true });
    const imap = await startFakeImap({
      capabilities: ['IMAP4rev1', 'UIDPLUS', 'LITERAL+', 'MULTIAPPEND'],
      onAppend: (a) => (a.body.includes(REFUSED) ? { kind: 'no', text: 'refused for the test' } : undefined),
    });
    closing.push(pop, imap);
    const args = loopbackArgs(
      'migrate',
      { pop3: pop.port, imap: imap.port },
      'src',
      'alice',
      join(dir, `multiappend-no-${imap.port}.sqlite`),
      ['--no-progress', '--json', '--batch-messages', '6'],
    );
    const r = await runCli(args, { env: { PW: FAKE_PASSWORD }, hooks: { poisonSlabs: true } });
    expect(r.code, r.stderr).toBe(1);
    const summary = JSON.parse(r.stdout) as { copied: number; failed: Array<{ n: number }> };
    expect(summary.copied).toBe(22);
    expect(summary.failed.map((f) => f.n)).toEqual([3, 16]);
    expect(imap.multiAppends.length, 'the batches went as MULTIAPPENDs').toBeGreaterThanOrEqual(4);
    const stored = imap.mailboxes.get('INBOX')!.messages.map((m) => m.body);
    expect(digests(stored)).toEqual(digests(mail.filter((m) => !m.includes(REFUSED))));
  });
});

describe('slabs of received bodies, without UIDPLUS', () => {
  let plain: Lab;
  let plainDir: string;
  useLab('slabs-no-uidplus', { pop3Rawlog: false, imapWithout: ['UIDPLUS'] }, (l, d) => {
    plain = l;
    plainDir = d;
  });

  it('are never reused while a copy or the search for its UID still reads them', async () => {
    const pop = plain.newUser('src');
    const imap = plain.newUser('dst');
    await plain.seedPop3(pop, corpus(84));
    const expected = digests(await sourceMessages(plain, pop));
    const args = labArgs('migrate', plain, pop, imap, join(plainDir, `${pop}.sqlite`), SMALL_BATCHES);
    const r = await runCli(args, { env: { PW: plain.password }, hooks: { poisonSlabs: true } });
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ copied: 43 });
    expect(digests((await destinationMessages(plain, imap)).map((m) => m.body))).toEqual(expected);
  });
});
