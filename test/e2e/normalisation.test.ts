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
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { Lab } from '../../src/lab/dovecot.js';
import { runCli } from '../support/cli.js';
import { startFakePop3, type FakePop3 } from '../support/fake-pop3.js';
import { dovecotCanonical, hostileMessage, HOSTILE_KINDS } from '../support/hostile-mail.js';
import { useLab } from '../support/lab-fixture.js';
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
  return [
    'migrate',
    '--pop', `pop3://src@127.0.0.1:${popPort}`, '--pop-tls', 'none',
    '--imap', `imap://${imapUser}@127.0.0.1:${imapPort}`, '--imap-tls', 'none',
    '--pop-password-env', 'PW', '--imap-password-env', 'PW',
    '--journal', journal,
    '--no-progress', '--json',
    ...extra,
  ];
}

describe('server rewrites: a source serving bare LF, bare CR, NUL, 8-bit headers, no final newline', () => {
  it('Dovecot stores them rewritten (bare LF to CRLF, NUL to 0x80, a final CRLF added), the rest as sent', async () => {
    const messages = HOSTILE_KINDS.map((k) => hostileMessage(k, 'facts'));
    const pop = await source(messages);
    const imap = lab.newUser('dst');
    const r = await runCli(args(pop.port, imap, lab.imap.port, join(dir, 'facts.sqlite')), { env: { PW: lab.password } });
    expect(r.code, r.stderr).toBe(0);
    const dest = (await destinationMessages(lab, imap)).map((m) => m.body);
    expect(dest).toHaveLength(messages.length);
    const stored = new Map(HOSTILE_KINDS.map((k, i) => [k, dest[i]!]));
    const original = new Map(HOSTILE_KINDS.map((k, i) => [k, messages[i]!]));
    for (const k of HOSTILE_KINDS) {
      expect(dovecotCanonical(stored.get(k)!).equals(dovecotCanonical(original.get(k)!)), `${k}: same message under Dovecot's rewrites`).toBe(true);
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
});
