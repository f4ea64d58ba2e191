/**
 * A loopback relay in front of a lab's POP3 and IMAP listeners that SIGKILLs the client once
 * a chosen number of bytes has crossed it, counting both directions of every connection.
 *
 * This is how the crash tests pick "a random instant": as a point in the run's work, not in
 * wall-clock time. A kill after N milliseconds misses every run that finishes sooner (a fast
 * build, an idle machine) and lands in start-up on a loaded one; a kill after N of the T bytes
 * a clean run carries lands inside the copy whatever the machine's speed, for any N < T.
 * Once it fires the relay forwards nothing more, so the client cannot get further than the
 * chosen byte before the signal lands.
 */
import type net from 'node:net';
import type { CliResult, startCli } from './cli.js';
import { startRelay } from './relay.js';

export interface KillRelay {
  /** Ports that relay to the lab's POP3 and IMAP listeners. */
  popPort: number;
  imapPort: number;
  /**
   * Starts a new count. With a threshold, `kill` is called (once) when the count reaches it,
   * after the bytes up to it were forwarded; without one, bytes are only counted.
   */
  arm(threshold: number | null, kill: () => void): void;
  /** Bytes carried since the last arm(). */
  carried(): number;
  close(): Promise<void>;
}

export async function startKillRelay(targets: { pop: number; imap: number }): Promise<KillRelay> {
  let count = 0;
  let threshold: number | null = null;
  let fired = false;
  let onReach: () => void = () => {};
  // Forwards what fits under the threshold; after the kill, nothing.
  const pass = (chunk: Buffer, to: net.Socket): void => {
    if (fired) return;
    if (threshold !== null && count + chunk.length >= threshold) {
      const head = chunk.subarray(0, threshold - count);
      count = threshold;
      if (head.length > 0) to.write(head);
      fired = true;
      onReach();
      return;
    }
    count += chunk.length;
    to.write(chunk);
  };

  const wire = (client: net.Socket, upstream: net.Socket): void => {
    upstream.on('data', (chunk: Buffer) => pass(chunk, client));
    client.on('data', (chunk: Buffer) => pass(chunk, upstream));
  };
  const pop = await startRelay(targets.pop, wire);
  const imap = await startRelay(targets.imap, wire);

  return {
    popPort: pop.port,
    imapPort: imap.port,
    arm(t, kill) {
      count = 0;
      threshold = t;
      fired = false;
      onReach = kill;
    },
    carried: () => count,
    close: async () => {
      await Promise.all([pop.close(), imap.close()]);
    },
  };
}

/**
 * Starts runs through `relay` and SIGKILLs each at a random byte, until one ends by itself or
 * `count` were killed. Each kill lands within the first 2/count of `span` (the bytes a whole run
 * carries), so a run makes about 1/count of the copy's progress on average and about `count`
 * kills land before one runs to the end; with `count` of at least 3 the first always lands. The
 * points come from `seed`, so a failure can be replayed. Returns the kills and the run that
 * ended by itself, if one did.
 */
export async function killAtRandomBytes(
  relay: KillRelay,
  span: number,
  count: number,
  seed: number,
  start: () => ReturnType<typeof startCli>,
): Promise<{ kills: number; finished: CliResult | null }> {
  const next = () => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed / 2 ** 31;
  };
  let kills = 0;
  try {
    for (let i = 0; i < count; i++) {
      const at = 1 + Math.floor((next() * 2 * span) / count);
      const run = start();
      relay.arm(at, () => run.child.kill('SIGKILL'));
      const r = await run.done;
      if (r.signal !== 'SIGKILL') return { kills, finished: r };
      kills++;
    }
    return { kills, finished: null };
  } finally {
    relay.arm(null, () => {});
  }
}
