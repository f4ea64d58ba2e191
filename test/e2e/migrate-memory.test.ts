/**
 * Memory stays bounded by what popsync received, not by message sizes or what a server claims
 * (issue 7 items 2, 3 and 5), measured on the real process: peak RSS (VmHWM, read as the child
 * exits) is printed and asserted.
 *
 * - A 100 MB message through real Dovecot, byte-exact, on both APPEND paths: pipelined
 *   LITERAL+, and one-at-a-time synchronising literals on a Dovecot that hides LITERAL+ and
 *   UIDPLUS (the UID then learnt by content). The bound is relative: the run with it may peak
 *   less than its size above the same mailbox without it, so the message was never whole in
 *   memory, and under the README's bound (`npm run bench` has the 200 MB case).
 * - SIGKILL at every journal step while a 12 MB message is copied, on both paths: each resume
 *   ends with it in the destination exactly once, within the bound.
 * - A scripted POP3 server that lies about a size and drops the connection on every RETR of
 *   another message: both are set aside with their reason, the rest arrives (exit 1).
 * - A link that breaks every 2.5 MB: every pass keeps the whole messages it received, so the
 *   run finishes although no 16 MB batch could ever arrive whole.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { hugeMessage, realisticMix } from '../../lab/corpus.js';
import type { Lab } from '../../lab/dovecot.js';
import { labArgs, useLab } from '../support/lab-fixture.js';
import { runCli, type CliResult } from '../support/cli.js';
import { multiline, startFakePop3, type FakePop3 } from '../support/fake-pop3.js';
import { destinationMessages, digests, sha, sourceMessages } from '../support/mailboxes.js';

/** The README's bound on peak RSS, whatever the message sizes. */
const PEAK_RSS_BOUND_MB = 200;
const MB = 1024 * 1024;

let lab: Lab;
let dir: string;
useLab('memory', {}, (l, d) => {
  lab = l;
  dir = d;
});
let bare: Lab;
let bareDir: string;
useLab('memory-bare', { imapWithout: ['UIDPLUS', 'LITERAL+'] }, (l, d) => {
  bare = l;
  bareDir = d;
});
const fakes: FakePop3[] = [];
afterAll(async () => {
  await Promise.all(fakes.map((f) => f.close()));
});

function peak(r: CliResult, what: string): number {
  expect(r.peakRssMb, `${what}: peak RSS was not reported`).toBeGreaterThan(0);
  console.log(`${what}: peak RSS ${r.peakRssMb!.toFixed(0)} MB (bound ${PEAK_RSS_BOUND_MB} MB)`);
  return r.peakRssMb!;
}

describe('a message far larger than the batch cap, into real Dovecot', () => {
  const small = realisticMix(6, 71);
  const large = hugeMessage(100 * MB, 72);

  for (const [name, without] of [
    ['pipelined LITERAL+', false],
    ['synchronising literals, no LITERAL+ nor UIDPLUS', true],
  ] as const) {
    it(`copies 100 MB byte-exact with ${name}, never holding it whole in memory`, async () => {
      const l = without ? bare : lab;
      const d = without ? bareDir : dir;
      const run = async (messages: Buffer[], tag: string): Promise<{ r: CliResult; imap: string; pop: string }> => {
        const pop = l.newUser(`src${tag}`);
        const imap = l.newUser(`dst${tag}`);
        await l.seedPop3(pop, messages);
        const r = await runCli(
          labArgs('migrate', l, pop, imap, join(d, `${pop}.sqlite`), ['--json', '--no-progress']),
          {
            env: { PW: l.password },
            peakRss: true,
            timeoutMs: 240_000,
          },
        );
        expect(r.code, r.stderr).toBe(0);
        return { r, imap, pop };
      };
      const base = await run(small, 'b');
      const withLarge = await run([...small.slice(0, 3), large, ...small.slice(3)], 'l');
      const s = JSON.parse(withLarge.r.stdout);
      expect(s).toMatchObject({ copied: 7, failed: [] });
      const expected = digests(await sourceMessages(l, withLarge.pop));
      const stored = await destinationMessages(l, withLarge.imap);
      expect(digests(stored.map((m) => m.body))).toEqual(expected);
      expect(
        stored.some((m) => m.body.length >= 100 * MB && sha(m.body) === expected.find((e) => e === sha(m.body))),
      ).toBe(true);
      const baseline = peak(base.r, `${name}: 6 small messages`);
      const withIt = peak(withLarge.r, `${name}: the same plus one of 100 MB`);
      // Holding it whole even once would add 100 MB (the previous engine added about twice its
      // size). What is added now is buffers it passed through, awaiting GC: 31-42 MB measured
      // alone, up to 92 MB with other e2e files running at once (V8's background marking starves
      // on a loaded machine, so garbage lives longer; the no-UIDPLUS path also reads the stored
      // copy back, in 4 MiB pieces, to learn its UID).
      expect(withIt - baseline).toBeLessThan(100);
      expect(withIt).toBeLessThan(PEAK_RSS_BOUND_MB);
    }, 300_000);
  }
});

describe('killed at every journal step while a large message is copied, then resumed', () => {
  // Spooled (past any batch's room), streamed into the literal, then found again by reading the stored copy
  // in parts: on both APPEND paths, each kill point ends with it in the destination once.
  for (const [name, without] of [
    ['pipelined LITERAL+', false],
    ['synchronising literals, no LITERAL+ nor UIDPLUS', true],
  ] as const) {
    it(`exactly once with ${name}`, async () => {
      const l = without ? bare : lab;
      const d = without ? bareDir : dir;
      const messages = [realisticMix(1, 74)[0]!, hugeMessage(12 * MB, 75), realisticMix(1, 76)[0]!];
      const args = (pop: string, imap: string, journal: string): string[] =>
        labArgs('migrate', l, pop, imap, journal, ['--json', '--no-progress']);
      const pop0 = l.newUser('src');
      await l.seedPop3(pop0, messages);
      const expected = digests(await sourceMessages(l, pop0));
      const stepsFile = join(d, `${pop0}.steps`);
      const clean = await runCli(args(pop0, l.newUser('dst'), join(d, `${pop0}.sqlite`)), {
        env: { PW: l.password },
        hooks: { stepsFile },
      });
      expect(clean.code, clean.stderr).toBe(0);
      const steps = Number(readFileSync(stepsFile, 'utf8').trim());
      expect(steps).toBeGreaterThanOrEqual(4);
      for (let k = 1; k <= steps; k++) {
        for (const when of ['before', 'after'] as const) {
          const pop = l.newUser('src');
          const imap = l.newUser('dst');
          await l.seedPop3(pop, messages);
          const journal = join(d, `${pop}.sqlite`);
          const killed = await runCli(args(pop, imap, journal), {
            env: { PW: l.password },
            hooks: { killAt: `${k}:${when}` },
          });
          expect(killed.signal, `step ${k} ${when}: ${killed.stderr}`).toBe('SIGKILL');
          const resumed = await runCli(args(pop, imap, journal), { env: { PW: l.password }, peakRss: true });
          expect(resumed.code, `resume after ${k}:${when}: ${resumed.stderr}`).toBe(0);
          expect(resumed.peakRssMb!, `resume after ${k}:${when}: peak RSS`).toBeLessThan(PEAK_RSS_BOUND_MB);
          const after = await destinationMessages(l, imap);
          expect(digests(after.map((m) => m.body)), `${name}: destination after kill at ${k}:${when}`).toEqual(
            expected,
          );
        }
      }
      console.log(`large-message crash test (${name}): ${steps} journal steps, ${2 * steps} kill points`);
    }, 600_000);
  }
});

describe('a hostile POP3 server', () => {
  function fakeArgs(pop: FakePop3, imap: string, journal: string): string[] {
    return [
      'migrate',
      '--pop',
      `pop3://${pop.user}@127.0.0.1:${pop.port}`,
      '--pop-tls',
      'none',
      '--imap',
      `imap://${imap}@127.0.0.1:${lab.imap.port}`,
      '--imap-tls',
      'none',
      '--pop-password-env',
      'POP_PW',
      '--imap-password-env',
      'PW',
      '--journal',
      join(dir, journal),
      '--json',
      '--no-progress',
    ];
  }

  it('sets aside a message larger than LIST claims and one whose RETR always drops; the rest arrives', async () => {
    const messages = realisticMix(8, 73);
    // RETRs that reached a live connection (pipelined ones behind a cut are read, never answered).
    const served = { 3: 0, 6: 0 };
    const pop = await startFakePop3({
      messages,
      pipelining: true,
      handlers: {
        // Message 3 claims 2,000 bytes.
        LIST: (ctx, a) => {
          if (a[0] !== undefined) return ctx.useDefault();
          ctx.replyMulti('+OK', ctx.messages.map((m, i) => `${i + 1} ${i === 2 ? 2000 : m.body.length}\r\n`).join(''));
        },
        RETR: async (ctx, a) => {
          if (a[0] === '3') {
            // ...and sends without end: popsync must cut it off, not buffer it.
            if (await ctx.writeWait('+OK\r\n')) served[3]++;
            const line = Buffer.from(`${'A'.repeat(998)}\r\n`.repeat(64));
            for (let sent = 0; sent < 2048 * MB && (await ctx.writeWait(line)); sent += line.length);
            return;
          }
          if (a[0] === '6') {
            // Half of message 6, then the connection dies: every time.
            const whole = multiline('+OK', ctx.messages[5]!.body);
            if (await ctx.writeWait(whole.subarray(0, whole.length >> 1))) served[6]++;
            return ctx.drop();
          }
          return ctx.useDefault();
        },
      },
    });
    fakes.push(pop);
    const imap = lab.newUser('dst-hostile');
    const r = await runCli(fakeArgs(pop, imap, 'hostile.sqlite'), {
      env: { POP_PW: pop.password, PW: lab.password },
      peakRss: true,
      timeoutMs: 120_000,
    });
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).not.toMatch(/\n\s+at /);
    const s = JSON.parse(r.stdout);
    expect(s.copied).toBe(6);
    expect(s.failed).toEqual([
      expect.objectContaining({
        uidl: 'uid-3',
        reason: expect.stringMatching(/^set aside: .*sent more than .*(message 3|RETR 3)/),
      }),
      expect.objectContaining({
        uidl: 'uid-6',
        reason: expect.stringMatching(
          /^set aside: receiving it from the POP3 server failed 3 times .*it stays on the server and the next run/,
        ),
      }),
    ]);
    // Three failed attempts at 6 set it aside (its reason says so). The server may count one
    // more: on a loaded machine a pass can also end while 6 is arriving for another reason.
    expect(served[3]).toBe(1);
    expect(served[6]).toBeGreaterThanOrEqual(3);
    const sixBefore = served[6];
    const others = messages.filter((_, i) => i !== 2 && i !== 5);
    expect(digests((await destinationMessages(lab, imap)).map((m) => m.body))).toEqual(digests(others));
    expect(peak(r, 'hostile POP3 (endless RETR)')).toBeLessThan(PEAK_RSS_BOUND_MB);

    // Left on the server, and tried again by the next run; nothing copied twice.
    const again = await runCli(fakeArgs(pop, imap, 'hostile.sqlite'), {
      env: { POP_PW: pop.password, PW: lab.password },
      timeoutMs: 120_000,
    });
    expect(again.code, again.stderr).toBe(1);
    expect(JSON.parse(again.stdout)).toMatchObject({ copied: 0, alreadyCopied: 6 });
    expect(served[3]).toBe(2);
    expect(served[6] - sixBefore).toBeGreaterThanOrEqual(3);
    expect(await destinationMessages(lab, imap)).toHaveLength(6);
  }, 240_000);

  it('finishes over a link that breaks every 2.5 MB, keeping every whole message each pass', async () => {
    const messages = Array.from({ length: 12 }, (_, i) => hugeMessage(MB, 100 + i));
    const perConnection = new Map<number, number>();
    const pop = await startFakePop3({
      messages,
      pipelining: true,
      handlers: {
        RETR: async (ctx, a) => {
          const m = ctx.messages[Number(a[0]) - 1];
          if (!m) return ctx.useDefault();
          const wire = multiline(`+OK ${m.body.length} octets`, m.body);
          const before = perConnection.get(ctx.connection) ?? 0;
          const room = 2.5 * MB - before;
          if (room < wire.length) {
            ctx.write(wire.subarray(0, Math.max(0, room)));
            return ctx.drop();
          }
          perConnection.set(ctx.connection, before + wire.length);
          await ctx.writeWait(wire);
        },
      },
    });
    fakes.push(pop);
    const imap = lab.newUser('dst-breaking');
    const r = await runCli(fakeArgs(pop, imap, 'breaking.sqlite'), {
      env: { POP_PW: pop.password, PW: lab.password },
      timeoutMs: 180_000,
    });
    expect(r.code, r.stderr).toBe(0);
    const s = JSON.parse(r.stdout);
    expect(s).toMatchObject({ copied: 12, failed: [] });
    // Two whole messages per connection: six passes, each one progress.
    expect(s.reconnects).toBeGreaterThanOrEqual(5);
    expect(digests((await destinationMessages(lab, imap)).map((m) => m.body))).toEqual(digests(messages));
  }, 240_000);
});
