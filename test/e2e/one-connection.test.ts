/**
 * A server that lets a user have one IMAP session from one address (Dovecot's
 * mail_max_userip_connections = 1): imapflow's session logs in first, so the pipelined APPEND
 * connection's login is refused (NO [UNAVAILABLE] Maximum number of connections from user+IP
 * exceeded). The copy goes on through imapflow, one APPEND at a time, instead of exit 75, which
 * told cron to retry a run that could never succeed; a message too large for memory is streamed
 * on a connection of its own while imapflow's session is logged out. The same behind a front
 * that enforces one connection at accept instead; and a password changed while the session is
 * logged out ends the run at once, after one failed login.
 */
import { chmodSync, readFileSync, utimesSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { hugeMessage, realisticMix } from '../../lab/corpus.js';
import type { Lab } from '../../lab/dovecot.js';
import { runCli } from '../support/cli.js';
import { popsyncArgs } from '../../lab/popsync-cli.js';
import { labArgs, useLab } from '../support/lab-fixture.js';
import { destinationMessages, digests, sourceMessages } from '../support/mailboxes.js';
import { startConnectLimitFront } from '../support/connect-limit-front.js';
import { type Front, startFront } from '../support/relay.js';

let lab: Lab;
let dir: string;
// The admin's password lives in a passwd-file Dovecot reads again when it changes: a test can
// change it in the middle of a run.
const ADMIN = 'migrator';
const ADMIN_PW = 'admin-pw-0c4f';
useLab('one-connection', { maxUserIpConnections: 1, masterUsers: { [ADMIN]: ADMIN_PW } }, (l, d) => {
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

/**
 * Dovecot behind a limit enforced at accept, as couriertcpd -maxperip 1, xinetd per_source = 1
 * or haproxy's src_conn_cur put one before a server: a connection while another is open is
 * closed before a byte. The APPEND connection is accepted first, so imapflow's is the one closed.
 */
function oneAtATime(target: number): Promise<Front> {
  return startFront(target, { at: (_n, f) => (f.open() >= 1 ? 'close' : 'relay') });
}

describe('Dovecot behind a limit of one connection enforced at accept', () => {
  // Over implicit TLS the front closes before the handshake ("disconnected before secure TLS
  // connection was established"), over plain TCP before the greeting.
  it.each([
    ['plain', false, 'closed the connection before greeting it'],
    ['implicit TLS', true, 'closed the connection before the TLS handshake'],
  ])('%s: each message copied once over one connection, a large one streamed: exit 0', async (_name, secure, said) => {
    const pop = lab.newUser('src');
    const imap = lab.newUser('dst');
    const messages = realisticMix(5, 31);
    messages.splice(2, 0, hugeMessage(1_300_000, 32));
    await lab.seedPop3(pop, messages);
    const source = await sourceMessages(lab, pop);
    const front = await oneAtATime(secure ? lab.imaps.port : lab.imap.port);
    try {
      const args = popsyncArgs(
        'migrate',
        { user: pop, port: lab.pop3.port },
        { user: imap, port: front.port, ...(secure ? { caFile: lab.caFile } : {}) },
        join(dir, `${pop}.sqlite`),
        ['--no-progress', '--json', '--batch-messages', '3', '--batch-mb', '1'],
      );
      const r = await runCli(args, { env: { PW: lab.password } });
      expect(r.code, r.stderr).toBe(0);
      const report = JSON.parse(r.stdout);
      expect(report).toMatchObject({ copied: 6, failed: [], reconnects: 0 });
      expect(report.oneImapConnection).toBe(
        `the server refused a second IMAP connection for this user: ${said}, twice 1 s apart`,
      );
      // imapflow's connection beside the APPEND connection, then the APPEND connection twice.
      expect(front.accepted() - front.relayed(), 'closed at accept').toBeGreaterThanOrEqual(3);
      // The APPEND connection given up, imapflow's session, and the large message's streaming
      // connection and imapflow's session again: it went through a file (--batch-mb 1).
      expect(front.relayed()).toBeGreaterThanOrEqual(4);
      expect(r.stderr).not.toMatch(/reconnect|too large to hold in memory|\n\s+at /);
      expect(digests((await destinationMessages(lab, imap)).map((m) => m.body))).toEqual(digests(source));
    } finally {
      await front.close();
    }
  });
});

/**
 * The same limit enforced at connect, below the protocol: a firewall's per-address connlimit that
 * rejects with a TCP reset (the second connection's connect fails, ECONNREFUSED), or a front that
 * accepts it and resets it at once (ECONNRESET before a byte). Before, popsync said of the first
 * "nothing accepts connections there ... check the host and the port" (exit 4 at once) and
 * reconnected the second until exit 4 (migrate) or 75.
 */
describe('Dovecot behind a limit of one connection enforced at connect', () => {
  it.each([
    ['refused (a firewall rule rejecting with a TCP reset)', 'refuse', 'refused the connection at connect'],
    ['reset at once by a front', 'reset', 'reset the connection before greeting it'],
  ] as const)('%s: each message copied once over one connection, a large one streamed: exit 0', async (...c) => {
    const [, limit, said] = c;
    const pop = lab.newUser('src');
    const imap = lab.newUser('dst');
    const messages = realisticMix(5, 51);
    messages.splice(2, 0, hugeMessage(1_300_000, 52));
    await lab.seedPop3(pop, messages);
    const source = await sourceMessages(lab, pop);
    const front = await startConnectLimitFront(lab.imap.port, limit);
    try {
      const args = popsyncArgs(
        'migrate',
        { user: pop, port: lab.pop3.port },
        { user: imap, port: front.port },
        join(dir, `${pop}.sqlite`),
        ['--no-progress', '--json', '--batch-messages', '3', '--batch-mb', '1'],
      );
      const r = await runCli(args, { env: { PW: lab.password } });
      expect(r.code, r.stderr).toBe(0);
      const report = JSON.parse(r.stdout);
      expect(report).toMatchObject({ copied: 6, failed: [], reconnects: 0 });
      expect(report.oneImapConnection).toBe(
        `the server refused a second IMAP connection for this user: ${said}, twice 1 s apart`,
      );
      // The APPEND connection given up, imapflow's session, and the large message's streaming
      // connection and imapflow's session again: it went through a file (--batch-mb 1).
      expect(front.relayed()).toBeGreaterThanOrEqual(4);
      expect(r.stderr).not.toMatch(/reconnect|nothing accepts|check the host|too large to hold in memory|\n\s+at /);
      expect(digests((await destinationMessages(lab, imap)).map((m) => m.body))).toEqual(digests(source));
    } finally {
      await front.close();
    }
  });

  it('refusing every connection after greeting the first: exit 4, "it refused", not "nothing there"', async () => {
    const pop = lab.newUser('src');
    const imap = lab.newUser('dst');
    await lab.seedPop3(pop, realisticMix(2, 53));
    const front = await startConnectLimitFront(lab.imap.port, 'refuse', { once: true });
    try {
      const args = popsyncArgs(
        'migrate',
        { user: pop, port: lab.pop3.port },
        { user: imap, port: front.port },
        join(dir, `${pop}.sqlite`),
        ['--no-progress'],
      );
      const r = await runCli(args, { env: { PW: lab.password } });
      expect(r.code, r.stderr).toBe(4);
      expect(r.stderr).toContain(
        `popsync: cannot connect to IMAP server 127.0.0.1:${front.port}: it refused the connection`,
      );
      expect(r.stderr).toMatch(
        /hint: it greeted another connection of this popsync process to this port, so the host and port are right/,
      );
      expect(r.stderr).not.toMatch(/nothing accepts|check the host|refused a second|\n\s+at /);
      expect(front.relayed()).toBe(1);
      expect(await destinationMessages(lab, imap)).toHaveLength(0);
    } finally {
      await front.close();
    }
  });

  it('the first connection refused (server down): exit 4 at once, no connect again, "nothing accepts"', async () => {
    const pop = lab.newUser('src');
    const imap = lab.newUser('dst');
    await lab.seedPop3(pop, realisticMix(1, 54));
    // A port nothing listens on any more.
    const gone = net.createServer();
    await new Promise<void>((resolve) => gone.listen(0, '127.0.0.1', resolve));
    const port = (gone.address() as net.AddressInfo).port;
    await new Promise<void>((resolve) => gone.close(() => resolve()));
    const args = popsyncArgs(
      'migrate',
      { user: pop, port: lab.pop3.port },
      { user: imap, port },
      join(dir, `${pop}.sqlite`),
      ['--no-progress'],
    );
    const connects = join(dir, `${pop}.connects.json`);
    const r = await runCli(args, { env: { PW: lab.password }, hooks: { connectsFile: connects } });
    expect(r.code, r.stderr).toBe(4);
    expect(r.stderr).toContain(
      `popsync: cannot connect to IMAP server 127.0.0.1:${port}: nothing accepts connections there`,
    );
    // "At once", counted in the process (nothing listens there to count them): the two sockets
    // opened ahead for the IMAP side as the run starts (net/connect.ts warmUp: the APPEND
    // connection's and imapflow's), both refused, and the APPEND connection's own connect, which
    // takes no failed one. A try again, a one-connection fallback or a reconnect would be a fourth.
    expect(JSON.parse(readFileSync(connects, 'utf8'))).toMatchObject({ [port]: 3 });
    expect(r.stderr).toMatch(/hint: check the host and the port/);
    expect(r.stderr).not.toMatch(/refused a second|reconnect|\n\s+at /);
  });
});

describe('the password changed while the session is logged out to stream a large message', () => {
  it('the refused login ends the run at once (exit 3): one failed login, not four and a reconnect', async () => {
    const pop = lab.newUser('src');
    const imap = lab.newUser('dst');
    const messages = realisticMix(3, 41);
    messages.splice(1, 0, hugeMessage(1_300_000, 42));
    await lab.seedPop3(pop, messages);
    // <lab>/home/<user>/Maildir -> <lab>/master-users
    const masterUsers = join(lab.maildirOf(imap), '..', '..', '..', 'master-users');
    // Connections: 1 the APPEND connection (refused: NO [UNAVAILABLE]), 2 imapflow's session, 3
    // the one that streams the large message once the session logged out: the password is
    // changed before it is relayed.
    const front = await startFront(lab.imap.port, {
      at: async (n) => {
        if (n === 3) {
          writeFileSync(masterUsers, `${ADMIN}:{PLAIN}changed-meanwhile\n`);
          // Dovecot reads the file again when its mtime changes: one second on, whatever the clock's grain.
          const later = new Date(Date.now() + 2000);
          utimesSync(masterUsers, later, later);
          await new Promise((resolve) => setTimeout(resolve, 1100));
        }
        return 'relay' as const;
      },
    });
    const port = front.port;
    const failedBefore = await lab.countLogLines(/auth failed/);
    try {
      const r = await runCli(
        [
          'migrate',
          '--pop',
          `pop3://${pop}@127.0.0.1:${lab.pop3.port}`,
          '--pop-tls',
          'none',
          '--pop-password-env',
          'PW',
          '--imap',
          `imap://${imap}@127.0.0.1:${port}`,
          '--imap-tls',
          'none',
          '--imap-admin-user',
          ADMIN,
          '--imap-password-env',
          'ADMIN_PW',
          '--journal',
          join(dir, `${pop}.sqlite`),
          '--no-progress',
          '--batch-mb',
          '1',
        ],
        { env: { PW: lab.password, ADMIN_PW } },
      );
      expect(r.code, r.stderr).toBe(3);
      expect(r.stderr).toContain(
        `popsync: IMAP server 127.0.0.1:${port} rejected the login for ${imap}: NO [AUTHENTICATIONFAILED] ` +
          'Authentication failed.',
      );
      expect(r.stderr).not.toMatch(/reconnect|too large to hold in memory|\n\s+at /);
      expect(r.stderr).not.toContain(ADMIN_PW);
      expect(front.accepted()).toBe(3);
      // Dovecot logs each failed login's end ("auth failed, N attempts"): one.
      expect(await lab.countLogLines(/auth failed/)).toBe(failedBefore + 1);
    } finally {
      writeFileSync(masterUsers, `${ADMIN}:{PLAIN}${ADMIN_PW}\n`);
      await front.close();
    }
  });
});
