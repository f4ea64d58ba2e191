/**
 * The bench's raw ceilings: bare-socket clients that do only what the wire needs, so their
 * rates are what the servers (and this machine) allow, with nothing of popsync in them.
 *  - rawPop3: every RETR written at once down one connection (PIPELINING), bytes counted as
 *    they arrive until the last terminator: the source's limit.
 *  - rawImap: pre-built messages stored one of five ways (SINK_MODES), every command written
 *    at once with non-synchronising literals, until the last tagged OK: the destination's.
 *  - rawRelay: the fastest copy there can be: every RETR pipelined, each message undone from
 *    dot-stuffing (retr-splitter.ts, no copy) and written, as soon as its terminator arrives,
 *    into a MULTIAPPEND of up to 100 on one IMAP connection. No hashing, no journal, no
 *    confirmation per message; the destination's STATUS MESSAGES is checked afterwards.
 *  - safeRelay: the least a copier that keeps popsync's invariants can do, as lean as the raw
 *    relay otherwise: both digests of every message and its intent fsynced in a journal before
 *    its APPEND, each APPENDUID journaled after (see safeRelay).
 * Each can run over TLS (the lab's pop3s/imaps, verified against its CA). Logins happen before
 * the clock starts; `atEnd` runs when the last reply is in, before the connections close, so
 * a server CPU meter can take its last look at processes about to exit. The two relays also
 * run as processes of their own (rawRelayAlone, safeRelayAlone: relay-process.ts, started by
 * relay-cli.ts), timed from outside like popsync, so that start-up, logins and logout are
 * charged to them as they are to popsync; their checks then run after the process has exited.
 */
import net from 'node:net';
import tls from 'node:tls';
import { createHash } from 'node:crypto';
import { DEFAULT_APPEND_WINDOW, DEFAULT_BATCH_BYTES, DEFAULT_BATCH_MESSAGES } from '../src/defaults.js';
import { Fingerprinter } from '../src/engine/fingerprint.js';
import { appendUids } from '../src/imap/append-plan.js';
import { RetrSplitter, uidlReply } from './retr-splitter.js';
// Loaded where a safe relay runs: the raw relay's own process (relay-process.ts) then loads no SQLite.
import type { Intent, SafeJournal } from './safe-journal.js';

const safeJournal = (): Promise<typeof import('./safe-journal.js')> => import('./safe-journal.js');

/** Where the raw clients connect: plain ports, or TLS ones with the CA to verify them. */
export interface RawEndpoints {
  pop3: number;
  imap: number;
  /** TLS from the first byte (pop3s/imaps) when given. */
  ca?: Buffer;
}

interface Session {
  sock: net.Socket;
  until(pred: (all: string) => boolean): Promise<string>;
}

/** A connection that collects text until `until`'s predicate says it has what it waits for. */
function session(port: number, ca: Buffer | undefined): Session {
  const sock = ca ? tls.connect({ host: '127.0.0.1', port, ca }) : net.connect(port, '127.0.0.1');
  sock.setNoDelay(true);
  let acc = '';
  let waiter: { pred: (s: string) => boolean; resolve: (s: string) => void } | null = null;
  sock.on('data', (d: Buffer) => {
    acc += d.toString('latin1');
    if (waiter?.pred(acc)) {
      const w = waiter;
      waiter = null;
      const out = acc;
      acc = '';
      w.resolve(out);
    }
  });
  return {
    sock,
    until: (pred) =>
      new Promise((resolve, reject) => {
        sock.once('error', reject);
        if (pred(acc)) {
          const out = acc;
          acc = '';
          resolve(out);
        } else waiter = { pred, resolve };
      }),
  };
}

async function pop3Login(ep: RawEndpoints, user: string, password: string): Promise<Session> {
  const s = session(ep.pop3, ep.ca);
  await s.until((a) => a.includes('\r\n'));
  s.sock.write(`USER ${user}\r\nPASS ${password}\r\n`);
  const reply = await s.until((a) => (a.match(/\r\n/g) ?? []).length >= 2);
  if (!/^\+OK.*\r\n\+OK/s.test(reply)) throw new Error(`raw POP3 login refused: ${reply.trim()}`);
  return s;
}

async function imapLogin(ep: RawEndpoints, user: string, password: string): Promise<Session> {
  const s = session(ep.imap, ep.ca);
  await s.until((a) => a.includes('\r\n'));
  s.sock.write(`a LOGIN ${user} ${password}\r\n`);
  const reply = await s.until((a) => /^a (OK|NO|BAD)/m.test(a));
  if (!/^a OK/m.test(reply)) throw new Error(`raw IMAP login refused: ${reply.trim()}`);
  return s;
}

function retrAll(count: number): string {
  let cmds = '';
  for (let i = 1; i <= count; i++) cmds += `RETR ${i}\r\n`;
  return cmds;
}

/**
 * LIST of `user`'s mailbox, untimed. Dovecot's first session of a maildir it never opened builds
 * its dovecot-uidlist and index. Until the lab named files with the ,W= size a delivery writes
 * (maildir-name.ts), that first LIST also read every message to count its CRLF size: 0.2-0.9 s
 * for 3,000 typical or 10,000 small messages, then ~10 ms from its cache. The raw readers' source
 * has been read by rawPop3 before the safe relay runs; popsync's source is listed here, so both
 * start from the same server state.
 */
export async function listPop3(ep: RawEndpoints, user: string, password: string): Promise<void> {
  const s = await pop3Login(ep, user, password);
  s.sock.write('LIST\r\n');
  await s.until((a) => a.includes('\r\n.\r\n'));
  s.sock.end('QUIT\r\n');
}

/** Milliseconds to RETR messages 1..count of `user`, all pipelined. */
export async function rawPop3(
  ep: RawEndpoints,
  user: string,
  password: string,
  count: number,
  atEnd?: () => void,
): Promise<number> {
  const s = await pop3Login(ep, user, password);
  const t0 = performance.now();
  s.sock.removeAllListeners('data');
  // A dot-stuffed body never contains CRLF.CRLF, so terminators count whole messages.
  let seen = 0;
  let tail = '';
  const done = new Promise<void>((resolve, reject) => {
    s.sock.once('error', reject);
    s.sock.on('data', (d: Buffer) => {
      const text = tail + d.toString('latin1');
      let i = text.indexOf('\r\n.\r\n');
      while (i >= 0) {
        seen++;
        i = text.indexOf('\r\n.\r\n', i + 5);
      }
      tail = text.slice(-4);
      if (seen >= count) resolve();
    });
  });
  s.sock.write(retrAll(count));
  await done;
  const ms = performance.now() - t0;
  atEnd?.();
  s.sock.end('QUIT\r\n');
  return ms;
}

/** How a raw IMAP sink sends: over `conns` connections, `multi` messages per APPEND command. */
export interface SinkMode {
  label: string;
  conns: number;
  /** 1: one APPEND per message; more: MULTIAPPEND (RFC 3502) of up to this many. */
  multi: number;
  /**
   * Each connection into a folder of its own (INBOX, F1, F2, ...; created before the clock
   * starts): parallel APPEND across folders, which issue 11 part 2 asks to measure before
   * popsync does it. Otherwise every connection appends to INBOX.
   */
  ownFolders?: boolean;
}

export const SINK_MODES: SinkMode[] = [
  { label: 'raw APPEND {n+}, 1 conn', conns: 1, multi: 1 },
  { label: 'raw APPEND {n+}, 4 conns', conns: 4, multi: 1 },
  { label: 'raw MULTIAPPEND x50, 1 conn', conns: 1, multi: 50 },
  { label: 'raw MULTIAPPEND x100, 1 conn', conns: 1, multi: 100 },
  { label: 'raw MULTIAPPEND x100, 2 conns/folders', conns: 2, multi: 100, ownFolders: true },
];

/** Counts tagged OKs until `expected`; a tagged NO or BAD rejects. */
function taggedOks(s: Session, expected: number): Promise<void> {
  s.sock.removeAllListeners('data');
  return new Promise<void>((resolve, reject) => {
    if (expected === 0) return resolve();
    s.sock.once('error', reject);
    let acc = '';
    let ok = 0;
    s.sock.on('data', (d: Buffer) => {
      acc += d.toString('latin1');
      const lines = acc.split('\r\n');
      acc = lines.pop() ?? '';
      for (const l of lines) {
        if (/^t\d+ OK/.test(l)) ok++;
        else if (/^t\d+ (NO|BAD)/.test(l)) reject(new Error(`raw APPEND refused: ${l}`));
      }
      if (ok >= expected) resolve();
    });
  });
}

/**
 * The server's ceiling for one way of sending: every command written at once into one user's
 * INBOX, messages dealt round-robin over the connections, until the last tagged OK.
 */
export async function rawImap(
  ep: RawEndpoints,
  user: string,
  password: string,
  messages: Buffer[],
  mode: SinkMode,
  atEnd?: () => void,
): Promise<number> {
  const parts = Array.from({ length: mode.conns }, (_, c) => messages.filter((_, i) => i % mode.conns === c));
  const sessions = await Promise.all(parts.map(() => imapLogin(ep, user, password)));
  const folder = (c: number): string => (mode.ownFolders && c > 0 ? `F${c}` : 'INBOX');
  await Promise.all(
    sessions.map(async (s, c) => {
      if (folder(c) === 'INBOX') return;
      const created = taggedOks(s, 1);
      s.sock.write(`t0 CREATE ${folder(c)}\r\n`);
      await created;
    }),
  );
  const t0 = performance.now();
  await Promise.all(
    sessions.map(async (s, c) => {
      const mine = parts[c]!;
      const commands: Buffer[][] = [];
      for (let i = 0; i < mine.length; i += mode.multi) commands.push(mine.slice(i, i + mode.multi));
      const done = taggedOks(s, commands.length);
      for (const [i, batch] of commands.entries()) {
        const pieces: Buffer[] = [Buffer.from(`t${i} APPEND ${folder(c)}`)];
        for (const m of batch) pieces.push(Buffer.from(` {${m.length}+}\r\n`), m);
        pieces.push(Buffer.from('\r\n'));
        if (!s.sock.write(Buffer.concat(pieces))) await new Promise((r) => s.sock.once('drain', r));
      }
      await done;
    }),
  );
  const ms = performance.now() - t0;
  atEnd?.();
  for (const s of sessions) s.sock.end('z LOGOUT\r\n');
  return ms;
}

/** The messages in `user`'s INBOX, by STATUS on a connection of its own. */
async function inboxCount(ep: RawEndpoints, user: string, password: string): Promise<number> {
  const s = await imapLogin(ep, user, password);
  s.sock.write('s STATUS INBOX (MESSAGES)\r\n');
  const reply = await s.until((a) => /^s (OK|NO|BAD)/m.test(a));
  s.sock.end('z LOGOUT\r\n');
  const m = /^\* STATUS \S+ \(MESSAGES (\d+)\)/m.exec(reply);
  if (!m) throw new Error(`raw STATUS failed: ${reply.trim()}`);
  return Number(m[1]);
}

/** A relay's two sessions, logged in side by side as popsync opens its connections. */
function relayLogins(
  ep: RawEndpoints,
  popUser: string,
  imapUser: string,
  password: string,
): Promise<[Session, Session]> {
  return Promise.all([pop3Login(ep, popUser, password), imapLogin(ep, imapUser, password)]);
}

/**
 * Ends a relay's sessions as popsync ends a migrate's (src/pop3/client.ts leave(), the IMAP
 * sink's logout()): QUIT and LOGOUT written and their replies not awaited, the sockets no
 * longer holding the process once those writes are out.
 */
function leave(pop: Session, imap: Session): void {
  for (const [s, bye] of [
    [pop, 'QUIT\r\n'],
    [imap, 'z LOGOUT\r\n'],
  ] as const) {
    s.sock.on('error', () => {});
    s.sock.end(bye);
    s.sock.unref();
  }
}

/** QUIT and LOGOUT written at the end of a relay run in the bench's own process. */
function quit(pop: Session, imap: Session): void {
  pop.sock.end('QUIT\r\n');
  imap.sock.end('z LOGOUT\r\n');
}

/**
 * Milliseconds of `copy` alone, on the sessions `logins` opens (called here, so that what the
 * caller does first, such as creating a journal, comes before it); `after` then ends them.
 */
async function timedCopy(
  logins: () => Promise<[Session, Session]>,
  copy: (pop: Session, imap: Session) => Promise<void>,
  after: (pop: Session, imap: Session) => void,
): Promise<number> {
  const [pop, imap] = await logins();
  const t0 = performance.now();
  await copy(pop, imap);
  const ms = performance.now() - t0;
  after(pop, imap);
  return ms;
}

/** Throws unless `user`'s INBOX holds `count` messages: the check after a relay's run. */
export function checkRawRelay(ep: RawEndpoints, user: string, password: string, count: number): Promise<void> {
  return checkInbox('raw relay', ep, user, password, count);
}

/** Throws unless `user`'s INBOX holds `count` messages: what `who` copied there, all of it and once. */
export async function checkInbox(
  who: string,
  ep: RawEndpoints,
  user: string,
  password: string,
  count: number,
): Promise<void> {
  const arrived = await inboxCount(ep, user, password);
  if (arrived !== count) throw new Error(`${who}: ${arrived} of ${count} messages arrived in ${user}'s INBOX`);
}

/**
 * Milliseconds to copy messages 1..count of `popUser` into `imapUser`'s INBOX, which must be
 * empty: RETR all pipelined, each message forwarded as it completes into MULTIAPPENDs of up
 * to `perCommand`, until the last tagged OK. Reading pauses while the IMAP socket's buffer is
 * full, so memory stays that of a relay. Throws unless the INBOX then holds `count` messages.
 */
export async function rawRelay(
  ep: RawEndpoints,
  popUser: string,
  imapUser: string,
  password: string,
  count: number,
  perCommand = 100,
  atEnd?: () => void,
): Promise<number> {
  const ms = await timedCopy(
    () => relayLogins(ep, popUser, imapUser, password),
    (pop, imap) => rawRelayCopy(pop, imap, count, perCommand),
    (pop, imap) => {
      atEnd?.();
      quit(pop, imap);
    },
  );
  await checkRawRelay(ep, imapUser, password, count);
  return ms;
}

/**
 * The raw relay as a process of its own runs it (relay-process.ts): the same logins and copy,
 * then the sessions left as popsync leaves them. Milliseconds of the copy alone; the caller
 * checks the destination (checkRawRelay) once the process has exited.
 */
export async function rawRelayAlone(
  ep: RawEndpoints,
  popUser: string,
  imapUser: string,
  password: string,
  count: number,
  perCommand = 100,
): Promise<number> {
  return timedCopy(
    () => relayLogins(ep, popUser, imapUser, password),
    (pop, imap) => rawRelayCopy(pop, imap, count, perCommand),
    leave,
  );
}

/** The raw relay's work between its logins and its logout. */
async function rawRelayCopy(pop: Session, imap: Session, count: number, perCommand: number): Promise<void> {
  const stored = taggedOks(imap, Math.ceil(count / perCommand));
  let sent = 0;
  const splitter = new RetrSplitter((parts, size) => {
    const out = imap.sock;
    out.cork();
    if (sent % perCommand === 0) out.write(`t${sent / perCommand} APPEND INBOX`);
    out.write(` {${size}+}\r\n`);
    for (const p of parts) out.write(p);
    sent++;
    if (sent % perCommand === 0 || sent === count) out.write('\r\n');
    out.uncork();
    if (out.writableNeedDrain && !pop.sock.isPaused()) {
      pop.sock.pause();
      out.once('drain', () => pop.sock.resume());
    }
  });
  pop.sock.removeAllListeners('data');
  const read = new Promise<void>((resolve, reject) => {
    pop.sock.once('error', reject);
    pop.sock.on('data', (d: Buffer) => {
      try {
        splitter.push(d);
      } catch (e) {
        reject(e);
      }
      if (sent === count) resolve();
    });
  });
  pop.sock.write(retrAll(count));
  await Promise.all([read, stored]);
}

/** How the safe relay cuts batches: popsync's defaults (100 messages, --batch-mb 10) unless given. */
export interface SafeBatches {
  messages: number;
  bytes: number;
}

interface SafeBatch {
  intents: Intent[];
  /** Each message's bytes, undone from dot-stuffing: slices of the chunks they arrived in. */
  bodies: Buffer[][];
  bytes: number;
}

/**
 * Milliseconds to copy messages 1..count of `popUser` into `imapUser`'s INBOX (which must be
 * empty) as the least copier with popsync's guarantees can: exactly once needs each message's
 * exact sha256 and normalised fingerprint (src/engine/fingerprint.ts, popsync's own) in a
 * durable intent BEFORE its APPEND is sent, and the APPENDUID recorded after. So: UIDL and
 * every RETR written at once down one POP3 connection (the UIDL keys the journal); each message
 * hashed both ways as its terminator arrives; batches cut by `batches`; per batch, one fsynced
 * transaction of intents (safe-journal.ts, a new file at `journalPath`), then one MULTIAPPEND,
 * and at its tagged OK one transaction recording the UIDs. Up to DEFAULT_APPEND_WINDOW batches
 * are outstanding while the next is received, as in popsync. Nothing else: no spool file (the
 * bench's largest message is a few MB), no bare-LF repair, no progress, no report. The clock
 * starts after both logins and the journal's creation. Throws unless the INBOX then holds
 * `count` messages and the journal `count` rows, each with its UID.
 */
export async function safeRelay(
  ep: RawEndpoints,
  popUser: string,
  imapUser: string,
  password: string,
  count: number,
  journalPath: string,
  batches: SafeBatches = { messages: DEFAULT_BATCH_MESSAGES, bytes: DEFAULT_BATCH_BYTES },
  atEnd?: () => void,
): Promise<number> {
  const ms = await withSafeJournal(journalPath, (journal) =>
    timedCopy(
      () => relayLogins(ep, popUser, imapUser, password),
      (pop, imap) => safeRelayCopy(pop, imap, journal, count, batches),
      (pop, imap) => {
        atEnd?.();
        quit(pop, imap);
      },
    ),
  );
  await checkSafeRelay(ep, imapUser, password, count, journalPath);
  return ms;
}

/**
 * The safe relay as a process of its own runs it (relay-process.ts): its connects go out
 * first and the journal is created while they are under way, as popsync's are; then the same
 * copy, and the sessions left as popsync leaves them. Milliseconds of the copy alone; the
 * caller checks the destination and the journal (checkSafeRelay) once the process has exited.
 */
export async function safeRelayAlone(
  ep: RawEndpoints,
  popUser: string,
  imapUser: string,
  password: string,
  count: number,
  journalPath: string,
  batches: SafeBatches = { messages: DEFAULT_BATCH_MESSAGES, bytes: DEFAULT_BATCH_BYTES },
): Promise<number> {
  const logins = relayLogins(ep, popUser, imapUser, password);
  // A refusal is taken where timedCopy awaits it; until then it must not count as unhandled.
  logins.catch(() => undefined);
  // net.connect issues its connect on the next tick: let it, before SQLite holds the thread.
  await new Promise((r) => setImmediate(r));
  return withSafeJournal(journalPath, (journal) =>
    timedCopy(
      () => logins,
      (pop, imap) => safeRelayCopy(pop, imap, journal, count, batches),
      leave,
    ),
  );
}

/** `use` with a new safe journal at `journalPath`, closed after it whether it succeeds or not. */
async function withSafeJournal<T>(journalPath: string, use: (journal: SafeJournal) => Promise<T>): Promise<T> {
  const { SafeJournal } = await safeJournal();
  const journal = new SafeJournal(journalPath);
  try {
    return await use(journal);
  } finally {
    journal.close();
  }
}

/**
 * Throws unless `user`'s INBOX holds `count` messages and the journal at `journalPath` `count`
 * rows, each with its UID: the check after a safe relay's run.
 */
export async function checkSafeRelay(
  ep: RawEndpoints,
  user: string,
  password: string,
  count: number,
  journalPath: string,
): Promise<void> {
  const arrived = await inboxCount(ep, user, password);
  const rows = (await safeJournal()).journalCounts(journalPath);
  if (arrived !== count || rows.rows !== count || rows.confirmed !== count)
    throw new Error(
      `safe relay: ${arrived} of ${count} messages arrived in ${user}'s INBOX; ` +
        `journal rows ${rows.rows}, confirmed ${rows.confirmed}`,
    );
}

/** The safe relay's work between its logins and its logout (see safeRelay). */
function safeRelayCopy(
  pop: Session,
  imap: Session,
  journal: SafeJournal,
  count: number,
  batches: SafeBatches,
): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const fail = (e: unknown): void => {
      pop.sock.destroy();
      imap.sock.destroy();
      reject(e);
    };
    let uidls: string[] | null = null;
    let head: Buffer = Buffer.alloc(0);
    let received = 0;
    let confirmed = 0;
    let tag = 0;
    let filling: SafeBatch = { intents: [], bodies: [], bytes: 0 };
    /** Received whole, waiting for a place in the window (their intents are written as they leave). */
    const ready: SafeBatch[] = [];
    const inFlight: Array<{ tag: string; batch: SafeBatch }> = [];

    // Reading pauses while a received batch waits for the window or the IMAP socket is full,
    // so memory holds the window, one waiting batch and what one chunk of the stream held.
    const flowControl = (): void => {
      const hold = ready.length > 0 || imap.sock.writableNeedDrain;
      if (hold && !pop.sock.isPaused()) pop.sock.pause();
      else if (!hold && pop.sock.isPaused()) pop.sock.resume();
    };
    const send = (): void => {
      while (ready.length > 0 && inFlight.length < DEFAULT_APPEND_WINDOW) {
        const batch = ready.shift()!;
        journal.intents(batch.intents);
        const t = `t${tag++}`;
        inFlight.push({ tag: t, batch });
        const out = imap.sock;
        out.cork();
        out.write(`${t} APPEND INBOX`);
        for (const [i, parts] of batch.bodies.entries()) {
          out.write(` {${batch.intents[i]!.size}+}\r\n`);
          for (const p of parts) out.write(p);
        }
        out.write('\r\n');
        out.uncork();
        // The socket holds what it still has to send; the batch needs only its rows now.
        batch.bodies = [];
      }
      flowControl();
    };
    const splitter = new RetrSplitter((parts, size) => {
      const exact = createHash('sha256');
      const normal = new Fingerprinter();
      for (const p of parts) {
        exact.update(p);
        normal.update(p);
      }
      const uidl = uidls![received++]!;
      filling.intents.push({ uidl, size, sha256: exact.digest('hex'), fingerprint: normal.digest() });
      filling.bodies.push(parts);
      filling.bytes += size;
      if (filling.intents.length >= batches.messages || filling.bytes >= batches.bytes || received === count) {
        ready.push(filling);
        filling = { intents: [], bodies: [], bytes: 0 };
        send();
      }
    });
    pop.sock.removeAllListeners('data');
    pop.sock.on('error', fail);
    pop.sock.on('data', (d: Buffer) => {
      try {
        if (uidls === null) {
          head = head.length ? Buffer.concat([head, d]) : d;
          const listing = uidlReply(head);
          if (listing === null) return;
          if (listing.uidls.length < count) throw new Error(`UIDL lists ${listing.uidls.length} of ${count}`);
          uidls = listing.uidls;
          d = head.subarray(listing.end);
        }
        splitter.push(d);
      } catch (e) {
        fail(e);
      }
    });
    imap.sock.removeAllListeners('data');
    imap.sock.on('error', fail);
    imap.sock.on('drain', flowControl);
    let acc = '';
    imap.sock.on('data', (d: Buffer) => {
      acc += d.toString('latin1');
      const lines = acc.split('\r\n');
      acc = lines.pop() ?? '';
      try {
        for (const l of lines) {
          if (!l.startsWith('t')) continue;
          const done = inFlight.shift();
          const m = /^(t\d+) OK \[([^\]]*)\]/.exec(l);
          if (!done || m?.[1] !== done.tag) throw new Error(`safe relay: unexpected reply ${l}`);
          const given = appendUids(m[2], done.batch.intents.length);
          if (!given) throw new Error(`safe relay: no APPENDUID for the batch: ${l}`);
          journal.confirmed(
            done.batch.intents.map((r) => r.uidl),
            given.uidValidity,
            given.uids,
          );
          confirmed += given.uids.length;
        }
        if (confirmed === count) return resolve();
        send();
      } catch (e) {
        fail(e);
      }
    });
    pop.sock.write(`UIDL\r\n${retrAll(count)}`);
  });
}
