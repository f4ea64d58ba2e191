/**
 * Which APPEND connection a folder's batches go down (imap/append-pool.ts), without sockets:
 * a folder sticks to its connection, a further one opens only for a further folder and under
 * the cap, one the server turns away lowers the cap instead of failing the batch, and any other
 * failure to open one fails it as the first connection's would.
 */
import { describe, expect, it } from 'vitest';
import { PopsyncError } from '../../src/errors.js';
import { AppendPool, placeFolder } from '../../src/imap/append-pool.js';
import { type PipelinedAppender, TurnedAway } from '../../src/imap/pipeline.js';
import { silentLogger } from '../../src/log.js';

interface Fake {
  id: number;
  usable: boolean;
  destroyed: boolean;
  capabilities: ReadonlySet<string>;
  /** Set when the server broke the protocol on it (pipeline.ts): reported, never replaced. */
  protocolFailure: PopsyncError | null;
  destroy(): void;
  close(): Promise<void>;
}

function fakes() {
  let n = 0;
  const made: Fake[] = [];
  const make = (): PipelinedAppender => {
    const f: Fake = {
      id: n++,
      usable: true,
      destroyed: false,
      capabilities: new Set(['LITERAL+']),
      protocolFailure: null,
      destroy() {
        this.destroyed = true;
        this.usable = false;
      },
      close: async () => undefined,
    };
    made.push(f);
    return f as unknown as PipelinedAppender;
  };
  return { made, make, id: (a: PipelinedAppender) => (a as unknown as Fake).id };
}

/**
 * A pool over fakes, its first connection already open, whose further ones `open` makes; `open`
 * is told how many times it was asked before. What the pool warns is kept in `warned`.
 */
function pool(cap: number, open: (asked: number, f: ReturnType<typeof fakes>) => Promise<PipelinedAppender>) {
  const f = fakes();
  let asked = 0;
  const warned: string[] = [];
  const log = { ...silentLogger, warn: (_o: object, msg?: string) => void warned.push(String(msg)) };
  const p = new AppendPool(f.make(), cap, () => open(asked++, f), log as typeof silentLogger);
  return { f, pool: p, warned, asked: () => asked };
}

describe('placeFolder', () => {
  const conns = (...bytes: number[]) => bytes.map((b) => ({ folders: 1, bytes: b }));
  it('fills the first connection first, opens a new one while under the cap, then picks the least loaded', () => {
    expect(placeFolder([{ folders: 0, bytes: 0 }], 2)).toBe(0);
    expect(placeFolder(conns(10), 2)).toBe(1);
    expect(placeFolder(conns(10, 5), 2)).toBe(1);
    expect(placeFolder(conns(3, 5), 2)).toBe(0);
    expect(placeFolder(conns(10), 1)).toBe(0);
    // A cap below 1 still has the one connection every sink starts with.
    expect(placeFolder([], 0)).toBe(0);
  });
});

describe('AppendPool', () => {
  it('keeps each folder on one connection and opens a further one only for a further folder', async () => {
    const { f, pool: p, asked: opened } = pool(2, async (_n, f) => f.make());
    expect(f.id(await p.forFolder('A', 100))).toBe(0);
    expect(f.id(await p.forFolder('A', 100))).toBe(0);
    expect(opened()).toBe(0);
    expect(f.id(await p.forFolder('B', 10))).toBe(1);
    expect(opened()).toBe(1);
    // At the cap: C joins the connection that has carried less (B's), and stays there.
    expect(f.id(await p.forFolder('C', 500))).toBe(1);
    expect(f.id(await p.forFolder('A', 1))).toBe(0);
    expect(f.id(await p.forFolder('C', 1))).toBe(1);
    expect(opened()).toBe(1);
  });

  it('with a cap of 1 never opens another connection', async () => {
    const f = fakes();
    const pool = new AppendPool(f.make(), 1, () => Promise.reject(new Error('must not open')), silentLogger);
    for (const folder of ['A', 'B', 'C']) expect(f.id(await pool.forFolder(folder, 1))).toBe(0);
  });

  it('replaces a connection that closed while idle, and the folder stays on that slot', async () => {
    const f = fakes();
    const pool = new AppendPool(f.make(), 2, async () => f.make(), silentLogger);
    await pool.forFolder('A', 1);
    expect(f.id(await pool.forFolder('B', 1))).toBe(1);
    f.made[1]!.usable = false;
    expect(f.id(await pool.forFolder('B', 1))).toBe(2);
    expect(f.made[1]!.destroyed).toBe(true);
    expect(f.id(await pool.forFolder('A', 1))).toBe(0);
  });

  it('reports a connection the server broke the protocol on while idle, instead of opening another', async () => {
    const f = fakes();
    const pool = new AppendPool(f.make(), 2, async () => f.make(), silentLogger);
    await pool.forFolder('A', 1);
    const broke = new PopsyncError(
      'protocol',
      'IMAP APPEND connection to h:1: the server sent a response longer than 64 KiB',
    );
    f.made[0]!.usable = false;
    f.made[0]!.protocolFailure = broke;
    await expect(pool.forFolder('A', 1)).rejects.toBe(broke);
    expect(f.made).toHaveLength(1);
  });

  it('goes on with fewer connections when the server refuses a further one, and does not ask again', async () => {
    const {
      f,
      pool: p,
      warned,
      asked,
    } = pool(3, async () => {
      const e = new PopsyncError('auth', 'IMAP login refused: NO [UNAVAILABLE] Maximum number of connections');
      throw new TurnedAway(e, 'NO [UNAVAILABLE] Maximum number of connections');
    });
    expect(f.id(await p.forFolder('A', 1))).toBe(0);
    expect(f.id(await p.forFolder('B', 1))).toBe(0);
    expect(f.id(await p.forFolder('C', 1))).toBe(0);
    expect(asked()).toBe(1);
    expect(warned).toHaveLength(1);
    expect(warned[0]).toMatch(/refused a further APPEND connection .*going on with 1 APPEND connection$/);
  });

  describe('a close before the greeting of a further connection', () => {
    const closed = () =>
      new TurnedAway(
        new PopsyncError('connection', 'IMAP APPEND connection to h:143: connection closed by the server'),
        'closed the connection before greeting it',
        true,
      );

    it('once (a restart, a proxy overloaded for a moment): opened again a second later, the cap stands', async () => {
      const {
        f,
        pool: p,
        warned,
        asked,
      } = pool(3, async (n, f) => {
        if (n === 0) throw closed();
        return f.make();
      });
      await p.forFolder('A', 1);
      const started = Date.now();
      expect(f.id(await p.forFolder('B', 1))).toBe(1);
      expect(Date.now() - started).toBeGreaterThanOrEqual(900);
      expect(asked()).toBe(2);
      expect(warned).toEqual([]);
      expect(f.id(await p.forFolder('C', 1))).toBe(2);
    });

    it('and again on the second try: the cap is lowered, as for a refusal', async () => {
      const {
        f,
        pool: p,
        warned,
        asked,
      } = pool(3, async () => {
        throw closed();
      });
      await p.forFolder('A', 1);
      expect(f.id(await p.forFolder('B', 1))).toBe(0);
      expect(f.id(await p.forFolder('C', 1))).toBe(0);
      expect(asked()).toBe(2);
      expect(warned).toHaveLength(1);
      expect(warned[0]).toMatch(/going on with 1 APPEND connection$/);
    });
  });

  for (const [what, err] of [
    ['a timeout', new PopsyncError('connection', 'IMAP APPEND connection to h:143: no reply within 60000 ms')],
    ['a reset', new PopsyncError('connection', 'IMAP APPEND connection to h:143: read ECONNRESET')],
    ['a TLS failure', new PopsyncError('tls', 'IMAP APPEND connection to h:993: certificate has expired')],
    ['a login the server did not understand (BAD)', new PopsyncError('auth', 'IMAP login failed: BAD')],
  ] as const) {
    it(`fails the batch on ${what} opening a further connection, as on the first: no quiet run on fewer`, async () => {
      const {
        f,
        pool: p,
        warned,
        asked,
      } = pool(2, async (n, f) => {
        if (n === 0) throw err;
        return f.make();
      });
      await p.forFolder('A', 1);
      await expect(p.forFolder('B', 1)).rejects.toBe(err);
      expect(warned).toEqual([]);
      // The cap stands: the next folder asks again (after a reconnect, a new sink would).
      expect(f.id(await p.forFolder('C', 1))).toBe(1);
      expect(asked()).toBe(2);
    });
  }

  it('rethrows what is not a refusal (a bug), and closes a connection that opened after the sink died', async () => {
    const f = fakes();
    const bug = new AppendPool(f.make(), 2, () => Promise.reject(new TypeError('oops')), silentLogger);
    await bug.forFolder('A', 1);
    await expect(bug.forFolder('B', 1)).rejects.toThrow(TypeError);

    let finish: (a: PipelinedAppender) => void = () => undefined;
    const g = fakes();
    const late = new AppendPool(
      g.make(),
      2,
      () =>
        new Promise((r) => {
          finish = r;
        }),
      silentLogger,
    );
    await late.forFolder('A', 1);
    const b = late.forFolder('B', 1);
    late.destroy();
    finish(g.make());
    await expect(b).rejects.toMatchObject({ kind: 'connection' });
    expect(g.made.every((c) => c.destroyed)).toBe(true);
  });
});
