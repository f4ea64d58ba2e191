/**
 * Dropped links against real Dovecot, through a relay that cuts at the worst moments: after
 * Dovecot stored an APPEND but before popsync hears the OK (the window in which a naive resume
 * duplicates), and in the middle of a RETR. The run must reconnect on its own and end with
 * every source message in the destination exactly once.
 */
import net from 'node:net';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { realisticMix } from '../../lab/corpus.js';
import type { Lab } from '../../lab/dovecot.js';
import { useLab } from '../support/lab-fixture.js';
import { runCli } from '../support/cli.js';
import { appendUidCount, startCuttingProxy, type CuttingProxy } from '../support/cutting-proxy.js';
import { destinationMessages, digests, sourceMessages } from '../support/mailboxes.js';

let lab: Lab;
let dir: string;
const proxies: CuttingProxy[] = [];

useLab('faults', {}, (l, d) => {
  lab = l;
  dir = d;
});
afterAll(async () => {
  await Promise.all(proxies.map((p) => p.close()));
});

function args(pop: string, popPort: number, imap: string, imapPort: number, extra: string[] = []): string[] {
  return [
    'migrate',
    '--pop',
    `pop3://${pop}@127.0.0.1:${popPort}`,
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
    '--no-progress',
    '--json',
    '--batch-messages',
    '4',
    ...extra,
  ];
}

async function seeded(count: number, seed: number): Promise<{ pop: string; imap: string; expected: string[] }> {
  const pop = lab.newUser('src');
  await lab.seedPop3(pop, realisticMix(count, seed));
  return { pop, imap: lab.newUser('dst'), expected: digests(await sourceMessages(lab, pop)) };
}

describe('dropped connections against Dovecot', () => {
  it(
    'finds the copy Dovecot stored when the link dropped before the APPEND OK, instead of appending ' + 'it twice',
    async () => {
      const { pop, imap, expected } = await seeded(12, 31);
      let appendUids = 0;
      const imapProxy = await startCuttingProxy(lab.imap.port, {
        // Cut the APPEND connection in the chunk whose APPENDUIDs bring it to 5 stored messages:
        // that message (and any other whose OK shares the chunk, as pipelined replies do, or the
        // whole MULTIAPPEND that held it) is stored, but its OK never arrives. Only that connection
        // hears APPENDUIDs; which one the relay accepted first is a race since they open at once.
        cutServerData: ({ chunk }) => {
          if (appendUids >= 5) return false;
          appendUids += appendUidCount(chunk);
          return appendUids >= 5;
        },
      });
      proxies.push(imapProxy);
      const r = await runCli(args(pop, lab.pop3.port, imap, imapProxy.port), { env: { PW: lab.password } });
      expect(r.code, r.stderr).toBe(0);
      expect(imapProxy.cuts()).toBe(1);
      const summary = JSON.parse(r.stdout);
      expect(summary).toMatchObject({ reconnects: 1, failed: [] });
      // At least the 5th was found in the destination instead of being appended again.
      expect(summary.reconciled).toBeGreaterThanOrEqual(1);
      expect(summary.copied + summary.reconciled).toBe(12);
      expect(digests((await destinationMessages(lab, imap)).map((m) => m.body))).toEqual(expected);
    },
  );

  it('reconnects after the POP3 link drops mid-RETR, twice, and copies everything once', async () => {
    const { pop, imap, expected } = await seeded(20, 32);
    const popProxy = await startCuttingProxy(lab.pop3.port, {
      // The first two sessions die 150 KB into their downloads.
      cutServerData: ({ connection, chunk, seenBefore }) => connection < 2 && seenBefore + chunk.length > 150_000,
    });
    proxies.push(popProxy);
    const r = await runCli(args(pop, popProxy.port, imap, lab.imap.port), { env: { PW: lab.password } });
    expect(r.code, r.stderr).toBe(0);
    expect(popProxy.cuts()).toBe(2);
    expect(JSON.parse(r.stdout)).toMatchObject({ reconnects: 2, failed: [] });
    expect(digests((await destinationMessages(lab, imap)).map((m) => m.body))).toEqual(expected);
  });

  it(
    'gives up with exit 4 and a clear message when the link keeps dropping, and a later run finishes ' + 'the job',
    async () => {
      const { pop, imap, expected } = await seeded(6, 33);
      const popProxy = await startCuttingProxy(lab.pop3.port, {
        cutServerData: ({ chunk, seenBefore }) => seenBefore > 0 && chunk.length > 0,
      });
      proxies.push(popProxy);
      const r = await runCli(args(pop, popProxy.port, imap, lab.imap.port, ['--reconnect-attempts', '1']), {
        env: { PW: lab.password },
      });
      expect(r.code).toBe(4);
      expect(r.stderr).toMatch(/popsync: /);
      expect(r.stderr).toMatch(/run again later|reconnect/i);
      expect(r.stderr).not.toMatch(/\n\s+at /);

      const again = await runCli(args(pop, lab.pop3.port, imap, lab.imap.port), { env: { PW: lab.password } });
      expect(again.code, again.stderr).toBe(0);
      expect(digests((await destinationMessages(lab, imap)).map((m) => m.body))).toEqual(expected);
    },
  );

  it(
    'ends at once with exit 4 naming host and port when nothing listens on the first connection, on ' + 'either side',
    async () => {
      // A port that was just free: nothing listens there (a typo'd port, as users make them).
      const closed = await new Promise<number>((resolve) => {
        const srv = net.createServer().listen(0, '127.0.0.1', () => {
          const { port } = srv.address() as net.AddressInfo;
          srv.close(() => resolve(port));
        });
      });
      const { pop, imap } = await seeded(2, 35);
      for (const [popPort, imapPort] of [
        [closed, lab.imap.port],
        [lab.pop3.port, closed],
      ] as const) {
        const r = await runCli(args(pop, popPort, imap, imapPort), { env: { PW: lab.password } });
        expect(r.code, r.stderr).toBe(4);
        expect(r.stderr).toContain(`127.0.0.1:${closed}`);
        // No backoff: the run did not wait to reconnect (before: five attempts, 31 s of sleeping).
        expect(r.stderr).not.toMatch(/reconnect|\n\s+at /i);
      }
    },
  );
});
