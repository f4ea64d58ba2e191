/**
 * Several APPEND connections, one folder on each (issue 11 part 2, imap/append-pool.ts),
 * against a real Dovecot: rules route the mail into three folders, and a relay that records
 * every line (recording-relay.ts) shows which connection carried which folder's APPENDs and
 * which were outstanding together. Connections and order are counted, never time. Then random
 * SIGKILLs over a run with two APPEND connections, and a resume, must leave every message
 * exactly once in its folder.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { realisticMix } from '../../lab/corpus.js';
import type { Lab } from '../../lab/dovecot.js';
import { runCli, startCli } from '../support/cli.js';
import { startCuttingProxy } from '../support/cutting-proxy.js';
import { startKillRelay } from '../support/kill-relay.js';
import { useLab } from '../support/lab-fixture.js';
import { destinationMessages, digests } from '../support/mailboxes.js';
import { type RelayLog, relayLog, startRecordingRelay } from '../support/recording-relay.js';

let lab: Lab;
let dir: string;
useLab('append-conns', {}, (l, d) => {
  lab = l;
  dir = d;
});

const FOLDERS = ['Alpha', 'Beta', 'INBOX'] as const;

/** Message i goes to FOLDERS[i % 3] by its subject (the config's rules); the rest is a realistic mix. */
function corpus(count: number, seed: number): Buffer[] {
  return realisticMix(count, seed).map((m, i) => {
    const tag = ['alpha', 'beta', 'other'][i % 3]!;
    return Buffer.concat([Buffer.from(`Subject: route-${tag} ${i}\r\n`), m]);
  });
}

/** Every message to INBOX (no rule matches). */
function oneFolderCorpus(count: number, seed: number): Buffer[] {
  return realisticMix(count, seed).map((m, i) => Buffer.concat([Buffer.from(`Subject: route-other ${i}\r\n`), m]));
}

/** The digests each folder that gets mail must hold. */
function expectedByFolder(messages: Buffer[]): Record<string, string[]> {
  const folderOf = (m: Buffer) => FOLDERS[['alpha', 'beta', 'other'].indexOf(/route-(\w+)/.exec(m.toString())![1]!)]!;
  const out: Record<string, Buffer[]> = {};
  for (const m of messages) {
    const f = folderOf(m);
    out[f] = [...(out[f] ?? []), m];
  }
  return Object.fromEntries(Object.entries(out).map(([f, ms]) => [f, digests(ms)]));
}

/** What the folders of `expected` hold (a folder popsync should not have created is not read). */
async function storedByFolder(imap: string, expected: Record<string, string[]>): Promise<Record<string, string[]>> {
  const out: Record<string, string[]> = {};
  for (const f of Object.keys(expected)) out[f] = digests((await destinationMessages(lab, imap, f)).map((m) => m.body));
  return out;
}

function config(pop: string, imap: string, popPort: number, imapPort: number, extra: string[] = []): string {
  const file = join(dir, `${pop}.yml`);
  writeFileSync(
    file,
    [
      'accounts:',
      `  - source: { url: 'pop3://${pop}@127.0.0.1:${popPort}', tls: none, password_env: PW }`,
      `    destination: { url: 'imap://${imap}@127.0.0.1:${imapPort}', tls: none, password_env: PW }`,
      `    journal: ${pop}.sqlite`,
      '    rules:',
      '      - match: { subject: "route-alpha *" }',
      '        folder: Alpha',
      '      - match: { subject: "route-beta *" }',
      '        folder: Beta',
      ...extra,
      '',
    ].join('\n'),
  );
  return file;
}

/** Per connection of the IMAP relay, the folders its APPEND commands named (our tags are P<n>). */
function appendFolders(log: RelayLog): Map<number, Set<string>> {
  const out = new Map<number, Set<string>>();
  for (const e of log.sent('imap')) {
    const m = /^(P\d+) APPEND "?([^" ]+)"? /.exec(e.line);
    if (!m) continue;
    const s = out.get(e.conn) ?? new Set<string>();
    s.add(m[2]!);
    out.set(e.conn, s);
  }
  return out;
}

/** The most connections that had an APPEND sent and not yet answered at the same moment. */
function mostOutstandingAtOnce(log: RelayLog): number {
  const open = new Map<number, Set<string>>();
  let most = 0;
  for (const e of log.events) {
    if (e.relay !== 'imap' || e.dir === 'accept') continue;
    const tags = open.get(e.conn) ?? new Set<string>();
    open.set(e.conn, tags);
    const sent = e.dir === '>' ? /^(P\d+) APPEND /.exec(e.line) : null;
    if (sent) tags.add(sent[1]!);
    const answered = e.dir === '<' ? /^(P\d+) (?:OK|NO|BAD)\b/.exec(e.line) : null;
    if (answered) tags.delete(answered[1]!);
    most = Math.max(most, [...open.values()].filter((t) => t.size > 0).length);
  }
  return most;
}

async function recordedRun(cap: number | null, count: number, oneFolder = false) {
  const pop = lab.newUser('src');
  const imap = lab.newUser('dst');
  const messages = (oneFolder ? oneFolderCorpus : corpus)(count, 7 + count);
  await lab.seedPop3(pop, messages);
  const log = relayLog();
  // Holds the replies of a connection that has sent an APPEND until another one has sent one
  // too: both are then outstanding at once, whatever the machine's speed. No reply is held
  // before a second connection is there to write, so this cannot stall a run that has one.
  const appending = () =>
    new Set(
      log
        .sent('imap')
        .filter((e) => / APPEND /.test(e.line))
        .map((e) => e.conn),
    );
  const relay = await startRecordingRelay('imap', lab.imap.port, log, {
    hold: (conn) => cap !== null && cap > 1 && !oneFolder && appending().has(conn) && appending().size < 2,
    onEvent: (e, r) => {
      if (e.dir === '>' && / APPEND /.test(e.line) && appending().size >= 2) r.release();
    },
  });
  try {
    const file = config(pop, imap, lab.pop3.port, relay.port, cap === null ? [] : [`    batch_messages: 6`]);
    const args = ['migrate', '--config', file, '--no-progress', '--json'];
    if (cap !== null) args.push('--append-connections', String(cap));
    const r = await runCli(args, { env: { PW: lab.password } });
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ copied: count });
    const expected = expectedByFolder(messages);
    expect(await storedByFolder(imap, expected), 'every message once, in its folder').toEqual(expected);
    const accepted = log.events.filter((e) => e.relay === 'imap' && e.dir === 'accept').length;
    return { log, accepted };
  } finally {
    await relay.close();
  }
}

describe('APPEND connections per folder', () => {
  it('3 folders, --append-connections 2: 2 APPEND connections, both busy at once, folders kept apart', async () => {
    const { log, accepted } = await recordedRun(2, 36);
    const byConn = appendFolders(log);
    // imapflow's session and two APPEND connections; the third folder shares one of them.
    expect(accepted).toBe(3);
    expect(byConn.size).toBe(2);
    const all = [...byConn.values()].flatMap((s) => [...s]);
    expect(all.sort(), 'each folder on one connection only').toEqual([...FOLDERS].sort());
    expect(mostOutstandingAtOnce(log)).toBe(2);
  });

  it('with one folder opens no further connection, whatever the cap', async () => {
    const { log, accepted } = await recordedRun(3, 12, true);
    expect(accepted).toBe(2);
    expect([...appendFolders(log).values()].map((s) => [...s])).toEqual([['INBOX']]);
  });

  it('with the default of 1: one APPEND connection carries every folder, as before', async () => {
    const { log, accepted } = await recordedRun(null, 12);
    expect(accepted).toBe(2);
    const byConn = appendFolders(log);
    expect(byConn.size).toBe(1);
    expect([...[...byConn.values()][0]!].sort()).toEqual([...FOLDERS].sort());
    expect(mostOutstandingAtOnce(log)).toBe(1);
  });

  it('a link cut on the further APPEND connection after Dovecot stored a batch: the pass ends, all found', async () => {
    const pop = lab.newUser('src');
    const imap = lab.newUser('dst');
    const messages = corpus(30, 17);
    await lab.seedPop3(pop, messages);
    // Connections in the order they first sent an APPEND: the second is the further one.
    const appending: number[] = [];
    let cut = false;
    const proxy = await startCuttingProxy(lab.imap.port, {
      cutClientData: ({ connection, chunk }) => {
        if (!appending.includes(connection) && /^P\d+ APPEND /m.test(chunk.toString('latin1')))
          appending.push(connection);
        return false;
      },
      cutServerData: ({ connection, chunk }) => {
        if (cut || connection !== appending[1] || !/^P\d+ OK \[APPENDUID /m.test(chunk.toString('latin1')))
          return false;
        cut = true;
        return true;
      },
    });
    try {
      const file = config(pop, imap, lab.pop3.port, proxy.port, ['    batch_messages: 6']);
      const r = await runCli(['migrate', '--config', file, '--append-connections', '2', '--no-progress', '--json'], {
        env: { PW: lab.password },
      });
      expect(proxy.cuts(), 'the link was cut once').toBe(1);
      expect(r.code, r.stderr).toBe(0);
      const summary = JSON.parse(r.stdout) as { copied: number; reconciled: number; reconnects: number };
      expect(summary.reconnects).toBe(1);
      // What the cut reply had stored is found in the destination, not copied again.
      expect(summary.reconciled).toBeGreaterThan(0);
      expect(summary.copied + summary.reconciled).toBe(30);
      const expected = expectedByFolder(messages);
      expect(await storedByFolder(imap, expected), 'every message once, in its folder').toEqual(expected);
    } finally {
      await proxy.close();
    }
  });

  it('survives SIGKILLs at random bytes of a run with 2 APPEND connections; the resume ends exactly once', async () => {
    const messages = corpus(150, 31);
    const relay = await startKillRelay({ pop: lab.pop3.port, imap: lab.imap.port });
    const run = (pop: string, imap: string) => [
      'migrate',
      '--config',
      config(pop, imap, relay.popPort, relay.imapPort, ['    batch_messages: 5']),
      '--append-connections',
      '2',
      '--no-progress',
      '--json',
    ];
    try {
      const pop0 = lab.newUser('src');
      await lab.seedPop3(pop0, messages);
      relay.arm(null, () => {});
      const logFile = join(dir, 'clean.log');
      const clean = await runCli([...run(pop0, lab.newUser('dst')), '--log-file', logFile], {
        env: { PW: lab.password },
      });
      expect(clean.code, clean.stderr).toBe(0);
      expect(readFileSync(logFile, 'utf8'), 'a clean run uses 2 APPEND connections').toMatch(
        /opened a further IMAP APPEND connection/,
      );
      const span = relay.carried();

      const pop = lab.newUser('src');
      const imap = lab.newUser('dst');
      await lab.seedPop3(pop, messages);
      // Deterministic "random" points (crash-matrix.ts), so a failure can be replayed.
      let seed = 4242;
      const next = () => {
        seed = (seed * 1103515245 + 12345) % 2 ** 31;
        return seed / 2 ** 31;
      };
      const K = 8;
      let kills = 0;
      for (let i = 0; i < K; i++) {
        const at = 1 + Math.floor((next() * 2 * span) / K);
        const child = startCli(run(pop, imap), { env: { PW: lab.password } });
        relay.arm(at, () => child.child.kill('SIGKILL'));
        const r = await child.done;
        if (r.signal === 'SIGKILL') kills++;
        else {
          expect(r.code, r.stderr).toBe(0);
          break;
        }
      }
      console.log(`random kills (2 APPEND connections): ${kills} SIGKILLs at random bytes of ${span}`);
      expect(kills).toBeGreaterThan(0);
      relay.arm(null, () => {});
      const final = await runCli(run(pop, imap), { env: { PW: lab.password } });
      expect(final.code, final.stderr).toBe(0);
      const expected = expectedByFolder(messages);
      expect(await storedByFolder(imap, expected), 'every message once, in its folder').toEqual(expected);
      const again = await runCli(run(pop, imap), { env: { PW: lab.password } });
      expect(again.code, again.stderr).toBe(0);
      expect(JSON.parse(again.stdout)).toMatchObject({ copied: 0, reconciled: 0 });
    } finally {
      await relay.close();
    }
  }, 300_000);
});
