/**
 * Cyrus's POP3 server (Debian's, in the private lab of lab/cyrus.ts) with `popminpoll`
 * set refuses a login that comes too soon after the previous one with -ERR [LOGIN-DELAY]. A
 * delay longer than popsync waits (here 2 minutes) ends the run at once with exit 75 and one
 * connection, where popsync used to reconnect five times within 31 s. The destination is the
 * scripted IMAP server.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCyrus, type CyrusLab } from '../../lab/cyrus.js';
import { BIN, ROOT, type CliResult } from '../support/cli.js';
import { startFakeImap, FAKE_PASSWORD, FAKE_USER, type FakeImap } from '../support/fake-imap.js';

let cyrus: CyrusLab;
let imap: FakeImap;
const dir = mkdtempSync(join(tmpdir(), 'popsync-cyrus-delay-'));
beforeAll(async () => {
  cyrus = await startCyrus({ popMinPoll: 2 });
  imap = await startFakeImap();
});
afterAll(async () => {
  await imap?.close();
  await cyrus?.stop();
  rmSync(dir, { recursive: true, force: true });
});

function run(cmd: string, user: string): Promise<CliResult & { ms: number }> {
  const args = [
    cmd,
    '--pop',
    `pop3://${user}@127.0.0.1:${cyrus.pop3.port}`,
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
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      cwd: ROOT,
      env: {
        PATH: process.env.PATH ?? '/usr/bin:/bin',
        HOME: dir,
        NO_COLOR: '1',
        POP_PW: cyrus.password,
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
    const guard = setTimeout(() => child.kill('SIGKILL'), 90_000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(guard);
      resolve({ code, signal, stdout, stderr, ms: Date.now() - started });
    });
  });
}

describe('Cyrus popminpoll: [LOGIN-DELAY]', () => {
  it(
    'a second run within the delay exits 75 at once, naming the delay, without reconnecting',
    { timeout: 200_000 },
    async () => {
      const user = await cyrus.newUser('delay');
      await cyrus.seedPop3(user, [
        Buffer.from('From: a@example.org\r\nSubject: one\r\nMessage-ID: <d1@example.org>\r\n\r\nbody\r\n'),
      ]);
      const first = await run('migrate', user);
      expect(first.code, first.stderr).toBe(0);
      const second = await run('migrate', user);
      expect(second.code, second.stderr).toBe(75);
      expect(second.stderr).toMatch(/LOGIN-DELAY/);
      // Cyrus states popminpoll in its CAPA (LOGIN-DELAY 120).
      expect(second.stderr).toMatch(/one login every 120 s/);
      expect(second.stderr).not.toMatch(/reconnecting/);
      expect(second.stderr).not.toMatch(/^\s+at /m);
      console.log(`Cyrus LOGIN-DELAY: exit ${second.code} after ${second.ms} ms; stderr: ${second.stderr.trim()}`);
    },
  );
});
