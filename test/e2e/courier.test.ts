/**
 * popsync against Courier IMAP/POP3 (Debian's, in the private lab of lab/courier.ts: a
 * login front, then Courier's own imapd / courierpop3d). Courier as the destination (its UIDs,
 * APPENDUID, maildir storage) and as the source (its UIDLs, its CR-adding POP3): each copy
 * exactly once, also after a dropped IMAP link and a kill at every journal step.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ImapFlow } from 'imapflow';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { realisticMix } from '../../lab/corpus.js';
import { startCourier, type CourierLab } from '../../lab/courier.js';
import type { Lab } from '../../lab/dovecot.js';
import { runCli } from '../support/cli.js';
import { startCuttingProxy, type CuttingProxy } from '../support/cutting-proxy.js';
import { startSlowProxy } from '../../lab/slow-proxy.js';
import { startFakePop3 } from '../support/fake-pop3.js';
import { canonicalDigests, courierCanonical, hostileCorpus } from '../support/hostile-mail.js';
import { useLab } from '../support/lab-fixture.js';
import { destinationMessages, digests, inboxBodies, sourceMessages } from '../support/mailboxes.js';
import { duplicateCorpus } from './crash-matrix.js';

let dovecot: Lab;
let courier: CourierLab;
let dir: string;
const proxies: CuttingProxy[] = [];
const closers: Array<{ close(): Promise<void> }> = [];

useLab('courier', {}, (l, d) => {
  dovecot = l;
  dir = d;
});
beforeAll(async () => {
  courier = await startCourier();
});
afterAll(async () => {
  await Promise.all([...proxies, ...closers].map((p) => p.close()));
  await courier?.stop();
});

interface Side {
  user: string;
  port: number;
  password: string;
}

function migrate(pop: Side, imap: Side, journal: string, extra: string[] = []): string[] {
  return [
    'migrate',
    '--pop',
    `pop3://${pop.user}@127.0.0.1:${pop.port}`,
    '--pop-tls',
    'none',
    '--imap',
    `imap://${imap.user}@127.0.0.1:${imap.port}`,
    '--imap-tls',
    'none',
    '--pop-password-env',
    'POP_PW',
    '--imap-password-env',
    'IMAP_PW',
    '--journal',
    journal,
    '--no-progress',
    '--json',
    ...extra,
  ];
}
const env = (pop: Side, imap: Side): Record<string, string> => ({ POP_PW: pop.password, IMAP_PW: imap.password });

/** An imapflow client of the lab's Courier for `user`, not yet connected. */
function courierClient(user: string): ImapFlow {
  return new ImapFlow({
    host: courier.imap.host,
    port: courier.imap.port,
    secure: false,
    doSTARTTLS: false,
    auth: { user, pass: courier.password },
    logger: false,
  });
}

function courierMessages(user: string): Promise<Buffer[]> {
  return inboxBodies(courierClient(user));
}

async function dovecotSource(messages: Buffer[]): Promise<{ pop: Side; expected: string[] }> {
  const user = dovecot.newUser('src');
  await dovecot.seedPop3(user, messages);
  return {
    pop: { user, port: dovecot.pop3.port, password: dovecot.password },
    expected: digests(await sourceMessages(dovecot, user)),
  };
}

const courierSide = async (port = courier.imap.port): Promise<Side> => ({
  user: await courier.newUser('dst'),
  port,
  password: courier.password,
});

describe('Courier as the IMAP destination', () => {
  it('copies a mailbox with identical messages once; a rerun copies nothing', async () => {
    const { pop, expected } = await dovecotSource([...realisticMix(30, 91), ...duplicateCorpus(92)]);
    const imap = await courierSide();
    const journal = join(dir, `${imap.user}.sqlite`);
    const r = await runCli(migrate(pop, imap, journal), { env: env(pop, imap) });
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ copied: 37, failed: [] });
    expect(digests(await courierMessages(imap.user))).toEqual(expected);
    const again = await runCli(migrate(pop, imap, journal), { env: env(pop, imap) });
    expect(again.code, again.stderr).toBe(0);
    expect(JSON.parse(again.stdout)).toMatchObject({ copied: 0, alreadyCopied: 37 });
  });

  it('finds what Courier stored when the link dropped before the APPEND OK, and copies the rest once', async () => {
    const { pop, expected } = await dovecotSource([...realisticMix(12, 93), ...duplicateCorpus(94)]);
    const imap = await courierSide();
    let appendUids = 0;
    const proxy = await startCuttingProxy(courier.imap.port, {
      // Courier has no LITERAL+: popsync appends one at a time; cut twice, after the 4th and 9th OK.
      cutServerData: ({ chunk }) => {
        const before = appendUids;
        appendUids += chunk.toString('latin1').split('APPENDUID').length - 1;
        return (before < 4 && appendUids >= 4) || (before < 9 && appendUids >= 9);
      },
    });
    proxies.push(proxy);
    const r = await runCli(migrate(pop, { ...imap, port: proxy.port }, join(dir, `${imap.user}.sqlite`)), {
      env: env(pop, imap),
    });
    expect(proxy.cuts()).toBe(2);
    const dest = await courierMessages(imap.user);
    expect(dest.length, `copies in Courier (exit ${r.code}: ${r.stderr.slice(0, 300)})`).toBe(expected.length);
    expect(digests(dest)).toEqual(expected);
    expect(r.code, r.stderr).toBe(0);
  });
  it('ends with every message once after a kill at every journal step', async () => {
    const [a, b, , c] = duplicateCorpus(95);
    const messages = [a!, b!, b!, c!];
    const extra = ['--batch-messages', '2'];
    const { pop, expected } = await dovecotSource(messages);
    const stepsFile = join(dir, 'courier-steps');
    const probe = await courierSide();
    const clean = await runCli(migrate(pop, probe, join(dir, `${probe.user}.sqlite`), extra), {
      env: env(pop, probe),
      hooks: { stepsFile },
    });
    expect(clean.code, clean.stderr).toBe(0);
    const steps = Number(readFileSync(stepsFile, 'utf8').trim());
    // The folder, and per batch its intent and its outcomes (one step for all of a batch's).
    expect(steps).toBeGreaterThanOrEqual(5);
    for (let k = 1; k <= steps; k++) {
      for (const when of ['before', 'after'] as const) {
        const imap = await courierSide();
        const journal = join(dir, `${imap.user}.sqlite`);
        const killed = await runCli(migrate(pop, imap, journal, extra), {
          env: env(pop, imap),
          hooks: { killAt: `${k}:${when}` },
        });
        // Courier's fresh INBOX changes UIDVALIDITY every second until written, and accepting a
        // new value is a journal step: a run may take one step fewer than the counted one, so
        // the last kill point may not exist in it. Then it must simply have finished.
        if (killed.signal !== 'SIGKILL' && k >= steps - 1)
          expect(killed.code, `step ${k} ${when}: ${killed.stderr}`).toBe(0);
        else expect(killed.signal, `step ${k} ${when}: ${killed.stderr}`).toBe('SIGKILL');
        const resumed = await runCli(migrate(pop, imap, journal, extra), { env: env(pop, imap) });
        expect(resumed.code, `resume after ${k}:${when}: ${resumed.stderr}`).toBe(0);
        expect(digests(await courierMessages(imap.user)), `Courier after kill at ${k}:${when}`).toEqual(expected);
      }
    }
  }, 600_000);

  it(
    'copies into a fresh INBOX over a slow link (200 ms each way), where Courier changes its UIDVALIDITY ' +
      'every second',
    async () => {
      const { pop, expected } = await dovecotSource([...realisticMix(6, 98), ...duplicateCorpus(99).slice(0, 3)]);
      const imap = await courierSide();
      const slow = await startSlowProxy(courier.imap.port, 200);
      closers.push(slow);
      const journal = join(dir, `${imap.user}.sqlite`);
      const r = await runCli(migrate(pop, { ...imap, port: slow.port }, journal), { env: env(pop, imap) });
      expect(r.code, r.stderr).toBe(0);
      expect(digests(await courierMessages(imap.user))).toEqual(expected);
      const again = await runCli(migrate(pop, { ...imap, port: slow.port }, journal), { env: env(pop, imap) });
      expect(again.code, again.stderr).toBe(0);
      expect(JSON.parse(again.stdout)).toMatchObject({ copied: 0 });
    },
  );
  it('resumes into a fresh INBOX over a slow link after a kill before the first copy arrived', async () => {
    const { pop, expected } = await dovecotSource([...realisticMix(4, 100), ...duplicateCorpus(101).slice(0, 3)]);
    const slow = await startSlowProxy(courier.imap.port, 200);
    closers.push(slow);
    // The first journal step is taken before any APPEND: kill after it, resume slowly.
    for (const k of [1]) {
      const imap = await courierSide();
      const journal = join(dir, `${imap.user}.sqlite`);
      const killed = await runCli(migrate(pop, { ...imap, port: slow.port }, journal, ['--batch-messages', '2']), {
        env: env(pop, imap),
        hooks: { killAt: `${k}:after` },
      });
      expect(killed.signal, `step ${k}: ${killed.stderr}`).toBe('SIGKILL');
      const resumed = await runCli(migrate(pop, { ...imap, port: slow.port }, journal, ['--batch-messages', '2']), {
        env: env(pop, imap),
      });
      expect(resumed.code, `resume after ${k}:after: ${resumed.stderr}`).toBe(0);
      expect(digests(await courierMessages(imap.user)), `after a kill at ${k}:after`).toEqual(expected);
    }
  });
});

describe('Courier facts the tests rely on', () => {
  it("an empty INBOX's UIDVALIDITY changes every second until something is stored in it", async () => {
    const user = await courier.newUser('fresh');
    const c = courierClient(user);
    await c.connect();
    try {
      const uv = async (): Promise<bigint | number | undefined> => {
        const st = await c.status('INBOX', { uidValidity: true });
        return st === false ? undefined : st.uidValidity;
      };
      const first = await uv();
      await new Promise((r) => setTimeout(r, 1100));
      const second = await uv();
      expect(second, 'fresh INBOX').not.toEqual(first);
      await c.append('INBOX', Buffer.from('Subject: settle\r\n\r\nx\r\n'));
      const third = await uv();
      await new Promise((r) => setTimeout(r, 1100));
      expect(await uv(), 'INBOX after the first message').toEqual(third);
    } finally {
      await c.logout();
    }
  });
});

describe('Courier and bytes it rewrites', () => {
  it(
    'a source serving bare LF, bare CR, NUL, 8-bit headers, no final newline, through a faulty link: each ' +
      'message once',
    async () => {
      const messages = hostileCorpus(24, 'courier', [1, 4]);
      const pop = await startFakePop3({ messages, user: 'src', password: dovecot.password, pipelining: true });
      closers.push(pop);
      const imap = await courierSide();
      let appendUids = 0;
      const proxy = await startCuttingProxy(courier.imap.port, {
        // One APPEND at a time (no LITERAL+): cut after the 3rd, 8th and 14th OK.
        cutServerData: ({ chunk }) => {
          const before = appendUids;
          appendUids += chunk.toString('latin1').split('APPENDUID').length - 1;
          return [3, 8, 14].some((n) => before < n && appendUids >= n);
        },
      });
      proxies.push(proxy);
      const popSide = { user: 'src', port: pop.port, password: dovecot.password };
      const r = await runCli(
        migrate(popSide, { ...imap, port: proxy.port }, join(dir, `${imap.user}.sqlite`), [
          '--reconnect-attempts',
          '8',
        ]),
        { env: env(popSide, imap) },
      );
      expect(proxy.cuts()).toBe(3);
      const dest = await courierMessages(imap.user);
      expect(dest.length, `copies in Courier for ${messages.length} (exit ${r.code}: ${r.stderr.slice(0, 300)})`).toBe(
        messages.length,
      );
      expect(canonicalDigests(dest, courierCanonical)).toEqual(canonicalDigests(messages, courierCanonical));
      expect(r.code, r.stderr).toBe(0);
    },
  );
});

describe('Courier as the POP3 source', () => {
  it(
    'copies every message Courier serves into Dovecot once, identical ones included; a rerun copies ' + 'nothing',
    async () => {
      const user = await courier.newUser('src');
      const messages = [...realisticMix(30, 96), ...duplicateCorpus(97)];
      await courier.seedPop3(user, messages);
      const pop = { user, port: courier.pop3.port, password: courier.password };
      const imapUser = dovecot.newUser('dst');
      const imap = { user: imapUser, port: dovecot.imap.port, password: dovecot.password };
      const journal = join(dir, `${user}.sqlite`);
      const r = await runCli(migrate(pop, imap, journal), { env: env(pop, imap) });
      expect(r.code, r.stderr).toBe(0);
      expect(JSON.parse(r.stdout)).toMatchObject({ copied: messages.length, failed: [] });
      // Seeded with LF line ends as a delivery agent stores them; Courier serves CRLF again.
      expect(digests((await destinationMessages(dovecot, imapUser)).map((m) => m.body))).toEqual(digests(messages));
      const again = await runCli(migrate(pop, imap, journal), { env: env(pop, imap) });
      expect(again.code, again.stderr).toBe(0);
      expect(JSON.parse(again.stdout)).toMatchObject({ copied: 0 });
    },
  );
});
