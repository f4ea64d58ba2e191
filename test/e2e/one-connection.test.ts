/**
 * A server that lets a user have one IMAP session from one address (Dovecot's
 * mail_max_userip_connections = 1): imapflow's session logs in first, so the pipelined APPEND
 * connection's login is refused (NO [UNAVAILABLE] Maximum number of connections from user+IP
 * exceeded). The copy goes on through imapflow, one APPEND at a time, instead of exit 75, which
 * told cron to retry a run that could never succeed; a message too large for memory is streamed
 * on a connection of its own while imapflow's session is logged out.
 */
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { hugeMessage, realisticMix } from '../../lab/corpus.js';
import type { Lab } from '../../lab/dovecot.js';
import { runCli } from '../support/cli.js';
import { labArgs, useLab } from '../support/lab-fixture.js';
import { destinationMessages, digests, sourceMessages } from '../support/mailboxes.js';

let lab: Lab;
let dir: string;
useLab('one-connection', { maxUserIpConnections: 1 }, (l, d) => {
  lab = l;
  dir = d;
});

const REFUSED = /refused a second IMAP connection for this user \(NO \[UNAVAILABLE\] Maximum number of connections/;

describe('a server that allows one IMAP connection per user', () => {
  it('copies every message once through imapflow alone: a warning, exit 0', async () => {
    const pop = lab.newUser('src');
    const imap = lab.newUser('dst');
    const messages = realisticMix(8, 7);
    await lab.seedPop3(pop, messages);
    const expected = digests(await sourceMessages(lab, pop));
    const args = labArgs('migrate', lab, pop, imap, join(dir, `${pop}.sqlite`), [
      '--no-progress',
      '--json',
      '--batch-messages',
      '3',
    ]);
    const r = await runCli(args, { env: { PW: lab.password } });
    expect(r.code, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout);
    expect(report).toMatchObject({ copied: 8, reconnects: 0 });
    expect(report.oneImapConnection).toMatch(
      /^the server refused a second IMAP connection for this user: NO \[UNAVAILABLE\] Maximum number of connections/,
    );
    expect(r.stdout).not.toContain(lab.password);
    expect(r.stderr).toMatch(REFUSED);
    expect(r.stderr).not.toMatch(/\n\s+at /);
    expect(digests((await destinationMessages(lab, imap)).map((m) => m.body))).toEqual(expected);
  });

  it('streams messages too large for memory alone, the session logged out meanwhile: each copied once', async () => {
    const pop = lab.newUser('src');
    const imap = lab.newUser('dst');
    const messages = realisticMix(6, 9);
    // Two in a row (one run of file bodies between two sessions) and one last.
    messages.splice(3, 0, hugeMessage(1_300_000, 10), hugeMessage(1_200_000, 11));
    messages.push(hugeMessage(1_100_000, 12));
    await lab.seedPop3(pop, messages);
    const source = await sourceMessages(lab, pop);
    expect(source.filter((m) => m.length > 1_000_000)).toHaveLength(3);
    // batch-mb 1: each large message is kept in a file, which imapflow's append cannot stream.
    const journal = join(dir, `${pop}.sqlite`);
    const args = labArgs('migrate', lab, pop, imap, journal, [
      '--no-progress',
      '--json',
      '--batch-messages',
      '3',
      '--batch-mb',
      '1',
    ]);
    const r = await runCli(args, { env: { PW: lab.password } });
    expect(r.code, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout);
    expect(report).toMatchObject({ copied: 9, failed: [], reconnects: 0 });
    expect(report.oneImapConnection).toMatch(/refused a second IMAP connection for this user/);
    expect(r.stderr).not.toMatch(/too large to hold in memory|\n\s+at /);
    // Every message once, in the source's order: the large ones were not sent twice nor lost.
    expect(digests((await destinationMessages(lab, imap)).map((m) => m.body))).toEqual(digests(source));
    // And the journal knows it: a second run copies nothing.
    const again = await runCli(args, { env: { PW: lab.password } });
    expect(again.code, again.stderr).toBe(0);
    expect(JSON.parse(again.stdout)).toMatchObject({ copied: 0, alreadyCopied: 9 });
    expect(await destinationMessages(lab, imap)).toHaveLength(9);
  });

  it('--accounts: the batch report says per account that it ran over one connection, and why', async () => {
    const rows: string[] = [];
    for (let i = 0; i < 2; i++) {
      const pop = lab.newUser('bsrc');
      await lab.seedPop3(pop, realisticMix(3, 20 + i));
      rows.push(
        `${pop},pop3://${pop}@127.0.0.1:${lab.pop3.port}?tls=none,` +
          `imap://${lab.newUser('bdst')}@127.0.0.1:${lab.imap.port}?tls=none,${lab.password},${lab.password}`,
      );
    }
    const list = join(dir, 'one-connection-accounts.csv');
    writeFileSync(list, `name,source,destination,source_password,destination_password\n${rows.join('\n')}\n`, {
      mode: 0o600,
    });
    chmodSync(list, 0o600);
    const report = join(dir, 'one-connection-batch.json');
    const r = await runCli(
      ['migrate', '--accounts', list, '--journal-dir', join(dir, 'bj'), '--no-progress', '--report', report],
      {},
    );
    expect(r.code, r.stderr).toBe(0);
    const text = readFileSync(report, 'utf8');
    expect(text).not.toContain(lab.password);
    const batch = JSON.parse(text) as { accounts: Array<{ copied: number; oneImapConnection: string | null }> };
    expect(batch.accounts).toHaveLength(2);
    for (const a of batch.accounts) {
      expect(a.copied).toBe(3);
      expect(a.oneImapConnection).toMatch(
        /^the server refused a second IMAP connection for this user: NO \[UNAVAILABLE\] Maximum number of connections/,
      );
    }
  });
});
