/**
 * A private, throw-away Dovecot for end-to-end tests, `npm run demo` and `npm run bench`.
 *
 * Every lab is one `dovecot -F -c <dir>/dovecot.conf` master whose config, sockets, state,
 * logs, TLS material and mail all live in one mkdtemp directory, listening on loopback ports
 * picked at runtime, so labs never collide with each other, with a system Dovecot, or with
 * another engineer's test run. Nothing is read from /etc/dovecot: the config is complete.
 *
 * Facts about Dovecot 2.3.19 this module relies on (verified against the real binary; see
 * test/e2e/lab.test.ts):
 *  - `maxMessageSize` uses the quota plugin's `quota_max_mail_size`. An IMAP APPEND above it
 *    is refused with a tagged `NO [LIMIT] Mail size is too large` (imapflow surfaces the
 *    text in `err.response` / `err.serverResponseCode === 'LIMIT'`). Dovecot does not
 *    advertise APPENDLIMIT for it, so a client only learns of the limit from the NO.
 *  - POP3 has no per-command log events in 2.3, so commands are counted from the POP3
 *    rawlog: `rawlog_dir` in `protocol pop3` makes every POP3 session write the client's
 *    lines (after login, so never USER/PASS) to `<dir>/rawlog/<user>/*.in` (the directory must
 *    exist beforehand or Dovecot silently skips the rawlog). countLogLines()
 *    greps those plus dovecot.log; `countLogLines(/^RETR /)` counts RETR commands.
 *    The `.out` half duplicates every byte served, so benches pass `pop3Rawlog: false`.
 *  - Nothing else is needed for TLS: 2.3.19 runs without ssl_dh (no DH params, no warning),
 *    and a P-256 self-signed cert with CA:TRUE is made per lab in ~10 ms. Startup to both
 *    greetings takes ~70 ms here.
 *  - The master's command line contains the lab dir (`-c <dir>/dovecot.conf`) and every child
 *    process is titled `dovecot-<instance_name>/<service>`, which is how stop() proves that
 *    nothing is left behind.
 */

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  chownSync,
  type Dirent,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { chmod, chown, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { startImapFront, type FrontStats, type ImapFront } from './imap-front.js';
import { deliveredName } from './maildir-name.js';

export interface LabEndpoint {
  host: '127.0.0.1';
  port: number;
}

export interface Lab {
  /** Private temp dir holding config, logs, mail. */
  dir: string;
  /**
   * Plaintext IMAP (STARTTLS available). With `imapWithout` this is the relay of
   * imap-front.ts in front of Dovecot, so everything a client says and hears passes it.
   */
  imap: LabEndpoint;
  /** Implicit TLS IMAP. */
  imaps: LabEndpoint;
  /** Plaintext POP3 (STLS available). */
  pop3: LabEndpoint;
  /** Implicit TLS POP3. */
  pop3s: LabEndpoint;
  /** PEM of the self-signed CA/leaf the TLS listeners use (CN localhost, SAN localhost + 127.0.0.1). */
  caFile: string;
  /** Every user logs in with this password (static passdb); use a fresh user per test. */
  password: string;
  /** The unique Dovecot instance_name: child process titles are `dovecot-<name>/<service>`. */
  instanceName: string;
  /** PID of the Dovecot master. */
  pid: number;
  /** What IMAP clients sent and were spared through `imap` (only with `imapWithout`). */
  imapWire(): FrontStats | undefined;
  /** A fresh unique user name (letters, digits, '-'). */
  newUser(prefix?: string): string;
  /**
   * Put messages into the user's INBOX so POP3 lists them in the given order (message 1 =
   * messages[0]). Bytes are stored exactly as given; see corpus.ts for what POP3 RETR and IMAP
   * FETCH then return. May be called again to add more; the new ones come after the old ones.
   * Call it before the user's first POP3/IMAP session or between sessions.
   */
  seedPop3(user: string, messages: Buffer[]): Promise<void>;
  /** The user's Maildir (contains cur/ new/ tmp/). */
  maildirOf(user: string): string;
  /**
   * Count lines matching `pattern` in dovecot.log and in every POP3 rawlog input file (the
   * client's command lines after login, e.g. `RETR 3`, `TOP 3 0`, `UIDL`, `DELE 3`, `QUIT`).
   * Count RETR with /^RETR /i and TOP with /^TOP /i. Rawlog files are written as the session
   * runs and closed at logout, so count after the client has disconnected. With `user`, only
   * that user's rawlog is searched (dovecot.log is not). With `verbose`, IMAP sessions are
   * rawlogged there too; their lines start with a tag, so POP3 patterns anchored at ^ do not
   * match them. Each session's logout line in
   * dovecot.log also sums them up: `Logged out top=<n>/<bytes>, retr=<n>/<bytes>, ...`.
   */
  countLogLines(pattern: RegExp, user?: string): Promise<number>;
  /** Kill the master and its children, wait until they are gone, remove the temp dir. */
  stop(): Promise<void>;
}

export interface StartOptions {
  /** IMAP APPEND of a message larger than this many bytes is refused with a tagged NO. */
  maxMessageSize?: number;
  /** More Dovecot logging (auth_verbose, mail_debug, IMAP rawlog). */
  verbose?: boolean;
  /** Record POP3 client commands for countLogLines (default true). Benches turn it off. */
  pop3Rawlog?: boolean;
  /**
   * IMAP capabilities to withhold, to make Dovecot look like a server without them, e.g.
   * ['UIDPLUS', 'LITERAL+']. Set through Dovecot's `imap_capability` (so before and after
   * login). Dovecot still honours what it no longer lists, so the plaintext `imap` endpoint
   * becomes the relay of imap-front.ts: it hides the APPENDUID/COPYUID answers when UIDPLUS
   * is withheld and counts `{n+}` literals (imapWire()). Over TLS nothing is hidden.
   */
  imapWithout?: string[];
  /**
   * The whole CAPABILITY list to advertise, to make Dovecot look like another server (a
   * provider's published list, lab/provider-capabilities.ts), set through `imap_capability`.
   * Dovecot keeps doing what it does (it still takes LITERAL+ when the list has LITERAL-),
   * so a client is tested on what it decides from the list. COMPRESS=DEFLATE in the list
   * loads Dovecot's imap_zlib so that a client that uses it gets it. Not with `imapWithout`.
   */
  imapCapability?: string;
  /**
   * Look like Gmail's literals: advertise LITERAL- (RFC 7888) instead of LITERAL+, and have the
   * relay of imap-front.ts (which then stands in front, as for `imapWithout`) end the session
   * with BYE on any non-synchronising literal over 4,096 octets, as such a server may. Dovecot
   * itself would take them, so only the relay makes the limit real.
   */
  imapLiteralMinus?: boolean;
  /**
   * Folders every user has from the start, marked with a SPECIAL-USE role, e.g.
   * `{ '[Gmail]/All Mail': '\\All' }` ('/' between levels). Rendered as `mailbox` blocks with
   * `auto = create` in the inbox namespace, whose separator stays Maildir's '.'.
   */
  specialUse?: Record<string, string>;
  /**
   * Dovecot's `oauth2` passdb for XOAUTH2 and OAUTHBEARER: each token is checked by POSTing it
   * to this RFC 7662 introspection URL (introspection_mode = post), whose JSON must say
   * `"active": true` and name the login user in `username`. Password logins keep the static
   * passdb. See test/support/oauth2-lab.ts for the server the tests run there.
   */
  oauth2?: { introspectionUrl: string };
  /**
   * Master (admin) users, name -> password: a `passwd-file` passdb with `master = yes`, so
   * SASL PLAIN with authcid = the master and authzid = the user logs in as that user (also
   * `user*master` as the login name). Ordinary users cannot act for anyone.
   */
  masterUsers?: Record<string, string>;
  /**
   * Dovecot's high-performance login mode (`service_count = 0` for imap-login and pop3-login):
   * one login process serves many connections, so a TLS session resumes. By default each
   * connection gets a login process of its own, with its own ticket key, and none ever does.
   */
  sharedLoginProcesses?: boolean;
  /**
   * Dovecot's `mail_max_userip_connections`: sessions one user may have open from one address
   * per protocol (default here 1000, so tests never meet it; Dovecot's own default is 10).
   */
  maxUserIpConnections?: number;
}

/**
 * What Dovecot 2.3.19 lists after login with no imap_capability set (its CAPABILITY_STRING
 * plus the LITERAL+ and NOTIFY it adds itself); an explicit imap_capability replaces all of
 * it. test/e2e/lab.test.ts compares a trimmed lab against a default one, so drift shows.
 */
const DOVECOT_IMAP_CAPABILITY =
  'IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE SORT SORT=DISPLAY THREAD=REFERENCES THREAD=REFS ' +
  'THREAD=ORDEREDSUBJECT MULTIAPPEND URL-PARTIAL CATENATE UNSELECT CHILDREN NAMESPACE UIDPLUS ' +
  'LIST-EXTENDED I18NLEVEL=1 CONDSTORE QRESYNC ESEARCH ESORT SEARCHRES WITHIN CONTEXT=SEARCH ' +
  'LIST-STATUS BINARY MOVE SNIPPET=FUZZY PREVIEW=FUZZY PREVIEW STATUS=SIZE SAVEDATE LITERAL+ NOTIFY';

/**
 * The capability list a lab with `imapWithout` (or `imapLiteralMinus`) advertises, or undefined
 * for Dovecot's own.
 */
export function trimmedImapCapability(
  without: readonly string[] | undefined,
  literalMinus = false,
): string | undefined {
  if (literalMinus) {
    const rest = (without ?? []).filter((c) => c.toUpperCase() !== 'LITERAL+');
    return `${trimmedImapCapability([...rest, 'LITERAL+'])} LITERAL-`;
  }
  if (without === undefined || without.length === 0) return undefined;
  const all = DOVECOT_IMAP_CAPABILITY.split(' ');
  const drop = new Set(without.map((c) => c.toUpperCase()));
  for (const c of drop) {
    if (!all.includes(c)) throw new Error(`imapWithout: Dovecot does not offer ${c} (it offers ${all.join(' ')})`);
  }
  return all.filter((c) => !drop.has(c)).join(' ');
}

const HOST = '127.0.0.1' as const;
const STARTUP_TIMEOUT_MS = 15_000;
/** Files seedPop3 writes between turns of the event loop (~5 ms of synchronous calls). */
const SEED_SLICE = 200;

/** Labs not yet stopped; the exit hook kills them so a crashed test run leaves no daemons. */
const live = new Set<{ pid: number; dir: string; instanceName: string }>();
let exitHookInstalled = false;

export async function startDovecot(opts: StartOptions = {}): Promise<Lab> {
  const dovecotBin = ensureDovecot();
  const opensslBin = findExecutable('openssl');
  if (opensslBin === undefined) {
    throw new Error(
      isRoot()
        ? 'openssl is missing: apt-get install -y openssl'
        : 'openssl is missing; run: sudo apt-get install -y openssl',
    );
  }

  // Unix socket paths are limited to ~108 bytes, so the dir name stays short.
  const dir = await mkdtemp(path.join(os.tmpdir(), 'pslab-'));
  // Login and mail processes run as unprivileged users and must traverse into the dir.
  await chmod(dir, 0o755);
  const instanceName = `pslab-${path.basename(dir).slice('pslab-'.length)}`;
  const password = `lab-${randomBytes(6).toString('hex')}`;
  const mailOwner = pickMailOwner();

  try {
    const tlsDir = path.join(dir, 'tls');
    await mkdir(tlsDir, { mode: 0o755 });
    await makeCertificate(opensslBin, tlsDir);
    const caFile = path.join(tlsDir, 'cert.pem');

    for (const sub of ['home', 'rawlog']) {
      await mkdir(path.join(dir, sub), { mode: 0o755 });
      await chownIfRoot(path.join(dir, sub), mailOwner);
    }

    // Free ports are found by binding port 0 and releasing it; another process can grab one
    // in between, in which case Dovecot fails to bind and we retry with fresh ports.
    let lastError: unknown;
    for (let attempt = 0; attempt < 3; attempt++) {
      const ports = await freePorts(4);
      const endpoints = {
        imap: { host: HOST, port: ports[0]! },
        imaps: { host: HOST, port: ports[1]! },
        pop3: { host: HOST, port: ports[2]! },
        pop3s: { host: HOST, port: ports[3]! },
      };
      const confPath = path.join(dir, 'dovecot.conf');
      if (opts.oauth2 !== undefined) {
        await writeFile(path.join(dir, 'dovecot-oauth2.conf.ext'), renderOauth2(opts.oauth2.introspectionUrl), {
          mode: 0o644,
        });
      }
      if (opts.masterUsers !== undefined) {
        const lines = Object.entries(opts.masterUsers).map(([name, pw]) => `${name}:{PLAIN}${pw}\n`);
        await writeFile(path.join(dir, 'master-users'), lines.join(''), { mode: 0o644 });
      }
      await writeFile(confPath, renderConfig({ dir, instanceName, password, mailOwner, endpoints, opts }), {
        mode: 0o644,
      });
      await rm(path.join(dir, 'run'), { recursive: true, force: true });

      const child = spawn(dovecotBin, ['-F', '-c', confPath], { stdio: ['ignore', 'ignore', 'pipe'] });
      let stderr = '';
      child.stderr?.setEncoding('utf8').on('data', (d: string) => {
        stderr += d;
      });
      const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
      child.once('error', () => {});
      if (child.pid === undefined) throw new Error(`could not run ${dovecotBin}`);
      const entry = { pid: child.pid, dir, instanceName };
      live.add(entry);
      installExitHook();
      const watchdog = startWatchdog(child.pid, dir);

      try {
        await waitForGreetings(endpoints, exited);
      } catch (e) {
        await killMaster(child, exited, instanceName);
        killWatchdog(watchdog);
        live.delete(entry);
        const log = readLogTail(dir);
        lastError = new Error(`dovecot did not start: ${(e as Error).message}\n${stderr}${log}`);
        if (/Address already in use|bind\(/.test(stderr + log)) continue;
        throw lastError;
      }

      let front: ImapFront | undefined;
      if (trimmedImapCapability(opts.imapWithout, opts.imapLiteralMinus) !== undefined) {
        try {
          front = await startImapFront(endpoints.imap.port, {
            hideUidplus: (opts.imapWithout ?? []).some((c) => c.toUpperCase() === 'UIDPLUS'),
            literalMinus: opts.imapLiteralMinus === true,
          });
        } catch (e) {
          await killMaster(child, exited, instanceName);
          killWatchdog(watchdog);
          live.delete(entry);
          throw e;
        }
      }
      const visible = front ? { ...endpoints, imap: { host: HOST, port: front.port } } : endpoints;
      return makeLab({
        dir,
        instanceName,
        password,
        mailOwner,
        endpoints: visible,
        caFile,
        child,
        exited,
        entry,
        watchdog,
        front,
      });
    }
    throw lastError;
  } catch (e) {
    await rm(dir, { recursive: true, force: true }).catch(() => {});
    throw e;
  }
}

interface MailOwner {
  uid: number;
  gid: number;
  user: string;
  group: string;
}

interface Endpoints {
  imap: LabEndpoint;
  imaps: LabEndpoint;
  pop3: LabEndpoint;
  pop3s: LabEndpoint;
}

function makeLab(a: {
  dir: string;
  instanceName: string;
  password: string;
  mailOwner: MailOwner;
  endpoints: Endpoints;
  caFile: string;
  child: ChildProcess;
  exited: Promise<number | null>;
  entry: { pid: number; dir: string; instanceName: string };
  watchdog: ChildProcess | undefined;
  front: ImapFront | undefined;
}): Lab {
  let counter = 0;
  let stopped: Promise<void> | undefined;
  // Seeding more mail later must sort after what Dovecot already saw (see seedPop3).
  const nextStamp = new Map<string, number>();

  const maildirOf = (user: string): string => path.join(a.dir, 'home', user, 'Maildir');
  // Dovecot writes a rawlog only if the directory already exists, so each user gets one up
  // front; users not made by newUser() get theirs from seedPop3().
  const prepareRawlogDir = (user: string): void => {
    const d = path.join(a.dir, 'rawlog', user);
    mkdirSync(d, { recursive: true, mode: 0o755 });
    if (isRoot()) chownSync(d, a.mailOwner.uid, a.mailOwner.gid);
  };

  void a.exited.then((code) => {
    if (stopped !== undefined) return;
    process.stderr.write(`[lab ${a.instanceName}] dovecot master exited (code ${code}) before stop()\n`);
    reportStrangeSignals(a.dir, a.instanceName);
  });

  return {
    dir: a.dir,
    ...a.endpoints,
    caFile: a.caFile,
    password: a.password,
    instanceName: a.instanceName,
    pid: a.child.pid!,
    imapWire: () => a.front?.stats(),
    newUser(prefix = 'user') {
      const clean = prefix.replace(/[^A-Za-z0-9-]/g, '-') || 'user';
      counter += 1;
      const user = `${clean}-${counter}-${randomBytes(3).toString('hex')}`;
      prepareRawlogDir(user);
      return user;
    },
    maildirOf,
    async seedPop3(user, messages) {
      if (!/^[A-Za-z0-9._@-]+$/.test(user) || user.startsWith('.')) throw new Error(`bad lab user name: ${user}`);
      prepareRawlogDir(user);
      const home = path.join(a.dir, 'home', user);
      const md = maildirOf(user);
      for (const d of [home, md, path.join(md, 'cur'), path.join(md, 'new'), path.join(md, 'tmp')]) {
        await mkdir(d, { recursive: true, mode: 0o700 });
        await chownIfRoot(d, a.mailOwner);
      }
      // Dovecot gives new maildir files UIDs in the order of the time stamp in their names
      // (seconds, then the M<usecs> part), not in directory order; strictly increasing
      // stamps make POP3 message numbers follow the array order. The stamps are reserved at
      // once (no await between reading and advancing), so a seeding of the same user running
      // alongside gets others.
      // Named as a real delivery names them (maildir-name.ts: sizes, one varying number).
      // Files go to tmp/ first and are renamed into cur/, as maildir delivery requires, so a
      // concurrent scan never sees a half-written message.
      const first = nextStamp.get(user) ?? 1_000_000_000 * 1_000_000;
      nextStamp.set(user, first + messages.length);
      // Synchronous calls, in slices with a turn of the event loop between: a promise per
      // call cost ~0.2 ms a file (20,000 in 4-5 s), and servers in this process (the relays)
      // must not wait long for theirs.
      const root = isRoot();
      for (const [i, msg] of messages.entries()) {
        if (i > 0 && i % SEED_SLICE === 0) await new Promise((resolve) => setImmediate(resolve));
        const name = deliveredName(first + i + 1, process.pid, msg);
        const tmp = path.join(md, 'tmp', name);
        writeFileSync(tmp, msg, { mode: 0o600 });
        if (root) chownSync(tmp, a.mailOwner.uid, a.mailOwner.gid);
        renameSync(tmp, path.join(md, 'cur', name));
      }
    },
    async countLogLines(pattern, user) {
      const re = new RegExp(pattern.source, pattern.flags.replace(/[gy]/g, ''));
      const files =
        user === undefined
          ? [path.join(a.dir, 'dovecot.log'), ...(await listFiles(path.join(a.dir, 'rawlog'), '.in'))]
          : await listFiles(path.join(a.dir, 'rawlog', user), '.in');
      let n = 0;
      for (const f of files) {
        let text: string;
        try {
          text = await readFile(f, 'latin1');
        } catch {
          continue;
        }
        // Rawlog lines carry a "<secs>.<usecs> " time stamp; patterns should see the command.
        const stamp = f.endsWith('.in') ? /^\d+\.\d+ / : undefined;
        for (const raw of text.split(/\r?\n/)) {
          const line = stamp ? raw.replace(stamp, '') : raw;
          if (line !== '' && re.test(line)) n += 1;
        }
      }
      return n;
    },
    stop() {
      stopped ??= (async () => {
        reportStrangeSignals(a.dir, a.instanceName);
        await a.front?.close();
        await killMaster(a.child, a.exited, a.instanceName);
        await reapChildren(a.instanceName);
        killWatchdog(a.watchdog);
        live.delete(a.entry);
        await rm(a.dir, { recursive: true, force: true });
      })();
      return stopped;
    },
  };
}

/** The inbox namespace with the folders of StartOptions.specialUse, or nothing without them. */
function specialUseNamespace(folders: Record<string, string> | undefined): string {
  if (folders === undefined || Object.keys(folders).length === 0) return '';
  const boxes = Object.entries(folders).map(([name, role]) => {
    if (!/^\\[A-Za-z]+$/.test(role) || /["\r\n.]/.test(name))
      throw new Error(`specialUse: cannot use ${name}: ${role}`);
    return `  mailbox "${name.split('/').join('.')}" {\n    special_use = ${role}\n    auto = create\n  }\n`;
  });
  return `namespace inbox {\n  inbox = yes\n${boxes.join('')}}\n`;
}

/**
 * The oauth2 passdb's settings (Dovecot 2.3 dovecot-oauth2.conf.ext): no tokeninfo step, the
 * token POSTed as `token=` to the introspection URL, valid only while the answer says active
 * and names the user logging in.
 */
function renderOauth2(introspectionUrl: string): string {
  return `introspection_mode = post
introspection_url = ${introspectionUrl}
force_introspection = yes
username_attribute = username
active_attribute = active
active_value = true
timeout_msecs = 5000
`;
}

function renderConfig(a: {
  dir: string;
  instanceName: string;
  password: string;
  mailOwner: MailOwner;
  endpoints: Endpoints;
  opts: StartOptions;
}): string {
  const { dir, endpoints: e, opts } = a;
  const root = isRoot();
  const me = os.userInfo();
  const verbose = opts.verbose === true;
  const maxSize = opts.maxMessageSize;
  if (maxSize !== undefined && (!Number.isInteger(maxSize) || maxSize <= 0)) {
    throw new Error(`maxMessageSize must be a positive integer, got ${maxSize}`);
  }
  // Without root Dovecot cannot switch users or chroot, so everything runs as the caller.
  const internalUser = root ? 'dovecot' : me.username;
  const loginUser = root ? 'dovenull' : me.username;
  const chroot = root ? '' : '  chroot =\n';
  const loginMode = opts.sharedLoginProcesses === true ? '  service_count = 0\n' : '';
  if (opts.imapCapability !== undefined && (opts.imapWithout !== undefined || opts.imapLiteralMinus))
    throw new Error('imapCapability and imapWithout or imapLiteralMinus: give one of them');
  const capability = opts.imapCapability ?? trimmedImapCapability(opts.imapWithout, opts.imapLiteralMinus);
  // Dovecot also takes "user*master" as a login name once a separator is set, and each login
  // line names the SASL authentication identity (auth=<master> for a master login).
  const masterSeparator =
    opts.masterUsers !== undefined
      ? 'auth_master_user_separator = *\n' +
        'login_log_format_elements = user=<%u> auth=<%{auth_user}> method=%m rip=%r lip=%l mpid=%e %c ' +
        'session=<%{session}>\n'
      : '';
  const zlib = /(^|\s)COMPRESS=DEFLATE(\s|$)/i.test(opts.imapCapability ?? '');
  const plugins = [maxSize !== undefined ? 'quota' : '', zlib ? 'zlib' : ''].filter(Boolean).join(' ');

  return `# Generated by popsync lab/dovecot.ts for one lab; deleted with it.
instance_name = ${a.instanceName}
base_dir = ${dir}/run
state_dir = ${dir}/state
log_path = ${dir}/dovecot.log
info_log_path = ${dir}/dovecot.log
debug_log_path = ${dir}/dovecot.log
protocols = imap pop3
listen = ${HOST}
shutdown_clients = yes
default_internal_user = ${internalUser}
default_internal_group = ${root ? 'dovecot' : groupName(me.gid)}
default_login_user = ${loginUser}
first_valid_uid = 1
first_valid_gid = 1
# Plaintext auth on loopback is what the plaintext-endpoint tests are about.
disable_plaintext_auth = no
auth_mechanisms = plain login apop${opts.oauth2 !== undefined ? ' xoauth2 oauthbearer' : ''}
${masterSeparator}# Wrong-password tests would otherwise slow every later login from 127.0.0.1 by seconds.
auth_failure_delay = 0
auth_verbose = ${verbose ? 'yes' : 'no'}
mail_debug = ${verbose ? 'yes' : 'no'}
verbose_proctitle = yes
# A test opens many sessions per user quickly; the default of 10 would refuse some.
mail_max_userip_connections = ${opts.maxUserIpConnections ?? 1000}
${capability !== undefined ? `imap_capability = ${capability}\n` : ''}
ssl = yes
ssl_cert = <${dir}/tls/cert.pem
ssl_key = <${dir}/tls/key.pem
ssl_min_protocol = TLSv1.2

${
  opts.masterUsers !== undefined
    ? `passdb {\n  driver = passwd-file\n  master = yes\n  args = ${dir}/master-users\n}\n`
    : ''
}${
  opts.oauth2 !== undefined
    ? `passdb {\n  driver = oauth2\n  mechanisms = xoauth2 oauthbearer\n  args = ${dir}/dovecot-oauth2.conf.ext\n}\n`
    : ''
}passdb {
  driver = static
  args = password=${a.password}
}
userdb {
  driver = static
  args = uid=${a.mailOwner.uid} gid=${a.mailOwner.gid} home=${dir}/home/%u
}
mail_location = maildir:~/Maildir
${specialUseNamespace(opts.specialUse)}mail_plugins = ${plugins}
pop3_uidl_format = %08Xu%08Xv
# Plain maildir is enough; fsync costs time the benches should spend in popsync.
mail_fsync = never

protocol pop3 {
${opts.pop3Rawlog === false ? '' : `  rawlog_dir = ${dir}/rawlog/%u\n`}}
protocol imap {
${verbose ? `  rawlog_dir = ${dir}/rawlog/%u\n` : ''}${zlib ? '  mail_plugins = $mail_plugins imap_zlib\n' : ''}}

plugin {
${
  maxSize !== undefined
    ? `  quota = count:Lab quota\n  quota_vsizes = yes\n  quota_rule = *:storage=0\n  ` +
      `quota_max_mail_size = ${maxSize}B\n`
    : ''
}}

service imap-login {
  inet_listener imap {
    address = ${HOST}
    port = ${e.imap.port}
  }
  inet_listener imaps {
    address = ${HOST}
    port = ${e.imaps.port}
    ssl = yes
  }
${loginMode}${chroot}}
service pop3-login {
  inet_listener pop3 {
    address = ${HOST}
    port = ${e.pop3.port}
  }
  inet_listener pop3s {
    address = ${HOST}
    port = ${e.pop3s.port}
    ssl = yes
  }
${loginMode}${chroot}}
service imap-urlauth-login {
${chroot}}
# Services that default to system paths or listeners we do not want.
service submission-login {
  inet_listener submission {
    port = 0
  }
}
service stats {
  inet_listener http {
    port = 0
  }
}
${root ? '' : 'service anvil {\n  chroot =\n}\n'}`;
}

export function groupName(gid: number): string {
  try {
    for (const line of readFileSync('/etc/group', 'utf8').split('\n')) {
      const f = line.split(':');
      if (f[2] === String(gid) && f[0]) return f[0];
    }
  } catch {
    // fall through
  }
  return String(gid);
}

function pickMailOwner(): MailOwner {
  if (!isRoot()) {
    const me = os.userInfo();
    return { uid: me.uid, gid: me.gid, user: me.username, group: groupName(me.gid) };
  }
  // `nobody` exists on every Debian system and is neither root nor Dovecot's own internal
  // user, which Dovecot refuses as a mail owner in some code paths.
  const pw = readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .map((l) => l.split(':'))
    .find((f) => f[0] === 'nobody');
  if (pw === undefined) throw new Error('no "nobody" user on this system to own lab mail');
  const uid = Number(pw[2]);
  const gid = Number(pw[3]);
  return { uid, gid, user: 'nobody', group: groupName(gid) };
}

async function chownIfRoot(p: string, owner: MailOwner): Promise<void> {
  if (isRoot()) await chown(p, owner.uid, owner.gid);
}

export function isRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

function findExecutable(name: string): string | undefined {
  const dirs = (process.env.PATH ?? '').split(':').concat(['/usr/sbin', '/usr/bin', '/sbin', '/bin']);
  for (const d of dirs) {
    if (d === '') continue;
    const p = path.join(d, name);
    if (existsSync(p)) return p;
  }
  return undefined;
}

const INSTALL_CMD =
  'apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends dovecot-imapd ' +
  'dovecot-pop3d';

/**
 * Find the dovecot binary, installing the Debian packages first when we are root. A lab needs
 * only the binaries: a policy-rc.d that refuses service starts keeps the package from
 * launching a system Dovecot on ports 110/143 during the install.
 */
function ensureDovecot(): string {
  const found = findExecutable('dovecot');
  if (found !== undefined) return found;
  if (!isRoot()) {
    throw new Error(`sudo sh -c '${INSTALL_CMD}'`);
  }
  const policy = '/usr/sbin/policy-rc.d';
  const ownPolicy = !existsSync(policy);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  try {
    if (ownPolicy) spawnSync('sh', ['-c', `printf '#!/bin/sh\\nexit 101\\n' > ${policy} && chmod 755 ${policy}`]);
    const install = (): number | null =>
      spawnSync('apt-get', ['install', '-y', '--no-install-recommends', 'dovecot-imapd', 'dovecot-pop3d'], {
        env,
        stdio: ['ignore', 'ignore', 'inherit'],
      }).status;
    if (install() !== 0) {
      spawnSync('apt-get', ['update'], { env, stdio: ['ignore', 'ignore', 'inherit'] });
      if (install() !== 0) throw new Error(`installing Dovecot failed; run: ${INSTALL_CMD}`);
    }
  } finally {
    if (ownPolicy) rmSync(policy, { force: true });
  }
  const bin = findExecutable('dovecot');
  if (bin === undefined) throw new Error(`dovecot still missing after install; run: ${INSTALL_CMD}`);
  return bin;
}

/** A self-signed P-256 certificate for localhost and 127.0.0.1 (its own CA): tlsDir/cert.pem, key.pem. */
export async function makeCertificate(openssl: string, tlsDir: string): Promise<void> {
  // Our own openssl config, so the system openssl.cnf cannot add or drop extensions. The
  // cert is its own CA (CA:TRUE), which lets clients trust it with `ca: [pem]`.
  const cnf = path.join(tlsDir, 'openssl.cnf');
  await writeFile(
    cnf,
    [
      '[req]',
      'distinguished_name = dn',
      'x509_extensions = ext',
      'prompt = no',
      '[dn]',
      'CN = localhost',
      'O = popsync lab',
      '[ext]',
      'basicConstraints = critical,CA:TRUE',
      'keyUsage = critical,digitalSignature,keyCertSign',
      'extendedKeyUsage = serverAuth',
      'subjectAltName = DNS:localhost,IP:127.0.0.1',
      'subjectKeyIdentifier = hash',
      '',
    ].join('\n'),
  );
  // P-256 instead of RSA: key generation takes milliseconds, which keeps startup fast.
  const r = spawnSync(
    openssl,
    [
      'req',
      '-x509',
      '-new',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-days',
      '30',
      '-config',
      cnf,
      '-keyout',
      path.join(tlsDir, 'key.pem'),
      '-out',
      path.join(tlsDir, 'cert.pem'),
    ],
    { encoding: 'utf8' },
  );
  if (r.status !== 0) throw new Error(`openssl failed to make the lab certificate: ${r.stderr}`);
  // The key is read by the root-run config process; only the cert needs to be public.
  await chmod(path.join(tlsDir, 'key.pem'), 0o600);
  await chmod(path.join(tlsDir, 'cert.pem'), 0o644);
}

export async function freePorts(n: number): Promise<number[]> {
  // Hold all of them open at once so the n ports are distinct.
  const servers: net.Server[] = [];
  try {
    for (let i = 0; i < n; i++) {
      const s = net.createServer();
      servers.push(s);
      await new Promise<void>((resolve, reject) => {
        s.once('error', reject);
        s.listen(0, HOST, () => resolve());
      });
    }
    return servers.map((s) => (s.address() as net.AddressInfo).port);
  } finally {
    await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  }
}

async function waitForGreetings(e: Endpoints, exited: Promise<number | null>): Promise<void> {
  const deadline = Date.now() + STARTUP_TIMEOUT_MS;
  let dead = false;
  void exited.then(() => {
    dead = true;
  });
  // The plaintext listeners prove the login processes are up; TLS ones share those processes.
  for (const [ep, expect] of [
    [e.imap, '* OK'],
    [e.pop3, '+OK'],
  ] as const) {
    for (;;) {
      if (dead) throw new Error('dovecot exited during startup');
      if (Date.now() > deadline) throw new Error(`no greeting on ${ep.host}:${ep.port}`);
      const line = await readGreeting(ep).catch(() => undefined);
      if (line?.startsWith(expect)) break;
      await sleep(15);
    }
  }
}

export function readGreeting(ep: LabEndpoint): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = net.connect(ep.port, ep.host);
    let buf = '';
    const timer = setTimeout(() => done(new Error('greeting timeout')), 2000);
    const done = (err?: Error, line?: string): void => {
      clearTimeout(timer);
      sock.destroy();
      if (err) reject(err);
      else resolve(line ?? '');
    };
    sock.setEncoding('latin1');
    sock.on('data', (d: string) => {
      buf += d;
      const i = buf.indexOf('\r\n');
      if (i >= 0) done(undefined, buf.slice(0, i));
    });
    sock.on('error', (err) => done(err));
    sock.on('close', () => done(new Error('closed before greeting')));
  });
}

async function killMaster(child: ChildProcess, exited: Promise<number | null>, instanceName: string): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  // Told alone, the master spends over a second waiting for its children to wind down;
  // signalling them together makes stop() take milliseconds.
  for (const pid of childrenOf(instanceName)) {
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      // already gone
    }
  }
  child.kill('SIGTERM');
  const gone = await Promise.race([exited.then(() => true), sleep(5000).then(() => false)]);
  if (!gone) {
    child.kill('SIGKILL');
    await exited;
  }
}

/** PIDs of live processes titled `dovecot-<instanceName>/...` (Dovecot's children). */
function childrenOf(instanceName: string): number[] {
  const pids: number[] = [];
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return pids;
  }
  for (const e of entries) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const cmd = readFileSync(`/proc/${e}/cmdline`, 'latin1');
      if (cmd.includes(`${instanceName}/`)) pids.push(Number(e));
    } catch {
      // exited meanwhile
    }
  }
  return pids;
}

async function reapChildren(instanceName: string): Promise<void> {
  // Children notice the master's death on their own, but not always before stop() returns.
  const deadline = Date.now() + 3000;
  for (;;) {
    const pids = childrenOf(instanceName);
    if (pids.length === 0) return;
    const signal = Date.now() > deadline ? 'SIGKILL' : 'SIGTERM';
    for (const pid of pids) {
      try {
        process.kill(pid, signal);
      } catch {
        // already gone
      }
    }
    await sleep(20);
  }
}

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const { pid, dir, instanceName } of live) {
      for (const p of [...childrenOf(instanceName), pid]) {
        try {
          process.kill(p, 'SIGTERM');
        } catch {
          // already gone
        }
      }
      // The watchdog deletes the dir once the master is gone; removing it now races with
      // Dovecot still writing its log, so only try.
      try {
        rmSync(path.join(dir, 'home'), { recursive: true, force: true });
      } catch {
        // best effort
      }
    }
  });
}

/**
 * A detached shell that outlives a SIGKILLed test process: when our process disappears it
 * stops Dovecot and removes the lab dir. It exits by itself when the lab stops normally.
 */
export function startWatchdog(masterPid: number, dir: string): ChildProcess | undefined {
  const quoted = `'${dir.replace(/'/g, `'\\''`)}'`;
  // `kill -0` succeeds on zombies, and in containers whose PID 1 does not reap, an orphaned
  // master stays a zombie forever; so liveness is read from the state field of /proc/PID/stat.
  // Liveness is read with shell builtins only: a watchdog that forks sed and cut every second
  // churns PIDs (pid_max is 32768 here) and, should one fork fail, would take a live test
  // process for dead and stop its lab. A death is believed only when seen twice, 1 s apart.
  const script = `
alive() {
  l=; read -r l 2>/dev/null < /proc/$1/stat || return 1
  l=\${l##*") "}; s=\${l%% *}; [ -n "$s" ] && [ "$s" != Z ]
}
both() { alive ${process.pid} && alive ${masterPid}; }
while both || { sleep 1; both; }; do sleep 1; done
alive ${process.pid} && exit 0
for f in /proc/[0-9]*/stat; do
  set -- $(sed 's/.*) //' $f 2>/dev/null)
  p=\${f#/proc/}
  [ "$2" = ${masterPid} ] && kill -TERM \${p%/stat} 2>/dev/null
done
kill -TERM ${masterPid} 2>/dev/null
n=0
while alive ${masterPid} && [ $n -lt 30 ]; do sleep 0.1; n=$((n+1)); done
kill -KILL ${masterPid} 2>/dev/null
rm -rf ${quoted}`;
  const w = spawn('sh', ['-c', script], { detached: true, stdio: 'ignore' });
  w.on('error', () => {});
  w.unref();
  return w.pid === undefined ? undefined : w;
}

/**
 * Its command line names the lab dir, so it must go too before stop() reports success. Once
 * Node has reaped it, its PID is free for reuse and signalling `-pid` could hit another
 * process group (another lab's watchdog or popsync under test), so a reaped one is left alone.
 */
export function killWatchdog(w: ChildProcess | undefined): void {
  if (w?.pid === undefined || w.exitCode !== null || w.signalCode !== null) return;
  try {
    process.kill(-w.pid, 'SIGKILL'); // its own process group: the shell and its `sleep`
  } catch {
    // already gone
  }
}

/**
 * Clean-clone runs have seen a lab's Dovecot say "Server shutting down" mid-test with no test
 * asking for it. Dovecot logs who signalled a process ("Killed with signal 15 (by pid=N ...)");
 * a sender other than this test process is reported on stderr with its command line while it
 * may still exist, so the next occurrence names the culprit instead of only failing a test.
 */
function reportStrangeSignals(dir: string, instanceName: string): void {
  let text: string;
  try {
    text = readFileSync(path.join(dir, 'dovecot.log'), 'utf8');
  } catch {
    return;
  }
  for (const line of text.split('\n')) {
    const m = /Killed with signal \d+ \(by pid=(\d+)/.exec(line);
    if (m === null || Number(m[1]) === process.pid) continue;
    let who = 'gone';
    try {
      who = readFileSync(`/proc/${m[1]}/cmdline`, 'latin1').replace(/\0/g, ' ').trim();
    } catch {
      // exited since
    }
    process.stderr.write(`[lab ${instanceName}] signalled by pid ${m[1]} (${who}): ${line}\n`);
  }
}

function readLogTail(dir: string): string {
  try {
    const text = readFileSync(path.join(dir, 'dovecot.log'), 'utf8');
    return text.split('\n').slice(-20).join('\n');
  } catch {
    return '';
  }
}

async function listFiles(root: string, suffix: string): Promise<string[]> {
  const out: string[] = [];
  let entries: Dirent[];
  try {
    entries = await readdir(root, { withFileTypes: true });
  } catch {
    return out;
  }
  for (const ent of entries) {
    const p = path.join(root, ent.name);
    if (ent.isDirectory()) out.push(...(await listFiles(p, suffix)));
    else if (ent.name.endsWith(suffix)) out.push(p);
  }
  return out;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
