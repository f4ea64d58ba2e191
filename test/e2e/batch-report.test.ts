/**
 * Batch reports against the real Dovecot lab: `--report-dir` (each account's JSON and HTML,
 * named), `--report FILE` with `--accounts` (one batch report whose format follows the name)
 * on migrate, sync and plan, and `report merge` over the reports of two shards. No report
 * holds a password, the right ones nor a wrong one.
 */
import { chmodSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Lab } from '../../lab/dovecot.js';
import { realisticMix } from '../../lab/corpus.js';
import { runCli } from '../support/cli.js';
import { useLab } from '../support/lab-fixture.js';
import { destinationMessages } from '../support/mailboxes.js';

let lab: Lab;
let dir: string;
useLab('batch-report', {}, (l, d) => {
  lab = l;
  dir = d;
});

const WRONG = 'wrong-Secret-0451';

interface Account {
  name: string;
  src: string;
  dst: string;
}

async function accounts(n: number, per: number, seed: number): Promise<Account[]> {
  const out: Account[] = [];
  for (let i = 0; i < n; i++) {
    const src = lab.newUser('rep');
    await lab.seedPop3(src, realisticMix(per, seed + i));
    out.push({ name: src, src, dst: lab.newUser('rdst') });
  }
  return out;
}

/** A 0600 list with password columns; `bad` gets a wrong POP3 password. */
function csv(path: string, rows: Account[], bad?: Account): string {
  const lines = rows.map(
    (a) =>
      `${a.name},pop3://${a.src}@127.0.0.1:${lab.pop3.port}?tls=none,` +
      `imap://${a.dst}@127.0.0.1:${lab.imap.port}?tls=none,` +
      `${a === bad ? WRONG : lab.password},${lab.password}`,
  );
  const header = 'name,source,destination,source_password,destination_password';
  writeFileSync(path, `${[header, ...lines].join('\n')}\n`, { mode: 0o600 });
  chmodSync(path, 0o600);
  return path;
}

/** Every file under `d`, recursively, with its text. */
function filesUnder(d: string): Array<[string, string]> {
  return readdirSync(d, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => {
      const p = join(e.parentPath, e.name);
      return [p, readFileSync(p, 'utf8')];
    });
}

describe('batch reports', () => {
  it('--report-dir and --report on migrate, two shards merged into one report; no secret in any of them', async () => {
    const list = await accounts(6, 2, 900);
    const bad = list[2]!;
    const out = join(dir, 'out');
    const file = csv(join(dir, 'a.csv'), list, bad);
    const base = ['migrate', '--accounts', file, '--journal-dir', join(dir, 'j'), '--parallel', '2', '--no-progress'];
    const shards = await Promise.all(
      [0, 1].map((k) =>
        runCli([
          ...base,
          '--shard',
          `${k}/2`,
          '--report-dir',
          join(out, 'accounts'),
          '--report',
          join(out, `s${k}.json`),
        ]),
      ),
    );
    // The wrong password is one account's exit 3, in one shard; the other shard ends 0.
    expect(shards.map((s) => s.code).sort()).toEqual([0, 3]);

    // --report-dir: each account that ran to its end has its JSON and HTML, named.
    const good = list.filter((a) => a !== bad);
    for (const a of good) {
      const json = JSON.parse(readFileSync(join(out, 'accounts', `${a.name}.json`), 'utf8'));
      expect(json).toMatchObject({ name: a.name, run: { command: 'migrate' }, totals: { copied: 2 } });
      expect(json.source).toBe(`${a.src}@127.0.0.1:${lab.pop3.port}`);
      expect(readFileSync(join(out, 'accounts', `${a.name}.html`), 'utf8')).toContain(`account ${a.name} ·`);
    }
    expect(readdirSync(join(out, 'accounts')).sort()).toEqual(
      good.flatMap((a) => [`${a.name}.html`, `${a.name}.json`]).sort(),
    );

    // Each shard's batch report has its own accounts; merged, every account once, totals recomputed.
    const merged = await runCli([
      'report',
      'merge',
      join(out, 's0.json'),
      join(out, 's1.json'),
      '--output',
      join(out, 'all.json'),
    ]);
    expect({ code: merged.code, stderr: merged.stderr }).toEqual({ code: 0, stderr: '' });
    const all = JSON.parse(readFileSync(join(out, 'all.json'), 'utf8'));
    expect(all.accounts.map((r: { name: string }) => r.name)).toEqual(list.map((a) => a.name).sort());
    expect(all.totals).toMatchObject({ accounts: 6, outcomes: { ok: 5, partial: 0, error: 1 }, copied: 10 });
    expect(all.accounts.find((r: { name: string }) => r.name === bad.name)).toMatchObject({
      outcome: 'error',
      exitCode: 3,
      error: expect.stringMatching(/POP3/),
    });

    // Merging a shard with itself again (a rerun's report) still counts each account once.
    const html = await runCli([
      'report',
      'merge',
      join(out, 's0.json'),
      join(out, 's1.json'),
      join(out, 'all.json'),
      '--output',
      join(out, 'all.html'),
    ]);
    expect(html.code).toBe(0);
    const page = readFileSync(join(out, 'all.html'), 'utf8');
    expect(page).toContain('<h1>6 accounts</h1>');
    expect(page.indexOf(bad.name)).toBeLessThan(page.indexOf('id="h-accounts"'));
    const csvOut = await runCli([
      'report',
      'merge',
      join(out, 's0.json'),
      join(out, 's1.json'),
      '--output',
      join(out, 'all.csv'),
    ]);
    expect(csvOut.code).toBe(0);
    const rows = readFileSync(join(out, 'all.csv'), 'utf8').trimEnd().split('\r\n');
    expect(rows).toHaveLength(7);
    for (const a of list) expect(rows.filter((r) => r.startsWith(`${a.name},`))).toHaveLength(1);

    // Not a report: exit 2, naming the file, no stack trace.
    writeFileSync(join(out, 'other.json'), '{"hello": 1}\n');
    const refused = await runCli(['report', 'merge', join(out, 's0.json'), join(out, 'other.json')]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain(`${join(out, 'other.json')} is not a popsync batch report`);
    expect(refused.stderr).not.toMatch(/\n\s+at /);
    const single = await runCli(['report', 'merge', join(out, 'accounts', `${good[0]!.name}.json`)]);
    expect(single.code).toBe(2);
    expect(single.stderr).toContain("one account's report, not a batch report");

    // No password in any report, of the accounts that logged in or of the one refused.
    for (const [path, text] of filesUnder(out)) {
      expect({ path, has: text.includes(lab.password) }).toEqual({ path, has: false });
      expect({ path, has: text.includes(WRONG) }).toEqual({ path, has: false });
    }
    for (const a of good) expect(await destinationMessages(lab, a.dst)).toHaveLength(2);
  });

  it('sync and plan write a batch report too, a row per account with its name', async () => {
    const list = await accounts(3, 2, 950);
    const file = csv(join(dir, 's.csv'), list);
    const journals = join(dir, 'js');
    const plan = await runCli([
      'plan',
      '--accounts',
      file,
      '--journal-dir',
      journals,
      '--report',
      join(dir, 'plan.csv'),
      '--report-dir',
      join(dir, 'plans'),
    ]);
    expect({ code: plan.code, stderr: plan.stderr }).toEqual({ code: 0, stderr: '' });
    const planRows = readFileSync(join(dir, 'plan.csv'), 'utf8').trimEnd().split('\r\n').slice(1);
    expect(planRows.map((r) => r.split(',').slice(0, 4))).toEqual(list.map((a) => [a.name, 'ok', '0', 'plan']));
    // Each account's plan, named, as JSON and HTML.
    for (const a of list)
      expect(JSON.parse(readFileSync(join(dir, 'plans', `${a.name}.json`), 'utf8'))).toMatchObject({
        name: a.name,
        totals: { new: 2 },
      });
    expect(readdirSync(join(dir, 'plans'))).toHaveLength(6);
    // plan: 2 to copy each (column "new"), nothing copied.
    for (const r of planRows) expect(r.split(',').slice(8, 11)).toEqual(['2', expect.stringMatching(/^\d+$/), '0']);

    const sync = await runCli([
      'sync',
      '--accounts',
      file,
      '--journal-dir',
      journals,
      '--quiet',
      '--report',
      join(dir, 'sync.json'),
      '--report-dir',
      join(dir, 'sync-accounts'),
    ]);
    expect({ code: sync.code, stderr: sync.stderr }).toEqual({ code: 0, stderr: '' });
    const report = JSON.parse(readFileSync(join(dir, 'sync.json'), 'utf8'));
    expect(report).toMatchObject({ kind: 'popsync-batch-report', command: 'sync', totals: { accounts: 3, copied: 6 } });
    expect(report.accounts.map((r: { name: string; copied: number }) => [r.name, r.copied])).toEqual(
      list.map((a) => [a.name, 2]),
    );
    expect(readdirSync(join(dir, 'sync-accounts'))).toHaveLength(6);
    // A loop has no end to write one pass's report at.
    const loop = await runCli(['sync', '--accounts', file, '--every', '5m', '--report', join(dir, 'loop.json')]);
    expect(loop.code).toBe(2);
    expect(loop.stderr).toContain('--report with --accounts is the report of one pass: drop --every');
  });
});
