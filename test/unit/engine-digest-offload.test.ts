/**
 * Hashing on the digest worker (digest-offload.ts): the digests it gives are the ones inline
 * hashing gives (they are stored in journals), for every edge case, however the message arrived
 * in chunks and wherever it lay in the shared ring; a worker that cannot start or dies costs
 * nothing but hashing inline; an idle worker never keeps the process alive.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { edgeCases, Prng, toCrlf } from '../../lab/corpus.js';
import { DigestOffload, OFFLOAD_MIN_BYTES, RING_BYTES } from '../../src/engine/digest-offload.js';
import type { Digests } from '../../src/engine/digests.js';
import { Fingerprinter } from '../../src/engine/fingerprint.js';
import { BodyCollector, withDigests } from '../../src/engine/received.js';
import { Spool } from '../../src/engine/spool.js';
import { HOSTILE_KINDS, hostileMessage } from '../support/hostile-mail.js';

const ROOT = new URL('../../', import.meta.url);
const WORKER_TS = new URL('src/engine/digest-worker.ts', ROOT).href;

/**
 * The real worker module, from its TypeScript source: tsx's loader is registered inside the
 * worker (Node 20 does not pass the parent's loader hooks on). The build runs dist/'s .js file.
 */
const workerSource = (): string =>
  `(async () => { (await import('tsx/esm/api')).register(); await import(${JSON.stringify(WORKER_TS)}); })()`;

/**
 * An offload on the real worker, the number of digests the worker itself answered, and its
 * start (the first message large enough starts it).
 */
function realOffload(): {
  offload: DigestOffload;
  answered: () => number;
  ready: Promise<void>;
  started: () => Promise<void>;
} {
  let answered = 0;
  let ready!: () => void;
  const isReady = new Promise<void>((r) => {
    ready = r;
  });
  const offload = new DigestOffload((ring) => {
    const w = new Worker(workerSource(), { eval: true, workerData: { ring } });
    w.on('message', (a: object) => ('ready' in a ? ready() : answered++));
    return w;
  });
  const started = async (): Promise<void> => {
    await offload.digest(Buffer.alloc(OFFLOAD_MIN_BYTES));
    await isReady;
  };
  return { offload, answered: () => answered, ready: isReady, started };
}

/**
 * A worker that hashes (as the real one does, from the ring) only when the test says so: one
 * job per { go: true }, oldest first. What it hashes is what the ring holds by then.
 */
const gatedWorkerSource = (): string => `(async () => {
  (await import('tsx/esm/api')).register();
  const { digestsOf } = await import(${JSON.stringify(new URL('src/engine/digests.ts', ROOT).href)});
  const { parentPort, workerData } = await import('node:worker_threads');
  const ring = new Uint8Array(workerData.ring);
  const queued = [];
  parentPort.on('message', (m) => {
    if (!m.go) return void queued.push(m);
    const { id, at, length } = queued.shift();
    parentPort.postMessage({ id, ...digestsOf(ring.subarray(at, at + length)) });
  });
  parentPort.postMessage({ ready: true });
})()`;

/** A worker that says it is ready and exits on the first message it is given. */
const dyingWorker = (): Worker =>
  new Worker(
    "const { parentPort } = require('node:worker_threads');" +
      'parentPort.on("message", () => process.exit(3)); parentPort.postMessage({ ready: true });',
    { eval: true },
  );

/** The digests as popsync computed them before the worker: the source bytes as they arrived. */
function inlineDigests(message: Buffer): Digests {
  return {
    sha256: createHash('sha256').update(message).digest('hex'),
    fingerprint: new Fingerprinter().update(message).digest(),
  };
}

/** Every edge case, each also repeated past the offload threshold (so the worker takes it). */
function corpus(): Array<{ name: string; bytes: Buffer }> {
  const small = [
    ...edgeCases({ huge: false }).map((c) => ({ name: c.name, bytes: c.bytes })),
    ...HOSTILE_KINDS.map((k) => ({ name: `hostile ${k}`, bytes: hostileMessage(k, 'offload') })),
  ];
  const large = small.map((c) => ({
    name: `${c.name} x${Math.ceil((OFFLOAD_MIN_BYTES + 1) / c.bytes.length)}`,
    bytes: Buffer.concat(Array<Buffer>(Math.ceil((OFFLOAD_MIN_BYTES + 1) / c.bytes.length)).fill(c.bytes)),
  }));
  // Spooled (spillAt 16 KB below) before its first bare LF: hashing then starts from the file.
  const lfLate = Buffer.concat([
    large.find((c) => c.name.startsWith('hostile nul'))!.bytes,
    hostileMessage('bare-lf', 'late'),
  ]);
  return [...small, ...large, { name: 'bare LF only after 16 KB', bytes: lfLate }];
}

/** No bare LF: the bytes held are the source, so hashing is deferred and may go to the worker. */
const unconverted = (m: Buffer): boolean => toCrlf(m).equals(m);

let root: string;
let spool: Spool;
beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'popsync-offload-test-'));
  spool = new Spool(root);
});
afterEach(() => {
  spool.dispose();
  rmSync(root, { recursive: true, force: true });
});

async function collect(offload: DigestOffload, message: Buffer, chunk: number, spillAt = 4 * 1024 * 1024) {
  const c = new BodyCollector(spool, spillAt, offload);
  for (let i = 0; i < message.length; i += chunk) await c.add(message.subarray(i, i + chunk));
  return withDigests(await c.finish());
}

describe('digest worker: the same digests as inline hashing', () => {
  // Unref'd when idle, the worker never holds the test process; its idle timer ends it.
  const real = realOffload();

  it('every edge case large enough, hashed whole by the worker', async () => {
    const first = Buffer.alloc(OFFLOAD_MIN_BYTES, 'a');
    // The first message starts the worker and is hashed inline: its start never delays one.
    expect(await real.offload.digest(first)).toEqual(inlineDigests(first));
    expect(real.answered()).toBe(0);
    await real.ready;
    const cases = corpus();
    const answers = await Promise.all(cases.map((c) => real.offload.digest(c.bytes)));
    expect(real.answered()).toBe(cases.filter((c) => c.bytes.length >= OFFLOAD_MIN_BYTES).length);
    for (const [i, c] of cases.entries()) expect(answers[i], c.name).toEqual(inlineDigests(c.bytes));
  });

  it('wherever a message lies in the ring, wrapped or not, and when the ring is full', async () => {
    await real.started();
    const rng = new Prng(11);
    const before = real.answered();
    let asked = 0;
    for (let wave = 0; wave < 12; wave++) {
      // Each wave asks while earlier ones are still being hashed: copies land behind, around
      // and (when there is no room) beside unanswered ones.
      const messages = Array.from({ length: rng.int(1, 6) }, () =>
        rng.bytes(rng.int(OFFLOAD_MIN_BYTES, Math.floor(RING_BYTES / 3))),
      );
      asked += messages.length;
      const pending = messages.map((m) => real.offload.digest(m).then((d) => [m, d] as const));
      const settled = await Promise.all(wave % 3 === 0 ? pending : pending.slice(0, 1));
      for (const [m, d] of settled) expect(d).toEqual(inlineDigests(m));
      if (wave % 3 !== 0) for (const [m, d] of await Promise.all(pending)) expect(d).toEqual(inlineDigests(m));
    }
    // Most went to the worker; those that found the ring full were hashed inline, as rightly.
    expect(real.answered() - before).toBeGreaterThan(asked / 2);
  });

  it('a spool file neither the worker nor the main thread can read: a temporary error naming it', async () => {
    await real.started();
    const gone = join(root, 'gone');
    const before = real.answered();
    await expect(real.offload.digestFile(gone)).rejects.toMatchObject({
      kind: 'temporary',
      message: expect.stringContaining(`temporary file ${gone}`),
    });
    expect(real.answered() - before).toBe(1);
  });

  it('a ring filled exactly by a wrapped copy takes nothing more until the worker answers', async () => {
    let worker!: Worker;
    let ready!: () => void;
    const isReady = new Promise<void>((r) => {
      ready = r;
    });
    const offload = new DigestOffload((ring) => {
      worker = new Worker(gatedWorkerSource(), { eval: true, workerData: { ring } });
      worker.once('message', () => ready());
      return worker;
    });
    try {
      await offload.digest(Buffer.alloc(OFFLOAD_MIN_BYTES));
      await isReady;
      const rng = new Prng(5);
      const [a, b, c, d] = [RING_BYTES / 2, RING_BYTES / 2, RING_BYTES / 2, OFFLOAD_MIN_BYTES].map((n) => rng.bytes(n));
      const pa = offload.digest(a!);
      const pb = offload.digest(b!); // the ring is full
      worker.postMessage({ go: true });
      expect(await pa).toEqual(inlineDigests(a!));
      const pc = offload.digest(c!); // wraps to 0: the ring is full again, up to b
      expect(await offload.digest(d!)).toEqual(inlineDigests(d!)); // no room: inline, b untouched
      worker.postMessage({ go: true });
      worker.postMessage({ go: true });
      expect(await pb).toEqual(inlineDigests(b!));
      expect(await pc).toEqual(inlineDigests(c!));
    } finally {
      await worker.terminate();
    }
  });

  it('received in any chunks, held in memory or spooled: worker or inline, the digests of the source', async () => {
    await real.started();
    for (const c of corpus()) {
      const wire = toCrlf(c.bytes);
      for (const chunk of [7, 333, 4096, 65_536]) {
        for (const spillAt of [4 * 1024 * 1024, 16 * 1024]) {
          const before = real.answered();
          const r = await collect(real.offload, c.bytes, chunk, spillAt);
          const at = `${c.name}, chunks of ${chunk}, spillAt ${spillAt}`;
          expect({ sha256: r.sha256, fingerprint: r.fingerprint }, at).toEqual(inlineDigests(c.bytes));
          expect((r.bytes ?? readFileSync(r.file!)).equals(wire), at).toBe(true);
          expect(r.size, at).toBe(c.bytes.length);
          // The worker took exactly the messages kept as received: spooled, or in memory and large enough.
          const offloaded = unconverted(c.bytes) && (r.file !== null || c.bytes.length >= OFFLOAD_MIN_BYTES);
          expect(real.answered() - before, at).toBe(offloaded ? 1 : 0);
        }
      }
    }
  });
});

describe('digest worker: when it cannot help, messages are hashed inline', () => {
  const big = Buffer.concat(Array<Buffer>(200).fill(hostileMessage('nul', 'fallback')));

  it('a worker that dies with a message: that message and every later one inline, right', async () => {
    let ready!: () => void;
    const isReady = new Promise<void>((r) => {
      ready = r;
    });
    let spawned = 0;
    const offload = new DigestOffload(() => {
      spawned++;
      const w = dyingWorker();
      w.once('message', () => ready());
      return w;
    });
    await offload.digest(big);
    await isReady;
    // One in memory, one spooled: both in the worker when it dies.
    const [r, spooled] = await Promise.all([collect(offload, big, 65_536), collect(offload, big, 65_536, 1000)]);
    expect({ sha256: r.sha256, fingerprint: r.fingerprint }).toEqual(inlineDigests(big));
    expect(spooled.file).not.toBeNull();
    expect({ sha256: spooled.sha256, fingerprint: spooled.fingerprint }).toEqual(inlineDigests(big));
    expect(offload.takeNotices().join('\n')).toMatch(/digest worker failed \(it exited with code 3\)/);
    const again = await collect(offload, big, 4096);
    expect(again.sha256).toBe(inlineDigests(big).sha256);
    expect(spawned).toBe(1);
  });

  it('a worker that cannot be started, or whose module does not load', async () => {
    const refused = new DigestOffload(() => {
      throw new Error('no threads here');
    });
    expect((await collect(refused, big, 65_536)).fingerprint).toBe(inlineDigests(big).fingerprint);
    // Spooled after a bare LF was made CRLF: hashed as it arrives, as before the worker.
    const lf = Buffer.concat(Array<Buffer>(100).fill(hostileMessage('bare-lf', 'fallback')));
    const spooled = await collect(refused, lf, 333, 1024);
    expect(spooled.file).not.toBeNull();
    expect({ sha256: spooled.sha256, fingerprint: spooled.fingerprint }).toEqual(inlineDigests(lf));
    expect(refused.takeNotices()).toEqual([
      'digest worker not started (no threads here): messages are hashed on the main thread',
    ]);

    let spawned = 0;
    const missing = new DigestOffload(() => {
      spawned++;
      return new Worker(new URL('no-such-worker.js', ROOT));
    });
    const r = await collect(missing, big, 65_536);
    expect(r.sha256).toBe(inlineDigests(big).sha256);
    await expect.poll(() => missing.takeNotices().join('')).toMatch(/digest worker failed/);
    expect((await collect(missing, big, 65_536)).sha256).toBe(inlineDigests(big).sha256);
    expect(spawned).toBe(1);
  });
});

describe('digest worker: never keeps the process alive', () => {
  it('a process whose work is done exits while its idle worker still runs', () => {
    // beforeExit comes when nothing keeps the event loop going: a worker left ref'd would hold
    // it until its idle timer ended the worker, and its 'exit' would come first.
    const offloadModule = new URL('src/engine/digest-offload.ts', ROOT).href;
    const child = `
      import { Worker } from 'node:worker_threads';
      const { DigestOffload } = await import(${JSON.stringify(offloadModule)});
      let worker; let ready; let answered = 0;
      const isReady = new Promise((r) => { ready = r; });
      const offload = new DigestOffload((ring) => {
        worker = new Worker(${JSON.stringify(workerSource())}, { eval: true, workerData: { ring } });
        worker.on('message', (a) => ('ready' in a ? ready() : answered++));
        return worker;
      });
      await offload.digest(Buffer.alloc(1 << 20));
      // The worker is unref'd while it starts, as the run never waits for that: a timer does.
      const keep = setInterval(() => {}, 1000);
      await isReady;
      clearInterval(keep);
      const d = await offload.digest(Buffer.alloc(1 << 20, 1));
      let exited = false;
      worker.on('exit', () => { exited = true; });
      process.on('beforeExit', () => console.log(JSON.stringify({ answered, workerExited: exited })));
    `;
    const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', child], {
      cwd: new URL('.', ROOT).pathname,
      encoding: 'utf8',
    });
    expect(r.stderr).toBe('');
    expect(JSON.parse(r.stdout)).toEqual({ answered: 1, workerExited: false });
  });
});
