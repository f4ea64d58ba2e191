/**
 * Provider profiles against the real Dovecot made to look like each provider: Gmail's
 * published CAPABILITY list (LITERAL-, APPENDLIMIT=35651584, no MULTIAPPEND) with Dovecot
 * refusing larger messages as Gmail does; Microsoft 365's list behind a relay that answers
 * APPENDs with its throttling reply. No real provider is reachable from here: what these tests
 * prove is popsync's side of each behaviour (README "What is verified").
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { Lab } from '../../lab/dovecot.js';
import { startDovecot } from '../../lab/dovecot.js';
import { GMAIL_IMAP_CAPABILITY, MICROSOFT_IMAP_CAPABILITY } from '../../lab/provider-capabilities.js';
import { runCli } from '../support/cli.js';
import { useLab } from '../support/lab-fixture.js';
import { destinationMessages, digests, sourceMessages } from '../support/mailboxes.js';
import { startThrottleProxy, type ThrottleProxy } from '../support/throttle-proxy.js';

const GMAIL_APPEND_LIMIT = 35_651_584;

let lab: Lab;
let dir: string;
// A German account: its All Mail has another name, and only the \All mark says which it is.
const ALL_MAIL_DE = '[Gmail]/Alle Nachrichten';
useLab(
  'providers',
  {
    imapCapability: GMAIL_IMAP_CAPABILITY,
    maxMessageSize: GMAIL_APPEND_LIMIT,
    specialUse: { [ALL_MAIL_DE]: '\\All' },
  },
  (l, d) => {
    lab = l;
    dir = d;
  },
);

const proxies: ThrottleProxy[] = [];
const labs: Lab[] = [];
afterAll(async () => {
  await Promise.all(proxies.map((p) => p.close()));
  await Promise.all(labs.map((l) => l.stop()));
});

function message(i: number, bodyBytes = 2000): Buffer {
  const head =
    `From: a${i}@old.example\r\nTo: me@gmail.com\r\nSubject: provider test ${i}\r\n` +
    `Message-ID: <p${i}-${Math.random()}@old.example>\r\n\r\n`;
  return Buffer.concat([Buffer.from(head), Buffer.alloc(bodyBytes, 'x'), Buffer.from('\r\n')]);
}

function args(command: string, l: Lab, pop: string, imap: string, imapPort: number, extra: string[] = []): string[] {
  return [
    command,
    '--pop',
    `pop3://${pop}@127.0.0.1:${l.pop3.port}`,
    '--pop-tls',
    'none',
    '--imap',
    `imap://${imap}@127.0.0.1:${imapPort}`,
    '--imap-tls',
    'none',
    '--pop-password-env',
    'PW',
    '--imap-password-env',
    'PW',
    '--journal',
    join(dir, `${pop}.sqlite`),
    ...(command === 'plan' ? [] : ['--no-progress']),
    ...extra,
  ];
}

describe('Gmail profile against Dovecot with Gmail capabilities', () => {
  it('fails a message over the APPENDLIMIT by name without downloading it, and copies the rest once', async () => {
    const pop = lab.newUser('src');
    const imap = lab.newUser('dst');
    const small = [1, 2, 3, 4].map((i) => message(i));
    const big = message(99, GMAIL_APPEND_LIMIT + 1000);
    await lab.seedPop3(pop, [small[0]!, small[1]!, big, small[2]!, small[3]!]);

    const plan = await runCli(
      args('plan', lab, pop, imap, lab.imap.port, ['--provider', 'gmail', '--format', 'json']),
      {
        env: { PW: lab.password },
      },
    );
    expect(plan.code, plan.stderr).toBe(0);
    const report = JSON.parse(plan.stdout);
    expect(report.messages[2]).toMatchObject({ status: 'would-fail', reason: expect.stringMatching(/APPENDLIMIT/) });

    const retrBefore = await lab.countLogLines(/^RETR /, pop);
    const r = await runCli(args('migrate', lab, pop, imap, lab.imap.port, ['--provider', 'gmail', '--json']), {
      env: { PW: lab.password },
    });
    expect(r.code, r.stderr).toBe(1);
    const summary = JSON.parse(r.stdout);
    expect(summary.copied).toBe(4);
    expect(summary.failed).toEqual([
      expect.objectContaining({
        n: 3,
        reason: expect.stringMatching(
          /larger than the destination accepts \(its APPENDLIMIT is 34 MiB\): not downloaded/,
        ),
      }),
    ]);
    // Four RETRs: the 35 MB message never left the POP3 server.
    expect((await lab.countLogLines(/^RETR /, pop)) - retrBefore).toBe(4);
    const stored = await destinationMessages(lab, imap);
    expect(digests(stored.map((m) => m.body))).toEqual(
      digests((await sourceMessages(lab, pop)).filter((b) => b.length < 100_000)),
    );
  });

  it('stops at the daily budget with exit 75 and when to go on; later runs finish the copy exactly once', async () => {
    const pop = lab.newUser('src');
    const imap = lab.newUser('dst');
    await lab.seedPop3(
      pop,
      [1, 2, 3, 4, 5].map((i) => message(i, 10_000)),
    );
    const expected = digests(await sourceMessages(lab, pop));
    const day0 = '2026-11-29T10:00:00.000Z';
    const sync = (now: string) =>
      runCli(args('sync', lab, pop, imap, lab.imap.port, ['--provider', 'gmail', '--daily-budget', '25K']), {
        env: { PW: lab.password },
        hooks: { now },
      });

    const plan = await runCli(
      args('plan', lab, pop, imap, lab.imap.port, ['--provider', 'gmail', '--daily-budget', '25K', '--format', 'json']),
      { env: { PW: lab.password } },
    );
    expect(plan.code, plan.stderr).toBe(0);
    expect(JSON.parse(plan.stdout).budget).toMatchObject({ bytesPerDay: 25 * 1024, days: 3 });

    const first = await sync(day0);
    expect(first.code, first.stderr).toBe(75);
    expect(first.stderr).toMatch(/the daily budget is reached: 19\.\d KiB uploaded in the last 24 hours, of 25\.0 KiB/);
    expect(first.stderr).toMatch(/run again after 2026-11-30T10:0\d:\d\d/);
    // The account as the run names it (as given), not the journal's key (`localhost`).
    expect(first.stderr).toContain(`\n  account: ${pop}@127.0.0.1:${lab.pop3.port}\n`);
    expect(first.stderr).not.toMatch(/\n\s+at /); // no stack trace
    expect(await destinationMessages(lab, imap)).toHaveLength(2);

    // Twelve hours later nothing has aged out: still 75, nothing copied.
    const again = await sync('2026-11-29T22:00:00.000Z');
    expect(again.code, again.stderr).toBe(75);
    expect(await destinationMessages(lab, imap)).toHaveLength(2);

    expect((await sync('2026-11-30T10:10:00.000Z')).code).toBe(75);
    expect(await destinationMessages(lab, imap)).toHaveLength(4);
    const last = await sync('2026-12-01T10:20:00.000Z');
    expect(last.code, last.stderr).toBe(0);
    expect(digests((await destinationMessages(lab, imap)).map((m) => m.body))).toEqual(expected);
  });

  it('a refused IMAP login says how Gmail takes logins (exit 3)', async () => {
    const pop = lab.newUser('src');
    const imap = lab.newUser('dst');
    await lab.seedPop3(pop, [message(1)]);
    const r = await runCli(
      [...args('migrate', lab, pop, imap, lab.imap.port, ['--provider', 'gmail']), '--imap-password-env', 'WRONG'],
      { env: { PW: lab.password, WRONG: 'not-the-password' } },
    );
    expect(r.code, r.stderr).toBe(3);
    expect(r.stderr).toMatch(/hint: Gmail takes an app password \(needs 2-Step Verification\) or OAuth2/);
    expect(r.stderr).not.toMatch(/not-the-password/);
  });

  it('refuses [Gmail]/All Mail before contacting anything (exit 2)', async () => {
    // Port 1: were anything contacted, the run would end in a connection error instead.
    const r = await runCli(
      [
        'migrate',
        '--pop',
        'pop3://me@127.0.0.1:1',
        '--pop-tls',
        'none',
        '--imap',
        'imap://me@127.0.0.1:1',
        '--imap-tls',
        'none',
        '--pop-password-env',
        'PW',
        '--imap-password-env',
        'PW',
        '--journal',
        join(dir, 'allmail.sqlite'),
        '--provider',
        'gmail',
        '--folder',
        '[Gmail]/All Mail',
      ],
      { env: { PW: 'x' } },
    );
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/Gmail: popsync never copies into "\[Gmail\]\/All Mail"/);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });
});

describe('Gmail: All Mail under another name', () => {
  it('refuses the folder the server marks \\All before anything is stored there (exit 2)', async () => {
    const pop = lab.newUser('src');
    const imap = lab.newUser('dst');
    await lab.seedPop3(
      pop,
      [1, 2].map((i) => message(i)),
    );
    const r = await runCli(
      args('migrate', lab, pop, imap, lab.imap.port, ['--provider', 'gmail', '--folder', ALL_MAIL_DE]),
      {
        env: { PW: lab.password },
      },
    );
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toMatch(/Gmail: popsync never copies into "\[Gmail\]\/Alle Nachrichten"/);
    expect(r.stderr).not.toMatch(/\n\s+at /);
    expect(await destinationMessages(lab, imap, ['[Gmail]', 'Alle Nachrichten'])).toHaveLength(0);
    // Without the profile nothing stops it: the refusal is the profile's, not the server's.
    const plain = await runCli(args('migrate', lab, pop, imap, lab.imap.port, ['--folder', ALL_MAIL_DE]), {
      env: { PW: lab.password },
    });
    expect(plain.code, plain.stderr).toBe(0);
    expect(await destinationMessages(lab, imap, ['[Gmail]', 'Alle Nachrichten'])).toHaveLength(2);
  });
});

describe('SPECIAL-USE roles against Dovecot', () => {
  it('a rule target \\All resolves to the folder the server marks (before: never found)', async () => {
    const pop = lab.newUser('src');
    const imap = lab.newUser('dst');
    await lab.seedPop3(
      pop,
      [1, 2, 3].map((i) => message(i)),
    );
    const file = join(dir, `${pop}.yml`);
    writeFileSync(
      file,
      'accounts:\n' +
        `  - source: { url: 'pop3://${pop}@127.0.0.1:${lab.pop3.port}?tls=none', password_env: PW }\n` +
        `    destination: { url: 'imap://${imap}@127.0.0.1:${lab.imap.port}?tls=none', password_env: PW }\n` +
        `    journal: ${pop}.sqlite\n` +
        "    folder: '\\All'\n",
    );
    const r = await runCli(['migrate', '--config', file, '--no-progress'], { env: { PW: lab.password } });
    expect(r.code, r.stderr).toBe(0);
    expect(await destinationMessages(lab, imap, ['[Gmail]', 'Alle Nachrichten'])).toHaveLength(3);
  });
});

describe('Gmail: connections per mailbox', () => {
  it('with --parallel, at most 5 accounts copy into one Gmail mailbox at once (15 connections, 3 a run)', async () => {
    const dst = lab.newUser('dst');
    const names = Array.from({ length: 8 }, (_, i) => `acct${i}`);
    const rows: string[] = [];
    let total = 0;
    for (const [i, name] of names.entries()) {
      const src = lab.newUser('src');
      await lab.seedPop3(
        src,
        Array.from({ length: 6 }, (_, k) => message(100 * i + k, 20_000)),
      );
      total += 6;
      rows.push(
        `${name},pop3://${src}@127.0.0.1:${lab.pop3.port}?tls=none,imap://${dst}@127.0.0.1:${lab.imap.port}?tls=none`,
      );
    }
    const file = join(dir, 'one-mailbox.csv');
    writeFileSync(file, `name,source,destination\n${rows.join('\n')}\n`, { mode: 0o600 });
    const journals = join(dir, 'journals-one-mailbox');
    const common = ['--accounts', file, '--journal-dir', journals];
    const r = await runCli(
      [
        'migrate',
        ...common,
        '--parallel',
        '8',
        '--max-connections-per-host',
        '8',
        '--provider',
        'gmail',
        '--quiet',
        '--pop-password-env',
        'PW',
        '--imap-password-env',
        'PW',
      ],
      { env: { PW: lab.password } },
    );
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
    expect(await destinationMessages(lab, dst)).toHaveLength(total);
    // The journals' run records say when each account ran: never more than 5 at once.
    const st = JSON.parse((await runCli(['status', ...common, '--json'])).stdout) as {
      accounts: Array<{ status: { lastRun: { startedAt: string; finishedAt: string } } }>;
    };
    const runs = st.accounts.map(
      (a) => [Date.parse(a.status.lastRun.startedAt), Date.parse(a.status.lastRun.finishedAt)] as const,
    );
    const peak = Math.max(...runs.map(([t]) => runs.filter(([s, e]) => s <= t && t < e).length));
    expect(peak).toBeLessThanOrEqual(5);
    expect(peak).toBeGreaterThanOrEqual(1);
  });
});

describe('Fastmail profile against Dovecot as it is (MULTIAPPEND, LITERAL+, UIDPLUS, as Cyrus offers)', () => {
  it('copies every message once', async () => {
    const plain = await startDovecot({});
    labs.push(plain);
    const pop = plain.newUser('src');
    const imap = plain.newUser('dst');
    await plain.seedPop3(
      pop,
      Array.from({ length: 8 }, (_, i) => message(i)),
    );
    const expected = digests(await sourceMessages(plain, pop));
    const r = await runCli(args('migrate', plain, pop, imap, plain.imap.port, ['--provider', 'fastmail', '--json']), {
      env: { PW: plain.password },
    });
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ copied: 8, failed: [] });
    expect(digests((await destinationMessages(plain, imap)).map((m) => m.body))).toEqual(expected);
  });
});

describe('config files', () => {
  it('config check resolves provider: to its host and shows the profile, the budget and the rate', async () => {
    const file = join(dir, 'gmail.yml');
    writeFileSync(
      file,
      'defaults:\n  max_rate: 512KB/s\naccounts:\n  - name: a\n' +
        "    source: { url: 'pop3s://u@pop.example', password_env: P }\n" +
        '    destination: { user: me@gmail.com, provider: gmail, password_env: I }\n    daily_budget: 100MB\n',
    );
    const r = await runCli(['config', 'check', file]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/destination: {2}me@gmail\.com@imap\.gmail\.com:993 \(tls implicit\)/);
    expect(r.stdout).toMatch(
      /provider: {5}Gmail \(messages up to 34 MiB, 15 connections per mailbox, never into \[Gmail\]\/All Mail\)/,
    );
    expect(r.stdout).toMatch(/daily budget: 100\.0 MiB in any 24 hours/);
    expect(r.stdout).toMatch(/max rate: {5}512\.0 KiB\/s/);
    writeFileSync(file, `${readFileSync(file, 'utf8')}    folder: '[Gmail]/All Mail'\n`);
    const bad = await runCli(['config', 'check', file]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/never copies into "\[Gmail\]\/All Mail"/);
  });
});

describe('Microsoft 365 profile against Dovecot with its capabilities, behind a throttling relay', () => {
  it('waits as the throttling replies ask and copies every message exactly once', async () => {
    const ms = await startDovecot({ imapCapability: MICROSOFT_IMAP_CAPABILITY });
    labs.push(ms);
    const pop = ms.newUser('src');
    const imap = ms.newUser('dst');
    await ms.seedPop3(
      pop,
      Array.from({ length: 12 }, (_, i) => message(i)),
    );
    const expected = digests(await sourceMessages(ms, pop));
    // The 2nd and the 10th APPEND are refused with a pause of 300 ms: in two passes, since the
    // first pass writes at most two batches of four (the APPEND window) before its refusal.
    const proxy = await startThrottleProxy(ms.imap.port, (k) => (k === 2 || k === 10 ? 300 : null));
    proxies.push(proxy);
    const r = await runCli(
      args('migrate', ms, pop, imap, proxy.port, [
        '--provider',
        'microsoft365',
        '--json',
        '--batch-messages',
        '4',
        '--max-rate',
        '10M',
        '--reconnect-attempts',
        '0',
      ]),
      { env: { PW: ms.password } },
    );
    expect(r.code, r.stderr).toBe(0);
    expect(proxy.stats().throttled).toBe(2);
    const summary = JSON.parse(r.stdout);
    expect(summary.failed).toEqual([]);
    expect(summary.warnings).toContainEqual(expect.stringMatching(/asked for pauses 2 times \(throttling\)/));
    expect(digests((await destinationMessages(ms, imap)).map((m) => m.body))).toEqual(expected);
  });

  it('without any IMAP credential, says Microsoft takes OAuth2 only instead of asking for a password', async () => {
    const r = await runCli(
      [
        'migrate',
        '--pop',
        'pop3://me@127.0.0.1:1',
        '--pop-tls',
        'none',
        '--pop-password-env',
        'PW',
        '--imap-user',
        'me@contoso.example',
        '--provider',
        'microsoft365',
        '--journal',
        join(dir, 'ms-nologin.sqlite'),
      ],
      { env: { PW: 'x' } },
    );
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/Microsoft 365 takes OAuth2 only .*give --imap-oauth2-token-command CMD/);
    expect(r.stderr).toMatch(/popsync auth login --provider microsoft/);
  });

  it('stops with exit 75 and when to come back when asked for too long a pause; the next run finishes', async () => {
    const ms = await startDovecot({ imapCapability: MICROSOFT_IMAP_CAPABILITY });
    labs.push(ms);
    const pop = ms.newUser('src');
    const imap = ms.newUser('dst');
    await ms.seedPop3(
      pop,
      Array.from({ length: 6 }, (_, i) => message(i)),
    );
    const expected = digests(await sourceMessages(ms, pop));
    const proxy = await startThrottleProxy(ms.imap.port, (k) => (k === 3 ? 3_600_000 : null));
    proxies.push(proxy);
    // Outlook.com: the same service and the same replies as Microsoft 365.
    const r = await runCli(args('migrate', ms, pop, imap, proxy.port, ['--provider', 'outlook']), {
      env: { PW: ms.password },
    });
    expect(r.code, r.stderr).toBe(75);
    expect(r.stderr).toMatch(/Request is throttled\. Suggested Backoff Time: 3600000 milliseconds/);
    expect(r.stderr).toMatch(/more than the 300 s popsync waits at once; run again after \d{4}-\d\d-\d\dT/);
    expect(r.stderr).not.toMatch(/\n\s+at /);
    const rerun = await runCli(args('migrate', ms, pop, imap, ms.imap.port, ['--provider', 'outlook']), {
      env: { PW: ms.password },
    });
    expect(rerun.code, rerun.stderr).toBe(0);
    expect(digests((await destinationMessages(ms, imap)).map((m) => m.body))).toEqual(expected);
  });
});
