import { describe, expect, it } from 'vitest';
import { ContentPool, unlistedCopies } from '../../src/engine/content-match.js';
import type { RowState } from '../../src/journal/types.js';

const row = (uidl: string, sha256: string, fingerprint: string | null = null) => ({
  uidl,
  sha256,
  fingerprint,
  folder: 'Archive',
});

describe('content-match', () => {
  it('offers only copied rows the listing does not hold', () => {
    const rows: Array<{ uidl: string; state: RowState }> = [
      { uidl: 'listed', state: 'done' },
      { uidl: 'gone', state: 'done' },
      { uidl: 'going', state: 'deleting' },
      { uidl: 'deleted-by-us', state: 'deleted' },
      { uidl: 'refused', state: 'failed' },
      { uidl: 'interrupted', state: 'appending' },
    ];
    expect(unlistedCopies(new Set(['listed']), rows).map((r) => r.uidl)).toEqual(['gone', 'going']);
  });

  it('claims each row once, so identical twins count as many copies as rows', () => {
    const pool = new ContentPool([row('old-2', 'twin'), row('old-3', 'twin'), row('old-1', 'c1')]);
    const twin = { sha256: 'twin', fingerprint: 'fp-twin' };
    expect(pool.claim(twin)?.uidl).toBe('old-2');
    expect(pool.claim(twin)?.uidl).toBe('old-3');
    // A third message with the same bytes is a new one: no copy is left for it.
    expect(pool.claim(twin)).toBeNull();
    expect(pool.size).toBe(1);
  });

  it('prefers the exact sha256, then the normalised fingerprint; different content claims nothing', () => {
    const pool = new ContentPool([row('lf', 'sha-lf', 'fp'), row('crlf', 'sha-crlf', 'fp')]);
    expect(pool.claim({ sha256: 'sha-crlf', fingerprint: 'fp' })?.uidl).toBe('crlf');
    expect(pool.claim({ sha256: 'other', fingerprint: 'other' })).toBeNull();
    expect(pool.claim({ sha256: 'sha-cr', fingerprint: 'fp' })?.uidl).toBe('lf');
    // A row from before fingerprints (null) is never matched by a missing fingerprint.
    expect(new ContentPool([row('old', 'sha-old')]).claim({ sha256: 'x', fingerprint: '' })).toBeNull();
  });

  it('claims in proportion to the rows, not rows times messages (10,000 renumbered UIDLs)', () => {
    // Every look at a row's digests is counted: a scan of the pool per message is 50 million.
    let looks = 0;
    const counted = (uidl: string, sha: string, fp: string) => ({
      uidl,
      folder: 'INBOX',
      get sha256() {
        looks++;
        return sha;
      },
      get fingerprint() {
        looks++;
        return fp;
      },
    });
    const n = 10_000;
    const pool = new ContentPool([
      ...Array.from({ length: n / 2 }, (_, i) => counted(`u${i}`, `sha${i}`, `fp${i}`)),
      ...Array.from({ length: n / 2 }, (_, i) => counted(`twin${i}`, 'twin', 'fp-twin')),
    ]);
    for (let i = n / 2 - 1; i >= 0; i--)
      expect(pool.claim({ sha256: `other${i}`, fingerprint: `fp${i}` })?.uidl).toBe(`u${i}`);
    for (let i = 0; i < n / 2; i++) expect(pool.claim({ sha256: 'twin', fingerprint: 'x' })?.uidl).toBe(`twin${i}`);
    expect(pool.claim({ sha256: 'twin', fingerprint: 'fp-twin' })).toBeNull();
    expect(pool.size).toBe(0);
    expect(looks).toBeLessThanOrEqual(4 * n);
  });
});
