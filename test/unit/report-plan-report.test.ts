/** The dry-run report from its inputs: statuses, would-fail reasons, per-folder tallies, estimate. */
import { describe, expect, it } from 'vitest';
import { planCopy, type ListedMessage } from '../../src/engine/plan.js';
import type { JournalRow } from '../../src/journal/types.js';
import { appendLimitOf, buildPlanReport, type RoutedMessage } from '../../src/report/plan-report.js';

const routed = (folder: string, seenSource: string | null = null): RoutedMessage => ({
  routing: {
    folder,
    flags: seenSource ? ['\\Seen'] : [],
    internalDate: new Date('2024-01-01T00:00:00Z'),
    dateSource: 'received',
    seenSource,
    folderRule: null,
  },
  subject: 's',
  from: 'f',
  messageId: '<m@x>',
});

function row(uidl: string, state: JournalRow['state'], folder: string): JournalRow {
  return {
    account: 'a',
    uidl,
    state,
    size: 10,
    sha256: null,
    messageId: '<j@x>',
    folder,
    destUidValidity: 1n,
    destUidNext: 1,
    destUid: 1,
    attempts: 1,
    lastError: state === 'failed' ? 'NO [LIMIT] too big' : null,
    firstSeenAt: '',
    updatedAt: '',
    copiedAt: null,
    headerHash: null,
    listSize: null,
    deletedAt: null,
    vanishedAt: null,
    provenance: { flags: ['$M'], internalDate: null, dateSource: 'date', seenSource: 'all', folderRule: 'r' },
  };
}

describe('buildPlanReport', () => {
  const listing: ListedMessage[] = [
    { n: 1, uidl: 'a', size: 100 },
    { n: 2, uidl: 'b', size: 5000 },
    { n: 3, uidl: 'c', size: 10 },
    { n: 4, uidl: 'd', size: 20 },
    { n: 5, uidl: '', size: 30 },
    { n: 6, uidl: 'e', size: 40 },
  ];
  const rows = new Map([
    ['c', row('c', 'done', 'Old')],
    ['d', row('d', 'failed', 'X')],
  ]);
  const plan = planCopy(listing, rows);
  const report = buildPlanReport({
    source: 'u@pop:995',
    destination: 'u@imap:993',
    generatedAt: new Date('2026-01-01T00:00:00Z'),
    listing,
    plan,
    rows,
    routed: new Map<number, RoutedMessage | { error: string }>([
      [1, routed('X', 'all')],
      [2, routed('X')],
      [4, routed('X')],
      [5, routed('Y')],
      [6, { error: 'TOP refused' }],
    ]),
    existingFolders: new Set(['Old']),
    appendLimit: 1000,
    rate: { bytesPerSecond: 10, basis: 'test' },
  });

  it('gives each message its status and reason', () => {
    expect(report.messages.map((m) => [m.n, m.status])).toEqual([
      [1, 'new'],
      [2, 'would-fail'],
      [3, 'already-copied'],
      [4, 'retry'],
      [5, 'would-fail'],
      [6, 'new'],
    ]);
    expect(report.messages[1]!.reason).toMatch(/APPENDLIMIT \(5000 > 1000/);
    expect(report.messages[2]).toMatchObject({ folder: 'Old', flags: ['$M'], seenSource: 'all', folderRule: 'r' });
    expect(report.messages[3]!.reason).toBe('NO [LIMIT] too big');
    expect(report.messages[4]!.reason).toMatch(/no UIDL/);
    // The run reads its headers from RETR: a refused TOP hides where it goes, not that it is copied.
    expect(report.messages[5]).toMatchObject({
      folder: '',
      reason: 'TOP refused; the run routes it once it has downloaded it',
    });
  });
  it('tallies totals, folders, seen and date sources over what would be copied', () => {
    expect(report.totals).toEqual({
      messages: 6,
      bytes: 5200,
      new: 2,
      newBytes: 160,
      retry: 1,
      alreadyCopied: 1,
      wouldFail: 2,
    });
    expect(report.folders.find((f) => f.folder === 'X')).toMatchObject({
      exists: false,
      messages: 3,
      new: 2,
      newBytes: 120,
      retry: 1,
      wouldFail: 1,
    });
    expect(report.folders.find((f) => f.folder === 'Old')).toMatchObject({ exists: true, alreadyCopied: 1 });
    expect(report.seenSources).toEqual({ all: 1, none: 2 });
    expect(report.dateSources).toEqual({ received: 2, unknown: 1 });
    expect(report.estimate).toEqual({ bytesPerSecond: 10, seconds: 16, basis: 'test' });
  });
  it('reads APPENDLIMIT=n only', () => {
    expect(appendLimitOf(['IMAP4rev1', 'APPENDLIMIT=35651584'])).toBe(35651584);
    expect(appendLimitOf(['APPENDLIMIT'])).toBeNull();
  });
  it('a size rule and APPENDLIMIT judge a message whose headers could not be read, as the run judges it', () => {
    const r = buildPlanReport({
      source: 's',
      destination: 'd',
      generatedAt: new Date(0),
      listing,
      plan,
      rows,
      routed: new Map<number, RoutedMessage | { error: string }>([
        [1, { error: 'TOP refused' }],
        [2, { error: 'TOP refused' }],
      ]),
      existingFolders: new Set(),
      appendLimit: 1000,
      skipLargerThan: 200,
      rate: null,
    });
    expect(r.messages.slice(0, 2).map((m) => [m.n, m.status, m.reason])).toEqual([
      [1, 'new', 'TOP refused; the run routes it once it has downloaded it'],
      [2, 'would-fail', 'over the size rule (200 bytes)'],
    ]);
  });
  it('a size rule fails what a run would skip, before APPENDLIMIT, judged on the LIST size', () => {
    const r = buildPlanReport({
      source: 's',
      destination: 'd',
      generatedAt: new Date(0),
      listing,
      plan,
      rows,
      routed: new Map<number, RoutedMessage | { error: string }>([
        [1, routed('X')],
        [2, routed('X')],
        [4, routed('X')],
        [5, routed('Y')],
        [6, routed('X')],
      ]),
      existingFolders: new Set(),
      appendLimit: 1000,
      skipLargerThan: 50,
      rate: null,
    });
    expect(r.messages.map((m) => [m.n, m.status, m.reason])).toEqual([
      [1, 'would-fail', 'over the size rule (50 bytes)'],
      [2, 'would-fail', 'over the size rule (50 bytes)'],
      [3, 'already-copied', null],
      [4, 'retry', 'NO [LIMIT] too big'],
      [5, 'would-fail', expect.stringMatching(/no UIDL/)],
      [6, 'new', null],
    ]);
  });
});
