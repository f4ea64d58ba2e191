/**
 * A private Courier IMAP/POP3 (Debian's courier-imap 5.0.13 / courier-pop 1.0.16) for
 * end-to-end tests: a third real server, with its own UIDs, UIDLs, maildir handling and
 * rewrites, next to Dovecot (dovecot.ts) and Cyrus (cyrus.ts).
 *
 * Like Cyrus, Courier is unpacked, not installed: its packages conflict with the
 * imap-server/pop3-server Dovecot provides, so ensure-env.sh installs only the libraries it
 * lacks (libidn12, libgamin0) and unpacks the .debs with `dpkg-deb -x` into COURIER_ROOT.
 *
 * What is Courier's and what is ours: Courier authenticates through courier-authdaemond, whose
 * socket and config paths are compiled in (/run/courier, /etc/courier), so a private lab cannot
 * run its login programs. Their job ends at the login anyway: imaplogin and pop3login check
 * the password and then exec `imapd` / `courierpop3d` with AUTHENTICATED=<user> in the
 * environment; everything after the login is those programs. This lab does the same: a small
 * loopback front answers the greeting, CAPABILITY/CAPA and LOGIN or USER/PASS (one password
 * for every user), then runs Courier's own imapd / courierpop3d for that connection with the
 * variables the login programs set (AUTHENTICATED, IMAPLOGINTAG, TCPREMOTEIP/PORT, and the
 * IMAP_* / POP3 settings of Debian's /etc/courier/imapd and pop3d) and joins the socket to its
 * stdin/stdout. imapd itself sends the tagged `OK LOGIN Ok.`, courierpop3d the `+OK logged in.`
 *
 * Facts this relies on (measured against the real binaries):
 *  - imapd exits silently unless TCPREMOTEIP and TCPREMOTEPORT are set.
 *  - courierpop3d adds a CR before every LF of a maildir file, so mail is seeded with LF line
 *    ends, as a delivery agent stores it (a CRLF file would be served with CR CR LF).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, rmSync } from 'node:fs';
import { mkdir, mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { killWatchdog, startWatchdog, type LabEndpoint } from './dovecot.js';

/** Where ensure-env.sh unpacks the Courier .debs (override with POPSYNC_COURIER_ROOT). */
export const COURIER_ROOT = process.env.POPSYNC_COURIER_ROOT ?? '/var/cache/popsync-lab/courier';
const IMAPD = path.join(COURIER_ROOT, 'usr/bin/imapd');
const POP3D = path.join(COURIER_ROOT, 'usr/lib/courier/courier/courierpop3d');
const LIBS = [path.join(COURIER_ROOT, 'usr/lib/x86_64-linux-gnu'), path.join(COURIER_ROOT, 'usr/lib')].join(':');
const HOST = '127.0.0.1' as const;

/** Debian's /etc/courier/imapd IMAP_CAPABILITY (the non-TLS one; no AUTH= mechanisms: LOGIN only). */
const IMAP_CAPABILITY = 'IMAP4rev1 UIDPLUS CHILDREN NAMESPACE THREAD=ORDEREDSUBJECT THREAD=REFERENCES SORT QUOTA IDLE';
/** courierpop3d's own CAPA answer, measured; the front gives the same before login. */
const POP3_CAPA = [
  'TOP',
  'USER',
  'LOGIN-DELAY 10',
  'PIPELINING',
  'UIDL',
  'UTF8 USER',
  'IMPLEMENTATION Courier Mail Server',
];

export interface CourierLab {
  dir: string;
  /** Plaintext IMAP (LOGIN; no STARTTLS). */
  imap: LabEndpoint;
  /** Plaintext POP3 (USER/PASS). */
  pop3: LabEndpoint;
  password: string;
  /** A fresh user with an empty Maildir. */
  newUser(prefix?: string): Promise<string>;
  /** Deliver messages to the user's Maildir (LF line ends), in this order. */
  seedPop3(user: string, messages: Buffer[]): Promise<void>;
  maildirOf(user: string): string;
  stop(): Promise<void>;
}

export function courierAvailable(): { ok: true } | { ok: false; why: string } {
  for (const b of [IMAPD, POP3D]) {
    if (!existsSync(b))
      return {
        ok: false,
        why: `Courier is not unpacked at ${COURIER_ROOT} (${b} missing): run bash test/scripts/ensure-env.sh`,
      };
  }
  return { ok: true };
}

export async function startCourier(): Promise<CourierLab> {
  const avail = courierAvailable();
  if (!avail.ok) throw new Error(avail.why);
  const dir = await mkdtemp(path.join(os.tmpdir(), 'psco-'));
  const password = `lab-${randomBytes(6).toString('hex')}`;
  const children = new Set<ChildProcess>();
  const sockets = new Set<net.Socket>();
  const homeOf = (user: string): string => path.join(dir, 'home', user);
  const maildirOf = (user: string): string => path.join(homeOf(user), 'Maildir');
  const known = new Set<string>();
  const nextStamp = new Map<string, number>();
  let counter = 0;

  const run = (bin: string, user: string, sock: net.Socket, env: Record<string, string>, pending: Buffer): void => {
    const child = spawn(bin, ['Maildir'], {
      cwd: homeOf(user),
      stdio: ['pipe', 'pipe', 'ignore'],
      env: {
        PATH: '/usr/bin:/bin',
        LD_LIBRARY_PATH: LIBS,
        HOME: homeOf(user),
        AUTHENTICATED: user,
        TCPREMOTEIP: sock.remoteAddress ?? HOST,
        TCPREMOTEPORT: String(sock.remotePort ?? 0),
        TCPLOCALIP: HOST,
        TCPLOCALPORT: String(sock.localPort ?? 0),
        ...env,
      },
    });
    children.add(child);
    child.on('exit', () => {
      children.delete(child);
      sock.destroy();
    });
    child.on('error', () => sock.destroy());
    child.stdin.on('error', () => {});
    child.stdout.pipe(sock);
    if (pending.length) child.stdin.write(pending);
    sock.pipe(child.stdin);
    sock.on('close', () => child.kill('SIGTERM'));
  };

  const imapServer = net.createServer((sock) => {
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    sock.on('error', () => {});
    sock.write(
      `* OK [CAPABILITY ${IMAP_CAPABILITY}] Courier-IMAP ready. Copyright 1998-2018 Double Precision, Inc.  ` +
        `See COPYING for distribution information.\r\n`,
    );
    let buf = Buffer.alloc(0);
    const onData = (d: Buffer): void => {
      buf = Buffer.concat([buf, d]);
      for (let i = buf.indexOf('\r\n'); i >= 0; i = buf.indexOf('\r\n')) {
        const line = buf.subarray(0, i).toString('latin1');
        buf = buf.subarray(i + 2);
        const m = /^(\S+) (\S+)(?: (.*))?$/.exec(line);
        if (!m) {
          sock.write('* BAD Error in IMAP command received by server.\r\n');
          continue;
        }
        const [, tag, verb, rest] = m as unknown as [string, string, string, string | undefined];
        switch (verb.toUpperCase()) {
          case 'CAPABILITY':
            sock.write(`* CAPABILITY ${IMAP_CAPABILITY}\r\n${tag} OK CAPABILITY completed\r\n`);
            break;
          case 'NOOP':
            sock.write(`${tag} OK NOOP completed\r\n`);
            break;
          case 'ID':
            sock.write(`* ID NIL\r\n${tag} OK ID completed\r\n`);
            break;
          case 'LOGOUT':
            sock.end(`* BYE Courier-IMAP server shutting down\r\n${tag} OK LOGOUT completed\r\n`);
            return;
          case 'LOGIN': {
            const args = parseAstrings(rest ?? '');
            if (args?.length !== 2 || args[1] !== password || !known.has(args[0]!)) {
              sock.write(`${tag} NO Login failed.\r\n`);
              break;
            }
            sock.off('data', onData);
            run(IMAPD, args[0]!, sock, imapEnv(tag), buf);
            return;
          }
          default:
            sock.write(`${tag} NO Error in IMAP command received by server.\r\n`);
        }
      }
    };
    sock.on('data', onData);
  });

  const pop3Server = net.createServer((sock) => {
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    sock.on('error', () => {});
    sock.write('+OK Hello there.\r\n');
    let buf = Buffer.alloc(0);
    let user: string | null = null;
    // pop3login exports UTF8=1 only to a client that sent UTF8 before logging in; courierpop3d
    // then serves 8-bit messages as a "Cannot display Unicode content" notice until it is sent.
    let utf8 = false;
    const onData = (d: Buffer): void => {
      buf = Buffer.concat([buf, d]);
      for (let i = buf.indexOf('\r\n'); i >= 0; i = buf.indexOf('\r\n')) {
        const line = buf.subarray(0, i).toString('latin1');
        buf = buf.subarray(i + 2);
        const [verb = '', ...args] = line.split(' ');
        switch (verb.toUpperCase()) {
          case 'CAPA':
            sock.write(`+OK Here's what I can do:\r\n${POP3_CAPA.join('\r\n')}\r\n.\r\n`);
            break;
          case 'UTF8':
            utf8 = true;
            sock.write('+OK UTF8 enabled\r\n');
            break;
          case 'USER':
            user = args.join(' ');
            sock.write('+OK Password required.\r\n');
            break;
          case 'PASS':
            if (user === null || args.join(' ') !== password || !known.has(user)) {
              user = null;
              sock.write('-ERR Login failed.\r\n');
              break;
            }
            sock.off('data', onData);
            run(POP3D, user, sock, { MIME_UNICODE_MESSAGE_TYPE: 'message/global', UTF8: utf8 ? '1' : '0' }, buf);
            return;
          case 'QUIT':
            sock.end('+OK Better luck next time.\r\n');
            return;
          default:
            sock.write('-ERR Invalid command.\r\n');
        }
      }
    };
    sock.on('data', onData);
  });

  const listen = (s: net.Server): Promise<LabEndpoint> =>
    new Promise((resolve, reject) => {
      s.once('error', reject);
      s.listen(0, HOST, () => resolve({ host: HOST, port: (s.address() as net.AddressInfo).port }));
    });
  const imap = await listen(imapServer);
  const pop3 = await listen(pop3Server);
  // Courier's children exit when their sockets close; the dir goes at exit, or by the watchdog.
  const cleanup = (): void => rmSync(dir, { recursive: true, force: true });
  process.once('exit', cleanup);
  // A test process killed by a signal runs no exit handler: the shared watchdog, watching
  // this process as the "master", then ends Courier's children (ours) and removes the dir.
  const watchdog = startWatchdog(process.pid, dir);

  let stopped: Promise<void> | undefined;
  return {
    dir,
    imap,
    pop3,
    password,
    maildirOf,
    async newUser(prefix = 'user') {
      counter += 1;
      const user = `${prefix.replace(/[^A-Za-z0-9-]/g, '-') || 'user'}-${counter}-${randomBytes(3).toString('hex')}`;
      for (const sub of ['cur', 'new', 'tmp'])
        await mkdir(path.join(maildirOf(user), sub), { recursive: true, mode: 0o700 });
      known.add(user);
      return user;
    },
    async seedPop3(user, messages) {
      if (!known.has(user)) throw new Error(`unknown Courier lab user ${user}`);
      // Courier lists maildir files by name; increasing stamps keep the array order.
      let stamp = nextStamp.get(user) ?? 1_000_000_000;
      for (const [i, msg] of messages.entries()) {
        stamp += 1;
        const base = `${stamp}.M${i}P${process.pid}.popsync-lab`;
        const tmp = path.join(maildirOf(user), 'tmp', base);
        await writeFile(tmp, toLf(msg), { mode: 0o600 });
        await rename(tmp, path.join(maildirOf(user), 'cur', `${base}:2,`));
      }
      nextStamp.set(user, stamp);
    },
    stop() {
      stopped ??= (async () => {
        for (const s of sockets) s.destroy();
        await Promise.all([imapServer, pop3Server].map((s) => new Promise<void>((r) => s.close(() => r()))));
        const waits = [...children].map(
          (c) =>
            new Promise<void>((r) => (c.exitCode !== null || c.signalCode !== null ? r() : c.once('exit', () => r()))),
        );
        for (const c of children) c.kill('SIGKILL');
        await Promise.all(waits);
        process.off('exit', cleanup);
        killWatchdog(watchdog);
        await rm(dir, { recursive: true, force: true });
      })();
      return stopped;
    },
  };
}

/** What Debian's /etc/courier/imapd sets for imapd (without TLS), plus the login's tag. */
function imapEnv(tag: string): Record<string, string> {
  return {
    IMAPLOGINTAG: tag,
    IMAP_CAPABILITY,
    IMAP_KEYWORDS: '1',
    IMAP_ACL: '1',
    IMAP_IDLE_TIMEOUT: '60',
    IMAP_MAILBOX_SANITY_CHECK: '1',
    IMAP_DISABLETHREADSORT: '0',
    IMAP_CHECK_ALL_FOLDERS: '0',
    IMAP_OBSOLETE_CLIENT: '0',
    IMAP_UMASK: '022',
    IMAP_USELOCKS: '1',
    IMAP_ENHANCEDIDLE: '0',
    IMAP_TRASHFOLDERNAME: 'Trash',
    IMAP_EMPTYTRASH: 'Trash:7',
    IMAP_MOVE_EXPUNGE_TO_TRASH: '0',
    MAILDIRPATH: 'Maildir',
  };
}

/** IMAP astrings (atoms and quoted strings; no literals), or null when malformed. */
function parseAstrings(s: string): string[] | null {
  const out: string[] = [];
  let i = 0;
  while (i < s.length) {
    if (s[i] === ' ') {
      i++;
      continue;
    }
    if (s[i] === '"') {
      let v = '';
      i++;
      for (;;) {
        if (i >= s.length) return null;
        const c = s[i++]!;
        if (c === '"') break;
        v += c === '\\' ? (s[i++] ?? '') : c;
      }
      out.push(v);
    } else {
      const j = s.indexOf(' ', i);
      const atom = s.slice(i, j < 0 ? s.length : j);
      if (atom.startsWith('{')) return null;
      out.push(atom);
      i = j < 0 ? s.length : j;
    }
  }
  return out;
}

/** CRLF to LF, as a delivery agent stores mail in a maildir (bare CR stays). */
function toLf(b: Buffer): Buffer {
  const out = Buffer.allocUnsafe(b.length);
  let j = 0;
  for (let i = 0; i < b.length; i++) {
    if (b[i] === 0x0d && b[i + 1] === 0x0a) continue;
    out[j++] = b[i]!;
  }
  return out.subarray(0, j);
}
