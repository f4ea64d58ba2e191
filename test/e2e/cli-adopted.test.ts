/**
 * A batch run by a second set of journals over destinations that already hold the mail (a
 * journal directory lost, or a second machine): every copy is found and adopted, none made.
 * What the user reads must say so everywhere copies are counted: the live batch line (no
 * bytes, no rate: nothing was copied), the grand total, the batch report and `status
 * --accounts`, against the real Dovecot lab.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { realisticMix } from '../../lab/corpus.js';
import type { Lab } from '../../lab/dovecot.js';
import { runCli } from '../support/cli.js';
import { useLab } from '../support/lab-fixture.js';

let lab: Lab;
let dir: string;
useLab('adopted', {}, (l, d) => {
  lab = l;
  dir = d;
});

const pwFlags = ['--pop-password-env', 'PW', '--imap-password-env', 'PW'];

describe('a batch whose copies are all in the destination already', () => {
  it('counts them as adopted, apart from copies, with no bytes or rate of its own', async () => {
    const rows: string[] = [];
    for (let i = 0; i < 2; i++) {
      const src = lab.newUser('src');
      await lab.seedPop3(src, realisticMix(3, 70 + i));
      const pop = `pop3://${src}@127.0.0.1:${lab.pop3.port}?tls=none`;
      rows.push(`${src},${pop},imap://${lab.newUser('dst')}@127.0.0.1:${lab.imap.port}?tls=none`);
    }
    const list = join(dir, 'list.csv');
    writeFileSync(list, ['name,source,destination', ...rows].join('\n') + '\n', { mode: 0o600 });
    const env = { PW: lab.password };
    const first = await runCli(['migrate', '--accounts', list, '--journal-dir', join(dir, 'a'), ...pwFlags], { env });
    expect(first.code, first.stderr).toBe(0);

    const report = join(dir, 'batch.json');
    const args = ['migrate', '--accounts', list, '--journal-dir', join(dir, 'b'), '--report', report, ...pwFlags];
    const second = await runCli(args, { env });
    expect(second.code, second.stderr).toBe(0);
    // The live view's last line: six settled, all adopted, nothing copied, so no rate.
    const batchLines = second.stderr.split('\n').filter((l) => l.startsWith('popsync: batch: 2/2 accounts'));
    expect(batchLines.at(-1)).toMatch(/; 6 messages \(6 adopted\), 0 B copied, 0 B\/s, /);
    expect(second.stdout).toMatch(
      /popsync: 2 accounts: 2 ok; 0 messages copied \(0 B\), 6 found already in the destination \(adopted\), in /,
    );
    const written = JSON.parse(readFileSync(report, 'utf8'));
    expect(written.totals).toMatchObject({ listed: 6, copied: 0, copiedBytes: 0, adopted: 6, alreadyCopied: 0 });

    const status = await runCli(['status', '--accounts', list, '--journal-dir', join(dir, 'b')]);
    expect(status.code, status.stderr).toBe(0);
    const lines = status.stdout.trimEnd().split('\n');
    for (const l of lines.slice(0, 2)) expect(l).toMatch(/\s+ok\s+copied 3 \(3 adopted\), failed 0, deleted 0, /);
    expect(lines.at(-1)).toBe('total: 2 accounts (2 ok); copied 6 (6 adopted), failed 0, deleted 0');
    const json = JSON.parse(
      (await runCli(['status', '--accounts', list, '--journal-dir', join(dir, 'b'), '--json'])).stdout,
    );
    expect(json.totals).toMatchObject({ copied: 6, adopted: 6 });
    // The first journals made the copies: nothing adopted there.
    const made = await runCli(['status', '--accounts', list, '--journal-dir', join(dir, 'a')]);
    expect(made.stdout.trimEnd().split('\n').at(-1)).toBe('total: 2 accounts (2 ok); copied 6, failed 0, deleted 0');
  }, 90_000);
});
