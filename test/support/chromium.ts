/**
 * Debian's headless Chromium for tests that must see a page the way a person's browser does:
 * a screenshot to look at, the DOM after parsing, and Chromium's own network log.
 *
 * Every run gets a fresh profile in its own temp dir (removed afterwards), flags that turn off
 * the browser's background chatter (sync, component updates, first-run pings), and a resolver
 * and proxy that make any network request fail on this machine, so a test can never depend on
 * or leak to the internet. The net log still records attempts, which is how a test proves the
 * page made none.
 */

import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const CHROMIUM_INSTALL =
  'apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium';

/** The browser binary, or an error that says how to install it (ensure-env.sh does for CI). */
function findChromium(): string {
  const candidates = [process.env.POPSYNC_CHROMIUM, '/usr/bin/chromium', '/usr/bin/chromium-browser'];
  for (const c of candidates) if (c && existsSync(c)) return c;
  throw new Error(
    `headless Chromium not found (looked for ${candidates.filter(Boolean).join(', ')}); as root run: ` +
      `${CHROMIUM_INSTALL}`,
  );
}

export interface ChromiumOptions {
  /** Write a PNG of the page here. */
  screenshot?: string;
  /** Return the DOM after load (serialised by Chromium) as stdout. */
  dumpDom?: boolean;
  /** Write Chromium's JSON net log here. */
  netLog?: string;
  windowSize?: [number, number];
  timeoutMs?: number;
}

/** Loads `url` once in a fresh headless browser; resolves with its stdout. */
export async function runChromium(url: string, o: ChromiumOptions = {}): Promise<string> {
  const bin = findChromium();
  const profile = mkdtempSync(join(tmpdir(), 'popsync-chromium-'));
  const [w, h] = o.windowSize ?? [1200, 2000];
  const args = [
    '--headless',
    '--no-sandbox', // containers and root: the setuid sandbox cannot start here
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    '--hide-scrollbars',
    `--user-data-dir=${profile}`,
    // Nothing can reach the network: names do not resolve and everything else goes to a
    // proxy on the discard port, which nobody serves.
    '--host-resolver-rules=MAP * ~NOTFOUND',
    '--proxy-server=127.0.0.1:9',
    `--window-size=${w},${h}`,
  ];
  if (o.screenshot) args.push(`--screenshot=${o.screenshot}`);
  if (o.dumpDom) args.push('--dump-dom');
  if (o.netLog) args.push(`--log-net-log=${o.netLog}`);
  args.push(url);

  try {
    return await new Promise<string>((resolve, reject) => {
      // Own process group, so a hung browser is ended with its zygote and renderers.
      const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => {
        stdout += d.toString();
      });
      child.stderr.on('data', (d: Buffer) => {
        stderr += d.toString();
      });
      const timer = setTimeout(() => {
        if (child.pid !== undefined) {
          try {
            process.kill(-child.pid, 'SIGKILL');
          } catch {
            // already gone
          }
        }
        reject(
          new Error(`chromium did not finish within ${o.timeoutMs ?? 15_000} ms; stderr:\n${stderr.slice(-2000)}`),
        );
      }, o.timeoutMs ?? 15_000);
      child.on('error', (e) => {
        clearTimeout(timer);
        reject(e);
      });
      child.on('close', (code, signal) => {
        clearTimeout(timer);
        // dbus and GPU complaints fill stderr on a headless box; they only matter on failure.
        if (code === 0) resolve(stdout);
        else reject(new Error(`chromium exited with ${code ?? signal}; stderr:\n${stderr.slice(-2000)}`));
      });
    });
  } finally {
    rmSync(profile, { recursive: true, force: true });
  }
}

export interface NetRequest {
  url: string;
  /** Who asked: 'file://…' for a page opened from disk, 'null null' etc. for the browser itself. */
  isolationKey: string;
}

/** Every URL request in a Chromium net log (JSON written by --log-net-log). */
function netLogRequests(path: string): NetRequest[] {
  const log = JSON.parse(readFileSync(path, 'utf8')) as {
    constants: { logEventTypes: Record<string, number> };
    events: { type: number; params?: { url?: string; network_isolation_key?: string } }[];
  };
  const start = log.constants.logEventTypes.URL_REQUEST_START_JOB;
  return log.events
    .filter((e) => e.type === start && typeof e.params?.url === 'string')
    .map((e) => ({ url: e.params!.url!, isolationKey: e.params!.network_isolation_key ?? '' }));
}

/** Requests a file:// page made for something that is not itself a file. */
export function pageNetworkRequests(path: string): NetRequest[] {
  return netLogRequests(path).filter((r) => r.isolationKey.startsWith('file://') && !r.url.startsWith('file:'));
}

/**
 * Every src/href-like attribute value in an HTML text's real tags. Attributes are read in
 * sequence, so markup quoted inside another attribute (an escaped subject in a title) is
 * never taken for one; escaped text has no raw `<` and yields nothing.
 */
export function urlAttributes(html: string): string[] {
  return [...html.matchAll(/<[a-z][^\s>]*((?:\s+[^\s=>]+(?:\s*=\s*(?:"[^"]*"|'[^']*'|[^\s>]+))?)*)\s*\/?>/gi)].flatMap(
    (tag) =>
      [...tag[1]!.matchAll(/\s+([^\s=>]+)(?:\s*=\s*("[^"]*"|'[^']*'|[^\s>]+))?/g)]
        .filter((a) => /^(?:xlink:)?(?:src|href|srcset|action|poster|data)$/i.test(a[1]!))
        .map((a) => a[2] ?? ''),
  );
}
