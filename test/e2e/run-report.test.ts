/**
 * `migrate --report` and `skip_larger_than` against a real Dovecot: the report says per
 * message what the destination holds (folder, flags, INTERNALDATE) and agrees with the plan
 * made before; a message over the size rule is predicted by plan, not copied, reported with
 * the reason, and does not fail the run; after one real run the plan's estimate is measured.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import type { Lab } from '../../lab/dovecot.js';
import { messageIdOf, parseHeaders } from '../../src/mapping/headers.js';
import type { PlanMessage, PlanReport } from '../../src/report/plan-types.js';
import { runChromium } from '../support/chromium.js';
import { useLab } from '../support/lab-fixture.js';
import { runCli } from '../support/cli.js';
import { destinationMessages } from '../support/mailboxes.js';

let lab: Lab;
let dir: string;

useLab('report', {}, (l, d) => {
  lab = l;
  dir = d;
});

const env = () => ({ POP_PW: lab.password, IMAP_PW: lab.password });

let serial = 0;
function mail(h: Record<string, string>, body = 'hello\r\n'): Buffer {
  const id = `<r${++serial}@test.example>`;
  const lines = Object.entries({ 'Message-ID': id, ...h }).map(([k, v]) => `${k}: ${v}`);
  return Buffer.from(`${lines.join('\r\n')}\r\n\r\n${body}`);
}

describe('migrate --report', () => {
  it('reports per message what the destination holds and the plan predicted; skip_larger_than skips without ' +
    'failing', async () => {
    const pop = lab.newUser('rsrc');
    const imap = lab.newUser('rdst');
    const rcvd = (d: string) => `from mx by pop.example (Dovecot); ${d}`;
    const big = 'x'.repeat(76) + '\r\n';
    await lab.seedPop3(pop, [
      mail({ 'List-Id': '<dev.lists.example.org>', Received: rcvd('Tue, 2 Jan 2024 10:00:00 +0000'), Subject: 'list' }),
      mail({ Received: rcvd('Wed, 3 Jan 2024 10:00:00 +0000'), Status: 'RO', 'X-Status': 'F', Subject: 'read' }),
      mail({ Date: 'Sun, 1 Jan 2017 00:00:00 +0000', Subject: 'old' }),
      mail({ Date: 'Mon, 1 Jul 2019 00:00:00 +0000', Subject: 'huge' }, big.repeat(2000)),
      mail({ Received: rcvd('Fri, 1 Mar 2024 12:00:00 +0300'), Subject: 'plain' }),
    ]);
    const config = join(dir, `${pop}.yml`);
    writeFileSync(
      config,
      `defaults:
  skip_larger_than: 100KB
accounts:
  - name: ${pop}
    source: { url: 'pop3://${pop}@127.0.0.1:${lab.pop3.port}', ca_file: '${lab.caFile}', password_env: POP_PW }
    destination: { url: 'imap://${imap}@127.0.0.1:${lab.imap.port}', ca_file: '${lab.caFile}', password_env: IMAP_PW }
    journal: '${join(dir, `${pop}.sqlite`)}'
    folder: Archive/{year}
    flags: ['$Migrated']
    seen: [status-header, none]
    rules:
      - name: lists
        match: { list_id: '*' }
        folder: Lists/{list-id}
`,
    );

    const p = await runCli(['plan', '--config', config, '--format', 'json'], { env: env() });
    expect(p.code, p.stderr).toBe(0);
    const plan = JSON.parse(p.stdout) as PlanReport;
    expect(plan.totals).toMatchObject({ messages: 5, new: 4, wouldFail: 1 });
    expect(plan.messages[3]).toMatchObject({ status: 'would-fail', reason: 'over the size rule (100 KiB)' });
    expect(plan.estimate!.basis).toMatch(/^assumed/);

    const out = join(dir, 'report.json');
    const m = await runCli(['migrate', '--config', config, '--json', '--no-progress', '--report', out], { env: env() });
    expect(m.stderr).toBe('');
    expect(m.code).toBe(0);
    const summary = JSON.parse(m.stdout) as Record<string, unknown>;
    expect(summary).toMatchObject({ copied: 4, failed: [], skippedByRule: 1 });
    expect(summary).not.toHaveProperty('messages');

    const report = JSON.parse(readFileSync(out, 'utf8')) as PlanReport;
    expect(report.run).toMatchObject({ command: 'migrate' });
    expect(report.totals).toMatchObject({ messages: 5, copied: 4, alreadyCopied: 0, failed: 0, skippedByRule: 1 });
    expect(report.messages.map((x) => x.status)).toEqual(['copied', 'copied', 'copied', 'skipped-by-rule', 'copied']);
    expect(report.messages[3]).toMatchObject({ uidl: plan.messages[3]!.uidl, reason: 'over the size rule (100 KiB)' });

    // Same folders, flags and dates as the plan, message by message.
    const planned = new Map(plan.messages.map((x) => [x.uidl, x]));
    const pick = (x: PlanMessage) => ({
      folder: x.folder,
      folderRule: x.folderRule,
      flags: x.flags,
      seenSource: x.seenSource,
      internalDate: x.internalDate,
      dateSource: x.dateSource,
      messageId: x.messageId,
      subject: x.subject,
    });
    for (const r of report.messages.filter((x) => x.status === 'copied'))
      expect(pick(r), r.uidl).toEqual(pick(planned.get(r.uidl)!));

    // And what the destination holds.
    const copied = report.messages.filter((x) => x.status === 'copied');
    for (const folder of new Set(copied.map((x) => x.folder))) {
      const stored = await destinationMessages(lab, imap, folder.split('/'));
      const want = copied.filter((x) => x.folder === folder);
      expect(stored.map((s) => messageIdOf(parseHeaders(s.body))).sort(), folder).toEqual(
        want.map((x) => x.messageId).sort(),
      );
      for (const s of stored) {
        const w = want.find((x) => x.messageId === messageIdOf(parseHeaders(s.body)))!;
        expect(s.flags).toEqual([...w.flags].sort());
        expect(s.internalDate.toISOString()).toBe(w.internalDate);
      }
    }
    // The skipped message's folder was never even created.
    await expect(destinationMessages(lab, imap, ['Archive', '2019'])).rejects.toThrow();

    // After one real run the estimate is measured, and the size rule is still predicted.
    const again = JSON.parse(
      (await runCli(['plan', '--config', config, '--format', 'json'], { env: env() })).stdout,
    ) as PlanReport;
    expect(again.estimate!.basis).toMatch(/^measured: 1 earlier run, /);
    expect(again.totals).toMatchObject({ alreadyCopied: 4, wouldFail: 1, new: 0 });

    // A second run copies nothing, skips the big one again (no failure), and its HTML report renders.
    const html = join(dir, 'report.html');
    const m2 = await runCli(['migrate', '--config', config, '--no-progress', '--quiet', '--report', html], {
      env: env(),
    });
    expect(m2.code, m2.stderr).toBe(0);
    const page = readFileSync(html, 'utf8');
    expect(page).toMatch(/^<!DOCTYPE html>/);
    const dom = await runChromium(pathToFileURL(html).href, { dumpDom: true });
    expect(dom).toContain('popsync migrate report');
    expect(dom).toContain('Not copied: 1</h2>');
    expect(dom).toContain('skipped-by-rule: over the size rule (100 KiB)');
  }, 60_000);
});
