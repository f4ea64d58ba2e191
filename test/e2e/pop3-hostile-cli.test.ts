/**
 * The real binary against a scripted hostile POP3 server (issue 7): endless replies and a
 * trickle end in exit 4 naming the server and the command (a RETR that does so fails only its
 * message, which is set aside: exit 1), within an RSS ceiling and a generous wall-clock bound on
 * the child; a server that echoes the password leaks it neither
 * to stderr nor to --log-file; a Cyrus-like [LOGIN-DELAY] exits 75 without reconnecting.
 *
 * Peak RSS is the child's VmHWM (the kernel's high-water mark) from /proc, sampled every 20 ms
 * until it exits.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { BIN, ROOT, type CliResult } from '../support/cli.js';
import { startFakeImap, FAKE_PASSWORD, FAKE_USER, type FakeImap } from '../support/fake-imap.js';
import { startFakePop3, type FakeContext, type FakePop3, type FakePop3Options } from '../support/fake-pop3.js';

const dir = mkdtempSync(join(tmpdir(), 'popsync-hostile-'));
let servers: Array<FakePop3 | FakeImap> = [];
afterEach(async () => {
  await Promise.all(servers.map((s) => s.close()));
  servers = [];
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const POP_PASSWORD = 'Hostile-Pw-4711';
/** What a run of popsync may use at most whatever the server sends (README: memory). */
const RSS_CEILING_MB = 200;
/** Far above what any of these runs needs on an idle machine; a hang or a flood takes minutes. */
const WALL_CLOCK_BOUND_MS = 45_000;
let journals = 0;

const message = (i: number): string =>
  `From: a${i}@example.org\r\nSubject: message ${i}\r\nMessage-ID: <m${i}@example.org>\r\n\r\nbody ${i}\r\n`;

interface Measured extends CliResult {
  peakRssMb: number;
  ms: number;
}

async function pair(
  pop: FakePop3Options,
): Promise<{ pop: FakePop3; imap: FakeImap; args: (cmd: string, extra?: string[]) => string[] }> {
  const p = await startFakePop3({ user: 'src', password: POP_PASSWORD, ...pop });
  const i = await startFakeImap();
  servers.push(p, i);
  const journal = join(dir, `j${journals++}.sqlite`);
  return {
    pop: p,
    imap: i,
    args: (cmd, extra = []) => [
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
      '--no-progress',
      ...extra,
    ],
  };
}

/** Runs the binary, sampling the child's VmHWM (peak RSS) until it exits. */
function runMeasured(args: string[]): Promise<Measured> {
  const started = Date.now();
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
  let peakKb = 0;
  const sample = (): void => {
    try {
      const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'));
      if (m) peakKb = Math.max(peakKb, Number(m[1]));
    } catch {
      // Gone already: the last sample stands.
    }
  };
  const sampler = setInterval(sample, 20);
  child.stdout.on('data', (d: Buffer) => {
    stdout += d.toString();
  });
  child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const guard = setTimeout(() => child.kill('SIGKILL'), 120_000);
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('exit', sample);
    child.on('close', (code, signal) => {
      clearInterval(sampler);
      clearTimeout(guard);
      resolve({ code, signal, stdout, stderr, peakRssMb: peakKb / 1024, ms: Date.now() - started });
    });
  });
}

function expectBounded(r: Measured, code: number): void {
  expect(r.signal, r.stderr).toBeNull();
  expect(r.code, r.stderr).toBe(code);
  expect(r.stderr).not.toMatch(/^\s+at /m);
  expect(r.stderr).not.toMatch(/internal error/);
  expect(r.peakRssMb, `peak RSS ${r.peakRssMb.toFixed(0)} MB`).toBeGreaterThan(0);
  expect(r.peakRssMb, `peak RSS ${r.peakRssMb.toFixed(0)} MB`).toBeLessThan(RSS_CEILING_MB);
  expect(r.ms).toBeLessThan(WALL_CLOCK_BOUND_MS);
}

/** Writes `status`, then `unit` as fast as the socket takes it, until the client hangs up (or 2 GB). */
function flood(status: string, unit: string) {
  return async (ctx: FakeContext): Promise<void> => {
    ctx.write(`${status}\r\n`);
    let closed = false;
    void (async () => {
      while ((await ctx.readLine()) !== null);
      closed = true;
    })();
    const chunk = Buffer.from(unit.repeat(Math.ceil(65536 / unit.length)));
    for (let sent = 0; !closed && sent < 2 * 1024 ** 3; sent += chunk.length) {
      ctx.write(chunk);
      await new Promise((r) => setImmediate(r));
    }
  };
}

describe('a POP3 server that never stops answering', () => {
  for (const verb of ['CAPA', 'LIST', 'UIDL'] as const) {
    it(
      `an endless ${verb}: exit 4 naming the server and ${verb}, within the RSS ceiling`,
      { timeout: 130_000 },
      async () => {
        const { pop, args } = await pair({
          messages: [message(1), message(2)],
          handlers: { [verb]: flood('+OK', verb === 'CAPA' ? 'X-JUNK AAAAAAAA\r\n' : '1 12345 more junk\r\n') },
        });
        const r = await runMeasured(args('migrate'));
        expectBounded(r, 4);
        expect(r.stderr).toContain(`127.0.0.1:${pop.port}`);
        expect(r.stderr).toMatch(new RegExp(`in reply to ${verb}`));
        console.log(
          `endless ${verb}: exit ${r.code}, peak RSS ${r.peakRssMb.toFixed(0)} MB (ceiling ` +
            `${RSS_CEILING_MB}), ${r.ms} ms`,
        );
      },
    );
  }

  it(
    'an endless RETR: that message is set aside at once (exit 1, server and command named), the others are copied',
    { timeout: 130_000 },
    async () => {
      const endless = flood('+OK', 'more and more body\r\n');
      const { pop, imap, args } = await pair({
        messages: [message(1), message(2)],
        handlers: { RETR: (ctx, a) => (a[0] === '1' ? endless(ctx) : ctx.useDefault()) },
      });
      const r = await runMeasured(args('migrate', ['--json']));
      expectBounded(r, 1);
      const failed = JSON.parse(r.stdout).failed as Array<{ n: number; reason: string }>;
      expect(failed).toHaveLength(1);
      expect(failed[0]!.n).toBe(1);
      expect(failed[0]!.reason).toMatch(
        new RegExp(`set aside.*127\\.0\\.0\\.1:${pop.port} sent more than .* in reply to RETR 1`),
      );
      expect(imap.appends.map((a) => a.body.toString())).toEqual([message(2)]);
      console.log(
        `endless RETR: exit ${r.code}, peak RSS ${r.peakRssMb.toFixed(0)} MB (ceiling ${RSS_CEILING_MB}), ${r.ms} ms`,
      );
    },
  );
});

/** Sends `wire` one byte every `everyMs` until done or the client hangs up. */
function trickle(wire: string, everyMs: number) {
  return async (ctx: FakeContext): Promise<void> => {
    let closed = false;
    void (async () => {
      while ((await ctx.readLine()) !== null);
      closed = true;
    })();
    for (let i = 0; i < wire.length && !closed; i++) {
      ctx.write(wire[i]!);
      await new Promise((r) => setTimeout(r, everyMs));
    }
  };
}

describe('a POP3 server that trickles', () => {
  it('one byte of LIST every 300 ms with --timeout 2: exit 4, too slow, named', { timeout: 130_000 }, async () => {
    const { pop, args } = await pair({
      messages: [message(1)],
      handlers: { LIST: trickle(`+OK\r\n${'1 100\r\n'.repeat(1000)}`, 300) },
    });
    const r = await runMeasured(args('migrate', ['--timeout', '2']));
    expectBounded(r, 4);
    expect(r.stderr).toContain(`127.0.0.1:${pop.port}`);
    expect(r.stderr).toMatch(/reply to LIST too slowly/);
    console.log(`LIST trickle: exit ${r.code}, peak RSS ${r.peakRssMb.toFixed(0)} MB, ${r.ms} ms`);
  });

  it(
    'one byte of a RETR every 300 ms: tried again, then set aside (exit 1); the other message is copied',
    { timeout: 130_000 },
    async () => {
      const slow = trickle(`+OK\r\n${'t'.repeat(100_000)}`, 300);
      const { imap, args } = await pair({
        messages: [message(1), message(2)],
        handlers: { RETR: (ctx, a) => (a[0] === '1' ? slow(ctx) : ctx.useDefault()) },
      });
      const r = await runMeasured(args('migrate', ['--timeout', '2', '--json']));
      expectBounded(r, 1);
      const failed = JSON.parse(r.stdout).failed as Array<{ n: number; reason: string }>;
      expect(failed.map((f) => f.n)).toEqual([1]);
      expect(failed[0]!.reason).toMatch(/set aside.*reply to RETR 1 too slowly/);
      expect(imap.appends.map((a) => a.body.toString())).toEqual([message(2)]);
      console.log(`RETR trickle: exit ${r.code}, peak RSS ${r.peakRssMb.toFixed(0)} MB, ${r.ms} ms`);
    },
  );
});

describe('a POP3 server that echoes the password', () => {
  it('neither stderr nor --log-file holds it, in any form popsync sent it', { timeout: 130_000 }, async () => {
    const { args } = await pair({
      sasl: [],
      handlers: { PASS: (ctx, a) => ctx.reply(`-ERR [AUTH] invalid password: ${a.join(' ')}`) },
    });
    const logFile = join(dir, 'echo.log');
    const r = await runMeasured(args('migrate', ['--log-file', logFile]));
    expect(r.code, r.stderr).toBe(3);
    expect(r.stderr).toContain('invalid password: ****');
    expect(existsSync(logFile)).toBe(true);
    const log = readFileSync(logFile, 'utf8');
    for (const form of [POP_PASSWORD, Buffer.from(POP_PASSWORD).toString('base64')]) {
      expect(r.stderr).not.toContain(form);
      expect(r.stdout).not.toContain(form);
      expect(log).not.toContain(form);
    }
  });
});

describe('Cyrus-like [LOGIN-DELAY]', () => {
  it('a long stated delay exits 75 at once: one connection, no reconnect attempts', { timeout: 130_000 }, async () => {
    const { pop, args } = await pair({
      sasl: [],
      capa: ['TOP', 'UIDL', 'USER', 'RESP-CODES', 'LOGIN-DELAY 900'],
      handlers: { PASS: (ctx) => ctx.reply('-ERR [LOGIN-DELAY] Minimum time between mail checks violated') },
    });
    const r = await runMeasured(args('migrate'));
    expect(r.code, r.stderr).toBe(75);
    expect(r.stderr).toMatch(/one login every 900 s/);
    expect(pop.connections).toBe(1);
  });
});
