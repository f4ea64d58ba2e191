/**
 * imapflow's module tree is most of popsync's start-up CPU, so it is loaded only by connectImap,
 * once the APPEND connection's socket is being opened (src/imap/imapflow-load.ts). This counts the
 * modules a fresh node process loads (an ESM loader hook reports every URL) at each step: the CLI
 * entry and the IMAP side's index load none of imapflow's, a connectImap call does. No timing.
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
import { register } from 'node:module';
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
  const of = (pkg) => loaded.filter((u) => u.includes('/node_modules/' + pkg + '/')).length;
  console.log(JSON.stringify({ step: name, modules: loaded.length, imapflow: of('imapflow') }));
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
port1.close();
`;

describe('imapflow loads lazily', () => {
  it('the CLI entry and the IMAP index load none of imapflow; connectImap loads it', () => {
    const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', CHILD], {
      cwd: ROOT,
      encoding: 'utf8',
    });
    expect(r.stderr).toBe('');
    const steps = r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { step: string; modules: number; imapflow: number });
    expect(steps.map((s) => s.step)).toEqual(['cli', 'imap index', 'connectImap']);
    const [cli, index, connected] = steps;
    // The CLI loads most of popsync: a hook that saw nothing would not pass this.
    expect(cli!.modules).toBeGreaterThan(50);
    expect(cli!.imapflow).toBe(0);
    expect(index!.imapflow).toBe(0);
    expect(connected!.imapflow).toBeGreaterThan(10);
  });
});
