import { describe, expect, it } from 'vitest';
import type { MessageFailure, RunResult } from '../../src/engine/types.js';
import { emptyRunResult } from '../../src/engine/recorder.js';
import {
  formatBytes,
  formatDuration,
  formatEta,
  formatFailure,
  formatSummary,
  printable,
  rateText,
  summaryJson,
} from '../../src/report/summary.js';

function result(over: Partial<RunResult> = {}): RunResult {
  return {
    ...emptyRunResult('migrate', 'alice@pop.example.net:995', 'alice@imap.example.net:993', '2025-03-01T10:00:00.000Z'),
    listed: 120,
    listedBytes: 3_565_158,
    copied: 100,
    copiedBytes: 3_145_728,
    alreadyCopied: 15,
    reconciled: 2,
    reconnects: 1,
    durationMs: 62_000,
    ...over,
  };
}

const tooBig: MessageFailure = {
  uidl: '000001a2b3',
  n: 5,
  size: 12_288,
  folder: 'Archive',
  reason: 'the destination refused it',
  serverResponse: 'NO [TOOBIG] Message too large',
};

describe('formatSummary', () => {
  it('lists every count, bytes, duration and rate', () => {
    expect(formatSummary(result())).toBe(
      [
        'popsync migrate: alice@pop.example.net:995 -> alice@imap.example.net:993',
        '  listed:          120 messages, 3.4 MiB',
        '  copied:          100 messages, 3.0 MiB in 1m 02s (49.5 KiB/s over the whole run)',
        '  already copied:  15',
        '  reconciled:      2',
        '  failed:          0',
        '  reconnects:      1',
      ].join('\n'),
    );
  });

  it('accounts for copies it found already there or knew under another UIDL, only when there were any', () => {
    const lines = formatSummary(result({ copied: 0, copiedBytes: 0, adopted: 2, recognised: 1 })).split('\n');
    expect(lines.slice(3, 7)).toEqual([
      '  already copied:  15',
      '  reconciled:      2',
      '  adopted:         2 (found already in the destination; recorded, not copied again)',
      '  recognised:      1 (copied before under another UIDL; not copied again)',
    ]);
    expect(formatSummary(result())).not.toMatch(/adopted|recognised/);
  });

  it('adds one line per failed message under the failed count', () => {
    const text = formatSummary(
      result({
        failed: [
          tooBig,
          {
            uidl: 'zz9',
            n: null,
            size: 300,
            folder: null,
            reason: 'connection lost during RETR',
            serverResponse: null,
          },
        ],
      }),
    );
    const lines = text.split('\n');
    const at = lines.indexOf('  failed:          2');
    expect(at).toBeGreaterThan(0);
    expect(lines.slice(at + 1, at + 3)).toEqual([
      '    UIDL 000001a2b3 (#5, 12.0 KiB, folder Archive): the destination refused it — server said: "NO ' +
        '[TOOBIG] Message too large"',
      '    UIDL zz9 (300 B): connection lost during RETR',
    ]);
  });

  it('says 1 message, and leaves out the rate when nothing was copied or no time passed', () => {
    expect(formatSummary(result({ copied: 1, copiedBytes: 10, durationMs: 0 }))).toContain(
      '  copied:          1 message, 10 B in 0.0s\n',
    );
    expect(formatSummary(result({ copied: 0, copiedBytes: 0, durationMs: 5000 }))).toContain(
      '  copied:          0 messages, 0 B in 5.0s\n',
    );
  });

  it('says why a run went on over one IMAP connection, last, only when it did', () => {
    expect(formatSummary(result())).not.toContain('one connection');
    const lines = formatSummary(
      result({
        oneImapConnection:
          'the server refused a second IMAP connection for this user: NO [UNAVAILABLE] Maximum number of ' +
          'connections\x1b[2J',
      }),
    ).split('\n');
    expect(lines.at(-1)).toBe(
      '  one connection:  the server refused a second IMAP connection for this user: NO [UNAVAILABLE] Maximum ' +
        'number of connections\\x1b[2J; copied one APPEND at a time',
    );
  });

  it('neutralises terminal escapes from server text and UIDLs', () => {
    const line = formatFailure({ ...tooBig, uidl: 'a\x1b[2Jb', serverResponse: 'NO \u202eevil' });
    expect(line).toBe(
      'UIDL a\\x1b[2Jb (#5, 12.0 KiB, folder Archive): the destination refused it — server said: "NO \\u202eevil"',
    );
  });
});

describe('summaryJson', () => {
  it('is the RunResult plus a version, and parses back', () => {
    const r = result({ failed: [tooBig] });
    const json = summaryJson(r);
    expect(json.startsWith('{\n  "version": 1,\n  "command": "migrate",')).toBe(true);
    expect(JSON.parse(json)).toEqual({ version: 1, ...r });
  });
});

describe('helpers', () => {
  it('formatBytes', () => {
    expect([0, 1023, 1024, 1536, 1_048_576, 5 * 1024 ** 3].map(formatBytes)).toEqual([
      '0 B',
      '1023 B',
      '1.0 KiB',
      '1.5 KiB',
      '1.0 MiB',
      '5.0 GiB',
    ]);
  });

  it('formatDuration', () => {
    expect([400, 9_949, 42_000, 62_000, 3_600_000 + 3 * 60_000 + 4_000].map(formatDuration)).toEqual([
      '0.4s',
      '9.9s',
      '42s',
      '1m 02s',
      '1h 03m 04s',
    ]);
  });

  it('formatEta never says 0.0s', () => {
    expect([0, 9, 999, 1000, 1800, 995_000].map(formatEta)).toEqual([
      'under 1s',
      'under 1s',
      'under 1s',
      '1.0s',
      '1.8s',
      '16m 35s',
    ]);
  });

  it('rateText', () => {
    expect(rateText(2048, 1000)).toBe('2.0 KiB/s');
    expect(rateText(2048, 0)).toBeNull();
  });

  it('printable keeps tabs and ordinary Unicode', () => {
    expect(printable('a\tb — Grüße\x00\x7f')).toBe('a\tb — Grüße\\x00\\x7f');
  });
});
