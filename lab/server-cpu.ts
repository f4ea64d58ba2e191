/**
 * Where a bench run's server time goes: the CPU of Dovecot's process tree during a measurement,
 * split by process name (/proc/PID/comm): `pop3` and `imap` do the mail work, `pop3-login` and
 * `imap-login` the TLS of their connections (Dovecot's login process stays in front of a TLS
 * session as its proxy), and the rest (master, auth, log, ...) is "other".
 *
 * The total counts the children Dovecot's master has reaped (their CPU moves into its cutime),
 * so it is exact. The split can only see live processes: the tree is sampled every
 * SAMPLE_MS and on demand (call sample() right before the measured connections close), and
 * what a process spent after its last sample lands in "other".
 */
import { readFileSync } from 'node:fs';

const SAMPLE_MS = 50;
/** USER_HZ is 100 on Linux: one tick is 10 ms. */
const TICK_MS = 10;

interface Proc {
  comm: string;
  /** utime + stime: this process's own CPU. */
  own: number;
  /** cutime + cstime: its reaped children's. */
  reaped: number;
}

function readProc(pid: number): Proc | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const close = stat.lastIndexOf(')');
    const f = stat.slice(close + 2).split(' ');
    return {
      comm: stat.slice(stat.indexOf('(') + 1, close),
      own: Number(f[11]) + Number(f[12]),
      reaped: Number(f[13]) + Number(f[14]),
    };
  } catch {
    return undefined; // gone meanwhile
  }
}

/** The live descendants of `root` (not root itself), through /proc's children lists. */
function descendants(root: number): number[] {
  const out: number[] = [];
  const queue = [root];
  while (queue.length > 0) {
    const pid = queue.pop()!;
    let kids: string;
    try {
      kids = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8');
    } catch {
      continue;
    }
    for (const k of kids.split(' ')) {
      if (k === '') continue;
      out.push(Number(k));
      queue.push(Number(k));
    }
  }
  return out;
}

/**
 * Ticks of the whole tree, reaped children included. A child reaped while the tree is read
 * would be missed (read after its exit) or counted twice (read before, and again in the
 * master's cutime), so the read is repeated until the set of children is the same before and
 * after it.
 */
function treeTicks(root: number): number {
  for (let attempt = 0; ; attempt++) {
    const kids = descendants(root);
    let ticks = 0;
    for (const pid of kids) {
      const p = readProc(pid);
      if (p) ticks += p.own + p.reaped;
    }
    const r = readProc(root);
    if (r) ticks += r.own + r.reaped;
    if (attempt >= 20 || descendants(root).join() === kids.join()) return ticks;
  }
}

export interface ServerCpuSplit {
  totalMs: number;
  /** Milliseconds by process name, largest first; what could not be attributed is 'other'. */
  byName: Array<[string, number]>;
}

/** Measures from construction until stop(). */
export class ServerCpu {
  private readonly startTicks: number;
  /** Own ticks of each process when first seen; 0 for one born during the measurement. */
  private readonly base = new Map<number, number>();
  private readonly last = new Map<number, Proc>();
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly root: number) {
    this.startTicks = treeTicks(root);
    for (const pid of descendants(root)) {
      const p = readProc(pid);
      if (p) this.base.set(pid, p.own);
    }
    this.timer = setInterval(() => this.sample(), SAMPLE_MS);
    this.timer.unref();
  }

  sample(): void {
    for (const pid of descendants(this.root)) {
      const p = readProc(pid);
      if (p) {
        this.last.set(pid, p);
        if (!this.base.has(pid)) this.base.set(pid, 0);
      }
    }
  }

  stop(): ServerCpuSplit {
    this.sample();
    clearInterval(this.timer);
    const totalMs = (treeTicks(this.root) - this.startTicks) * TICK_MS;
    const by = new Map<string, number>();
    let attributed = 0;
    for (const [pid, p] of this.last) {
      const ms = (p.own - (this.base.get(pid) ?? 0)) * TICK_MS;
      if (ms <= 0) continue;
      const name = /^(pop3|imap)(-login)?$/.test(p.comm) ? p.comm : 'other';
      by.set(name, (by.get(name) ?? 0) + ms);
      attributed += ms;
    }
    by.set('other', (by.get('other') ?? 0) + Math.max(0, totalMs - attributed));
    return { totalMs, byName: [...by].filter(([, ms]) => ms > 0).sort((a, b) => b[1] - a[1]) };
  }
}

/** "1.23 s (imap 0.80, pop3 0.30, other 0.13)"; with a median's `range`, "1.23 s (1.10-1.40; imap 0.80, ...)". */
export function formatServerCpu(s: ServerCpuSplit, range?: string): string {
  const parts = [
    ...(range ? [range] : []),
    s.byName.map(([name, ms]) => `${name} ${(ms / 1000).toFixed(2)}`).join(', '),
  ].filter(Boolean);
  return `${(s.totalMs / 1000).toFixed(2)} s${parts.length ? ` (${parts.join('; ')})` : ''}`;
}
