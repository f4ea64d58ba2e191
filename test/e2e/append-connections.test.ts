/**
 * Several APPEND connections, one folder on each (issue 11 part 2, imap/append-pool.ts),
 * against a real Dovecot: rules route the mail into three folders, and a relay that records
 * every line (recording-relay.ts) shows which connection carried which folder's APPENDs and
 * which were outstanding together. Connections and order are counted, never time. A link cut
 * on the further connection ends the pass as any drop does; the kill-and-resume tests with two
 * connections are append-connections-matrix.ts's.
 */
import { describe, expect, it } from 'vitest';
import { runCli } from '../support/cli.js';
import { startCuttingProxy } from '../support/cutting-proxy.js';
import { type RelayLog, relayLog, startRecordingRelay } from '../support/recording-relay.js';
import {
  defineFolderCrashTests,
  expectedByFolder,
  FOLDERS,
  routedCorpus,
  routingConfig,
  storedByFolder,
} from './append-connections-matrix.js';

const m = defineFolderCrashTests({
  name: 'UIDPLUS',
  labOptions: {},
  randomMessages: 150,
  randomKills: 8,
  // As for no UIDPLUS: the side before each step, where its APPENDs were sent and none journaled;
  // both sides of every step are killed on one connection by the crash-resume*.test.ts files.
  killSides: ['before'],
});

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
  const lab = m.lab();
  const pop = lab.newUser('src');
  const imap = lab.newUser('dst');
  const messages = routedCorpus(count, 7 + count, oneFolder);
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
    const ports = { pop3: lab.pop3.port, imap: relay.port };
    const file = routingConfig(m.dir(), pop, imap, ports, cap === null ? [] : [`    batch_messages: 6`]);
    const args = ['migrate', '--config', file, '--no-progress', '--json'];
    if (cap !== null) args.push('--append-connections', String(cap));
    const r = await runCli(args, { env: { PW: lab.password } });
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ copied: count });
    const expected = expectedByFolder(messages);
    expect(await storedByFolder(lab, imap, expected), 'every message once, in its folder').toEqual(expected);
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
    const lab = m.lab();
    const pop = lab.newUser('src');
    const imap = lab.newUser('dst');
    const messages = routedCorpus(30, 17);
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
      const ports = { pop3: lab.pop3.port, imap: proxy.port };
      const file = routingConfig(m.dir(), pop, imap, ports, ['    batch_messages: 6']);
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
      expect(await storedByFolder(lab, imap, expected), 'every message once, in its folder').toEqual(expected);
    } finally {
      await proxy.close();
    }
  });
});
