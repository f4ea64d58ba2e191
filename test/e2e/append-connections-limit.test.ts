/**
 * A further APPEND connection the server refuses (imap/append-pool.ts): against a real Dovecot
 * that lets one user have two IMAP sessions from one address (mail_max_userip_connections = 2),
 * a run asked for three APPEND connections into three folders gets imapflow's session and one
 * APPEND connection; the refusal of the third is a warning, the copy goes on over the one, and
 * every message lands once in its folder (exit 0).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { realisticMix } from '../../lab/corpus.js';
import type { Lab } from '../../lab/dovecot.js';
import { runCli } from '../support/cli.js';
import { useLab } from '../support/lab-fixture.js';
import { destinationMessages, digests } from '../support/mailboxes.js';
import { startConnectLimitFront } from '../support/connect-limit-front.js';

let lab: Lab;
let dir: string;
useLab('append-limit', { maxUserIpConnections: 2 }, (l, d) => {
  lab = l;
  dir = d;
});

const FOLDERS = ['Alpha', 'Beta', 'INBOX'] as const;

/** A run asked for three APPEND connections into three folders, to the IMAP server at `port`. */
async function routeThree(
  port: number,
): Promise<{ code: number | null; stdout: string; stderr: string; check(): Promise<void> }> {
  const pop = lab.newUser('src');
  const imap = lab.newUser('dst');
  const messages = realisticMix(24, 5).map((m, i) =>
    Buffer.concat([Buffer.from(`Subject: route-${['alpha', 'beta', 'other'][i % 3]} ${i}\r\n`), m]),
  );
  await lab.seedPop3(pop, messages);
  const file = join(dir, `${pop}.yml`);
  writeFileSync(
    file,
    [
      'accounts:',
      `  - source: { url: 'pop3://${pop}@127.0.0.1:${lab.pop3.port}', tls: none, password_env: PW }`,
      `    destination: { url: 'imap://${imap}@127.0.0.1:${port}', tls: none, password_env: PW,` +
        ' append_connections: 3 }',
      `    journal: ${pop}.sqlite`,
      '    batch_messages: 6',
      '    rules:',
      '      - match: { subject: "route-alpha *" }',
      '        folder: Alpha',
      '      - match: { subject: "route-beta *" }',
      '        folder: Beta',
      '',
    ].join('\n'),
  );
  const r = await runCli(['migrate', '--config', file, '--no-progress', '--json'], { env: { PW: lab.password } });
  return {
    ...r,
    // Every message once in its folder.
    check: async () => {
      for (const [k, f] of FOLDERS.entries()) {
        const stored = digests((await destinationMessages(lab, imap, f)).map((m) => m.body));
        expect(stored, f).toEqual(digests(messages.filter((_, i) => i % 3 === k)));
      }
    },
  };
}

describe('a further APPEND connection refused by the server', () => {
  it('goes on with the connections it has: a warning, exit 0, every message once in its folder', async () => {
    const r = await routeThree(lab.imap.port);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ copied: 24, reconnects: 0 });
    expect(r.stderr).toMatch(/refused a further APPEND connection .*going on with 1 APPEND connection\b/);
    expect(r.stderr).not.toMatch(/\n\s+at /);
    await r.check();
  });

  it('refused at connect (a firewall allowing two per address): the same, not a lost connection', async () => {
    // Before, the refused connect ended the pass as a lost connection, and every reconnect met it again.
    const front = await startConnectLimitFront(lab.imap.port, 'refuse', { max: 2 });
    try {
      const r = await routeThree(front.port);
      expect(r.code, r.stderr).toBe(0);
      expect(JSON.parse(r.stdout)).toMatchObject({ copied: 24, reconnects: 0 });
      expect(r.stderr).toMatch(
        /refused a further APPEND connection \(cannot connect .*ECONNREFUSED.*going on with 1 APPEND/,
      );
      expect(r.stderr).not.toMatch(/reconnect|\n\s+at /);
      await r.check();
    } finally {
      await front.close();
    }
  });
});
