/**
 * What start-up loads, counted in a fresh node process: an ESM loader hook reports every module
 * URL, require.cache holds what was required. imapflow's module tree is most of popsync's start-up
 * CPU, so only connectImap loads it, once the APPEND connection's socket is being opened
 * (src/imap/imapflow-load.ts); postal-mime and csv-parse are required on first use
 * (mapping/decode.ts, config/account-list.ts). The CLI entry loads none of them. No timing.
 */
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = path.resolve(__dirname, '../..');

/**
 * Runs in the child (with tsx's hooks for the .ts sources). A sentinel module is loaded after each
 * step: the hook reports URLs in load order on one port, so once the sentinel arrives, everything
 * the step loaded has arrived too.
 */
const CHILD = `
import { createRequire, register } from 'node:module';
import net from 'node:net';
const { port1, port2 } = new MessageChannel();
const loaded = [];
let arrived = () => {};
port1.on('message', (u) => { loaded.push(u); if (u.startsWith('data:')) arrived(); });
const hook = 'let port; export function initialize(d) { port = d.port; }' +
  ' export async function load(u, c, n) { port.postMessage(u); return n(u, c); }';
register('data:text/javascript,' + encodeURIComponent(hook), { data: { port: port2 }, transferList: [port2] });
let step = 0;
async function count(name) {
  const seen = new Promise((r) => { arrived = r; });
  await import('data:text/javascript,export default ' + ++step);
  await seen;
  const all = [...loaded, ...Object.keys(createRequire(import.meta.url).cache)];
  const of = (pkg) => all.filter((u) => u.includes('/node_modules/' + pkg + '/')).length;
  const pkgs = ['imapflow', 'postal-mime', 'csv-parse', 'oauth4webapi'];
  const counts = Object.fromEntries(pkgs.map((p) => [p, of(p)]));
  // What only \`popsync plan\` (and --dry-run) needs: the preview and the renderers.
  counts.planOnly = loaded.filter((u) => /\\/src\\/(app\\/plan-account|report\\/plan-render)\\.ts$/.test(u)).length;
  console.log(JSON.stringify({ step: name, modules: loaded.length, ...counts }));
}
await import(${JSON.stringify(path.join(ROOT, 'src/cli/main.ts'))});
await count('cli');
const { connectImap } = await import(${JSON.stringify(path.join(ROOT, 'src/imap/index.ts'))});
await count('imap index');
// A server that greets with BYE: the connect fails at once, after its socket opened.
const server = net.createServer((s) => s.end('* BYE not today\\r\\n'));
await new Promise((r) => server.listen(0, '127.0.0.1', r));
const err = await connectImap({ host: '127.0.0.1', port: server.address().port, tls: 'none', user: 'u',
  password: 'p', timeoutMs: 20000 }).then(() => null, (e) => e);
server.close();
await count(err === null ? 'connected?' : 'connectImap');
const { decodeHeaderValue } = await import(${JSON.stringify(path.join(ROOT, 'src/mapping/decode.ts'))});
decodeHeaderValue('=?utf-8?q?caf=C3=A9?=');
await count('decode');
const { parseAccountList } = await import(${JSON.stringify(path.join(ROOT, 'src/config/account-list.ts'))});
parseAccountList('name,source,destination\\na,pop3://u@h,imap://u@h\\n', 'accounts.csv');
await count('account list');
// The control of the pattern above: what \`popsync plan\` imports when it runs.
await import(${JSON.stringify(path.join(ROOT, 'src/app/plan-account.ts'))});
await count('plan');
port1.close();
`;

/**
 * Both IMAP connections open while imapflow loads: the hook holds every imapflow module until the
 * server has accepted two connections (the APPEND connection's, then imapflow's, early-socket.ts).
 * Before, imapflow's socket opened only after the load, so the second never came (the spawn's
 * timeout ends that run). The server never greets: nothing after the connects matters here.
 */
const HELD_LOAD_CHILD = `
import { register } from 'node:module';
import net from 'node:net';
const { port1, port2 } = new MessageChannel();
const hook = 'let port; let go; const released = new Promise((r) => { go = r; });' +
  ' export function initialize(d) { port = d.port; port.on("message", () => go()); port.unref(); }' +
  ' export async function load(u, c, n) { if (u.includes("/node_modules/imapflow/")) await released; return n(u, c); }';
register('data:text/javascript,' + encodeURIComponent(hook), { data: { port: port2 }, transferList: [port2] });
let accepted = 0;
const sockets = [];
let second = () => {};
const both = new Promise((r) => { second = r; });
const server = net.createServer((s) => { sockets.push(s); s.on('error', () => {}); if (++accepted === 2) second(); });
await new Promise((r) => server.listen(0, '127.0.0.1', r));
const { connectImap } = await import(${JSON.stringify(path.join(ROOT, 'src/imap/index.ts'))});
const result = connectImap({ host: '127.0.0.1', port: server.address().port, tls: 'none', user: 'u',
  password: 'p', timeoutMs: 60000 }).then(() => 'connected', () => 'failed');
await both;
console.log(JSON.stringify({ acceptedWhileLoading: accepted }));
port1.postMessage('release');
for (const s of sockets) s.destroy();
server.close();
console.log(JSON.stringify({ connectImap: await result }));
port1.close();
`;

type Step = { step: string; modules: number } & Record<
  'imapflow' | 'postal-mime' | 'csv-parse' | 'oauth4webapi' | 'planOnly',
  number
>;

describe('start-up loads only what it needs', () => {
  it('the CLI entry loads none of imapflow, postal-mime, csv-parse, oauth4webapi; their first use does', () => {
    const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', CHILD], {
      cwd: ROOT,
      encoding: 'utf8',
    });
    expect(r.stderr).toBe('');
    const steps = r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Step);
    expect(steps.map((s) => s.step)).toEqual(['cli', 'imap index', 'connectImap', 'decode', 'account list', 'plan']);
    const [cli, index, connected, decoded, listed, planned] = steps;
    // The CLI loads most of popsync: a hook that saw nothing would not pass this.
    expect(cli!.modules).toBeGreaterThan(50);
    expect(cli).toMatchObject({ imapflow: 0, 'postal-mime': 0, 'csv-parse': 0, oauth4webapi: 0, planOnly: 0 });
    expect(index!.imapflow).toBe(0);
    expect(connected!.imapflow).toBeGreaterThan(10);
    expect(connected!['postal-mime']).toBe(0);
    expect(decoded!['postal-mime']).toBeGreaterThan(0);
    expect(decoded!['csv-parse']).toBe(0);
    expect(listed!['csv-parse']).toBeGreaterThan(0);
    expect(listed!.planOnly).toBe(0);
    expect(planned!.planOnly).toBe(1);
  });

  it("imapflow's connection opens while imapflow loads, beside the APPEND connection", () => {
    const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', HELD_LOAD_CHILD], {
      cwd: ROOT,
      encoding: 'utf8',
      // Only the code before early-socket.ts waits this long (for a connection it never opens).
      timeout: 30_000,
    });
    expect(r.stderr).toBe('');
    expect(
      r.stdout
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as unknown),
    ).toEqual([{ acceptedWhileLoading: 2 }, { connectImap: 'failed' }]);
  });
});
