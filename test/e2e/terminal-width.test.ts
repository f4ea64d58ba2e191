/**
 * A terminal that reports no width (script(1) without a size, some `docker run -t`) must not
 * send the spinner into a loop: ora divides by the width to know how many lines to clear, and a
 * width of 0 made it write "cursor up, clear line" forever (35 MB in 10 s, the run never ended).
 * Runs the real binary under script(1) against a port where nothing listens.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { BIN } from '../support/cli.js';

function closedPort(): Promise<number> {
  return new Promise((resolve) => {
    const srv = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

/** Runs `command` on a pseudo-terminal of the given size; at most `cap` bytes are kept. */
function underScript(command: string, cap: number): Promise<{ out: string; bytes: number }> {
  return new Promise((resolve) => {
    const child = spawn('script', ['-qfec', command, '/dev/null'], {
      env: { ...process.env, PW: 'x' },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let bytes = 0;
    const kept: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => {
      bytes += b.length;
      if (bytes <= cap) kept.push(b);
      // Bounded: a looping spinner is stopped as soon as it has shown itself.
      else child.kill('SIGKILL');
    });
    child.on('close', () => resolve({ out: Buffer.concat(kept).toString('latin1'), bytes }));
  });
}

describe('progress on a terminal without a width', () => {
  it('prints plain lines and ends with the connection error instead of clearing lines forever', async () => {
    const port = await closedPort();
    const dir = mkdtempSync(join(tmpdir(), 'popsync-tty-'));
    const run =
      `node ${BIN} migrate --pop pop3://a@127.0.0.1:${port} --pop-tls none --imap imap://b@127.0.0.1:${port} ` +
      `--imap-tls none ` +
      `--pop-password-env PW --imap-password-env PW --journal ${join(dir, 'j.sqlite')}`;
    const { out, bytes } = await underScript(`stty cols 0 rows 0; ${run}; echo "exit=$?"`, 64 * 1024);
    expect(bytes).toBeLessThan(64 * 1024);
    expect(out).toContain(`127.0.0.1:${port}`);
    expect(out).toMatch(/exit=4/);
    rmSync(dir, { recursive: true, force: true });
  }, 60_000);
});
