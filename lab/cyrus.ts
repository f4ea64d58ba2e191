/**
 * A private, throw-away Cyrus IMAP/POP3 server (Debian's 3.6.1) for end-to-end tests, next to
 * the Dovecot of dovecot.ts: a second real server that stores and serves mail its own way.
 *
 * Why the binaries are not simply apt-installed: Debian's cyrus-imapd and cyrus-pop3d declare
 * `Conflicts: imap-server` / `pop3-server`, which dovecot-imapd/-pop3d provide, so
 * `apt-get install cyrus-imapd` removes Dovecot. test/scripts/ensure-env.sh instead installs
 * the three libraries they need that the machine lacks (libical3, libxapian30, libpcre3: no
 * conflicts) and unpacks the .debs with `dpkg-deb -x` into CYRUS_ROOT; dpkg never hears of
 * them and no system service exists.
 *
 * One lab is one `master -C <dir>/imapd.conf -M <dir>/cyrus.conf -p <dir>/master.pid` whose
 * config, databases, spool and sockets live in one mkdtemp dir, listening on loopback ports
 * picked at runtime. Facts this relies on (measured against the real binaries):
 *  - Every service must be named by absolute path and given `-C` itself; `service_path` is
 *    not honoured by master, and a service without `-C` reads /etc/imapd.conf.
 *  - `sasl_pwcheck_method: alwaystrue` (Cyrus's own test setting) accepts any password, so
 *    users need no SASL database; with `checkPasswords` Cyrus asks lab/cyrus-saslauthd.ts
 *    instead, and only the lab's password logs in. Mailboxes are created by the admin
 *    (`CREATE user/<name>`: 3.6's defaults are altnamespace and unixhierarchysep, so '/'
 *    separates levels).
 *  - With `tls`, `tls_server_cert`/`tls_server_key` give STARTTLS and STLS on the plain ports,
 *    and imapd/pop3d started with `-s` serve implicit TLS (imaps, pop3s) on two more.
 *  - Cyrus logs only to syslog; with no /dev/log (as in containers) its messages are lost, so
 *    a failed start is reported by what master's exit and the greetings show.
 *  - Started as root, master switches to `cyrus_user` (here `nobody`), which owns the dir.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chownSync, existsSync, readdirSync, readFileSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { ImapFlow } from 'imapflow';
import { startPasswordCheck, type PasswordCheck } from './cyrus-saslauthd.js';
import {
  freePorts,
  groupName,
  isRoot,
  killWatchdog,
  makeCertificate,
  readGreeting,
  startWatchdog,
  type LabEndpoint,
} from './dovecot.js';

/** Where ensure-env.sh unpacks the Cyrus .debs (override with POPSYNC_CYRUS_ROOT). */
export const CYRUS_ROOT = process.env.POPSYNC_CYRUS_ROOT ?? '/var/cache/popsync-lab/cyrus';
const BIN = path.join(CYRUS_ROOT, 'usr/lib/cyrus/bin');
const LIBS = path.join(CYRUS_ROOT, 'usr/lib/x86_64-linux-gnu');
const HOST = '127.0.0.1' as const;
const STARTUP_TIMEOUT_MS = 20_000;
const ADMIN = 'labadmin';

export interface CyrusLab {
  dir: string;
  /** IMAP; STARTTLS is offered only with `tls`. */
  imap: LabEndpoint;
  /** POP3; STLS is offered only with `tls`. */
  pop3: LabEndpoint;
  /** Implicit TLS (with `tls`). */
  imaps?: LabEndpoint;
  pop3s?: LabEndpoint;
  /** The lab's self-signed certificate, its own CA (with `tls`). */
  caFile?: string;
  /** The password that logs in: any does, unless `checkPasswords`. */
  password: string;
  /** How often Cyrus had `user`'s password checked, right or wrong (with `checkPasswords`; otherwise 0). */
  loginsChecked(user: string): number;
  /** Logins Cyrus refused for a wrong password (with `checkPasswords`; otherwise 0). */
  readonly refusedLogins: number;
  pid: number;
  /** A fresh user with an empty INBOX (created by the admin). */
  newUser(prefix?: string): Promise<string>;
  /** APPEND messages to the user's INBOX in this order, so POP3 lists them in it. */
  seedPop3(user: string, messages: Buffer[]): Promise<void>;
  /** An imapflow client for the user (plaintext), not yet connected. */
  client(user: string): ImapFlow;
  stop(): Promise<void>;
}

export interface CyrusOptions {
  /** Cyrus's `popminpoll` in minutes (Debian's default is 1, which answers [LOGIN-DELAY]); default 0. */
  popMinPoll?: number;
  /** Only `password` logs in (lab/cyrus-saslauthd.ts), instead of any password. */
  checkPasswords?: boolean;
  /** A certificate, STARTTLS/STLS, and the imaps and pop3s endpoints. */
  tls?: boolean;
}

/** The Cyrus binaries, or why they are missing (and the command that provides them). */
export function cyrusAvailable(): { ok: true } | { ok: false; why: string } {
  for (const b of ['master', 'imapd', 'pop3d', 'ctl_cyrusdb']) {
    if (!existsSync(path.join(BIN, b))) {
      return {
        ok: false,
        why: `Cyrus is not unpacked at ${CYRUS_ROOT} (${b} missing): run bash test/scripts/ensure-env.sh`,
      };
    }
  }
  return { ok: true };
}

export async function startCyrus(opts: CyrusOptions = {}): Promise<CyrusLab> {
  const avail = cyrusAvailable();
  if (!avail.ok) throw new Error(avail.why);
  const dir = await mkdtemp(path.join(os.tmpdir(), 'pscy-'));
  await chmod(dir, 0o755);
  const password = `lab-${randomBytes(6).toString('hex')}`;
  const owner = isRoot()
    ? nobody()
    : {
        uid: os.userInfo().uid,
        gid: os.userInfo().gid,
        user: os.userInfo().username,
        group: groupName(os.userInfo().gid),
      };
  let check: PasswordCheck | undefined;
  try {
    for (const sub of ['conf', 'conf/db', 'conf/socket', 'conf/proc', 'conf/lock', 'spool', 'sieve', 'socket', 'tls']) {
      await mkdir(path.join(dir, sub), { recursive: true, mode: 0o750 });
    }
    if (opts.tls) await makeCertificate('openssl', path.join(dir, 'tls'));
    if (opts.checkPasswords) check = await startPasswordCheck(path.join(dir, 'socket', 'saslauthd'), password);
    let lastError: unknown;
    for (let attempt = 0; attempt < 3; attempt++) {
      const [imapPort, popPort, imapsPort, pop3sPort] = await freePorts(opts.tls ? 4 : 2);
      const imap = { host: HOST, port: imapPort! };
      const pop3 = { host: HOST, port: popPort! };
      const secure = opts.tls
        ? { imaps: { host: HOST, port: imapsPort! }, pop3s: { host: HOST, port: pop3sPort! } }
        : {};
      const conf = path.join(dir, 'imapd.conf');
      await writeFile(conf, renderImapdConf(dir, owner, opts), { mode: 0o644 });
      await writeFile(path.join(dir, 'cyrus.conf'), renderCyrusConf(conf, { imap, pop3, ...secure }), { mode: 0o644 });
      if (isRoot()) chownTree(dir, owner.uid, owner.gid);

      const child = spawn(
        path.join(BIN, 'master'),
        ['-C', conf, '-M', path.join(dir, 'cyrus.conf'), '-p', path.join(dir, 'master.pid'), '-D'],
        {
          stdio: ['ignore', 'ignore', 'pipe'],
          env: { PATH: process.env.PATH ?? '/usr/bin:/bin', LD_LIBRARY_PATH: LIBS },
          // Its own process group: Cyrus's master signals its whole group when it shuts down,
          // and as `nobody` it may signal every process of that uid in the group, which was
          // every Dovecot lab's imap and pop3 processes in the test run ("Server shutting
          // down" mid-test in other files, the flake of earlier clean-clone runs).
          detached: true,
        },
      );
      let stderr = '';
      child.stderr?.setEncoding('utf8').on('data', (d: string) => {
        stderr += d;
      });
      const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
      child.once('error', () => {});
      if (child.pid === undefined) throw new Error('could not run the Cyrus master');
      const watchdog = startWatchdog(child.pid, dir);
      try {
        await waitForGreetings([imap, pop3], exited);
      } catch (e) {
        await stopMaster(child, exited, dir);
        killWatchdog(watchdog);
        // Without syslog the only clue to a port clash is that master died at once.
        lastError = new Error(`cyrus did not start: ${(e as Error).message}${stderr ? `\n${stderr}` : ''}`);
        continue;
      }
      return makeLab({ dir, imap, pop3, ...secure, password, child, exited, watchdog, check });
    }
    throw lastError;
  } catch (e) {
    await check?.close();
    await rm(dir, { recursive: true, force: true }).catch(() => {});
    throw e;
  }
}

function makeLab(a: {
  dir: string;
  imap: LabEndpoint;
  pop3: LabEndpoint;
  imaps?: LabEndpoint;
  pop3s?: LabEndpoint;
  check: PasswordCheck | undefined;
  password: string;
  child: ChildProcess;
  exited: Promise<number | null>;
  watchdog: ChildProcess | undefined;
}): CyrusLab {
  let counter = 0;
  let stopped: Promise<void> | undefined;
  const client = (user: string): ImapFlow =>
    new ImapFlow({
      host: a.imap.host,
      port: a.imap.port,
      secure: false,
      doSTARTTLS: false,
      auth: { user, pass: a.password },
      logger: false,
    });
  return {
    dir: a.dir,
    imap: a.imap,
    pop3: a.pop3,
    ...(a.imaps && a.pop3s ? { imaps: a.imaps, pop3s: a.pop3s, caFile: path.join(a.dir, 'tls', 'cert.pem') } : {}),
    password: a.password,
    loginsChecked: (user) => a.check?.checked.filter((u) => u === user).length ?? 0,
    get refusedLogins() {
      return a.check?.refused ?? 0;
    },
    pid: a.child.pid!,
    client,
    async newUser(prefix = 'user') {
      counter += 1;
      // Names keep to letters, digits and '-', which mean the same in every Cyrus namespace.
      const user = `${prefix.replace(/[^A-Za-z0-9-]/g, '-') || 'user'}-${counter}-${randomBytes(3).toString('hex')}`;
      // Raw IMAP: imapflow would put the admin's personal namespace ("INBOX.") in front.
      await adminCommands(a.imap, a.password, [`CREATE user/${user}`]);
      return user;
    },
    async seedPop3(user, messages) {
      const c = client(user);
      await c.connect();
      try {
        for (const m of messages) await c.append('INBOX', m);
      } finally {
        await c.logout();
      }
    },
    stop() {
      stopped ??= (async () => {
        await stopMaster(a.child, a.exited, a.dir);
        killWatchdog(a.watchdog);
        await a.check?.close();
        await rm(a.dir, { recursive: true, force: true });
      })();
      return stopped;
    },
  };
}

/** Logs in as the admin and runs the commands; each must end in a tagged OK. */
function adminCommands(ep: LabEndpoint, password: string, commands: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const sock = net.connect(ep.port, ep.host);
    const queue = [`LOGIN ${ADMIN} ${password}`, ...commands, 'LOGOUT'];
    let buf = '';
    let tag = 0;
    let greeted = false;
    const timer = setTimeout(() => fail(new Error('Cyrus admin session timed out')), 15_000);
    const fail = (e: Error): void => {
      clearTimeout(timer);
      sock.destroy();
      reject(e);
    };
    const next = (): void => {
      const c = queue.shift();
      if (c === undefined) {
        clearTimeout(timer);
        sock.end();
        resolve();
        return;
      }
      tag += 1;
      sock.write(`a${tag} ${c}\r\n`);
    };
    sock.setEncoding('latin1');
    sock.on('error', fail);
    sock.on('data', (d: string) => {
      buf += d;
      for (let i = buf.indexOf('\r\n'); i >= 0; i = buf.indexOf('\r\n')) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 2);
        if (!greeted) {
          greeted = true;
          next();
        } else if (line.startsWith(`a${tag} `)) {
          if (!line.startsWith(`a${tag} OK`)) return fail(new Error(`Cyrus admin command failed: ${line}`));
          next();
        }
      }
    });
  });
}

function renderImapdConf(dir: string, owner: { user: string; group: string }, opts: CyrusOptions): string {
  const minPoll = opts.popMinPoll ?? 0;
  if (!Number.isInteger(minPoll) || minPoll < 0) throw new Error(`popMinPoll must be a whole number, got ${minPoll}`);
  return `# Generated by popsync lab/cyrus.ts for one lab; deleted with it.
configdirectory: ${dir}/conf
proc_path: ${dir}/conf/proc
mboxname_lockpath: ${dir}/conf/lock
defaultpartition: default
partition-default: ${dir}/spool
sievedir: ${dir}/sieve
lmtpsocket: ${dir}/socket/lmtp
idlesocket: ${dir}/socket/idle
notifysocket: ${dir}/socket/notify
cyrus_user: ${owner.user}
cyrus_group: ${owner.group}
admins: ${ADMIN}
allowplaintext: yes
${
  opts.checkPasswords
    ? `sasl_pwcheck_method: saslauthd\nsasl_saslauthd_path: ${dir}/socket/saslauthd`
    : 'sasl_pwcheck_method: alwaystrue'
}
sasl_mech_list: PLAIN LOGIN
popminpoll: ${minPoll}
servername: popsync-lab
syslog_prefix: popsync-cyrus-lab
${opts.tls ? `tls_server_cert: ${dir}/tls/cert.pem\ntls_server_key: ${dir}/tls/key.pem\n` : ''}`;
}

function renderCyrusConf(
  conf: string,
  ep: { imap: LabEndpoint; pop3: LabEndpoint; imaps?: LabEndpoint; pop3s?: LabEndpoint },
): string {
  const cmd = (bin: string, args = ''): string => `"${path.join(BIN, bin)} -C ${conf}${args}"`;
  const at = (e: LabEndpoint): string => `listen="${e.host}:${e.port}" prefork=0`;
  return `START {
  recover cmd=${cmd('ctl_cyrusdb', ' -r')}
}
SERVICES {
  imap cmd=${cmd('imapd')} ${at(ep.imap)}
  pop3 cmd=${cmd('pop3d')} ${at(ep.pop3)}
${ep.imaps ? `  imaps cmd=${cmd('imapd', ' -s')} ${at(ep.imaps)}\n` : ''}${
  ep.pop3s ? `  pop3s cmd=${cmd('pop3d', ' -s')} ${at(ep.pop3s)}\n` : ''
}}
EVENTS {
}
DAEMON {
}
`;
}

async function waitForGreetings(eps: LabEndpoint[], exited: Promise<number | null>): Promise<void> {
  const deadline = Date.now() + STARTUP_TIMEOUT_MS;
  let dead = false;
  void exited.then(() => {
    dead = true;
  });
  for (const ep of eps) {
    for (;;) {
      if (dead) throw new Error('master exited during startup');
      if (Date.now() > deadline) throw new Error(`no greeting on ${ep.host}:${ep.port}`);
      const line = await readGreeting(ep).catch(() => undefined);
      if (line?.startsWith('* OK') || line?.startsWith('+OK')) break;
      await new Promise((r) => setTimeout(r, 25));
    }
  }
}

/** Cyrus children carry the lab's config path on their command line. */
function childrenOf(dir: string): number[] {
  const out: number[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      if (readFileSync(`/proc/${e}/cmdline`, 'latin1').includes(`${dir}/`)) out.push(Number(e));
    } catch {
      // exited meanwhile
    }
  }
  return out;
}

async function stopMaster(child: ChildProcess, exited: Promise<number | null>, dir: string): Promise<void> {
  if (child.exitCode === null && child.signalCode === null) {
    child.kill('SIGTERM');
    const gone = await Promise.race([
      exited.then(() => true),
      new Promise<boolean>((r) => setTimeout(() => r(false), 5000)),
    ]);
    if (!gone) {
      child.kill('SIGKILL');
      await exited;
    }
  }
  const deadline = Date.now() + 3000;
  for (;;) {
    const pids = childrenOf(dir);
    if (pids.length === 0) return;
    for (const pid of pids) {
      try {
        process.kill(pid, Date.now() > deadline ? 'SIGKILL' : 'SIGTERM');
      } catch {
        // already gone
      }
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}

function nobody(): { uid: number; gid: number; user: string; group: string } {
  const pw = readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .map((l) => l.split(':'))
    .find((f) => f[0] === 'nobody');
  if (pw === undefined) throw new Error('no "nobody" user on this system to run Cyrus as');
  const gid = Number(pw[3]);
  return { uid: Number(pw[2]), gid, user: 'nobody', group: groupName(gid) };
}

function chownTree(p: string, uid: number, gid: number): void {
  chownSync(p, uid, gid);
  for (const e of readdirSync(p, { withFileTypes: true })) {
    const q = path.join(p, e.name);
    if (e.isDirectory()) chownTree(q, uid, gid);
    else chownSync(q, uid, gid);
  }
}
