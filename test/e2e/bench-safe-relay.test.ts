/**
 * The bench's safe relay (lab/bench-raw.ts) is a ceiling only if it really does the work it
 * stands for: against the lab Dovecot, 20 messages of the bench mix in batches small enough to
 * be cut by count and by bytes, several outstanding at once, must each arrive exactly once, and
 * its journal must hold one row per message with the message's own digests and the UID its copy
 * got. Read back through independent clients (our POP3 client, imapflow, SQLite directly). The
 * same for the relay run as a process of its own, the bench's whole-process row.
 */
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { listPop3, safeRelay } from '../../lab/bench-raw.js';
import { benchMix } from '../../lab/corpus.js';
import type { Lab } from '../../lab/dovecot.js';
import { bundleRelay, runRelay } from '../../lab/relay-cli.js';
import { Fingerprinter } from '../../src/engine/fingerprint.js';
import { connectPop3 } from '../../src/pop3/index.js';
import { useLab } from '../support/lab-fixture.js';
import { destinationMessages, sha, sourceMessages } from '../support/mailboxes.js';

let lab: Lab;
let dir: string;

useLab('safe-relay', { pop3Rawlog: false }, (l, d) => {
  lab = l;
  dir = d;
});

interface Row {
  uidl: string;
  size: number;
  sha256: string;
  fingerprint: string;
  uidvalidity: string | null;
  uid: number | null;
}

/** Names of their own for each try (vitest retries a failed test), so a retry starts from nothing. */
let tries = 0;

describe('bench safe relay', () => {
  it('copies every message once and journals one confirmed row per message', async () => {
    const count = 20;
    const [src, dst] = [`safe-src-${++tries}`, `safe-dst-${tries}`];
    await lab.seedPop3(src, benchMix(count, 5));
    const journal = join(dir, `${dst}.sqlite`);
    const ep = { pop3: lab.pop3.port, imap: lab.imap.port };
    // 6 messages or 60 KB a batch: some batches end on the count, some on the bytes.
    await safeRelay(ep, src, dst, lab.password, count, journal, { messages: 6, bytes: 60 * 1024 });

    const source = await sourceMessages(lab, src);
    const pop = await connectPop3({
      host: lab.pop3.host,
      port: lab.pop3.port,
      tls: 'none',
      user: src,
      password: lab.password,
    });
    const uidls = (await pop.uidl()).map((e) => e.uidl);
    await pop.quit();
    const stored = await destinationMessages(lab, dst);
    expect(stored.map((m) => sha(m.body)).sort()).toEqual(source.map(sha).sort());

    const db = new Database(journal, { readonly: true });
    const rows = db.prepare('SELECT * FROM copies').all() as Row[];
    db.close();
    expect(rows.map((r) => r.uidl).sort()).toEqual([...uidls].sort());
    const byUid = new Map(stored.map((m) => [m.uid, m.body]));
    for (const r of rows) {
      const i = uidls.indexOf(r.uidl);
      const body = source[i]!;
      expect(r).toMatchObject({
        size: body.length,
        sha256: sha(body),
        fingerprint: new Fingerprinter().update(body).digest(),
      });
      expect(r.uidvalidity).not.toBeNull();
      expect(byUid.get(r.uid!)).toEqual(body);
    }
  });
  it('as a process of its own (the bundle the bench runs), copies every message once and exits', async () => {
    const count = 20;
    const [src, dst] = [`proc-src-${++tries}`, `proc-dst-${tries}`];
    const mail = benchMix(count, 6);
    await lab.seedPop3(src, mail);
    const journal = join(dir, `${dst}.sqlite`);
    let exited = false;
    const run = await runRelay(
      lab,
      await bundleRelay(),
      'safe',
      { pop3: lab.pop3.port, imap: lab.imap.port },
      src,
      dst,
      count,
      journal,
      () => {
        exited = true;
      },
    );
    expect(exited).toBe(true);
    // Its own clock of the copy lies inside the process's.
    expect(run.copyMs).toBeGreaterThan(0);
    expect(run.copyMs).toBeLessThan(run.ms);
    expect(run.cpuMs).toBeGreaterThan(0);
    expect((await destinationMessages(lab, dst)).map((m) => sha(m.body)).sort()).toEqual(mail.map(sha).sort());
    const db = new Database(journal, { readonly: true });
    const confirmed = db.prepare('SELECT count(*) AS n FROM copies WHERE uid IS NOT NULL').get() as { n: number };
    db.close();
    expect(confirmed.n).toBe(count);
    // The relay only reads: the source is as seeded.
    expect((await sourceMessages(lab, src)).map(sha)).toEqual(mail.map(sha));
  });
  it("listPop3, which lists popsync's source before a timed run, reads all of LIST and leaves the mail", async () => {
    const src = `list-src-${++tries}`;
    const mail = benchMix(30, 7);
    await lab.seedPop3(src, mail);
    await listPop3({ pop3: lab.pop3.port, imap: lab.imap.port }, src, lab.password);
    expect((await sourceMessages(lab, src)).map(sha)).toEqual(mail.map(sha));
  });
});
