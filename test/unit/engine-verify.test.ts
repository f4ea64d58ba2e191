/**
 * The pure half of checking copies (src/engine/verify.ts): what a look or the stored bytes mean
 * for one journal row. "missing" must be a proof (same UIDVALIDITY, UID gone); everything else
 * that is not the copied message keeps the original; rewrites are named by the server setting.
 */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { fingerprint } from '../support/fingerprint.js';
import { headerHash } from '../../src/engine/identity.js';
import {
  auditReport,
  duplicateCandidates,
  judgeContent,
  judgeLook,
  likelyRewrites,
  locateUidless,
  lookOf,
  StoredDigester,
  type CopyRecord,
} from '../../src/engine/verify.js';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const head = (b: Buffer) => b.subarray(0, b.indexOf('\r\n\r\n') + 4);
const original = Buffer.from(
  'From: a@example.org\r\nSubject: caf\xe9\r\nMessage-ID: <1@x>\r\n\r\nline one\r\nline two\r\n',
  'latin1',
);

function row(body: Buffer, extra: Partial<CopyRecord> = {}): CopyRecord {
  return {
    uidl: 'U1',
    state: 'done',
    folder: 'INBOX',
    destUidValidity: 7n,
    destUidNext: 5,
    destUid: 5,
    size: body.length,
    sha256: sha(body),
    headerHash: headerHash(body),
    messageId: '<1@x>',
    ...extra,
  };
}
const digest = (b: Buffer, uid = 5) => new StoredDigester().update(b).digest(uid);
const seen = { uidValidity: 7n };

describe('judgeLook (UID, size, header digest)', () => {
  it('same UID, size and headers: same', () => {
    expect(judgeLook(row(original), seen, lookOf(5, original.length, head(original)))).toMatchObject({
      status: 'same',
      detail: null,
    });
  });

  it('the UID gone under the same UIDVALIDITY: missing, a proof that carries the UIDVALIDITY seen', () => {
    expect(judgeLook(row(original), seen, undefined)).toMatchObject({
      status: 'missing',
      folder: 'INBOX',
      uid: 5,
      uidValidity: 7n,
    });
  });

  it('a recreated or vanished folder, or no UID recorded, proves nothing: unknown', () => {
    expect(judgeLook(row(original), { uidValidity: 8n }, undefined)).toMatchObject({
      status: 'unknown',
      detail: expect.stringMatching(/recreated.*UIDVALIDITY 7 is now 8/),
    });
    expect(judgeLook(row(original), null, undefined)).toMatchObject({
      status: 'unknown',
      detail: expect.stringMatching(/no longer exists.*journal forget-folder --folder INBOX/),
    });
    expect(judgeLook(row(original, { destUid: null }), seen, undefined)).toMatchObject({
      status: 'unknown',
      detail: expect.stringMatching(/no UID/),
    });
    expect(judgeLook(row(original, { destUidValidity: null }), seen, undefined).status).toBe('unknown');
  });

  it('another size or other headers: differs (the content check then says how)', () => {
    expect(
      judgeLook(row(original), seen, { uid: 5, size: original.length + 1, headerHash: headerHash(original) }),
    ).toMatchObject({ status: 'differs', detail: expect.stringMatching(/bytes, not/) });
    const munged = Buffer.from(original.toString('latin1').replace('\xe9', 'X'), 'latin1');
    expect(judgeLook(row(original), seen, lookOf(5, munged.length, head(munged)))).toMatchObject({
      status: 'differs',
      detail: expect.stringMatching(/headers/),
    });
  });
});

describe('judgeContent (sha256 of the stored bytes) and the likely server setting', () => {
  it('identical bytes: same', () => {
    expect(judgeContent(row(original), seen, digest(original)).status).toBe('same');
  });

  it("Cyrus munge8bit (8-bit header bytes to 'X', same length) differs and is named", () => {
    const munged = Buffer.from(original.toString('latin1').replace('\xe9', 'X'), 'latin1');
    expect(munged.length).toBe(original.length);
    const v = judgeContent(row(original), seen, digest(munged));
    expect(v.status).toBe('differs');
    expect(v.likely).toEqual([expect.stringMatching(/munge8bit/)]);
    expect(v.detail).toMatch(/same size.*munge8bit/);
  });

  it('bare LF stored as CRLF, NUL stored as 0x80, bare CR stripped: each named', () => {
    const lf = Buffer.from('Subject: a\n\nline one\nline two\nthree\n');
    expect(likelyRewrites(lf.length, digest(Buffer.from(lf.toString().replace(/\n/g, '\r\n'))))).toEqual([
      expect.stringMatching(/bare LF .* CRLF/),
    ]);
    const nul = Buffer.from('Subject: a\r\n\r\nbody\0x\r\n', 'latin1');
    expect(
      likelyRewrites(nul.length, digest(Buffer.from(nul.toString('latin1').replace('\0', '\x80'), 'latin1'))),
    ).toEqual([expect.stringMatching(/NUL .* 0x80/)]);
    const cr = Buffer.from('Subject: a\r\n\r\nbo\rdy\r\n');
    expect(likelyRewrites(cr.length, digest(Buffer.from('Subject: a\r\n\r\nbody\r\n')))).toEqual([
      expect.stringMatching(/bare CR stripped/),
    ]);
    expect(likelyRewrites(10, digest(Buffer.from('Subject: a\r\n\r\n\xe9\r\n', 'latin1')))).toEqual([
      expect.stringMatching(/changed after the copy/),
    ]);
    // Same size and 7-bit headers: munge8bit, unless the headers are known to be unchanged.
    const bodyEdit = Buffer.from('Subject: a\r\n\r\nBODY\r\n');
    expect(likelyRewrites(bodyEdit.length, digest(bodyEdit))).toEqual([expect.stringMatching(/munge8bit/)]);
    expect(likelyRewrites(bodyEdit.length, digest(bodyEdit), true)).toEqual([
      expect.stringMatching(/changed after the copy/),
    ]);
  });

  it('with a recorded fingerprint, a rewrite is recognised as ours; only a line-end rewrite loses nothing', () => {
    const munged = Buffer.from(original.toString('latin1').replace('\xe9', 'X'), 'latin1');
    const withFp = row(original, { fingerprint: fingerprint(original) });
    expect(judgeContent(withFp, seen, digest(munged), false)).toMatchObject({
      status: 'rewritten',
      lossless: false,
      likely: [expect.stringMatching(/munge8bit/)],
    });
    // Without the fingerprint the same copy cannot be told from another message.
    expect(judgeContent(row(original), seen, digest(munged), false).status).toBe('differs');

    const lf = Buffer.from('Subject: a\n\nline one\nline two\n');
    const crlf = Buffer.from(lf.toString().replace(/\n/g, '\r\n'));
    expect(
      judgeContent(row(lf, { fingerprint: fingerprint(lf) }), seen, digest(crlf), headerHash(crlf) === headerHash(lf)),
    ).toMatchObject({ status: 'rewritten', lossless: true, likely: [expect.stringMatching(/bare LF/)] });
    const nul = Buffer.from('Subject: a\r\n\r\nbody\0x\r\n', 'latin1');
    const x80 = Buffer.from(nul.toString('latin1').replace('\0', '\x80'), 'latin1');
    expect(judgeContent(row(nul, { fingerprint: fingerprint(nul) }), seen, digest(x80), true)).toMatchObject({
      status: 'rewritten',
      lossless: false,
    });
    // Another message altogether is not rescued by a fingerprint.
    expect(judgeContent(withFp, seen, digest(Buffer.from('Subject: other\r\n\r\nx\r\n')), false).status).toBe(
      'differs',
    );
  });

  it('a gone UID is missing here too', () => {
    expect(judgeContent(row(original), seen, undefined).status).toBe('missing');
  });
});

describe('StoredDigester', () => {
  it('gives the same digest and shape however the bytes are split', () => {
    const b = Buffer.from('Subject: \xe9\r\nX: 1\n\r\nbody\r\r\nend\0\x80\r', 'latin1');
    const whole = digest(b);
    expect(whole).toMatchObject({
      size: b.length,
      sha256: sha(b),
      fingerprint: fingerprint(b),
      shape: { crlf: 3, bareLf: 1, bareCr: 2, nul: 1, x80: 1, header8bit: 1, endsWithNewline: false },
    });
    for (let cut = 1; cut < b.length; cut++) {
      expect(new StoredDigester().update(b.subarray(0, cut)).update(b.subarray(cut)).digest(5)).toEqual(whole);
    }
  });
});

describe('copies without a UID, and duplicates', () => {
  it(
    'a UID-less row takes the first unclaimed stored message at or above its UIDNEXT with its size and ' + 'headers',
    () => {
      const looks = [3, 5, 6, 7].map((uid) => lookOf(uid, original.length, head(original)));
      const a = row(original, { uidl: 'a', destUid: null, destUidNext: 4 });
      const b = row(original, { uidl: 'b', destUid: null, destUidNext: 4 });
      const c = row(original, { uidl: 'c', destUid: null, destUidNext: 7 });
      // UID 5 belongs to another row; 3 is below every UIDNEXT.
      expect(locateUidless([c, b, a], looks, new Set([5]))).toEqual(
        new Map([
          ['b', 6],
          ['a', 7],
        ]),
      );
    },
  );

  it('an unclaimed stored message with the headers of a row is a duplicate candidate', () => {
    const other = Buffer.from('Subject: other\r\n\r\nx\r\n');
    const looks = [
      lookOf(5, original.length, head(original)),
      lookOf(9, original.length, head(original)),
      lookOf(10, other.length, head(other)),
    ];
    expect(duplicateCandidates([row(original)], looks, new Set([5]))).toEqual(new Map([[9, 'U1']]));
  });
});

describe('auditReport', () => {
  it('counts what is as copied and lists the rest by UIDL, saying where the original is', () => {
    const a = row(original, { uidl: 'a', destUid: 1 });
    const b = row(original, { uidl: 'b', destUid: 2, state: 'deleted' });
    const c = row(original, { uidl: 'c', destUid: 3 });
    const verdicts = new Map([
      ['a', judgeLook(a, seen, lookOf(1, original.length, head(original)))],
      ['b', judgeLook(b, seen, undefined)],
      ['c', judgeLook(c, seen, undefined)],
    ]);
    const r = auditReport([a, b, c], verdicts, [{ folder: 'INBOX', uid: 9, uidl: 'a' }]);
    expect(r).toMatchObject({ checked: 3, same: 1 });
    expect(r.findings.map((f) => [f.uidl, f.status, f.uid, f.originalOnSource])).toEqual([
      ['a', 'duplicated', 9, true],
      ['b', 'missing', 2, false],
      ['c', 'missing', 3, true],
    ]);
    expect(r.findings[1]!.detail).toMatch(/in neither place/);
    expect(r.findings[2]!.detail).toMatch(/still on the source/);
    expect(r.findings[0]!.detail).toMatch(/UID 9 in INBOX is a second copy of it \(the copy popsync made is UID 1\)/);
  });
});
