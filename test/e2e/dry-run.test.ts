/**
 * `migrate --dry-run` and `sync --dry-run` against a real Dovecot: they print what `plan`
 * prints and change nothing (no journal file, no copy, the source untouched; with a journal
 * from an earlier run, that journal byte for byte); the real run afterwards copies what the
 * dry run said it would.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Lab } from '../../lab/dovecot.js';
import type { PlanReport } from '../../src/report/plan-types.js';
import { labArgs, useLab } from '../support/lab-fixture.js';
import { runCli } from '../support/cli.js';
import { destinationMessages, digests, sha, sourceMessages } from '../support/mailboxes.js';

let lab: Lab;
let dir: string;
useLab('dryrun', {}, (l, d) => {
  lab = l;
  dir = d;
});

const mail = (i: number) => Buffer.from(`Message-ID: <dry${i}@test.example>\r\nSubject: dry ${i}\r\n\r\nbody ${i}\r\n`);
const withoutTime = (r: PlanReport) => ({ ...r, generatedAt: '' });

/**
 * The journal's state, file by file (content and mtime). A read-only SQLite open of a WAL
 * database may leave an empty `-wal` and a `-shm` (its shared-memory index) where there were
 * none, as `status` does (journal/wal-guard.ts): those hold no record, so an empty `-wal` counts
 * as no `-wal`, and the `-shm` is not state.
 */
function journalFiles(journal: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of readdirSync(dir)
    .filter((n) => join(dir, n).startsWith(journal))
    .sort()) {
    const p = join(dir, name);
    if (name.endsWith('-shm') || (name.endsWith('-wal') && statSync(p).size === 0)) continue;
    out[name] = `${sha(readFileSync(p))} ${statSync(p).mtimeMs}`;
  }
  return out;
}

describe('--dry-run', () => {
  it('migrate and sync print the plan and change nothing; the real run then copies what it said', async () => {
    const pop = lab.newUser('src');
    const imap = lab.newUser('dst');
    await lab.seedPop3(pop, [mail(1), mail(2), mail(3)]);
    const journal = join(dir, `${pop}.sqlite`);
    const env = { PW: lab.password };

    const plan = await runCli(labArgs('plan', lab, pop, imap, journal, ['--format', 'json']), { env });
    expect(plan.code).toBe(0);
    const planned = JSON.parse(plan.stdout) as PlanReport;
    expect(planned.totals.new).toBe(3);

    for (const command of ['migrate', 'sync']) {
      const json = await runCli(labArgs(command, lab, pop, imap, journal, ['--dry-run', '--json']), { env });
      expect(json.code, json.stderr).toBe(0);
      expect(withoutTime(JSON.parse(json.stdout) as PlanReport)).toEqual(withoutTime(planned));

      const table = await runCli(labArgs(command, lab, pop, imap, journal, ['--dry-run']), { env });
      expect(table.code, table.stderr).toBe(0);
      expect(table.stdout).toMatch(/^popsync plan: /);
      expect(table.stdout).toMatch(/^ {2}new: +3, 177 B$/m);
    }
    const sync = await runCli(labArgs('sync', lab, pop, imap, journal, ['--dry-run', '--delete']), { env });
    expect(sync.code, sync.stderr).toBe(0);

    expect(existsSync(journal)).toBe(false);
    expect(await destinationMessages(lab, imap)).toHaveLength(0);

    const real = await runCli(labArgs('migrate', lab, pop, imap, journal, ['--json', '--no-progress']), { env });
    expect(real.code, real.stderr).toBe(0);
    expect(JSON.parse(real.stdout)).toMatchObject({ copied: 3, failed: [] });
    expect(await destinationMessages(lab, imap)).toHaveLength(3);
  });

  it('after an earlier run: predicts what sync does; journal, destination and source stay as they were', async () => {
    const pop = lab.newUser('src');
    const imap = lab.newUser('dst');
    await lab.seedPop3(pop, [mail(11), mail(12)]);
    const journal = join(dir, `${pop}.sqlite`);
    const env = { PW: lab.password };
    const first = await runCli(labArgs('migrate', lab, pop, imap, journal, ['--json', '--no-progress']), { env });
    expect(first.code, first.stderr).toBe(0);
    await lab.seedPop3(pop, [mail(13), mail(14)]);

    const before = {
      journal: journalFiles(journal),
      destination: digests((await destinationMessages(lab, imap)).map((m) => m.body)),
      source: digests(await sourceMessages(lab, pop)),
    };
    expect(Object.keys(before.journal).length).toBeGreaterThan(0);
    expect(before.destination).toHaveLength(2);
    expect(before.source).toHaveLength(4);

    const plan = await runCli(labArgs('plan', lab, pop, imap, journal, ['--format', 'json']), { env });
    expect(plan.code, plan.stderr).toBe(0);
    const planned = JSON.parse(plan.stdout) as PlanReport;
    expect(planned.messages.map((m) => m.status)).toEqual(['already-copied', 'already-copied', 'new', 'new']);
    for (const [command, extra] of [
      ['migrate', []],
      ['sync', ['--delete']],
    ] as const) {
      const dry = await runCli(labArgs(command, lab, pop, imap, journal, ['--dry-run', '--json', ...extra]), { env });
      expect(dry.code, dry.stderr).toBe(0);
      expect(withoutTime(JSON.parse(dry.stdout) as PlanReport)).toEqual(withoutTime(planned));
    }
    expect({
      journal: journalFiles(journal),
      destination: digests((await destinationMessages(lab, imap)).map((m) => m.body)),
      source: digests(await sourceMessages(lab, pop)),
    }).toEqual(before);

    // The real sync does what the plan said, message by message.
    const report = join(dir, `${pop}-report.json`);
    const real = await runCli(labArgs('sync', lab, pop, imap, journal, ['--json', '--report', report]), { env });
    expect(real.code, real.stderr).toBe(0);
    const done = JSON.parse(readFileSync(report, 'utf8')) as PlanReport;
    expect(done.messages.map((m) => [m.uidl, m.status, m.folder])).toEqual(
      planned.messages.map((m) => [m.uidl, m.status === 'new' ? 'copied' : m.status, m.folder]),
    );
    expect(await destinationMessages(lab, imap)).toHaveLength(4);
  });

  it('sync --dry-run with --every is a usage error (one plan, not a loop)', async () => {
    const r = await runCli(
      labArgs('sync', lab, 'nobody', 'nobody', join(dir, 'x.sqlite'), ['--dry-run', '--every', '5m']),
      { env: { PW: 'x' } },
    );
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--dry-run prints one plan');
  });
});
