/**
 * Exactly once into a server that rewrites what it stores, and with journals that know less
 * than the destination: a scripted POP3 source serves messages with bare LF line ends and NUL
 * bytes (as non-Dovecot POP3 servers do), real Dovecot stores them with CRLF and NUL as 0x80,
 * so no copy is byte-identical to what was sent. Dropped IMAP links mid-batch, kills at every
 * journal step, a second journal, a forgotten folder and a recreated folder must all end with
 * every source message in the destination exactly once.
 */
import { join } from 'node:path';
import { ImapFlow } from 'imapflow';
import { readFileSync, rmSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fingerprint } from '../support/fingerprint.js';
import type { Lab } from '../../lab/dovecot.js';
import { loopbackArgs, useLab } from '../support/lab-fixture.js';
import { runCli } from '../support/cli.js';
import { appendUidCount, startCuttingProxy } from '../support/cutting-proxy.js';
import { startFakePop3, type FakePop3 } from '../support/fake-pop3.js';
import { destinationMessages } from '../support/mailboxes.js';

let lab: Lab;
let dir: string;
const closers: Array<{ close(): Promise<void> }> = [];

useLab('rewrites', {}, (l, d) => {
  lab = l;
  dir = d;
});
afterAll(async () => {
  await Promise.all(closers.map((c) => c.close()));
});

/**
 * Bare LF line ends, a NUL, some without Message-ID, and identical pairs (each copy must
 * arrive). The last line ends in CRLF so the POP3 terminator is unambiguous.
 */
function corpus(n: number): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < n; i++) {
    const id = i % 3 === 2 ? '' : `Message-ID: <rw${i}@popsync.test>\n`;
    const m = Buffer.from(
      `${id}From: a@popsync.test\nSubject: rewritten ${i}\n\nline one\0of ${i}\nline two\r\n`,
      'latin1',
    );
    out.push(m);
    if (i % 4 === 1) out.push(m); // an identical twin
  }
  return out;
}

/** Sorted fingerprints: equal lists mean the same messages, each the same number of times. */
const fingerprints = (bodies: Buffer[]): string[] => bodies.map(fingerprint).sort();

async function source(messages: Buffer[]): Promise<FakePop3> {
  const pop = await startFakePop3({
    user: 'src',
    password: lab.password,
    messages: messages.map((body, i) => ({ body, uidl: `uidl-${i}` })),
  });
  closers.push(pop);
  return pop;
}

function args(popPort: number, imap: string, imapPort: number, journal: string, extra: string[] = []): string[] {
  return loopbackArgs('migrate', { pop3: popPort, imap: imapPort }, 'src', imap, journal, [
    '--no-progress',
    '--json',
    '--batch-messages',
    '4',
    ...extra,
  ]);
}

async function imapClient(user: string): Promise<ImapFlow> {
  const c = new ImapFlow({
    host: lab.imap.host,
    port: lab.imap.port,
    secure: false,
    doSTARTTLS: true,
    tls: { ca: [readFileSync(lab.caFile)] },
    auth: { user, pass: lab.password },
    logger: false,
  });
  await c.connect();
  return c;
}

describe('a destination that rewrites (Dovecot: bare LF -> CRLF, NUL -> 0x80)', () => {
  let messages: Buffer[];
  let expected: string[];
  beforeAll(() => {
    messages = corpus(12);
    expected = fingerprints(messages);
  });

  it('really is rewritten: no copy is byte-identical to its source', async () => {
    const pop = await source(messages.slice(0, 2));
    const imap = lab.newUser('dst');
    const r = await runCli(args(pop.port, imap, lab.imap.port, join(dir, `${imap}.sqlite`)), {
      env: { PW: lab.password },
    });
    expect(r.code, r.stderr).toBe(0);
    const stored = await destinationMessages(lab, imap);
    expect(stored).toHaveLength(2);
    for (const [i, m] of stored.entries()) {
      expect(m.body.equals(messages[i]!)).toBe(false);
      expect(fingerprint(m.body)).toBe(fingerprint(messages[i]!));
    }
  });

  it('a dropped IMAP link after Dovecot stored an APPEND, three times: 0 duplicates, exit 0', async () => {
    const pop = await source(messages);
    const imap = lab.newUser('dst');
    const oks = new Map<number, number>();
    let cuts = 0;
    const proxy = await startCuttingProxy(lab.imap.port, {
      // Three times, a connection dies in the chunk whose APPEND OKs bring it to 3 stored
      // messages (a MULTIAPPEND's OK names its whole batch): Dovecot has stored them, popsync
      // never hears so.
      cutServerData: ({ connection, chunk }) => {
        if (cuts >= 3) return false;
        const n = (oks.get(connection) ?? 0) + appendUidCount(chunk);
        oks.set(connection, n);
        if (n < 3) return false;
        cuts++;
        return true;
      },
    });
    closers.push(proxy);
    // Batches of 2: with two batches outstanding at once (the APPEND window), a connection has
    // at most 4 stored when it is cut, so the 13 messages last for three cuts; with batches of 4
    // it could be 8, and when the receiving kept up the messages were in after two (1 run in 3).
    const r = await runCli(args(pop.port, imap, proxy.port, join(dir, `${imap}.sqlite`), ['--batch-messages', '2']), {
      env: { PW: lab.password },
    });
    expect(r.code, r.stderr).toBe(0);
    expect(proxy.cuts()).toBe(3);
    const summary = JSON.parse(r.stdout);
    expect(summary.reconciled).toBeGreaterThanOrEqual(3);
    expect(summary.copied + summary.reconciled).toBe(messages.length);
    expect(fingerprints((await destinationMessages(lab, imap)).map((m) => m.body))).toEqual(expected);
  });

  it('a kill before and after every journal step, then a resume: 0 duplicates', async () => {
    const small = corpus(4); // 5 messages: an identical pair, one without Message-ID
    const want = fingerprints(small);
    const pop = await source(small);
    const stepsFile = join(dir, 'steps');
    const clean = lab.newUser('dst');
    const c = await runCli(
      args(pop.port, clean, lab.imap.port, join(dir, `${clean}.sqlite`), ['--batch-messages', '2']),
      { env: { PW: lab.password }, hooks: { stepsFile } },
    );
    expect(c.code, c.stderr).toBe(0);
    const steps = Number(readFileSync(stepsFile, 'utf8').trim());
    expect(steps).toBeGreaterThanOrEqual(7);
    for (let k = 1; k <= steps; k++) {
      for (const when of ['before', 'after'] as const) {
        const imap = lab.newUser('dst');
        const journal = join(dir, `${imap}.sqlite`);
        const killed = await runCli(args(pop.port, imap, lab.imap.port, journal, ['--batch-messages', '2']), {
          env: { PW: lab.password },
          hooks: { killAt: `${k}:${when}` },
        });
        expect(killed.signal, `step ${k} ${when}: ${killed.stderr}`).toBe('SIGKILL');
        const resumed = await runCli(args(pop.port, imap, lab.imap.port, journal, ['--batch-messages', '2']), {
          env: { PW: lab.password },
        });
        expect(resumed.code, `resume after ${k}:${when}: ${resumed.stderr}`).toBe(0);
        expect(
          fingerprints((await destinationMessages(lab, imap)).map((m) => m.body)),
          `after kill at ${k}:${when}`,
        ).toEqual(want);
      }
    }
  }, 600_000);
});

describe('journals that know less than the destination', () => {
  it('a second journal, and a deleted one, over a destination that holds the copies: 0 copied again', async () => {
    const messages = corpus(9);
    const pop = await source(messages);
    const imap = lab.newUser('dst');
    const first = join(dir, `${imap}-a.sqlite`);
    const r1 = await runCli(args(pop.port, imap, lab.imap.port, first), { env: { PW: lab.password } });
    expect(r1.code, r1.stderr).toBe(0);
    expect(JSON.parse(r1.stdout)).toMatchObject({ copied: messages.length });

    const r2 = await runCli(args(pop.port, imap, lab.imap.port, join(dir, `${imap}-b.sqlite`)), {
      env: { PW: lab.password },
    });
    expect(r2.code, r2.stderr).toBe(0);
    expect(JSON.parse(r2.stdout)).toMatchObject({ copied: 0, adopted: messages.length, failed: [] });

    for (const suffix of ['', '-wal', '-shm']) rmSync(first + suffix, { force: true });
    const r3 = await runCli(args(pop.port, imap, lab.imap.port, first), { env: { PW: lab.password } });
    expect(r3.code, r3.stderr).toBe(0);
    expect(JSON.parse(r3.stdout)).toMatchObject({ copied: 0, adopted: messages.length });
    expect(fingerprints((await destinationMessages(lab, imap)).map((m) => m.body))).toEqual(fingerprints(messages));
  });

  it('forget-folder: copies what the user removed from the folder, adopts the rest', async () => {
    const messages = corpus(6);
    const pop = await source(messages);
    const imap = lab.newUser('dst');
    const journal = join(dir, `${imap}.sqlite`);
    expect((await runCli(args(pop.port, imap, lab.imap.port, journal), { env: { PW: lab.password } })).code).toBe(0);
    const client = await imapClient(imap);
    try {
      await client.mailboxOpen('INBOX');
      await client.messageDelete('1:2', { uid: true });
    } finally {
      await client.logout();
    }
    // The journal still says copied: nothing is copied back on its own.
    const r1 = await runCli(args(pop.port, imap, lab.imap.port, journal), { env: { PW: lab.password } });
    expect(JSON.parse(r1.stdout)).toMatchObject({ copied: 0 });
    // Named as the runs name the account (the source as given), not by the journal key (src@localhost).
    const given = `src@127.0.0.1:${pop.port}`;
    const byPop = ['--pop', `pop3://${given}`, '--journal', journal];
    const f = await runCli(['journal', 'forget-folder', '--folder', 'INBOX', ...byPop], { env: {} });
    expect(f.code, f.stderr).toBe(0);
    expect(f.stdout).toMatch(
      new RegExp(`^${given.replaceAll('.', '\\.')}: forgot destination folder "INBOX" and ${messages.length} message`),
    );
    const r2 = await runCli(args(pop.port, imap, lab.imap.port, journal), { env: { PW: lab.password } });
    expect(r2.code, r2.stderr).toBe(0);
    expect(JSON.parse(r2.stdout)).toMatchObject({ copied: 2, adopted: messages.length - 2 });
    expect(fingerprints((await destinationMessages(lab, imap)).map((m) => m.body))).toEqual(fingerprints(messages));
    const unknown = await runCli(['journal', 'forget-folder', '--folder', 'Nope', ...byPop], { env: {} });
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/records nothing about destination folder "Nope"/);
    expect(unknown.stderr).toContain(`\n  account: ${given}\n`);
    // Another account's --pop with this journal: named as given too, in the message and its account: line.
    const stranger = `other@127.0.0.1:${pop.port}`;
    const wrong = await runCli(
      ['journal', 'forget-folder', '--folder', 'INBOX', '--pop', `pop3://${stranger}`, '--journal', journal],
      { env: {} },
    );
    expect(wrong.code).toBe(5);
    expect(wrong.stderr).toContain(`journal ${journal} belongs to source account src@localhost, not ${stranger}\n`);
    expect(wrong.stderr).toContain(`\n  account: ${stranger}\n`);
    // Without --pop there is only the journal's key to name it by.
    const byKey = await runCli(['journal', 'forget-folder', '--folder', 'INBOX', '--journal', journal], { env: {} });
    expect(byKey.stdout, byKey.stderr).toMatch(/^src@localhost: forgot destination folder "INBOX"/);
  });

  it('a folder deleted and recreated between runs, then new mail: the run goes on', async () => {
    const messages = corpus(3);
    const pop = await source(messages);
    const imap = lab.newUser('dst');
    const journal = join(dir, `${imap}.sqlite`);
    const folder = ['--folder', 'Archive'];
    expect(
      (await runCli(args(pop.port, imap, lab.imap.port, journal, folder), { env: { PW: lab.password } })).code,
    ).toBe(0);
    const client = await imapClient(imap);
    try {
      await client.mailboxDelete('Archive');
      await client.mailboxCreate('Archive');
    } finally {
      await client.logout();
    }
    const extra = Buffer.from('Message-ID: <late@popsync.test>\nSubject: late\n\nnew mail\r\n', 'latin1');
    pop.mailbox.push({ uidl: 'late', body: extra });
    const r = await runCli(args(pop.port, imap, lab.imap.port, journal, folder), { env: { PW: lab.password } });
    expect(r.code, r.stderr).toBe(0);
    const summary = JSON.parse(r.stdout);
    expect(summary).toMatchObject({ copied: 1, alreadyCopied: messages.length });
    expect(summary.warnings.join('\n')).toMatch(/"Archive" was recreated/);
    expect(fingerprints((await destinationMessages(lab, imap, 'Archive')).map((m) => m.body))).toEqual(
      fingerprints([extra]),
    );
    // And the copies the user lost come back with forget-folder, once.
    expect(
      (await runCli(['journal', 'forget-folder', '--folder', 'Archive', '--journal', journal], { env: {} })).code,
    ).toBe(0);
    const again = await runCli(args(pop.port, imap, lab.imap.port, journal, folder), { env: { PW: lab.password } });
    expect(JSON.parse(again.stdout)).toMatchObject({ copied: messages.length, adopted: 1 });
    expect(fingerprints((await destinationMessages(lab, imap, 'Archive')).map((m) => m.body))).toEqual(
      fingerprints([...messages, extra]),
    );
  });
});
