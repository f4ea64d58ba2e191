/**
 * `popsync plan` and `migrate --config` against a real Dovecot: what plan predicts per message
 * (folder, flags, INTERNALDATE) is what migrate does; non-ASCII folder names arrive readable;
 * a broken config connects to nothing; a 20,000-message plan reads headers only.
 */
import { writeFileSync, readFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { ImapFlow } from 'imapflow';
import { describe, expect, it } from 'vitest';
import type { Lab } from '../../lab/dovecot.js';
import { parseHeaders, messageIdOf } from '../../src/mapping/headers.js';
import type { PlanReport } from '../../src/report/plan-types.js';
import { useLab } from '../support/lab-fixture.js';
import { runCli } from '../support/cli.js';
import { destinationMessages } from '../support/mailboxes.js';

let lab: Lab;
let dir: string;

useLab('plan', {}, (l, d) => {
  lab = l;
  dir = d;
});

const env = () => ({ POP_PW: lab.password, IMAP_PW: lab.password });

function account(pop: string, imap: string, extra: string): string {
  return `accounts:
  - name: ${pop}
    source: { url: 'pop3://${pop}@127.0.0.1:${lab.pop3.port}', ca_file: '${lab.caFile}', password_env: POP_PW }
    destination: { url: 'imap://${imap}@127.0.0.1:${lab.imap.port}', ca_file: '${lab.caFile}', password_env: IMAP_PW }
    journal: '${join(dir, `${pop}.sqlite`)}'
${extra}`;
}

let serial = 0;
function mail(h: Record<string, string>, body = 'hello\r\n'): Buffer {
  const id = `<m${++serial}@test.example>`;
  const lines = Object.entries({ 'Message-ID': id, ...h }).map(([k, v]) => `${k}: ${v}`);
  return Buffer.from(`${lines.join('\r\n')}\r\n\r\n${body}`);
}

describe('plan predicts what migrate --config does', () => {
  it('folder rules by List-Id, year and recipient, seen chain, keywords, non-ASCII folders', async () => {
    const pop = lab.newUser('src');
    const imap = lab.newUser('dst');
    const rcvd = (d: string) => `from mx by pop.example (Dovecot); ${d}`;
    const messages = [
      mail({
        'List-Id': 'Developers <dev.lists.example.org>',
        Received: rcvd('Tue, 2 Jan 2024 10:00:00 +0000'),
        Subject: 'list mail',
      }),
      mail({
        'List-Id': '<announce.example.org>',
        Received: rcvd('Wed, 3 Jan 2024 10:00:00 +0000'),
        Status: 'RO',
        'X-Status': 'AF',
      }),
      mail({ To: 'Entwurf <drafts@example.com>', Received: rcvd('Mon, 5 Feb 2024 08:00:00 +0100'), Status: 'O' }),
      mail({
        'Delivered-To': 'ivan@example.ru',
        To: 'someone@else.org',
        Received: rcvd('Fri, 1 Mar 2024 12:00:00 +0300'),
      }),
      mail({ Subject: '=?UTF-8?B?5pel5pys6Kqe?= hello', Date: 'Thu, 1 Jun 2023 09:00:00 +0900' }),
      mail({ Subject: 'old', Date: 'Sun, 1 Jan 2017 00:00:00 +0000' }),
      mail({ Subject: 'future', Date: 'Fri, 1 Jan 2100 00:00:00 +0000' }),
      mail({ Subject: 'recent', Date: new Date(Date.now() - 3600_000).toUTCString().replace('GMT', '+0000') }),
    ];
    await lab.seedPop3(pop, messages);
    const config = join(dir, `${pop}.yml`);
    writeFileSync(
      config,
      account(
        pop,
        imap,
        `    folder: Archive/{year}
    flags: ['$Migrated']
    seen: [status-header, 'older-than: 365d', none]
    rules:
      - name: lists
        match: { list_id: '*' }
        folder: Lists/{list-id}
        flags: ['$List']
      - name: drafts
        match: { to: 'drafts@*' }
        folder: Entwürfe
      - name: russian
        match: { delivered_to: '*@example.ru' }
        folder: Отправленные/{to-local}
      - name: japanese
        match: { subject: { regex: '^日本語' } }
        folder: 日本語
`,
      ),
    );

    const p = await runCli(['plan', '--config', config, '--format', 'json'], { env: env() });
    expect(p.stderr).toBe('');
    expect(p.code).toBe(0);
    const plan = JSON.parse(p.stdout) as PlanReport;
    expect(plan.totals).toMatchObject({ messages: 8, new: 8, wouldFail: 0, alreadyCopied: 0 });
    expect(Object.fromEntries(plan.messages.map((m) => [m.n, m.folder]))).toEqual({
      1: 'Lists/dev_lists_example_org',
      2: 'Lists/announce_example_org',
      3: 'Entwürfe',
      4: 'Отправленные/ivan',
      5: '日本語',
      6: 'Archive/2017',
      7: `Archive/${new Date().getUTCFullYear()}`,
      8: `Archive/${new Date().getUTCFullYear()}`,
    });
    expect(plan.messages[1]).toMatchObject({
      seenSource: 'status-header',
      flags: ['\\Seen', '\\Answered', '\\Flagged', '$Migrated', '$List'],
    });
    expect(plan.messages[6]!.dateSource).toBe('clamped-future');
    expect(plan.messages[7]!.seenSource).toBe('none');
    expect(plan.folders.every((f) => f.exists === false)).toBe(true);
    const table = await runCli(['plan', '--config', config], { env: env() });
    expect(table.code, table.stderr).toBe(0);
    expect(table.stdout).toContain('Entwürfe');
    const html = join(dir, `${pop}.html`);
    const page = await runCli(['plan', '--config', config, '--format', 'html', '--output', html], { env: env() });
    expect(page.code, page.stderr).toBe(0);
    expect(readFileSync(html, 'utf8')).toMatch(/^<!DOCTYPE html>/i);
    expect((await runCli(['plan', '--config', config, '--format', 'html'], { env: env() })).code).toBe(2);
    // plan wrote no journal and created no folder.
    expect(() => readFileSync(join(dir, `${pop}.sqlite`))).toThrow();

    const m = await runCli(['migrate', '--config', config, '--json', '--no-progress'], { env: env() });
    expect(m.stderr).toBe('');
    expect(m.code).toBe(0);
    expect(JSON.parse(m.stdout)).toMatchObject({ copied: 8, failed: [] });

    const byFolder = new Map<string, PlanReport['messages']>();
    for (const pm of plan.messages) byFolder.set(pm.folder, [...(byFolder.get(pm.folder) ?? []), pm]);
    for (const [folder, predicted] of byFolder) {
      const stored = await destinationMessages(lab, imap, folder.split('/'));
      expect(stored.map((s) => messageIdOf(parseHeaders(s.body))).sort(), folder).toEqual(
        predicted.map((x) => x.messageId).sort(),
      );
      for (const s of stored) {
        const want = predicted.find((x) => x.messageId === messageIdOf(parseHeaders(s.body)))!;
        expect(s.flags, `${folder} ${want.messageId}`).toEqual([...want.flags].sort());
        if (want.dateSource === 'clamped-future') {
          // Clamped to "now": the plan's now and the run's now are seconds apart.
          expect(Math.abs(s.internalDate.getTime() - Date.parse(want.internalDate!))).toBeLessThan(120_000);
        } else {
          expect(s.internalDate.toISOString(), `${folder} ${want.messageId}`).toBe(want.internalDate);
        }
      }
    }

    // A real IMAP client lists the non-ASCII folders with their UTF-8 names.
    const client = new ImapFlow({
      host: lab.imap.host,
      port: lab.imap.port,
      secure: false,
      doSTARTTLS: true,
      tls: { ca: [readFileSync(lab.caFile)] },
      auth: { user: imap, pass: lab.password },
      logger: false,
    });
    await client.connect();
    const names = (await client.list()).map((f) => f.name);
    await client.logout();
    expect(names).toEqual(expect.arrayContaining(['Entwürfe', 'Отправленные', 'ivan', '日本語']));

    // A second plan sees everything as copied, in the folders the journal recorded.
    const again = JSON.parse(
      (await runCli(['plan', '--config', config, '--format', 'json'], { env: env() })).stdout,
    ) as PlanReport;
    expect(again.totals).toMatchObject({ alreadyCopied: 8, new: 0 });
    expect(again.folders.every((f) => f.exists)).toBe(true);
  });
});

describe('a broken config', () => {
  it('gets one error naming key and line, exit 2, and no connection', async () => {
    let connections = 0;
    const server = net.createServer((s) => {
      connections++;
      s.destroy();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as net.AddressInfo).port;
    try {
      const config = join(dir, 'broken.yml');
      writeFileSync(
        config,
        `accounts:
  - source: { url: 'pop3://u@127.0.0.1:${port}', password_env: POP_PW }
    destination: { url: 'imap://u@127.0.0.1:${port}', password_env: IMAP_PW }
    rules:
      - match: { subject: { regex: '(unclosed' } }
        folder: X
`,
      );
      for (const cmd of [
        ['migrate', '--config', config],
        ['plan', '--config', config],
        ['config', 'check', config],
      ]) {
        const r = await runCli(cmd, { env: env() });
        expect(r.code, cmd[0]).toBe(2);
        const first = r.stderr.split('\n')[0]!;
        expect(first).toMatch(
          /broken\.yml:5: accounts\[0\]\.rules\[0\]\.match\.subject\.regex: invalid regular expression/,
        );
        expect(r.stderr.match(/broken\.yml:/g)).toHaveLength(1);
      }
      expect(connections).toBe(0);
    } finally {
      server.close();
    }
  });

  it('config check prints what it resolved without secrets', async () => {
    const config = join(dir, 'ok.yml');
    writeFileSync(
      config,
      account('someone', 'other', '    seen: [status-header, all]\n').replace(
        'password_env: IMAP_PW',
        `password_file: '${join(dir, 'nope')}'`,
      ),
    );
    const r = await runCli(['config', 'check', config], { env: { POP_PW: 'hunter2-secret' } });
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('password_env: POP_PW (set)');
    expect(r.stdout).toContain('(NOT READABLE)');
    expect(r.stdout).toContain('status-header -> all');
    expect(r.stdout).not.toContain('hunter2');
  });
});

describe('plan on a large mailbox', () => {
  it('20,000 messages: TOP for each, no RETR', async () => {
    const pop = lab.newUser('big');
    const imap = lab.newUser('dst');
    const N = 20_000;
    let t = Date.now();
    const msgs = Array.from({ length: N }, (_, i) =>
      Buffer.from(`Message-ID: <b${i}@x>\r\nSubject: m${i}\r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\n\r\nx\r\n`),
    );
    await lab.seedPop3(pop, msgs);
    const seedMs = Date.now() - t;
    const config = join(dir, `${pop}.yml`);
    writeFileSync(config, account(pop, imap, ''));
    t = Date.now();
    const r = await runCli(['plan', '--config', config, '--format', 'json'], { env: env() });
    const planMs = Date.now() - t;
    expect(r.code, r.stderr).toBe(0);
    expect((JSON.parse(r.stdout) as PlanReport).totals.new).toBe(N);
    console.log(`seeded ${N} messages in ${seedMs} ms; plan took ${planMs} ms`);
    expect(await lab.countLogLines(/^RETR /, pop)).toBe(0);
    expect(await lab.countLogLines(/^TOP /, pop)).toBe(N);
  }, 120_000);
});
