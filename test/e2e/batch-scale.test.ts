/**
 * The proof at scale (issue 9 part 7): 300 generated accounts of 1-3 messages on the lab
 * Dovecot, run as 3 shard processes the way the Kubernetes Indexed Job runs its pods
 * (`--shard K/3`, journals in one folder, a batch report each), one shard SIGKILLed mid-way
 * and rerun. Every account's messages arrive exactly once, every account lands in exactly one
 * shard, and `report merge` of the shards' reports counts all 300 once.
 *
 * Bounded by work, not time: tiny messages, 4 accounts at once per shard, and the destination
 * read back from Dovecot's own maildirs (one directory listing per account) instead of 300
 * IMAP logins.
 */
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Lab } from '../../lab/dovecot.js';
import { shardOf } from '../../src/app/shard.js';
import { runCli, startCli } from '../support/cli.js';
import { useLab } from '../support/lab-fixture.js';

let lab: Lab;
let dir: string;
useLab('batch-scale', { pop3Rawlog: false }, (l, d) => {
  lab = l;
  dir = d;
});

const ACCOUNTS = 300;
const SHARDS = 3;

interface Account {
  name: string;
  src: string;
  dst: string;
  ids: string[];
}

function message(account: number, n: number): Buffer {
  const id = `<a${account}.m${n}@scale.popsync.test>`;
  return Buffer.from(
    `From: sender${n}@example.net\r\nTo: user${account}@example.net\r\nSubject: account ${account} message ${n}\r\n` +
      `Date: Sat, 28 Nov 2026 10:0${n}:00 +0000\r\nMessage-ID: ${id}\r\n\r\nbody ${account}.${n}\r\n`,
  );
}

/** The Message-IDs in a destination's maildir, one per stored copy. */
function storedIds(user: string): string[] {
  const md = lab.maildirOf(user);
  const ids: string[] = [];
  for (const sub of ['cur', 'new']) {
    const d = join(md, sub);
    if (!existsSync(d)) continue;
    for (const f of readdirSync(d)) {
      const m = /^Message-ID: (\S+)/im.exec(readFileSync(join(d, f), 'latin1'));
      ids.push(m?.[1] ?? `(no Message-ID in ${f})`);
    }
  }
  return ids.sort();
}

describe('300 accounts as 3 shards', () => {
  it('one shard SIGKILLed and rerun: every account exactly once, in one shard; merged, each counted once', async () => {
    // Its own folder, so a retry of this test starts clean.
    const work = mkdtempSync(join(dir, 'run-'));
    const list: Account[] = [];
    for (let i = 0; i < ACCOUNTS; i++) {
      const src = lab.newUser('s');
      const count = 1 + (i % 3);
      const msgs = Array.from({ length: count }, (_, n) => message(i, n + 1));
      await lab.seedPop3(src, msgs);
      list.push({
        name: src,
        src,
        dst: lab.newUser('d'),
        ids: msgs.map((_, n) => `<a${i}.m${n + 1}@scale.popsync.test>`),
      });
    }
    const file = join(work, 'accounts.csv');
    const rows = list.map(
      (a) =>
        `${a.name},pop3://${a.src}@127.0.0.1:${lab.pop3.port}?tls=none,` +
        `imap://${a.dst}@127.0.0.1:${lab.imap.port}?tls=none,${lab.password},${lab.password}`,
    );
    writeFileSync(file, `name,source,destination,source_password,destination_password\n${rows.join('\n')}\n`, {
      mode: 0o600,
    });
    chmodSync(file, 0o600);
    const journals = join(work, 'journals');
    const shardArgs = (k: number) => [
      'migrate',
      '--accounts',
      file,
      '--journal-dir',
      journals,
      '--shard',
      `${k}/${SHARDS}`,
      '--parallel',
      '4',
      '--max-connections-per-host',
      '4',
      '--quiet',
      '--report',
      join(work, 'reports', `shard-${k}.json`),
    ];
    const inShard = (k: number) => list.filter((a) => shardOf(a.name, SHARDS) === k);
    // Each shard holds a fair share: the hash spreads names, no shard is empty.
    for (let k = 0; k < SHARDS; k++) expect(inShard(k).length).toBeGreaterThan(ACCOUNTS / SHARDS / 2);

    // Shard 0 dies after 60 committed journal steps: with 4 accounts at once, some accounts
    // are finished, some half-way, the rest not started.
    const runs = await Promise.all(
      Array.from(
        { length: SHARDS },
        (_, k) =>
          startCli(shardArgs(k), { timeoutMs: 600_000, ...(k === 0 ? { hooks: { killAt: '60:after' } } : {}) }).done,
      ),
    );
    expect(runs[0]!.signal).toBe('SIGKILL');
    for (const r of runs.slice(1)) expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
    const before = inShard(0).filter((a) => storedIds(a.dst).length === a.ids.length).length;
    expect(before).toBeLessThan(inShard(0).length);

    const retry = await runCli(shardArgs(0), { timeoutMs: 600_000 });
    expect(retry.code).toBe(0);
    for (const w of retry.stderr.split('\n').filter((l) => l !== ''))
      expect(w).toMatch(/^popsync: warning: replaced the lock row of a run that has ended: /);

    for (const a of list) expect({ account: a.name, ids: storedIds(a.dst) }).toEqual({ account: a.name, ids: a.ids });
    // One journal per account, each made by the one shard the account belongs to.
    expect(readdirSync(journals).filter((f) => f.endsWith('.sqlite')).length).toBe(ACCOUNTS);

    const merged = await runCli([
      'report',
      'merge',
      ...Array.from({ length: SHARDS }, (_, k) => join(work, 'reports', `shard-${k}.json`)),
      '--output',
      join(work, 'all.json'),
    ]);
    expect({ code: merged.code, stderr: merged.stderr }).toEqual({ code: 0, stderr: '' });
    const all = JSON.parse(readFileSync(join(work, 'all.json'), 'utf8')) as {
      totals: { accounts: number; listed: number; outcomes: Record<string, number> };
      accounts: Array<{ name: string; listed: number; copied: number; alreadyCopied: number }>;
    };
    const messages = list.reduce((n, a) => n + a.ids.length, 0);
    expect(all.totals).toMatchObject({ accounts: ACCOUNTS, listed: messages, outcomes: { ok: ACCOUNTS } });
    expect(all.accounts.map((r) => r.name)).toEqual(list.map((a) => a.name).sort());
    // The retried shard's rows say what its first run had done already: copied + already = listed.
    for (const r of all.accounts)
      expect({ name: r.name, sum: r.copied + r.alreadyCopied }).toEqual({ name: r.name, sum: r.listed });
  }, 900_000);
});
