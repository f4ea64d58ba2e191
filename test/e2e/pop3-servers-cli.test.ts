/**
 * The real binary against scripted POP3 servers that identify or serve messages differently
 * from Dovecot (issue 12 parts 7 and 9, issue 7 item 10), with the scripted IMAP server as the
 * destination, so each test sees exactly what was appended:
 * - popa3d names identical messages with one UIDL;
 * - a server reuses a UIDL popsync deleted for a new message;
 * - Courier serves 8-bit messages as a notice unless the client sends UTF8;
 * - a server sends UIDLs with a space or 8-bit bytes.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { BIN, ROOT, type CliResult } from '../support/cli.js';
import { startFakeImap, FAKE_PASSWORD, FAKE_USER, type FakeImap } from '../support/fake-imap.js';
import { startFakePop3, type FakePop3, type FakePop3Options } from '../support/fake-pop3.js';

const dir = mkdtempSync(join(tmpdir(), 'popsync-servers-'));
let servers: Array<FakePop3 | FakeImap> = [];
afterEach(async () => {
  await Promise.all(servers.map((s) => s.close()));
  servers = [];
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const POP_PASSWORD = 'pop-secret-servers';
let journals = 0;

const message = (i: number): string =>
  `From: a${i}@example.org\r\nSubject: message ${i}\r\nMessage-ID: <m${i}@example.org>\r\n\r\nbody ${i}\r\n`;

async function pair(
  pop: FakePop3Options,
): Promise<{ pop: FakePop3; imap: FakeImap; run: (cmd: string, extra?: string[]) => Promise<CliResult> }> {
  const p = await startFakePop3({ user: 'src', password: POP_PASSWORD, ...pop });
  const i = await startFakeImap();
  servers.push(p, i);
  const journal = join(dir, `j${journals++}.sqlite`);
  const run = (cmd: string, extra: string[] = []): Promise<CliResult> =>
    new Promise((resolve, reject) => {
      const args = [
        cmd,
        '--pop',
        `pop3://src@127.0.0.1:${p.port}`,
        '--pop-tls',
        'none',
        '--pop-password-env',
        'POP_PW',
        '--imap',
        `imap://${FAKE_USER}@127.0.0.1:${i.port}`,
        '--imap-tls',
        'none',
        '--imap-password-env',
        'IMAP_PW',
        '--journal',
        journal,
        ...(cmd === 'plan' ? ['--format', 'json'] : ['--no-progress', '--json']),
        ...extra,
      ];
      const child = spawn(process.execPath, [BIN, ...args], {
        cwd: ROOT,
        env: {
          PATH: process.env.PATH ?? '/usr/bin:/bin',
          HOME: dir,
          NO_COLOR: '1',
          POP_PW: POP_PASSWORD,
          IMAP_PW: FAKE_PASSWORD,
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => {
        stdout += d.toString();
      });
      child.stderr.on('data', (d: Buffer) => {
        stderr += d.toString();
      });
      const guard = setTimeout(() => child.kill('SIGKILL'), 60_000);
      child.on('error', reject);
      child.on('close', (code, signal) => {
        clearTimeout(guard);
        resolve({ code, signal, stdout, stderr });
      });
    });
  return { pop: p, imap: i, run };
}

const appended = (imap: FakeImap): string[] => imap.appends.map((a) => a.body.toString('latin1'));

describe('popa3d: one UIDL for identical messages', () => {
  it('copies every message once, the identical ones by header hash, and a rerun copies nothing (exit 0)', async () => {
    const same = message(1);
    const { imap, run } = await pair({
      messages: [
        { body: same, uidl: 'c4ca4238a0b923820dcc509a6f75849b' },
        { body: message(2), uidl: 'c81e728d9d4c2f636f067f89cc14862c' },
        { body: same, uidl: 'c4ca4238a0b923820dcc509a6f75849b' },
      ],
    });
    const plan = await run('plan');
    expect(plan.code, plan.stderr).toBe(0);
    expect((JSON.parse(plan.stdout).messages as Array<{ status: string }>).map((m) => m.status)).toEqual([
      'new',
      'new',
      'new',
    ]);
    const first = await run('migrate');
    expect(first.code, first.stderr).toBe(0);
    expect(JSON.parse(first.stdout)).toMatchObject({ copied: 3, failed: [] });
    expect(appended(imap).sort()).toEqual([same, same, message(2)].sort());
    const again = await run('migrate');
    expect(again.code, again.stderr).toBe(0);
    expect(JSON.parse(again.stdout)).toMatchObject({ copied: 0, alreadyCopied: 3, failed: [] });
    expect(imap.appends).toHaveLength(3);
  });

  it('a message copied while its UIDL was unique is not copied again when an identical one arrives', async () => {
    const same = message(7);
    const { pop, imap, run } = await pair({ messages: [{ body: same, uidl: 'h7' }] });
    expect((await run('sync')).code).toBe(0);
    pop.mailbox.push({ uidl: 'h7', body: Buffer.from(same, 'latin1') });
    const r = await run('sync');
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ copied: 1, failed: [] });
    expect(appended(imap)).toEqual([same, same]);
    const third = await run('sync');
    expect(JSON.parse(third.stdout)).toMatchObject({ copied: 0, failed: [] });
  });
});

describe('popa3d with sync --delete', () => {
  it(
    'deletes identical messages under one UIDL only after each was copied, and one arriving later is ' + 'copied too',
    async () => {
      const same = message(3);
      const { pop, imap, run } = await pair({
        messages: [
          { body: same, uidl: 'eccbc87e' },
          { body: message(4), uidl: 'a87ff679' },
          { body: same, uidl: 'eccbc87e' },
        ],
      });
      const r = await run('sync', ['--delete']);
      expect(r.code, r.stderr).toBe(0);
      expect(JSON.parse(r.stdout)).toMatchObject({ copied: 3, deleted: 3, failed: [] });
      expect(pop.mailbox).toHaveLength(0);
      pop.mailbox.push({ uidl: 'eccbc87e', body: Buffer.from(same, 'latin1') });
      const later = await run('sync', ['--delete']);
      expect(later.code, later.stderr).toBe(0);
      expect(JSON.parse(later.stdout)).toMatchObject({ copied: 1, deleted: 1 });
      expect(appended(imap).sort()).toEqual([same, same, same, message(4)].sort());
    },
  );
});

describe('a UIDL popsync deleted, reused by the server', () => {
  it('is a new message: copied (before: "nothing new", exit 0, never copied)', async () => {
    const { pop, imap, run } = await pair({ messages: [{ body: message(1), uidl: 'reuse-me' }] });
    const first = await run('sync', ['--delete']);
    expect(first.code, first.stderr).toBe(0);
    expect(pop.mailbox).toHaveLength(0);
    // The server hands the same UIDL to the next message of the same size.
    pop.mailbox.push({ uidl: 'reuse-me', body: Buffer.from(message(2), 'latin1') });
    const plan = await run('plan');
    expect(plan.code, plan.stderr).toBe(0);
    expect((JSON.parse(plan.stdout).messages as Array<{ status: string }>).map((m) => m.status)).toEqual(['new']);
    const second = await run('sync');
    expect(second.code, second.stderr).toBe(0);
    expect(JSON.parse(second.stdout)).toMatchObject({ copied: 1, reusedUidls: ['reuse-me'] });
    expect(appended(imap)).toEqual([message(1), message(2)]);
  });
});

describe('Courier: UTF8', () => {
  it('copies an 8-bit message as stored, not the "Cannot display Unicode content" notice', async () => {
    const eightBit = Buffer.concat([
      Buffer.from('From: a@example.org\r\nSubject: '),
      Buffer.from('Grüße', 'utf8'),
      Buffer.from('\r\n\r\nkörper\r\n'.replace('ö', 'o')),
    ]);
    const utf8 = new Set<number>();
    const { imap, run } = await pair({
      messages: [eightBit],
      capa: ['TOP', 'UIDL', 'USER', 'UTF8', 'RESP-CODES'],
      sasl: [],
      handlers: {
        UTF8: (ctx) => {
          utf8.add(ctx.connection);
          ctx.reply('+OK UTF8 enabled');
        },
        RETR: (ctx) =>
          utf8.has(ctx.connection)
            ? ctx.useDefault()
            : ctx.replyMulti(
                '+OK',
                `From: Mail Delivery Subsystem <postmaster>\r\nSubject: Cannot display Unicode ` +
                  `content\r\nX-Nonce: ${Math.random()}\r\n\r\n...\r\n`,
              ),
      },
    });
    const r = await run('migrate');
    expect(r.code, r.stderr).toBe(0);
    expect(imap.appends.map((a) => a.body)).toEqual([eightBit]);
  });
});

describe('UIDLs RFC 1939 does not allow', () => {
  it(
    'fails just those messages with the UIDL shown, copies the rest (exit 1), and never cuts at ' + 'the space',
    async () => {
      const { imap, run } = await pair({
        messages: [
          { body: message(1), uidl: 'has space' },
          { body: message(2), uidl: 'fine-2' },
          { body: message(3), uidl: 'has' },
        ],
      });
      const r = await run('migrate');
      expect(r.code, r.stderr).toBe(1);
      const failed = JSON.parse(r.stdout).failed as Array<{ n: number; reason: string }>;
      expect(failed.map((f) => f.n)).toEqual([1]);
      expect(failed[0]!.reason).toMatch(/UIDL "has\\x20space".*0x21-0x7E/);
      expect(appended(imap)).toEqual([message(2), message(3)]);
    },
  );
});
