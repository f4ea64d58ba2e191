/**
 * A POP3 source that serves what non-Dovecot servers serve (bare LF line ends, bare CR, NUL,
 * raw 8-bit header bytes, no final newline, no Message-ID), copied into the REAL Dovecot,
 * which rewrites some of it on the way in. After a dropped IMAP link mid-batch, or a SIGKILL at
 * any journal step, popsync must recognise the copies Dovecot already holds although their
 * bytes differ from what it sent: every message exactly once, 0 duplicates.
 *
 * "Exactly once" is judged by hostile-mail.ts's canonical form of Dovecot's rewrites, measured
 * by the first test here, not by anything popsync computes.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { Lab } from '../../lab/dovecot.js';
import { runCli } from '../support/cli.js';
import { appendUidCount, startCuttingProxy, type CuttingProxy } from '../support/cutting-proxy.js';
import { startFakePop3, type FakePop3 } from '../support/fake-pop3.js';
import {
  canonicalDigests,
  dovecotCanonical,
  hostileCorpus,
  hostileMessage,
  HOSTILE_KINDS,
} from '../support/hostile-mail.js';
import { loopbackArgs, useLab } from '../support/lab-fixture.js';
import { destinationMessages } from '../support/mailboxes.js';

let lab: Lab;
let dir: string;
const closers: Array<{ close(): Promise<void> }> = [];

useLab('norm', {}, (l, d) => {
  lab = l;
  dir = d;
});
afterAll(async () => {
  await Promise.all(closers.map((c) => c.close()));
});

async function source(messages: Buffer[]): Promise<FakePop3> {
  const pop = await startFakePop3({ messages, user: 'src', password: lab.password, pipelining: true });
  closers.push(pop);
  return pop;
}

function args(popPort: number, imapUser: string, imapPort: number, journal: string, extra: string[] = []): string[] {
  return loopbackArgs('migrate', { pop3: popPort, imap: imapPort }, 'src', imapUser, journal, [
    '--no-progress',
    '--json',
    ...extra,
  ]);
}

/**
 * Cuts the first `times` IMAP connections in the server chunk whose APPENDUIDs bring them to
 * `after` stored messages (a MULTIAPPEND's names several).
 */
async function faultyImapLink(times: number, after: number): Promise<CuttingProxy> {
  const seen = new Map<number, number>();
  const proxy = await startCuttingProxy(lab.imap.port, {
    cutServerData: ({ connection, chunk }) => {
      const before = seen.get(connection) ?? 0;
      const now = before + appendUidCount(chunk);
      seen.set(connection, now);
      return proxy.cuts() < times && before < after && now >= after;
    },
  });
  closers.push(proxy);
  return proxy;
}

const sent = (m: FakePop3): Buffer[] => m.mailbox.map((x) => x.body);

describe('server rewrites: a source serving bare LF, bare CR, NUL, 8-bit headers, no final newline', () => {
  it('Dovecot stores them rewritten (bare LF to CRLF, NUL to 0x80, a final CRLF added), the rest as sent', async () => {
    const messages = HOSTILE_KINDS.map((k) => hostileMessage(k, 'facts'));
    const pop = await source(messages);
    const imap = lab.newUser('dst');
    const r = await runCli(args(pop.port, imap, lab.imap.port, join(dir, 'facts.sqlite')), {
      env: { PW: lab.password },
    });
    expect(r.code, r.stderr).toBe(0);
    const dest = (await destinationMessages(lab, imap)).map((m) => m.body);
    expect(dest).toHaveLength(messages.length);
    const stored = new Map(HOSTILE_KINDS.map((k, i) => [k, dest[i]!]));
    const original = new Map(HOSTILE_KINDS.map((k, i) => [k, messages[i]!]));
    for (const k of HOSTILE_KINDS) {
      expect(
        dovecotCanonical(stored.get(k)!).equals(dovecotCanonical(original.get(k)!)),
        `${k}: same message under Dovecot's rewrites`,
      ).toBe(true);
    }
    // What changed and what did not: the reasons a byte-exact or size-based match fails.
    for (const k of ['bare-lf', 'nul', 'no-final-newline', 'lf-nul-no-id'] as const) {
      expect(stored.get(k)!.equals(original.get(k)!), `${k} is rewritten`).toBe(false);
    }
    for (const k of ['bare-cr', '8bit-header'] as const) {
      expect(stored.get(k)!.equals(original.get(k)!), `${k} is kept byte for byte`).toBe(true);
    }
    expect(stored.get('bare-lf')!.length).toBeGreaterThan(original.get('bare-lf')!.length);
    expect(stored.get('nul')!.includes(0)).toBe(false);
    expect(stored.get('nul')!.includes(0x80)).toBe(true);
  });

  it('a faulty IMAP link mid-batch: 40 messages end up in Dovecot once each, 0 duplicates', async () => {
    const messages = hostileCorpus(40, 'link', [3, 10]);
    const pop = await source(messages);
    const imap = lab.newUser('dst');
    // Up to five connections in a row die just after Dovecot stored their 2nd APPEND (or more:
    // pipelined OKs share chunks, and two batches are outstanding at once). How many connections
    // still get that far depends on how much each one stored, so the test asks for at least
    // three drops, not an exact count.
    const proxy = await faultyImapLink(5, 2);
    const r = await runCli(
      args(pop.port, imap, proxy.port, join(dir, `${imap}.sqlite`), [
        '--batch-messages',
        '10',
        '--reconnect-attempts',
        '8',
      ]),
      { env: { PW: lab.password } },
    );
    const dest = (await destinationMessages(lab, imap)).map((m) => m.body);
    expect(proxy.cuts()).toBeGreaterThanOrEqual(3);
    expect(
      dest.length,
      `copies in Dovecot for ${messages.length} source messages (exit ${r.code}: ${r.stderr.slice(0, 400)})`,
    ).toBe(messages.length);
    expect(canonicalDigests(dest)).toEqual(canonicalDigests(sent(pop)));
    expect(r.code, r.stderr).toBe(0);
  });

  it('a kill at every journal step: every message once, 0 duplicates', async () => {
    // One of each kind, no repeats (identical messages have their own crash matrices): 5 steps.
    const messages = hostileCorpus(6, 'kill');
    const extra = ['--batch-messages', '3'];
    const probe = await source(messages);
    const stepsFile = join(dir, 'norm-steps');
    const clean = await runCli(
      args(probe.port, lab.newUser('dst'), lab.imap.port, join(dir, 'norm-clean.sqlite'), extra),
      {
        env: { PW: lab.password },
        hooks: { stepsFile },
      },
    );
    expect(clean.code, clean.stderr).toBe(0);
    const steps = Number(readFileSync(stepsFile, 'utf8').trim());
    // The folder, and per batch its intent and its outcomes (one step for all of a batch's).
    expect(steps).toBeGreaterThanOrEqual(1 + 2 * 2);
    const expected = canonicalDigests(messages);
    for (let k = 1; k <= steps; k++) {
      for (const when of ['before', 'after'] as const) {
        const pop = probe;
        const imap = lab.newUser('dst');
        const journal = join(dir, `${imap}.sqlite`);
        const killed = await runCli(args(pop.port, imap, lab.imap.port, journal, extra), {
          env: { PW: lab.password },
          hooks: { killAt: `${k}:${when}` },
        });
        expect(killed.signal, `step ${k} ${when}: ${killed.stderr}`).toBe('SIGKILL');
        const resumed = await runCli(args(pop.port, imap, lab.imap.port, journal, extra), {
          env: { PW: lab.password },
        });
        const dest = (await destinationMessages(lab, imap)).map((m) => m.body);
        expect(
          dest.length,
          `copies after kill at ${k}:${when} (resume exit ${resumed.code}: ${resumed.stderr.slice(0, 300)})`,
        ).toBe(messages.length);
        expect(canonicalDigests(dest), `after kill at ${k}:${when}`).toEqual(expected);
        expect(resumed.code, `resume after ${k}:${when}: ${resumed.stderr}`).toBe(0);
      }
    }
  }, 600_000);
});
