/**
 * Courier's POP3 server (courierpop3d from Debian, in the private lab of lab/courier.ts)
 * serves a message with 8-bit headers as a "Cannot display Unicode content" notice, different
 * on every download, unless the client enabled UTF-8 (RFC 6856). popsync sends UTF8 after
 * logging in whenever CAPA offers it, so the copy is the stored message. The destination is the
 * scripted IMAP server: what was appended is exactly what the test reads back.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCourier, type CourierLab } from '../../lab/courier.js';
import { BIN, ROOT, type CliResult } from '../support/cli.js';
import { startFakeImap, FAKE_PASSWORD, FAKE_USER, type FakeImap } from '../support/fake-imap.js';

let courier: CourierLab;
let imap: FakeImap;
const dir = mkdtempSync(join(tmpdir(), 'popsync-courier-utf8-'));
beforeAll(async () => {
  courier = await startCourier();
  imap = await startFakeImap();
});
afterAll(async () => {
  await imap?.close();
  await courier?.stop();
  rmSync(dir, { recursive: true, force: true });
});

function migrate(user: string): Promise<CliResult> {
  const args = [
    'migrate',
    '--pop',
    `pop3://${user}@127.0.0.1:${courier.pop3.port}`,
    '--pop-tls',
    'none',
    '--pop-password-env',
    'POP_PW',
    '--imap',
    `imap://${FAKE_USER}@127.0.0.1:${imap.port}`,
    '--imap-tls',
    'none',
    '--imap-password-env',
    'IMAP_PW',
    '--journal',
    join(dir, `${user}.sqlite`),
    '--no-progress',
    '--json',
  ];
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      cwd: ROOT,
      env: {
        PATH: process.env.PATH ?? '/usr/bin:/bin',
        HOME: dir,
        NO_COLOR: '1',
        POP_PW: courier.password,
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
}

describe('Courier POP3 and 8-bit messages', () => {
  it('copies the stored message, not the notice Courier serves to clients without UTF8', async () => {
    const user = await courier.newUser('utf8');
    // Stored with LF line ends, as a delivery agent does; courierpop3d serves CRLF.
    const stored = Buffer.concat([
      Buffer.from('From: a@example.org\nSubject: '),
      Buffer.from('Grüße aus Köln', 'utf8'),
      Buffer.from('\nMessage-ID: <u1@example.org>\n\nkörper\n', 'utf8'),
    ]);
    await courier.seedPop3(user, [stored]);
    const r = await migrate(user);
    expect(r.code, r.stderr).toBe(0);
    const copies = imap.appends.map((a) => a.body);
    expect(copies).toHaveLength(1);
    expect(copies[0]!.toString('utf8')).not.toContain('Cannot display Unicode content');
    expect(copies[0]).toEqual(Buffer.from(stored.toString('latin1').replace(/\n/g, '\r\n'), 'latin1'));
  });
});
