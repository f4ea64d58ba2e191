/**
 * The matching rules of reconciliation, UID learning and adoption, without sockets: which
 * destination message is the copy of which journal row, under server rewrites, identical
 * messages, claimed UIDs, and where no decision is possible.
 */
import { describe, expect, it } from 'vitest';
import type { DestinationMessage } from '../../src/imap/types.js';
import { createHash } from 'node:crypto';
import {
  headerFingerprint,
  matchCopies,
  messageIdKey,
  type Digest,
  type Match,
  type Probe,
  type Wanted,
} from '../../src/engine/reconcile.js';
import { fingerprint } from '../support/fingerprint.js';

const b = (s: string): Buffer => Buffer.from(s, 'latin1');
const sha256Hex = (m: Buffer): string => createHash('sha256').update(m).digest('hex');
const digestOf = (m: Buffer): Digest => ({ sha256: sha256Hex(m), fingerprint: fingerprint(m) });
const dovecot = (m: Buffer): Buffer => b(m.toString('latin1').replace(/\r?\n/g, '\r\n').replace(/\0/g, '\x80'));

/** A destination folder in memory; counts what a real one would have to send. */
class Folder {
  bodies = new Map<number, Buffer>();
  digests = 0;
  headerFetches = 0;
  constructor(entries: Array<[number, Buffer]>) {
    for (const [uid, body] of entries) this.bodies.set(uid, body);
  }
  list(ids: Record<number, string | null> = {}): DestinationMessage[] {
    return [...this.bodies].map(([uid, body]) => ({
      uid,
      size: body.length,
      messageId: uid in ids ? ids[uid]! : (/Message-ID: (<[^>]+>)/i.exec(body.toString('latin1'))?.[1] ?? null),
    }));
  }
  /**
   * A probe that also reads ahead (prefetch), as the IMAP one does: `waits` counts the round trips
   * a real folder would cost (one per prefetch, one per body not read ahead), `reads` the bodies.
   */
  batchedProbe(): Probe & { waits: number; reads: Map<number, number> } {
    const digests = new Map<number, Digest>();
    const reads = new Map<number, number>();
    const read = (uid: number): void => {
      reads.set(uid, (reads.get(uid) ?? 0) + 1);
      digests.set(uid, digestOf(this.bodies.get(uid)!));
    };
    const p = {
      waits: 0,
      reads,
      prefetch: async (candidates: readonly DestinationMessage[]) => {
        p.waits++;
        for (const c of candidates) if (!digests.has(c.uid)) read(c.uid);
      },
      digest: async (uid: number) => {
        if (!digests.has(uid)) {
          p.waits++;
          read(uid);
        }
        return digests.get(uid)!;
      },
    };
    return p;
  }
  probe(withHeaders = false): Probe {
    return {
      digest: async (uid) => {
        this.digests++;
        return digestOf(this.bodies.get(uid)!);
      },
      ...(withHeaders
        ? {
            headerFingerprints: async (uids: readonly number[]) => {
              this.headerFetches++;
              return new Map(uids.map((u) => [u, headerFingerprint(this.bodies.get(u)!)] as const));
            },
          }
        : {}),
    };
  }
}

const want = (key: string, body: Buffer, o: Partial<Wanted> = {}): Wanted => ({
  key,
  sha256: sha256Hex(body),
  fingerprint: fingerprint(body),
  messageId: /Message-ID: (<[^>]+>)/i.exec(body.toString('latin1'))?.[1] ?? null,
  size: body.length,
  floor: 1,
  messageIdFallback: true,
  ...o,
});

/**
 * The rules as reading one body at a time, row after row, applies them (matchCopies before it
 * read ahead and indexed): rows in floor order, each takes the lowest unclaimed candidate from its
 * floor up with its Message-ID (or none), a plausible size, its header and its content; then the
 * Message-ID fallback for the rows left. What matchCopies must decide, however it reads.
 */
async function oneAtATime(
  wanted: readonly Wanted[],
  candidates: readonly DestinationMessage[],
  claimed: Set<number>,
  probe: Probe,
): Promise<Match[]> {
  const sorted = [...candidates].sort((a, b) => a.uid - b.uid);
  const order = [...wanted].sort((a, b) => a.floor - b.floor);
  const result = new Map<string, Match>();
  const narrowed = (w: Wanted) =>
    sorted.filter(
      (c) =>
        !claimed.has(c.uid) &&
        c.uid >= w.floor &&
        (messageIdKey(c.messageId) === null || messageIdKey(c.messageId) === messageIdKey(w.messageId)) &&
        c.size <= 2 * w.size + 2,
    );
  const sameId = (w: Wanted) =>
    messageIdKey(w.messageId) === null
      ? []
      : narrowed(w).filter((c) => messageIdKey(c.messageId) === messageIdKey(w.messageId));
  for (const w of order) {
    let list = narrowed(w);
    if (w.headerFingerprint && probe.headerFingerprints && list.length > 0) {
      const h = await probe.headerFingerprints(list.map((c) => c.uid));
      list = list.filter((c) => h.get(c.uid) === undefined || h.get(c.uid) === w.headerFingerprint);
    }
    for (const c of list) {
      const d = await probe.digest(c.uid, c.size);
      const by =
        w.sha256 !== null && d.sha256 === w.sha256
          ? 'sha256'
          : w.fingerprint !== null && d.fingerprint === w.fingerprint
            ? 'fingerprint'
            : null;
      if (by) {
        claimed.add(c.uid);
        result.set(w.key, { key: w.key, uid: c.uid, by });
        break;
      }
    }
  }
  for (const w of order) {
    if (result.has(w.key)) continue;
    const id = messageIdKey(w.messageId);
    const same = sameId(w);
    if (w.fingerprint === null && (id === null ? narrowed(w).length > 0 : same.length > 0))
      result.set(w.key, { key: w.key, undecided: 'before fingerprints' });
    else if (!w.messageIdFallback || same.length === 0) result.set(w.key, { key: w.key, uid: null });
    else if (same.length > 1) result.set(w.key, { key: w.key, undecided: 'several' });
    else {
      claimed.add(same[0]!.uid);
      result.set(w.key, { key: w.key, uid: same[0]!.uid, by: 'message-id' });
    }
  }
  return wanted.map((w) => result.get(w.key)!);
}

/** Undecided answers compared by kind, not by wording. */
const kindOf = (m: Match): Match =>
  'undecided' in m
    ? {
        key: m.key,
        undecided:
          /before popsync kept/.test(m.undecided) || m.undecided === 'before fingerprints'
            ? 'before fingerprints'
            : 'several',
      }
    : m;

const m1 = b('Message-ID: <1@t>\nSubject: one\n\nbody\0one\n');
const m2 = b('Message-ID: <2@t>\nSubject: two\n\nbody two\n');
const noId = b('Subject: no id\n\nplain\n');

describe('matchCopies', () => {
  it('prefers byte-exact copies and recognises rewritten ones by fingerprint', async () => {
    const f = new Folder([
      [10, m1],
      [11, dovecot(m2)],
    ]);
    const r = await matchCopies([want('a', m1), want('b', m2)], f.list(), new Set(), f.probe());
    expect(r).toEqual([
      { key: 'a', uid: 10, by: 'sha256' },
      { key: 'b', uid: 11, by: 'fingerprint' },
    ]);
  });

  it('gives identical messages one copy each, and reports the one without a copy as absent', async () => {
    const f = new Folder([[5, dovecot(m1)]]);
    const claimed = new Set<number>();
    const r = await matchCopies([want('a', m1), want('b', m1)], f.list(), claimed, f.probe());
    expect(r).toEqual([
      { key: 'a', uid: 5, by: 'fingerprint' },
      { key: 'b', uid: null },
    ]);
    expect(claimed).toEqual(new Set([5]));
  });

  it("never hands out a claimed UID or one below the row's floor", async () => {
    const f = new Folder([
      [3, m1],
      [7, m1],
      [9, m1],
    ]);
    const r = await matchCopies([want('a', m1, { floor: 8 })], f.list(), new Set([9]), f.probe());
    expect(r).toEqual([{ key: 'a', uid: null }]);
    // Lowest floor first, lowest UID first: both rows find a copy.
    const both = await matchCopies(
      [want('late', m1, { floor: 7 }), want('early', m1, { floor: 3 })],
      f.list(),
      new Set(),
      f.probe(),
    );
    expect(both).toEqual([
      { key: 'late', uid: 7, by: 'sha256' },
      { key: 'early', uid: 3, by: 'sha256' },
    ]);
  });

  it('narrows by Message-ID before fetching bodies, and by size only beyond any rewrite', async () => {
    const big = b(`Subject: no id\n\n${'x'.repeat(500)}\n`);
    const f = new Folder([
      [1, m2],
      [2, big],
      [3, noId],
      [4, m1],
    ]);
    await matchCopies([want('a', m1)], f.list(), new Set(), f.probe());
    // UID 1 has another Message-ID; UID 2 none but is larger than any rewrite of m1; UID 3
    // (no Message-ID listed: maybe unparsed) and UID 4 are fetched.
    expect(f.digests).toBe(2);
  });

  it('without a Message-ID, bodies only of candidates whose header fingerprint matches', async () => {
    const others = Array.from(
      { length: 20 },
      (_, i) => [i + 1, b(`Subject: other ${i}\n\nplain\n`)] as [number, Buffer],
    );
    const f = new Folder([...others, [30, dovecot(noId)]]);
    const r = await matchCopies(
      [want('a', noId, { headerFingerprint: headerFingerprint(noId), messageIdFallback: false })],
      f.list(),
      new Set(),
      f.probe(true),
    );
    expect(r).toEqual([{ key: 'a', uid: 30, by: 'fingerprint' }]);
    expect(f.digests).toBe(1);
    expect(f.headerFetches).toBe(1);
  });

  it('falls back to a lone Message-ID match only when allowed, after every content match', async () => {
    const changed = b('X-Added: 1\r\nMessage-ID: <1@t>\r\nSubject: one\r\n\r\nbody one changed\r\n');
    const f = new Folder([[4, changed]]);
    expect(await matchCopies([want('a', m1)], f.list(), new Set(), f.probe())).toEqual([
      { key: 'a', uid: 4, by: 'message-id' },
    ]);
    expect(await matchCopies([want('a', m1, { messageIdFallback: false })], f.list(), new Set(), f.probe())).toEqual([
      { key: 'a', uid: null },
    ]);
    // A content match of another row is never taken by a fallback.
    const g = new Folder([[4, m1]]);
    const m1b = b('Message-ID: <1@t>\nSubject: one\n\nanother body\n');
    const r = await matchCopies([want('fallback', m1b), want('exact', m1)], g.list(), new Set(), g.probe());
    expect(r).toEqual([
      { key: 'fallback', uid: null },
      { key: 'exact', uid: 4, by: 'sha256' },
    ]);
  });

  it('is undecided when several candidates share the Message-ID and none has the content', async () => {
    const x = b('Message-ID: <1@t>\r\nSubject: x\r\n\r\nx\r\n');
    const y = b('Message-ID: <1@t>\r\nSubject: y\r\n\r\ny\r\n');
    const f = new Folder([
      [4, x],
      [5, y],
    ]);
    const [r] = await matchCopies([want('a', m1)], f.list(), new Set(), f.probe());
    expect(r).toMatchObject({
      key: 'a',
      undecided: expect.stringMatching(/2 messages with its Message-ID <1@t> \(UIDs 4, 5\)/),
    });
  });

  it('a row from before fingerprints: exact copies still match, a plausible rewritten one is undecided', async () => {
    const f = new Folder([[4, m1]]);
    expect(await matchCopies([want('a', m1, { fingerprint: null })], f.list(), new Set(), f.probe())).toEqual([
      { key: 'a', uid: 4, by: 'sha256' },
    ]);
    const g = new Folder([[4, dovecot(m1)]]);
    const [r] = await matchCopies([want('a', m1, { fingerprint: null })], g.list(), new Set(), g.probe());
    expect(r).toMatchObject({ undecided: expect.stringMatching(/before popsync kept content fingerprints/) });
    const h = new Folder([[4, dovecot(noId)]]);
    const [s] = await matchCopies([want('b', noId, { fingerprint: null })], h.list(), new Set(), h.probe());
    expect(s).toMatchObject({ undecided: expect.any(String) });
    // Nothing plausible arrived: it was not copied.
    expect(
      await matchCopies(
        [want('c', m1, { fingerprint: null })],
        new Folder([[4, m2]]).list(),
        new Set(),
        new Folder([[4, m2]]).probe(),
      ),
    ).toEqual([{ key: 'c', uid: null }]);
  });

  describe('bodies read ahead in rounds, not one round trip each', () => {
    const plain = (i: number): Buffer => b(`Subject: no id ${i}\n\nplain ${i}\n`);

    it('interrupted copies without a Message-ID: one round trip for 40, not 40', async () => {
      // Every row's candidates are all 40 (none has a Message-ID to narrow by), so every row's
      // first candidate is UID 1: reading only first candidates ahead read one body, then
      // each row read its own copy alone.
      const f = new Folder(Array.from({ length: 40 }, (_, i) => [i + 1, dovecot(plain(i))] as [number, Buffer]));
      const probe = f.batchedProbe();
      const rows = Array.from({ length: 40 }, (_, i) => want(`r${i}`, plain(i)));
      const r = await matchCopies(rows, f.list(), new Set(), probe);
      expect(r).toEqual(rows.map((w, i) => ({ key: w.key, uid: i + 1, by: 'fingerprint' })));
      expect(probe.waits).toBe(1);
      expect([...probe.reads.values()].every((n) => n === 1)).toBe(true);
    });

    it('identical messages sharing a Message-ID: their copies in one round trip', async () => {
      const f = new Folder(Array.from({ length: 30 }, (_, i) => [i + 10, m1] as [number, Buffer]));
      const probe = f.batchedProbe();
      const rows = Array.from({ length: 30 }, (_, i) => want(`r${i}`, m1));
      const r = await matchCopies(rows, f.list(), new Set(), probe);
      expect(r.map((m) => ('uid' in m ? m.uid : null))).toEqual(rows.map((_, i) => i + 10));
      expect(probe.waits).toBe(1);
    });

    it('a row whose copy is not among 64 candidates reads them in one round, doubling rounds beyond', async () => {
      const f = new Folder(Array.from({ length: 64 }, (_, i) => [i + 1, plain(i)] as [number, Buffer]));
      const probe = f.batchedProbe();
      const r = await matchCopies([want('gone', plain(99))], f.list(), new Set(), probe);
      expect(r).toEqual([{ key: 'gone', uid: null }]);
      expect(probe.waits).toBe(1);
      const g = new Folder(Array.from({ length: 5_000 }, (_, i) => [i + 1, plain(i)] as [number, Buffer]));
      const more = g.batchedProbe();
      expect(await matchCopies([want('gone', plain(-1))], g.list(), new Set(), more)).toEqual([
        { key: 'gone', uid: null },
      ]);
      // 100 + 200 + 400 + 800 + 1,000 x 3 + 500.
      expect(more.waits).toBe(8);
      expect(more.reads.size).toBe(5_000);
      expect(probe.reads.size).toBe(64);
      expect([...probe.reads.values()].every((n) => n === 1)).toBe(true);
    });

    it('decides as reading one body at a time does, whatever the folder holds', async () => {
      // Seeded mixes of rows and copies: identical messages, shared and missing Message-IDs,
      // rewritten and absent copies, foreign mail, claimed UIDs and floors.
      let seed = 7;
      const rand = (n: number): number => {
        seed = (seed * 1103515245 + 12345) % 2 ** 31;
        return seed % n;
      };
      const kinds = [m1, m2, noId, plain(1), plain(2), b('Message-ID: <1@t>\nSubject: x\n\nx\n')];
      for (let round = 0; round < 200; round++) {
        const entries: Array<[number, Buffer]> = [];
        for (let uid = 1; uid <= 1 + rand(12); uid++) {
          const k = kinds[rand(kinds.length)]!;
          entries.push([uid, rand(2) === 0 ? k : dovecot(k)]);
        }
        const rows = Array.from({ length: 1 + rand(8) }, (_, i) =>
          want(`r${i}`, kinds[rand(kinds.length)]!, { floor: 1 + rand(4), messageIdFallback: rand(3) > 0 }),
        );
        const claimed = new Set(rand(3) === 0 ? [1 + rand(6)] : []);
        const f = new Folder(entries);
        const alone = await matchCopies(rows, f.list(), new Set(claimed), f.probe());
        const probe = f.batchedProbe();
        const ahead = await matchCopies(rows, f.list(), new Set(claimed), probe);
        expect(ahead, `mix ${round}`).toEqual(alone);
        expect([...probe.reads.values()].every((n) => n === 1)).toBe(true);
        const rule = await oneAtATime(rows, f.list(), new Set(claimed), f.probe());
        expect(ahead.map(kindOf), `mix ${round}`).toEqual(rule.map(kindOf));
      }
    });
  });

  it('decides as one body at a time does over rounds of reads, header narrowing and shared Message-IDs', async () => {
    // Folders large enough for several rounds (more than 100 candidates a row could take).
    let seed = 11;
    const rand = (n: number): number => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    const kinds = Array.from({ length: 12 }, (_, i) =>
      b(
        `${i % 3 === 0 ? '' : `Message-ID: <${i % 4}@t>\n`}Subject: ${i % 5}\n\n` +
          `${i % 6 === 0 ? 'same' : `body ${i}`}${'\n'.repeat(1 + (i % 2))}`,
      ),
    );
    for (let round = 0; round < 40; round++) {
      const entries: Array<[number, Buffer]> = [];
      for (let uid = 1; uid <= 150 + rand(250); uid++) {
        const k = kinds[rand(kinds.length)]!;
        entries.push([uid, rand(2) === 0 ? k : dovecot(k)]);
      }
      const headers = rand(2) === 0;
      const rows = Array.from({ length: 1 + rand(120) }, (_, i) => {
        const k = kinds[rand(kinds.length)]!;
        return want(`r${i}`, k, {
          floor: 1 + rand(200),
          messageIdFallback: !headers && rand(3) > 0,
          ...(rand(8) === 0 ? { fingerprint: null } : {}),
          ...(headers ? { headerFingerprint: headerFingerprint(k) } : {}),
        });
      });
      const claimed = new Set(Array.from({ length: rand(20) }, () => 1 + rand(300)));
      const f = new Folder(entries);
      const probe = {
        ...f.batchedProbe(),
        ...(headers ? { headerFingerprints: f.probe(true).headerFingerprints } : {}),
      };
      const ahead = await matchCopies(rows, f.list(), new Set(claimed), probe);
      const rule = await oneAtATime(rows, f.list(), new Set(claimed), f.probe(headers));
      expect(ahead.map(kindOf), `mix ${round}`).toEqual(rule.map(kindOf));
    }
  });

  describe('thousands of rows sharing one Message-ID (automated notices), interrupted mid-batch', () => {
    // 2,000 notices with one Message-ID and different bodies, copied in batches of 100; the copies
    // of 20 never arrived (the kill), so the others' UIDs are their positions among the arrived.
    const rows = 2_000;
    const lost = (i: number): boolean => i >= 1_950 && i < 1_970;
    const notice = (i: number): Buffer => b(`Message-ID: <notice@bank.example>\nSubject: notice\n\nbalance ${i}\n`);

    it('compares, reads and waits in proportion to rows and candidates, not their product', async () => {
      const entries: Array<[number, Buffer]> = [];
      const floors: number[] = [];
      for (let i = 0; i < rows; i++) {
        if (i % 100 === 0) floors.push(entries.length + 1);
        if (!lost(i)) entries.push([entries.length + 1, dovecot(notice(i))]);
      }
      const f = new Folder(entries);
      // Every look at a candidate's UID is counted: a row compared with every candidate is 4 million.
      let looks = 0;
      const candidates = f.list().map((c) => {
        const uid = c.uid;
        return {
          ...c,
          get uid() {
            looks++;
            return uid;
          },
        };
      });
      const probe = f.batchedProbe();
      const wanted = Array.from({ length: rows }, (_, i) =>
        want(`r${i}`, notice(i), { floor: floors[(i / 100) | 0]! }),
      );
      const r = await matchCopies(wanted, candidates, new Set(), probe);
      let uid = 0;
      expect(r).toEqual(
        wanted.map((w, i) => (lost(i) ? { key: w.key, uid: null } : { key: w.key, uid: ++uid, by: 'fingerprint' })),
      );
      console.log(`${rows} rows, one Message-ID: ${looks} looks at candidates, ${probe.waits} waits`);
      expect(looks).toBeLessThan(100 * (rows + entries.length));
      expect(probe.reads.size).toBe(entries.length);
      expect([...probe.reads.values()].every((n) => n === 1)).toBe(true);
      expect(probe.waits).toBeLessThanOrEqual(10);
    });
  });

  it('compares Message-IDs as a munging server leaves them', () => {
    expect(messageIdKey('<caf\xe9@t>')).toBe(messageIdKey('<cafX@t>'));
    expect(messageIdKey('  <a@b>  (comment)')).toBe('<a@b>');
    expect(messageIdKey(null)).toBeNull();
    expect(messageIdKey('<a@b>')).not.toBe(messageIdKey('<a@c>'));
  });

  it('header fingerprints agree across rewrites and BODY[HEADER]', () => {
    const header = b('Subject: caf\xe9\nFrom: a\n\n');
    const msg = Buffer.concat([header, b('body\n')]);
    const served = b('Subject: cafX\r\nFrom: a\r\n\r\n');
    expect(headerFingerprint(msg)).toBe(headerFingerprint(served));
    expect(headerFingerprint(msg)).not.toBe(headerFingerprint(b('Subject: tea\nFrom: a\n\nbody\n')));
  });
});
