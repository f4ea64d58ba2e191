/**
 * Proves the private Dovecot lab behaves as the other e2e tests assume: POP3 serves seeded
 * mail in order with the bytes corpus.ts predicts, TLS is trusted only with the lab CA, the
 * size limit refuses an APPEND with a tagged NO, RETR/TOP can be counted, and stop() leaves
 * no process or directory behind. Talks raw POP3 on purpose: it must not depend on
 * popsync's own POP3 client, which these labs exist to test.
 */

import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { ImapFlow } from 'imapflow';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { edgeCases, expectedImapBytes, expectedPop3Bytes, realisticMix, toCrlf } from '../../lab/corpus.js';
import { startDovecot, type Lab } from '../../lab/dovecot.js';
import { runCli } from '../support/cli.js';
import { labArgs } from '../support/lab-fixture.js';
import { destinationMessages, digests } from '../support/mailboxes.js';

const MAX = 64 * 1024;

/** Just enough POP3 to check the server, reading bytes (not strings) so 8-bit data survives. */
class RawPop3 {
  private buf = Buffer.alloc(0);
  private waiters: Array<() => void> = [];
  private closed = false;

  private constructor(private readonly sock: net.Socket) {
    sock.on('data', (d: Buffer) => {
      this.buf = Buffer.concat([this.buf, d]);
      this.wake();
    });
    sock.on('close', () => {
      this.closed = true;
      this.wake();
    });
    sock.on('error', () => {});
  }

  static async open(s: net.Socket): Promise<RawPop3> {
    const c = new RawPop3(s);
    const greeting = await c.line();
    expect(greeting).toMatch(/^\+OK/);
    return c;
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  private async until(find: () => number): Promise<number> {
    for (;;) {
      const i = find();
      if (i >= 0) return i;
      if (this.closed) throw new Error('connection closed');
      await new Promise<void>((r) => this.waiters.push(r));
    }
  }

  async line(): Promise<string> {
    const i = await this.until(() => this.buf.indexOf('\r\n'));
    const l = this.buf.subarray(0, i).toString('latin1');
    this.buf = this.buf.subarray(i + 2);
    return l;
  }

  async cmd(c: string): Promise<string> {
    this.sock.write(`${c}\r\n`);
    return this.line();
  }

  /** A multi-line answer, dot-unstuffed, without the final ".\r\n". */
  async multi(c: string): Promise<{ status: string; data: Buffer }> {
    const status = await this.cmd(c);
    if (!status.startsWith('+OK')) return { status, data: Buffer.alloc(0) };
    const end = await this.until(() =>
      this.buf.subarray(0, 3).equals(Buffer.from('.\r\n')) ? 0 : this.buf.indexOf('\r\n.\r\n'),
    );
    const raw = end === 0 ? Buffer.alloc(0) : this.buf.subarray(0, end + 2);
    this.buf = this.buf.subarray(end === 0 ? 3 : end + 5);
    const lines: Buffer[] = [];
    let start = 0;
    while (start < raw.length) {
      const nl = raw.indexOf('\r\n', start);
      const l = raw.subarray(start, nl + 2);
      lines.push(l[0] === 0x2e ? l.subarray(1) : l);
      start = nl + 2;
    }
    return { status, data: Buffer.concat(lines) };
  }

  async quit(): Promise<void> {
    await this.cmd('QUIT');
    this.sock.end();
    await this.until(() => (this.closed ? 0 : -1));
  }
}

async function pop3Login(lab: Lab, user: string): Promise<RawPop3> {
  const c = await RawPop3.open(net.connect(lab.pop3.port, lab.pop3.host));
  expect(await c.cmd(`USER ${user}`)).toMatch(/^\+OK/);
  expect(await c.cmd(`PASS ${lab.password}`)).toMatch(/^\+OK/);
  return c;
}

function imap(lab: Lab, user: string, extra: Partial<ConstructorParameters<typeof ImapFlow>[0]> = {}): ImapFlow {
  return new ImapFlow({
    host: lab.imap.host,
    port: lab.imap.port,
    secure: false,
    doSTARTTLS: true,
    auth: { user, pass: lab.password },
    logger: false,
    tls: { ca: [readFileSync(lab.caFile)] },
    ...extra,
  });
}

describe('dovecot lab', () => {
  let lab: Lab;
  let startMs = 0;
  const cases = edgeCases({ huge: false });

  beforeAll(async () => {
    const t = performance.now();
    lab = await startDovecot({ maxMessageSize: MAX });
    startMs = performance.now() - t;
  });

  afterAll(async () => {
    await lab?.stop();
  });

  it('starts quickly', () => {
    // Aim is < 1.5 s; the bound is looser so a loaded CI box does not flake.
    expect(startMs).toBeLessThan(5000);
  });

  it('serves the edge cases over POP3 in seeded order, with predictable bytes and stable UIDLs', async () => {
    const user = lab.newUser('edge');
    await lab.seedPop3(
      user,
      cases.map((c) => c.bytes),
    );

    const c = await pop3Login(lab, user);
    const list = await c.multi('LIST');
    const sizes = list.data
      .toString('latin1')
      .trim()
      .split('\r\n')
      .map((l) => Number(l.split(' ')[1]));
    // The octet count is the CRLF form, without the CRLF RETR adds to an unterminated message.
    expect(sizes).toEqual(cases.map((k) => toCrlf(k.bytes).length));

    const uidl = (await c.multi('UIDL')).data
      .toString('latin1')
      .trim()
      .split('\r\n')
      .map((l) => l.split(' ')[1]);
    expect(uidl).toHaveLength(cases.length);
    for (const u of uidl) expect(u).toMatch(/^[0-9a-f]{16}$/);
    expect(new Set(uidl).size).toBe(cases.length);

    for (const [i, k] of cases.entries()) {
      const r = await c.multi(`RETR ${i + 1}`);
      expect(r.status, k.name).toMatch(/^\+OK/);
      expect(r.data.equals(expectedPop3Bytes(k.bytes)), `${k.name}: RETR bytes`).toBe(true);
    }
    const top = await c.multi('TOP 1 0');
    expect(top.status).toMatch(/^\+OK/);
    await c.quit();

    // A second session sees the same UIDLs: they are what popsync's journal keys on.
    const again = await pop3Login(lab, user);
    const uidl2 = (await again.multi('UIDL')).data
      .toString('latin1')
      .trim()
      .split('\r\n')
      .map((l) => l.split(' ')[1]);
    await again.quit();
    expect(uidl2).toEqual(uidl);

    expect(await lab.countLogLines(/^RETR /, user)).toBe(cases.length);
    expect(await lab.countLogLines(/^TOP /, user)).toBe(1);
    expect(await lab.countLogLines(/^RETR /)).toBe(cases.length);

    // The same maildir over IMAP: FETCH BODY[] converts bare LF but adds no final CRLF.
    const client = imap(lab, user);
    await client.connect();
    const lock = await client.getMailboxLock('INBOX');
    try {
      const got: Buffer[] = [];
      for await (const m of client.fetch('1:*', { source: true })) got.push(m.source!);
      expect(got).toHaveLength(cases.length);
      for (const [i, k] of cases.entries()) {
        expect(got[i]!.equals(expectedImapBytes(k.bytes)), `${k.name}: FETCH bytes`).toBe(true);
      }
    } finally {
      lock.release();
      await client.logout();
    }
  });

  it('keeps seeding order for a realistic mix, also across two seedings', async () => {
    const user = lab.newUser('mix');
    const mix = realisticMix(30, 7);
    await lab.seedPop3(user, mix.slice(0, 20));
    const c1 = await pop3Login(lab, user);
    expect(await c1.cmd('STAT')).toMatch(/^\+OK 20 /);
    await c1.quit();
    await lab.seedPop3(user, mix.slice(20));

    const c = await pop3Login(lab, user);
    const sizes = (await c.multi('LIST')).data
      .toString('latin1')
      .trim()
      .split('\r\n')
      .map((l) => Number(l.split(' ')[1]));
    // Generated mail is CRLF already, so the octet counts are the buffer lengths.
    expect(sizes).toEqual(mix.map((m) => m.length));
    const last = await c.multi('RETR 30');
    expect(last.data.equals(mix[29]!)).toBe(true);
    await c.quit();
  });

  it('trusts STARTTLS and implicit TLS only with the lab CA', async () => {
    const user = lab.newUser('tls');
    const ok = imap(lab, user);
    await ok.connect();
    expect(ok.secureConnection, 'upgraded with STARTTLS').toBe(true);
    await ok.logout();

    const untrusted = imap(lab, user, { tls: {} });
    untrusted.on('error', () => {});
    const err = await untrusted.connect().then(
      () => undefined,
      (e: unknown) => e as Error & { code?: string },
    );
    expect(err, 'STARTTLS must fail verification without the CA').toBeDefined();
    expect(`${err?.code ?? ''} ${err?.message ?? ''}`).toMatch(/SELF_SIGNED|self[- ]signed|certificate/i);
    untrusted.close();

    const imaps = imap(lab, user, { port: lab.imaps.port, secure: true, doSTARTTLS: undefined });
    await imaps.connect();
    await imaps.logout();

    const pop3s = tls.connect({
      host: lab.pop3s.host,
      port: lab.pop3s.port,
      ca: [readFileSync(lab.caFile)],
      servername: 'localhost',
    });
    const c = await RawPop3.open(pop3s);
    expect(await c.cmd(`USER ${user}`)).toMatch(/^\+OK/);
    expect(await c.cmd(`PASS ${lab.password}`)).toMatch(/^\+OK/);
    await c.quit();

    // STLS on the plaintext POP3 port, checked against the IP SAN rather than the name.
    const plain = await RawPop3.open(net.connect(lab.pop3.port, lab.pop3.host));
    expect(await plain.cmd('STLS')).toMatch(/^\+OK/);
    const sock = (plain as unknown as { sock: net.Socket }).sock;
    sock.removeAllListeners('data');
    const upgraded = tls.connect({ socket: sock, ca: [readFileSync(lab.caFile)], host: '127.0.0.1' });
    await new Promise<void>((resolve, reject) => {
      upgraded.once('secureConnect', resolve);
      upgraded.once('error', reject);
    });
    expect(upgraded.authorized).toBe(true);
    upgraded.destroy();
  });

  it('refuses an APPEND over maxMessageSize with a tagged NO [LIMIT] and accepts one under it', async () => {
    const user = lab.newUser('limit');
    const client = imap(lab, user);
    await client.connect();
    try {
      const body = (n: number): Buffer =>
        Buffer.concat([Buffer.from('Subject: size test\r\n\r\n'), Buffer.alloc(n, 'a')]);
      const err = await client.append('INBOX', body(MAX + 1000)).then(
        () => undefined,
        (e: unknown) => e as { responseStatus?: string; serverResponseCode?: string; responseText?: string },
      );
      expect(err?.responseStatus).toBe('NO');
      expect(err?.serverResponseCode).toBe('LIMIT');
      expect(err?.responseText).toMatch(/Mail size is larger than the maximum size/);
      const ok = await client.append('INBOX', body(MAX - 1000));
      expect(ok === false ? null : ok.uid).toBeGreaterThan(0);
      // The refusal must not have broken the session.
      const status = await client.status('INBOX', { messages: true });
      expect(status === false ? null : status.messages).toBe(1);
    } finally {
      await client.logout();
    }
  });

  it('stop() leaves no process and no directory behind', async () => {
    const { dir, instanceName } = lab;
    const user = lab.newUser('busy');
    // An open session must not keep anything alive.
    const c = await pop3Login(lab, user);
    await lab.stop();
    c.quit().catch(() => {});
    expect(existsSync(dir)).toBe(false);
    let pgrep = '';
    try {
      pgrep = execFileSync('pgrep', ['-af', dir], { encoding: 'utf8' });
    } catch {
      // exit status 1: nothing found
    }
    expect(pgrep.split('\n').filter((l) => l && !l.includes('pgrep'))).toEqual([]);
    const children = readdirSync('/proc')
      .filter((p) => /^\d+$/.test(p))
      .filter((p) => {
        try {
          return readFileSync(`/proc/${p}/cmdline`, 'latin1').includes(`${instanceName}/`);
        } catch {
          return false;
        }
      });
    expect(children).toEqual([]);
  });
});

/**
 * A Dovecot that looks like a server without UIDPLUS and LITERAL+. What matters is what the
 * client sees on the wire, before and after login, and that popsync then really takes its
 * one-at-a-time imapflow APPEND path and gets no UID back.
 */
describe('dovecot lab without UIDPLUS and LITERAL+', () => {
  let trimmed: Lab;
  let full: Lab;
  let dir: string;

  beforeAll(async () => {
    // MULTIAPPEND withheld too: with it popsync would batch on its own connection instead.
    trimmed = await startDovecot({ imapWithout: ['UIDPLUS', 'LITERAL+', 'MULTIAPPEND'], verbose: true });
    full = await startDovecot({});
    dir = mkdtempSync(join(tmpdir(), 'popsync-labcaps-'));
  });

  afterAll(async () => {
    await trimmed?.stop();
    await full?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('advertises neither before nor after login, and answers APPEND without APPENDUID', async () => {
    const user = trimmed.newUser('caps');
    const c = await RawImap.open(trimmed.imap.port);
    const pre = capsOf(c.greeting);
    expect(pre).not.toContain('UIDPLUS');
    expect(pre).not.toContain('LITERAL+');
    expect(capsOf((await c.cmd('CAPABILITY')).join('\n'))).toEqual(pre);

    const login = await c.cmd(`LOGIN ${user} ${trimmed.password}`);
    const post = capsOf(login.join('\n'));
    const asked = capsOf((await c.cmd('CAPABILITY')).join('\n'));
    expect(asked).toEqual(post);

    // Everything else a default Dovecot lists after login is still there.
    const f = await RawImap.open(full.imap.port);
    const fullPost = capsOf((await f.cmd(`LOGIN ${full.newUser('caps')} ${full.password}`)).join('\n'));
    await f.cmd('LOGOUT');
    expect(fullPost).toContain('UIDPLUS');
    expect(fullPost).toContain('LITERAL+');
    expect(post).toEqual(fullPost.filter((x) => x !== 'UIDPLUS' && x !== 'LITERAL+' && x !== 'MULTIAPPEND'));

    const msg = 'Subject: caps\r\n\r\nbody\r\n';
    // Dovecot takes {n+} even unlisted; the relay counts it, so tests can show a client never did.
    const wire0 = trimmed.imapWire()!;
    expect((await c.cmd(`APPEND INBOX {${msg.length}+}\r\n${msg}`)).at(-1)).toMatch(/^\S+ OK /);
    expect(trimmed.imapWire()!.nonSyncLiterals - wire0.nonSyncLiterals).toBe(1);
    const appended = await c.cmdWithLiteral('APPEND INBOX', msg);
    expect(appended.at(-1)).toMatch(/^\S+ OK /);
    expect(appended.join('\n')).not.toMatch(/APPENDUID/i);
    await c.cmd('LOGOUT');
    expect(trimmed.imapWire()?.hiddenUidCodes).toBeGreaterThanOrEqual(1);
  });

  it('makes popsync append one at a time through imapflow, with sync literals and no UID back', async () => {
    const pop = trimmed.newUser('src');
    const imapUser = trimmed.newUser('dst');
    const messages = realisticMix(6, 3);
    await trimmed.seedPop3(pop, messages);
    const before = trimmed.imapWire()!;
    const logFile = join(dir, 'popsync.log');
    const r = await runCli(
      labArgs('migrate', trimmed, pop, imapUser, join(dir, 'j.sqlite'), [
        '--no-progress',
        '--json',
        '--log-file',
        logFile,
      ]),
      { env: { PW: trimmed.password } },
    );
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ copied: 6 });
    expect(readFileSync(logFile, 'utf8')).toMatch(/IMAP APPEND goes through imapflow, one at a time/);
    const after = trimmed.imapWire()!;
    expect(after.appends - before.appends).toBe(6);
    expect(after.nonSyncLiterals - before.nonSyncLiterals).toBe(0);
    expect(after.hiddenUidCodes - before.hiddenUidCodes).toBe(6);
    // Dovecot's own record of what the client sent agrees: 6 APPENDs, each with {n}.
    expect(await trimmed.countLogLines(/^\S+ APPEND .*\{\d+\}$/, imapUser)).toBe(6);
    expect(await trimmed.countLogLines(/\{\d+\+\}$/, imapUser)).toBe(0);
    expect(digests((await destinationMessages(trimmed, imapUser)).map((m) => m.body))).toEqual(digests(messages));
  });
});

function capsOf(line: string): string[] {
  const m = /CAPABILITY ([^\]\r\n]*)/i.exec(line);
  if (!m) throw new Error(`no capability list in ${JSON.stringify(line)}`);
  return m[1]!
    .trim()
    .split(/\s+/)
    .filter((c) => c !== 'STARTTLS' && !/^AUTH=/i.test(c) && c !== 'LOGINDISABLED');
}

/** Just enough IMAP to read capability lists and send an APPEND, line by line. */
class RawImap {
  private buf = '';
  private waiters: Array<() => void> = [];
  private tag = 0;
  greeting = '';

  private constructor(private readonly sock: net.Socket) {
    sock.on('data', (d: Buffer) => {
      this.buf += d.toString('latin1');
      for (const w of this.waiters.splice(0)) w();
    });
    sock.on('error', () => {});
  }

  static async open(port: number): Promise<RawImap> {
    const c = new RawImap(net.connect(port, '127.0.0.1'));
    c.greeting = await c.line();
    return c;
  }

  private async line(): Promise<string> {
    for (;;) {
      const i = this.buf.indexOf('\r\n');
      if (i >= 0) {
        const l = this.buf.slice(0, i);
        this.buf = this.buf.slice(i + 2);
        return l;
      }
      await new Promise<void>((r) => this.waiters.push(r));
    }
  }

  /** All lines up to and including the tagged answer. */
  async cmd(c: string): Promise<string[]> {
    const tag = `t${++this.tag}`;
    this.sock.write(`${tag} ${c}\r\n`);
    const lines: string[] = [];
    for (;;) {
      const l = await this.line();
      lines.push(l);
      if (l.startsWith(`${tag} `)) return lines;
    }
  }

  /** A command ending in a synchronizing literal: waits for the server's "+" first. */
  async cmdWithLiteral(c: string, literal: string): Promise<string[]> {
    const tag = `t${++this.tag}`;
    this.sock.write(`${tag} ${c} {${Buffer.byteLength(literal, 'latin1')}}\r\n`);
    const cont = await this.line();
    if (!cont.startsWith('+')) return [cont];
    this.sock.write(`${literal}\r\n`);
    const lines: string[] = [];
    for (;;) {
      const l = await this.line();
      lines.push(l);
      if (l.startsWith(`${tag} `)) return lines;
    }
  }
}
