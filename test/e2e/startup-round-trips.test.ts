/**
 * Round trips before the first message moves and after the last one (issue 11 part 4), against
 * a real Dovecot through relays that record every line in one order (recording-relay.ts): what
 * popsync wrote before it had an answer is counted, never timed.
 */
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import type { Lab } from '../../lab/dovecot.js';
import { LockFile, lockFilePath } from '../../src/journal/lock-file.js';
import { runCli } from '../support/cli.js';
import { useLab } from '../support/lab-fixture.js';
import { destinationMessages } from '../support/mailboxes.js';
import {
  type RecordingRelay,
  type RelayEvent,
  type RelayLog,
  type RelayRules,
  relayLog,
  startRecordingRelay,
} from '../support/recording-relay.js';

let lab: Lab;
let dir: string;
useLab('startup', {}, (l, d) => {
  lab = l;
  dir = d;
});

function message(i: number): Buffer {
  return Buffer.from(
    `From: a@example.org\r\nTo: b@example.org\r\nSubject: start-up ${i}\r\nMessage-ID: <s${i}@example.org>\r\n` +
      `Date: Mon, 1 Jan 2024 10:00:00 +0000\r\n\r\nbody ${i}\r\n`,
  );
}

/** The IMAP relay of the running test, for a POP3 rule to release. */
let imapRelay: RecordingRelay | undefined;
/** The POP3 relay of the running test, for an IMAP rule to release. */
let popRelay: RecordingRelay | undefined;

interface Relayed {
  imapRelay: RecordingRelay;
  popRelay: RecordingRelay;
  log: RelayLog;
  pop3: number;
  imap: number;
  close(): Promise<void>;
  release(): void;
}

async function relays(rules: { pop3?: RelayRules; imap?: RelayRules } = {}): Promise<Relayed> {
  const log = relayLog();
  const p = await startRecordingRelay('pop3', lab.pop3.port, log, rules.pop3);
  const i = await startRecordingRelay('imap', lab.imap.port, log, rules.imap);
  return {
    imapRelay: i,
    popRelay: p,
    log,
    pop3: p.port,
    imap: i.port,
    close: async () => {
      await Promise.all([p.close(), i.close()]);
    },
    release: () => {
      p.release();
      i.release();
    },
  };
}

function migrate(r: Relayed, pop: string, imap: string, extra: string[] = [], password = lab.password) {
  return run('migrate', r, pop, imap, extra, password);
}

function run(
  command: 'migrate' | 'sync',
  r: Relayed,
  pop: string,
  imap: string,
  extra: string[] = [],
  password = lab.password,
) {
  return runCli(
    [
      command,
      '--pop',
      `pop3://${pop}@127.0.0.1:${r.pop3}`,
      '--pop-tls',
      'none',
      '--imap',
      `imap://${imap}@127.0.0.1:${r.imap}`,
      '--imap-tls',
      'none',
      '--pop-password-env',
      'PW',
      '--imap-password-env',
      'IMAP_PW',
      '--journal',
      join(dir, `${pop}.sqlite`),
      '--json',
      '--no-progress',
      ...extra,
    ],
    { env: { PW: lab.password, IMAP_PW: password } },
  );
}

/** The server lines a connection had delivered to popsync before event `e`. */
function answersBefore(log: RelayLog, e: RelayEvent): number {
  return log.events.filter((x) => x.relay === e.relay && x.conn === e.conn && x.dir === '<' && x.seq < e.seq).length;
}

const command = (e: RelayEvent): string => e.line.split(' ')[1]?.toUpperCase() ?? '';

function journalRows(pop: string): number {
  const db = new Database(join(dir, `${pop}.sqlite`), { readonly: true });
  try {
    return (db.prepare('SELECT count(*) AS n FROM messages').get() as { n: number }).n;
  } finally {
    db.close();
  }
}

function journalStates(pop: string): Record<string, number> {
  const db = new Database(join(dir, `${pop}.sqlite`), { readonly: true });
  try {
    const rows = db.prepare('SELECT state, count(*) AS n FROM messages GROUP BY state').all() as Array<{
      state: string;
      n: number;
    }>;
    return Object.fromEntries(rows.map((r) => [r.state, r.n]));
  } finally {
    db.close();
  }
}

describe('start-up and end of a run', () => {
  it(
    'POP3 lists in one round trip after login; the IMAP connections open side by side, with one ID ' +
      'and no ENABLE or CAPABILITY',
    async () => {
      const pop = lab.newUser('src');
      const imap = lab.newUser('dst');
      await lab.seedPop3(pop, [1, 2, 3].map(message));
      // Replies are held back so that no answer can race the commands under test: STAT's until
      // UIDL was written, and the IMAP greetings until both connections were accepted. A client
      // that waited would stall; the fallback release only lets such a run end and fail below.
      const r = await relays({
        pop3: {
          hold: (conn, log) => log.sent('pop3', conn).some((e) => e.line === 'STAT'),
          onEvent: (e, relay) => {
            if (e.dir === '>' && e.line === 'UIDL') relay.release();
          },
        },
        imap: {
          hold: () => true,
          onEvent: (e, relay) => {
            if (e.dir === 'accept' && e.conn === 1) relay.release();
          },
        },
      });
      const fallback = setTimeout(() => r.release(), 15_000);
      try {
        const res = await migrate(r, pop, imap);
        clearTimeout(fallback);
        expect(res.code, res.stderr).toBe(0);
        expect(JSON.parse(res.stdout)).toMatchObject({ copied: 3 });
        const { log } = r;

        // POP3: STAT, LIST and UIDL written before the server had answered any of them.
        const popLines = log.sent('pop3');
        const afterLogin = popLines.slice(popLines.findIndex((e) => e.line.startsWith('AUTH ')) + 1);
        expect(afterLogin.slice(0, 3).map((e) => e.line)).toEqual(['STAT', 'LIST', 'UIDL']);
        expect(new Set(afterLogin.slice(0, 3).map((e) => answersBefore(log, e))).size).toBe(1);
        expect(popLines.filter((e) => e.line === 'CAPA')).toHaveLength(1);

        // IMAP: the second connection was opened before the first had its greeting.
        const accepts = log.events.filter((e) => e.relay === 'imap' && e.dir === 'accept');
        expect(accepts).toHaveLength(2);
        const firstGreeting = log.events.find((e) => e.relay === 'imap' && e.dir === '<')!;
        expect(accepts[1]!.seq).toBeLessThan(firstGreeting.seq);
        const imapLines = log.sent('imap');
        const logins = imapLines.filter((e) => command(e) === 'AUTHENTICATE');
        expect(logins).toHaveLength(2);
        const loginOks = logins.map((l) =>
          log.events.find(
            (e) =>
              e.relay === 'imap' &&
              e.conn === l.conn &&
              e.dir === '<' &&
              e.line.startsWith(`${l.line.split(' ')[0]} OK`),
          ),
        );
        // imapflow's connection logs in first; the APPEND connection's (tag L) waits for its verdict,
        // so imapflow's longer way to a usable session (ID, NAMESPACE) starts a round trip earlier.
        const [first, second] = logins.sort((a, b) => a.seq - b.seq);
        expect(second!.line.startsWith('L ')).toBe(true);
        expect(second!.seq).toBeGreaterThan(loginOks.find((e) => e!.conn === first!.conn)!.seq);
        // One ID, after the login on its connection; nothing else before the session is usable.
        const ids = imapLines.filter((e) => command(e) === 'ID');
        expect(ids).toHaveLength(1);
        expect(ids[0]!.conn).toBe(first!.conn);
        expect(ids[0]!.seq).toBeGreaterThan(first!.seq);
        expect(imapLines.filter((e) => ['ENABLE', 'CAPABILITY'].includes(command(e)))).toEqual([]);
      } finally {
        await r.close();
      }
    },
  );

  it('POP3 CAPA is written before the greeting is read: both come back in one round trip', async () => {
    const pop = lab.newUser('src');
    const imap = lab.newUser('dst');
    await lab.seedPop3(pop, [1, 2].map(message));
    // Dovecot's greeting is held until popsync wrote CAPA: a run that waited for the greeting
    // first would stall until the fallback, and fail below.
    const r = await relays({
      pop3: {
        hold: () => true,
        onEvent: (e, relay) => {
          if (e.dir === '>' && e.line === 'CAPA') relay.release();
        },
      },
    });
    const fallback = setTimeout(() => r.release(), 15_000);
    try {
      const res = await migrate(r, pop, imap);
      clearTimeout(fallback);
      expect(res.code, res.stderr).toBe(0);
      expect(JSON.parse(res.stdout)).toMatchObject({ copied: 2 });
      const capa = r.log.sent('pop3').filter((e) => e.line === 'CAPA');
      expect(capa).toHaveLength(1);
      expect(answersBefore(r.log, capa[0]!)).toBe(0);
      expect(journalRows(pop)).toBe(2);
    } finally {
      clearTimeout(fallback);
      await r.close();
    }
  });

  it('receiving starts while the IMAP side logs in: the first RETR is written before IMAP says anything', async () => {
    const pop = lab.newUser('src');
    const imap = lab.newUser('dst');
    await lab.seedPop3(pop, [1, 2, 3, 4].map(message));
    // Every IMAP byte (the greetings first) is held until POP3 carried a RETR: a run that waited
    // for the destination would stall until the fallback, and fail below.
    const r = await relays({
      pop3: {
        onEvent: (e) => {
          if (e.dir === '>' && e.line.startsWith('RETR ')) imapRelay?.release();
        },
      },
      imap: { hold: () => true },
    });
    imapRelay = r.imapRelay;
    const fallback = setTimeout(() => r.release(), 15_000);
    try {
      const res = await migrate(r, pop, imap);
      clearTimeout(fallback);
      expect(res.code, res.stderr).toBe(0);
      expect(JSON.parse(res.stdout)).toMatchObject({ copied: 4 });
      const firstRetr = r.log.events.find((e) => e.relay === 'pop3' && e.dir === '>' && e.line.startsWith('RETR '))!;
      const firstImapLine = r.log.events.find((e) => e.relay === 'imap' && e.dir === '<')!;
      expect(firstRetr.seq).toBeLessThan(firstImapLine.seq);
      // Each message asked for once, in order: the copier took the streams the head start opened.
      const retrs = r.log.sent('pop3').filter((e) => e.line.startsWith('RETR '));
      expect(retrs.map((e) => e.line)).toEqual(['RETR 1', 'RETR 2', 'RETR 3', 'RETR 4']);
      expect(journalRows(pop)).toBe(4);
    } finally {
      await r.close();
    }
  });

  it('the connections open while the run waits for the account lock, and the run uses them: no more open', async () => {
    const pop = lab.newUser('src');
    const imap = lab.newUser('dst');
    await lab.seedPop3(pop, [1, 2].map(message));
    // The lock is held here until all three connections (POP3, the two IMAP ones) were accepted:
    // a run that connected only once it held the lock (and so had opened its journal) would wait
    // until the fallback, and fail below. No line may come before the lock is let go.
    const journal = join(dir, `${pop}.sqlite`);
    const lock = LockFile.tryAcquire(lockFilePath(journal))!;
    expect(lock).not.toBeNull();
    let linesWhileLocked = -1;
    let acceptsWhileLocked = -1;
    const letGo = (log: RelayLog): void => {
      if (linesWhileLocked >= 0) return;
      linesWhileLocked = log.events.filter((e) => e.dir === '>').length;
      acceptsWhileLocked = log.events.filter((e) => e.dir === 'accept').length;
      lock.release();
    };
    const accepted = (log: RelayLog): boolean => log.events.filter((e) => e.dir === 'accept').length === 3;
    const rules: RelayRules = { onEvent: (e) => e.dir === 'accept' && accepted(r.log) && letGo(r.log) };
    const r = await relays({ pop3: rules, imap: rules });
    const fallback = setTimeout(() => letGo(r.log), 15_000);
    try {
      const res = await migrate(r, pop, imap, ['--wait', '60']);
      clearTimeout(fallback);
      expect(res.code, res.stderr).toBe(0);
      expect(JSON.parse(res.stdout)).toMatchObject({ copied: 2 });
      expect(acceptsWhileLocked).toBe(3);
      expect(linesWhileLocked).toBe(0);
      // The sockets opened ahead were the ones used: one POP3 connection, two IMAP ones.
      const accepts = (relay: string) => r.log.events.filter((e) => e.relay === relay && e.dir === 'accept');
      expect(accepts('pop3')).toHaveLength(1);
      expect(accepts('imap')).toHaveLength(2);
      expect(journalRows(pop)).toBe(2);
    } finally {
      clearTimeout(fallback);
      lock.release();
      await r.close();
    }
  });

  it('a wrong IMAP password is refused once: one login reaches the server, exit 3, nothing stored', async () => {
    const pop = lab.newUser('src');
    const imap = lab.newUser('dst');
    await lab.seedPop3(pop, [1, 2].map(message));
    const r = await relays();
    try {
      const res = await migrate(r, pop, imap, [], 'wrong-password');
      expect(res.code, res.stderr).toBe(3);
      expect(res.stderr).not.toContain('wrong-password');
      expect(r.log.sent('imap').filter((e) => command(e) === 'AUTHENTICATE')).toHaveLength(1);
      expect(r.log.sent('imap').filter((e) => command(e) === 'APPEND')).toEqual([]);
      expect(await destinationMessages(lab, imap)).toEqual([]);
      // Messages may have been received while the login was pending; none was journaled.
      expect(journalRows(pop)).toBe(0);
    } finally {
      await r.close();
    }
  });

  it('the end of a run waits for no QUIT or LOGOUT reply (either IMAP connection): none is needed', async () => {
    const pop = lab.newUser('src');
    const imap = lab.newUser('dst');
    await lab.seedPop3(pop, [1, 2].map(message));
    // Those replies never come: waiting for one would hold the run for --timeout (far beyond
    // this test's own limit), so the run ending at all shows it did not wait.
    const logout = (e: RelayEvent): boolean => command(e) === 'LOGOUT';
    const r = await relays({
      pop3: { hold: (conn, log) => log.sent('pop3', conn).some((e) => e.line === 'QUIT') },
      imap: { hold: (conn, log) => log.sent('imap', conn).some(logout) },
    });
    try {
      const res = await migrate(r, pop, imap, ['--timeout', '600']);
      expect(res.code, res.stderr).toBe(0);
      expect(JSON.parse(res.stdout)).toMatchObject({ copied: 2 });
      expect(r.log.sent('pop3').filter((e) => e.line === 'QUIT')).toHaveLength(1);
      // The APPEND connection's and imapflow's, one each.
      expect(
        r.log
          .sent('imap')
          .filter(logout)
          .map((e) => e.conn)
          .sort(),
      ).toEqual([0, 1]);
    } finally {
      await r.close();
    }
  });

  it(
    'before deleting, the source (TOP) and the copies (IMAP: EXAMINE, no LIST first) are checked side by side; ' +
      'DELE after both, and QUIT with the DELEs',
    async () => {
      const pop = lab.newUser('src');
      const imap = lab.newUser('dst');
      await lab.seedPop3(pop, [1, 2, 3].map(message));
      // The TOP replies are held until IMAP carried a command after the first TOP: a run that
      // checked the copies only once the source's headers were in would stall until the fallback.
      const topWritten = (log: RelayLog): boolean => log.sent('pop3').some((e) => e.line.startsWith('TOP '));
      const r = await relays({
        pop3: { hold: (conn, log) => log.sent('pop3', conn).some((e) => e.line.startsWith('TOP ')) },
        imap: {
          onEvent: (e) => {
            if (e.dir === '>' && topWritten(r.log)) popRelay?.release();
          },
        },
      });
      popRelay = r.popRelay;
      const fallback = setTimeout(() => r.release(), 15_000);
      try {
        const res = await run('sync', r, pop, imap, ['--delete']);
        clearTimeout(fallback);
        expect(res.code, res.stderr).toBe(0);
        expect(JSON.parse(res.stdout)).toMatchObject({ copied: 3, deleted: 3 });
        const { events } = r.log;
        const firstTop = events.find((e) => e.relay === 'pop3' && e.dir === '>' && e.line.startsWith('TOP '))!;
        const topReply = events.find((e) => e.relay === 'pop3' && e.dir === '<' && e.seq > firstTop.seq)!;
        const imapCheck = events.find((e) => e.relay === 'imap' && e.dir === '>' && e.seq > firstTop.seq)!;
        expect(imapCheck.seq).toBeLessThan(topReply.seq);
        // Still: no DELE before the copies' FETCH was answered.
        const fetchDone = events.find(
          (e) => e.relay === 'imap' && e.dir === '<' && e.seq > firstTop.seq && / OK .*fetch/i.test(e.line),
        )!;
        const firstDele = events.find((e) => e.relay === 'pop3' && e.dir === '>' && e.line.startsWith('DELE '))!;
        expect(firstDele.seq).toBeGreaterThan(fetchDone.seq);
        // The copies' check asks no STATUS first (EXAMINE says whether the folder is there).
        const checks = events.filter((e) => e.relay === 'imap' && e.dir === '>' && e.seq > firstTop.seq);
        expect(checks.filter((e) => e.seq < firstDele.seq && command(e) === 'STATUS')).toEqual([]);
        // Nor LIST and LSUB, imapflow's own way into a mailbox it has not listed, in the whole run.
        const imapBeforeDele = r.log
          .sent('imap')
          .filter((e) => e.seq < firstDele.seq)
          .map(command);
        expect(imapBeforeDele).toContain('EXAMINE');
        expect(imapBeforeDele.filter((c) => c === 'LIST' || c === 'LSUB')).toEqual([]);
        // QUIT went with the DELEs, before any of their replies; its +OK was still waited for: the
        // rows say 'deleted' only after it.
        const quit = r.log.sent('pop3').find((e) => e.line === 'QUIT')!;
        expect(answersBefore(r.log, quit)).toBe(answersBefore(r.log, firstDele));
        expect(journalStates(pop)).toEqual({ deleted: 3 });
        expect(await destinationMessages(lab, imap)).toHaveLength(3);
      } finally {
        await r.close();
      }
    },
  );

  it('the first folder is asked for while the first batch is received, not after it arrived', async () => {
    const pop = lab.newUser('src');
    const imap = lab.newUser('dst');
    await lab.seedPop3(pop, [1, 2, 3].map(message));
    // Every POP3 byte after the first RETR is held until IMAP carried the folder's STATUS: a run
    // that waited for its first batch before asking would stall until the fallback, and fail below.
    const r = await relays({
      pop3: { hold: (conn, log) => log.sent('pop3', conn).some((e) => e.line.startsWith('RETR ')) },
      imap: {
        onEvent: (e) => {
          if (e.dir === '>' && command(e) === 'STATUS') popRelay?.release();
        },
      },
    });
    popRelay = r.popRelay;
    const fallback = setTimeout(() => r.release(), 15_000);
    try {
      const res = await migrate(r, pop, imap);
      clearTimeout(fallback);
      expect(res.code, res.stderr).toBe(0);
      expect(JSON.parse(res.stdout)).toMatchObject({ copied: 3 });
      const { events } = r.log;
      const status = events.find((e) => e.relay === 'imap' && e.dir === '>' && command(e) === 'STATUS')!;
      expect(status.line).toContain('INBOX');
      const firstRetr = events.find((e) => e.relay === 'pop3' && e.dir === '>' && e.line.startsWith('RETR '))!;
      const firstMessageLine = events.find((e) => e.relay === 'pop3' && e.dir === '<' && e.seq > firstRetr.seq)!;
      expect(status.seq).toBeLessThan(firstMessageLine.seq);
      // Asked once: the batch took that answer instead of asking again.
      expect(r.log.sent('imap').filter((e) => command(e) === 'STATUS')).toHaveLength(1);
      expect(journalRows(pop)).toBe(3);
    } finally {
      await r.close();
    }
  });
});
