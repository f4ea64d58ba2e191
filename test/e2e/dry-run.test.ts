/**
 * `migrate --dry-run` and `sync --dry-run` against a real Dovecot: they print what `plan`
 * prints and change nothing (no journal file, no copy, the source untouched); the real run
 * afterwards copies what the dry run said it would.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Lab } from '../../lab/dovecot.js';
import type { PlanReport } from '../../src/report/plan-types.js';
import { labArgs, useLab } from '../support/lab-fixture.js';
import { runCli } from '../support/cli.js';
import { destinationMessages } from '../support/mailboxes.js';

let lab: Lab;
let dir: string;
useLab('dryrun', {}, (l, d) => {
  lab = l;
  dir = d;
});

const mail = (i: number) => Buffer.from(`Message-ID: <dry${i}@test.example>\r\nSubject: dry ${i}\r\n\r\nbody ${i}\r\n`);
const withoutTime = (r: PlanReport) => ({ ...r, generatedAt: '' });

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

  it('sync --dry-run with --every is a usage error (one plan, not a loop)', async () => {
    const r = await runCli(
      labArgs('sync', lab, 'nobody', 'nobody', join(dir, 'x.sqlite'), ['--dry-run', '--every', '5m']),
      { env: { PW: 'x' } },
    );
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--dry-run prints one plan');
  });
});
