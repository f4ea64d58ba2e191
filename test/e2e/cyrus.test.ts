/**
 * popsync against a second real server: Cyrus IMAP/POP3 3.6 (Debian's, in the private lab of
 * lab/cyrus.ts) next to the Dovecot lab. Cyrus as the destination (its own UIDs, APPENDUID,
 * storage) and as the source (its own UIDLs and POP3 framing); each copy exactly once, also
 * after a dropped IMAP link and a kill at every journal step.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { realisticMix } from '../../lab/corpus.js';
import { startCyrus, type CyrusLab } from '../../lab/cyrus.js';
import type { Lab } from '../../lab/dovecot.js';
import { popsyncArgs } from '../../lab/popsync-cli.js';
import { runCli } from '../support/cli.js';
import { appendUidCount, startCuttingProxy, type CuttingProxy } from '../support/cutting-proxy.js';
import { startFakePop3 } from '../support/fake-pop3.js';
import { canonicalDigests, cyrusCanonical, hasBareLf, hostileCorpus, withCrlf } from '../support/hostile-mail.js';
import { useLab } from '../support/lab-fixture.js';
import { cyrusMessages, destinationMessages, digests, sourceMessages } from '../support/mailboxes.js';
import { duplicateCorpus } from './crash-matrix.js';

let dovecot: Lab;
let cyrus: CyrusLab;
let dir: string;
const proxies: CuttingProxy[] = [];
const closers: Array<{ close(): Promise<void> }> = [];

useLab('cyrus', {}, (l, d) => {
  dovecot = l;
  dir = d;
});
beforeAll(async () => {
  cyrus = await startCyrus();
});
afterAll(async () => {
  await Promise.all([...proxies, ...closers].map((p) => p.close()));
  await cyrus?.stop();
});

interface Side {
  user: string;
  host: string;
  port: number;
}

function migrate(pop: Side, imap: Side, journal: string, extra: string[] = []): string[] {
  return popsyncArgs('migrate', pop, imap, journal, ['--no-progress', '--json', ...extra]);
}

/** Both labs take the same password: Cyrus's alwaystrue takes any, Dovecot's is fixed. */
const env = (): Record<string, string> => ({ PW: dovecot.password });

async function dovecotSource(messages: Buffer[]): Promise<{ pop: Side; expected: string[] }> {
  const user = dovecot.newUser('src');
  await dovecot.seedPop3(user, messages);
  return {
    pop: { user, host: '127.0.0.1', port: dovecot.pop3.port },
    expected: digests(await sourceMessages(dovecot, user)),
  };
}

describe('Cyrus as the IMAP destination', () => {
  it('copies a mailbox with identical messages once; a rerun copies nothing', async () => {
    const { pop, expected } = await dovecotSource([...realisticMix(40, 81), ...duplicateCorpus(82)]);
    const imap = { user: await cyrus.newUser('dst'), host: '127.0.0.1', port: cyrus.imap.port };
    const journal = join(dir, `${imap.user}.sqlite`);
    const r = await runCli(migrate(pop, imap, journal), { env: env() });
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ copied: 47, failed: [] });
    expect(digests(await cyrusMessages(cyrus, imap.user))).toEqual(expected);
    const again = await runCli(migrate(pop, imap, journal), { env: env() });
    expect(again.code, again.stderr).toBe(0);
    expect(JSON.parse(again.stdout)).toMatchObject({ copied: 0, alreadyCopied: 47 });
    expect(await cyrusMessages(cyrus, imap.user)).toHaveLength(47);
  });

  it('finds what Cyrus stored when the link dropped before the APPEND OK, and copies the rest once', async () => {
    const { pop, expected } = await dovecotSource([...realisticMix(16, 83), ...duplicateCorpus(84)]);
    const imap = { user: await cyrus.newUser('dst'), host: '127.0.0.1', port: 0 };
    const seen = new Map<number, number>();
    const proxy = await startCuttingProxy(cyrus.imap.port, {
      // Two connections in a row die in the chunk whose APPENDUIDs bring them to 5 stored
      // messages (Cyrus offers MULTIAPPEND: the OK of a whole batch, all stored, none reported).
      cutServerData: ({ connection, chunk }) => {
        const before = seen.get(connection) ?? 0;
        const now = before + appendUidCount(chunk);
        seen.set(connection, now);
        return proxy.cuts() < 2 && before < 5 && now >= 5;
      },
    });
    proxies.push(proxy);
    imap.port = proxy.port;
    const r = await runCli(migrate(pop, imap, join(dir, `${imap.user}.sqlite`), ['--batch-messages', '8']), {
      env: env(),
    });
    expect(proxy.cuts()).toBe(2);
    const dest = await cyrusMessages(cyrus, imap.user);
    expect(dest.length, `copies in Cyrus (exit ${r.code}: ${r.stderr.slice(0, 300)})`).toBe(expected.length);
    expect(digests(dest)).toEqual(expected);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ reconnects: 2, failed: [] });
  });

  it('ends with every message once after a kill at every journal step', async () => {
    // Smaller than the Dovecot matrix (an identical pair, 5 steps) to keep the suite's time.
    const [a, b, , c] = duplicateCorpus(85);
    const messages = [a!, b!, b!, c!];
    const extra = ['--batch-messages', '2'];
    const { pop, expected } = await dovecotSource(messages);
    const stepsFile = join(dir, 'cyrus-steps');
    const probe = { user: await cyrus.newUser('dst'), host: '127.0.0.1', port: cyrus.imap.port };
    const clean = await runCli(migrate(pop, probe, join(dir, `${probe.user}.sqlite`), extra), {
      env: env(),
      hooks: { stepsFile },
    });
    expect(clean.code, clean.stderr).toBe(0);
    const steps = Number(readFileSync(stepsFile, 'utf8').trim());
    // The folder, and per batch its intent and its outcomes (one step for all of a batch's).
    expect(steps).toBeGreaterThanOrEqual(5);
    for (let k = 1; k <= steps; k++) {
      for (const when of ['before', 'after'] as const) {
        const imap = { user: await cyrus.newUser('dst'), host: '127.0.0.1', port: cyrus.imap.port };
        const journal = join(dir, `${imap.user}.sqlite`);
        const killed = await runCli(migrate(pop, imap, journal, extra), {
          env: env(),
          hooks: { killAt: `${k}:${when}` },
        });
        expect(killed.signal, `step ${k} ${when}: ${killed.stderr}`).toBe('SIGKILL');
        const resumed = await runCli(migrate(pop, imap, journal, extra), { env: env() });
        expect(resumed.code, `resume after ${k}:${when}: ${resumed.stderr}`).toBe(0);
        expect(digests(await cyrusMessages(cyrus, imap.user)), `Cyrus after kill at ${k}:${when}`).toEqual(expected);
      }
    }
  }, 600_000);
});

describe('Cyrus and bytes it rewrites', () => {
  it(
    'a source serving bare LF, NUL, 8-bit headers, no final newline, through a faulty link: every message ' +
      'once (bare LF sent as CRLF, which Cyrus refuses otherwise), and verify finds each copy once',
    async () => {
      const messages = hostileCorpus(24, 'cyrus', [2, 3]);
      const pop = await startFakePop3({ messages, user: 'src', password: dovecot.password, pipelining: true });
      closers.push(pop);
      const imapUser = await cyrus.newUser('dst');
      const seen = new Map<number, number>();
      const proxy = await startCuttingProxy(cyrus.imap.port, {
        // Three connections in a row die just after Cyrus stored their 2nd APPEND (with two
        // batches outstanding at once, a connection stores more before its cut: at the 3rd, the
        // 24 messages were in after two cuts).
        cutServerData: ({ connection, chunk }) => {
          const before = seen.get(connection) ?? 0;
          const now = before + appendUidCount(chunk);
          seen.set(connection, now);
          return proxy.cuts() < 3 && before < 2 && now >= 2;
        },
      });
      proxies.push(proxy);
      const popSide = { user: 'src', host: '127.0.0.1', port: pop.port };
      const journal = join(dir, `${imapUser}.sqlite`);
      const r = await runCli(
        migrate(popSide, { user: imapUser, host: '127.0.0.1', port: proxy.port }, journal, [
          '--batch-messages',
          '6',
          '--reconnect-attempts',
          '8',
        ]),
        { env: env() },
      );
      expect(proxy.cuts()).toBe(3);
      expect(messages.filter(hasBareLf).length).toBeGreaterThan(0);
      const dest = await cyrusMessages(cyrus, imapUser);
      expect(dest.length, `copies in Cyrus (exit ${r.code}: ${r.stderr.slice(0, 300)})`).toBe(messages.length);
      // Measured before: Cyrus answered NO ("Message contains bare newlines") to every bare-LF message.
      expect(JSON.parse(r.stdout).failed).toEqual([]);
      expect(r.code, r.stderr).toBe(0);
      const sent = (m: Buffer): Buffer => cyrusCanonical(withCrlf(m));
      expect(canonicalDigests(dest, sent)).toEqual(canonicalDigests(messages, sent));
      // The rewrite that defeats a byte-exact match: 8-bit header bytes became 'X', length kept.
      const munged = dest.find((d) => d.includes('Subject: 8bit-header cyrus-3 '))!;
      const original = messages[3]!;
      expect(munged.length).toBe(original.length);
      expect(munged.equals(original)).toBe(false);
      expect(munged.toString('latin1')).toContain('Subject: 8bit-header cyrus-3 cafX XX');

      // verify finds every recorded copy, none missing and none twice; the bare-LF ones as
      // rewritten in line ends only (lossless), the 8-bit ones as munged.
      const v = await runCli(
        ['verify', ...migrate(popSide, { user: imapUser, host: '127.0.0.1', port: cyrus.imap.port }, journal).slice(1)],
        { env: env() },
      );
      const audit = JSON.parse(v.stdout).accounts[0];
      expect(audit.checked, v.stderr).toBe(messages.length);
      const statuses = new Set(audit.findings.map((f: { status: string }) => f.status));
      expect([...statuses].filter((s) => s !== 'rewritten')).toEqual([]);
      const lfOnly = audit.findings.filter((f: { likely: string[] }) => f.likely.some((l) => /CRLF|line end/i.test(l)));
      expect(lfOnly.length).toBeGreaterThan(0);
    },
  );
});

describe('Cyrus and a large bare-LF message', () => {
  it(
    'spooled to disk (over 4 MB, past a 4 MB batch cap) and sent as CRLF: stored once, exit 0, byte for byte ' +
      'the CRLF form',
    async () => {
      const line = `${'y'.repeat(70)}\n`;
      const big = Buffer.from(`Message-ID: <big-lf@cyrus.example>\nSubject: big lf\n\n${line.repeat(90_000)}`);
      const pop = await startFakePop3({ messages: [big], user: 'src', password: dovecot.password });
      closers.push(pop);
      const imapUser = await cyrus.newUser('biglf');
      const r = await runCli(
        migrate(
          { user: 'src', host: '127.0.0.1', port: pop.port },
          { user: imapUser, host: '127.0.0.1', port: cyrus.imap.port },
          join(dir, `${imapUser}.sqlite`),
          // Within a batch's room (10 MB by default) a 6 MB message stays in memory.
          ['--batch-mb', '4'],
        ),
        { env: env() },
      );
      expect(r.code, r.stderr).toBe(0);
      expect(JSON.parse(r.stdout)).toMatchObject({ copied: 1, failed: [] });
      const dest = await cyrusMessages(cyrus, imapUser);
      expect(dest).toHaveLength(1);
      expect(dest[0]!.length).toBe(big.length + 90_003);
      expect(dest[0]!.equals(withCrlf(big))).toBe(true);
    },
  );
});

describe('Cyrus as the POP3 source', () => {
  it(
    'copies every message Cyrus serves into Dovecot once, identical ones included; a rerun copies ' + 'nothing',
    async () => {
      const user = await cyrus.newUser('src');
      const messages = [...realisticMix(30, 86), ...duplicateCorpus(87)];
      await cyrus.seedPop3(user, messages);
      const pop = { user, host: '127.0.0.1', port: cyrus.pop3.port };
      const imapUser = dovecot.newUser('dst');
      const imap = { user: imapUser, host: '127.0.0.1', port: dovecot.imap.port };
      const journal = join(dir, `${user}.sqlite`);
      const r = await runCli(migrate(pop, imap, journal), { env: env() });
      expect(r.code, r.stderr).toBe(0);
      expect(JSON.parse(r.stdout)).toMatchObject({ copied: messages.length, failed: [] });
      expect(digests((await destinationMessages(dovecot, imapUser)).map((m) => m.body))).toEqual(digests(messages));
      const again = await runCli(migrate(pop, imap, journal), { env: env() });
      expect(JSON.parse(again.stdout)).toMatchObject({ copied: 0 });
    },
  );
});

describe('the Cyrus lab itself', () => {
  it('stop() leaves no process and no directory behind', async () => {
    const lab = await startCyrus();
    const user = await lab.newUser('busy');
    const c = lab.client(user);
    await c.connect();
    await lab.stop();
    c.close();
    expect(existsSync(lab.dir)).toBe(false);
    const left = readdirSync('/proc').filter((p) => {
      try {
        return /^\d+$/.test(p) && readFileSync(`/proc/${p}/cmdline`, 'latin1').includes(lab.dir);
      } catch {
        return false;
      }
    });
    expect(left).toEqual([]);
  });
});
