/** Identity beyond UIDL, deletion planning and windowed-source detection: pure functions, no sockets. */
import { describe, expect, it } from 'vitest';
import { planDeletion, parseMaxDelete, type DeletionPolicy } from '../../src/engine/deletion.js';
import { headerHash, identify, needsHeaders } from '../../src/engine/identity.js';
import { windowWarnings } from '../../src/engine/window.js';
import type { JournalRow } from '../../src/journal/types.js';

const row = (uidl: string, o: Partial<JournalRow> = {}): JournalRow => ({
  account: 'a', uidl, state: 'done', size: 100, sha256: 'x', messageId: null, folder: 'INBOX', destUidValidity: 1n, destUidNext: 1, destUid: 1,
  attempts: 1, lastError: null, firstSeenAt: 't', updatedAt: 't', copiedAt: '2030-01-01T00:00:00.000Z', provenance: null,
  headerHash: `h-${uidl}`, listSize: 100, deletedAt: null, vanishedAt: null, ...o,
});
const rows = (...r: JournalRow[]) => new Map(r.map((x) => [x.uidl, x]));
const NOW = new Date('2030-01-05T00:00:00Z');

describe('headerHash', () => {
  const base = 'From: a@b\r\nSubject: Hello\r\n  world\r\nMessage-ID: <1@b>\r\n\r\nbody\r\n';
  it('ignores volatile headers, case of names, folding and line ends, and the body', () => {
    const h = headerHash(Buffer.from(base));
    expect(headerHash(Buffer.from('Status: RO\r\nX-UIDL: 77\r\n' + base.replace('Subject', 'SUBJECT') + 'more body'))).toBe(h);
    expect(headerHash(Buffer.from('return-path: <x@y>\nFrom: a@b\nSubject: Hello\n  world\nMessage-ID: <1@b>\nContent-Length: 5\nX-Keywords: $x\nLines: 3\n\n'))).toBe(h);
    expect(headerHash(Buffer.from('From: a@b\r\nSubject: Hello\r\nMessage-ID: <1@b>\r\n\r\n'))).not.toBe(h);
    expect(headerHash(Buffer.from(base.replace('<1@b>', '<2@b>')))).not.toBe(h);
  });
  it('hashes a TOP n 0 answer like the whole message', () => {
    expect(headerHash(Buffer.from(base.split('\r\n\r\n')[0] + '\r\n\r\n'))).toBe(headerHash(Buffer.from(base)));
  });
});

describe('identify', () => {
  it('trusts known UIDLs of unchanged size and fetches no headers when nothing is missing', () => {
    const listing = [{ n: 1, uidl: 'u1', size: 100 }, { n: 2, uidl: 'new', size: 50 }];
    expect(needsHeaders(listing, rows(row('u1')), true)).toEqual([]);
    const id = identify(listing, rows(row('u1')), new Map(), { uidlSupported: true, now: NOW });
    expect(id).toMatchObject({ rekeys: [], recognised: 0, reused: [], listSizes: [], vanished: [] });
  });

  it('treats a reused UIDL (other size, other headers) as a new message and moves the old row aside', () => {
    const listing = [{ n: 1, uidl: 'u1', size: 300 }];
    expect(needsHeaders(listing, rows(row('u1')), true)).toEqual([1]);
    const id = identify(listing, rows(row('u1')), new Map([[1, 'other']]), { uidlSupported: true, now: NOW });
    expect(id.reused).toEqual(['u1']);
    expect(id.rekeys).toEqual([{ from: 'u1', to: `u1 reused ${NOW.toISOString()}` }]);
  });

  it('keeps a known UIDL whose size changed but whose headers did not, and records the new size', () => {
    const id = identify([{ n: 1, uidl: 'u1', size: 300 }], rows(row('u1')), new Map([[1, 'h-u1']]), { uidlSupported: true, now: NOW });
    expect(id).toMatchObject({ rekeys: [], reused: [], listSizes: [{ uidl: 'u1', listSize: 300 }] });
  });

  it('recognises messages under a new UIDL scheme by header hash and size, and re-keys them', () => {
    const j = rows(row('old1'), row('old2'), row('old3', { state: 'deleted' }));
    const listing = [{ n: 1, uidl: 'NEW-A', size: 100 }, { n: 2, uidl: 'NEW-B', size: 100 }, { n: 3, uidl: 'NEW-C', size: 100 }];
    expect(needsHeaders(listing, j, true)).toEqual([1, 2, 3]);
    const id = identify(listing, j, new Map([[1, 'h-old2'], [2, 'h-old1'], [3, 'h-old3']]), { uidlSupported: true, now: NOW });
    expect(id.rekeys).toEqual([{ from: 'old2', to: 'NEW-A' }, { from: 'old1', to: 'NEW-B' }]);
    expect(id.recognised).toBe(2);
    expect(id.vanished).toEqual([]);
  });

  it('reports copied rows that left the listing without being deleted, once', () => {
    const id = identify([{ n: 1, uidl: 'u1', size: 100 }], rows(row('u1'), row('gone'), row('seen', { vanishedAt: 't' }), row('del', { state: 'deleted' })), new Map(), { uidlSupported: true, now: NOW });
    expect(id.vanished).toEqual(['gone']);
  });

  it('without UIDL: keys by header hash and size, telling identical messages apart by occurrence', () => {
    const listing = [{ n: 1, uidl: '', size: 10 }, { n: 2, uidl: '', size: 10 }, { n: 3, uidl: '', size: 20 }];
    expect(needsHeaders(listing, new Map(), false)).toEqual([1, 2, 3]);
    const hashes = new Map([[1, 'a'.repeat(64)], [2, 'a'.repeat(64)], [3, 'b'.repeat(64)]]);
    const first = identify(listing, new Map(), hashes, { uidlSupported: false, now: NOW });
    const keys = first.listing.map((m) => m.uidl);
    expect(keys).toEqual([`header:${'a'.repeat(64)}:10#1`, `header:${'a'.repeat(64)}:10#2`, `header:${'b'.repeat(64)}:20#1`]);
    // Next run: same keys; after #1 was deleted, a third identical copy gets a fresh occurrence.
    expect(identify(listing, rows(...keys.map((k) => row(k))), hashes, { uidlSupported: false, now: NOW }).listing.map((m) => m.uidl)).toEqual(keys);
    const later = identify(listing, rows(row(keys[0]!, { state: 'deleted' }), row(keys[1]!), row(keys[2]!)), hashes, { uidlSupported: false, now: NOW });
    expect(later.listing.map((m) => m.uidl)).toEqual([keys[1], `header:${'a'.repeat(64)}:10#3`, keys[2]]);
  });
});

describe('planDeletion', () => {
  const policy = (o: Partial<DeletionPolicy> = {}): DeletionPolicy => ({ afterDays: 0, maxDelete: null, force: false, verify: false, ...o });
  const listing = ['a', 'b', 'c', 'd', 'e'].map((uidl, i) => ({ n: i + 1, uidl, size: 100 }));
  const j = rows(
    row('a'),
    row('b', { copiedAt: '2030-01-04T00:00:00.000Z' }),
    row('c', { state: 'appending', copiedAt: null }),
    row('d', { state: 'failed', copiedAt: null }),
    row('x-not-listed'),
  );
  it('deletes only confirmed copies that are listed', () => {
    expect(planDeletion(listing, j, policy(), NOW).delete.map((c) => c.uidl)).toEqual(['a', 'b']);
  });
  it('keeps copies younger than afterDays, counted from the first confirmed copy', () => {
    const p = planDeletion(listing, j, policy({ afterDays: 3 }), NOW);
    expect(p.delete.map((c) => [c.uidl, c.n])).toEqual([['a', 1]]);
    expect(p.waiting).toBe(1);
  });
  it('refuses everything beyond the ceiling unless forced', () => {
    expect(planDeletion(listing, j, policy({ maxDelete: { count: 1 } }), NOW)).toMatchObject({ delete: [], refused: expect.stringMatching(/refusing to delete 2 messages/) });
    expect(planDeletion(listing, j, policy({ maxDelete: { percent: 40 } }), NOW)).toMatchObject({ ceiling: 2, refused: null });
    expect(planDeletion(listing, j, policy({ maxDelete: { percent: 20 } }), NOW).refused).toMatch(/20% of 5 listed = 1/);
    expect(planDeletion(listing, j, policy({ maxDelete: { count: 1 }, force: true }), NOW).delete).toHaveLength(2);
  });
  it('parses --max-delete', () => {
    expect(parseMaxDelete('10')).toEqual({ count: 10 });
    expect(parseMaxDelete('5%')).toEqual({ percent: 5 });
    expect(() => parseMaxDelete('lots')).toThrow(/--max-delete/);
    expect(() => parseMaxDelete('101%')).toThrow(/percentage/);
  });
});

describe('windowWarnings', () => {
  it('warns when a round count repeats while new mail arrives, and never says "all"', () => {
    const w = windowWarnings({ listed: 250, newCount: 3, vanished: 0, previous: [{ listed: 250, deleted: 0 }] });
    expect(w).toHaveLength(1);
    expect(w[0]).toMatch(/exactly 250 .*newest 250/);
    expect(w[0]).not.toMatch(/\ball\b/);
  });
  it('stays quiet for a first run, an odd count, no new mail, or a run that deleted', () => {
    expect(windowWarnings({ listed: 250, newCount: 3, vanished: 0, previous: [] })).toEqual([]);
    expect(windowWarnings({ listed: 251, newCount: 3, vanished: 0, previous: [{ listed: 251, deleted: 0 }] })).toEqual([]);
    expect(windowWarnings({ listed: 250, newCount: 0, vanished: 0, previous: [{ listed: 250, deleted: 0 }] })).toEqual([]);
    expect(windowWarnings({ listed: 250, newCount: 3, vanished: 0, previous: [{ listed: 250, deleted: 3 }] })).toEqual([]);
  });
  it('warns when copied messages vanished without popsync deleting them', () => {
    expect(windowWarnings({ listed: 7, newCount: 0, vanished: 2, previous: [] })[0]).toMatch(/^2 messages copied earlier are no longer listed/);
  });
});
