import { clearLine, cursorTo, moveCursor } from 'node:readline';
import { Writable } from 'node:stream';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import type { ProgressEvent } from '../../src/engine/types.js';
import { announce, barSize, createProgress, loadTtyLibraries } from '../../src/report/progress.js';

afterEach(() => {
  vi.restoreAllMocks();
  vi.useRealTimers();
});

/** A stderr stand-in. With tty: true it has what ora and cli-progress use of a tty.WriteStream. */
function fakeStream(tty: boolean) {
  let text = '';
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      text += chunk.toString();
      cb();
    },
  });
  if (tty) {
    Object.assign(stream, {
      isTTY: true,
      columns: 100,
      rows: 30,
      cursorTo: (x: number, y?: number) => cursorTo(stream, x, y),
      moveCursor: (dx: number, dy: number) => moveCursor(stream, dx, dy),
      clearLine: (dir: -1 | 0 | 1) => clearLine(stream, dir),
    });
  }
  return { stream, text: () => text };
}

/**
 * The screen a terminal shows after `out`: enough of one for what ora and cli-progress send
 * (CR, LF, cursor up/down/column, erase line); other escapes are ignored.
 */
function render(out: string): string[] {
  const lines: string[] = [''];
  let row = 0;
  let col = 0;
  const put = (ch: string) => {
    const l = lines[row]!.padEnd(col);
    lines[row] = l.slice(0, col) + ch + l.slice(col + 1);
    col++;
  };
  const esc = new RegExp(`^${String.fromCharCode(27)}\\[([0-9;?]*)([A-Za-z])`);
  for (let i = 0; i < out.length; i++) {
    const ch = out[i]!;
    const m = ch === String.fromCharCode(27) ? esc.exec(out.slice(i)) : null;
    if (m) {
      i += m[0].length - 1;
      const n = Number(m[1] || 1);
      if (m[2] === 'A') row = Math.max(0, row - n);
      else if (m[2] === 'B') row += n;
      else if (m[2] === 'G') col = n - 1;
      else if (m[2] === 'K') lines[row] = lines[row]!.slice(0, col);
    } else if (ch === '\r') col = 0;
    else if (ch === '\n') {
      row++;
      col = 0;
    } else put(ch);
    while (lines.length <= row) lines.push('');
  }
  return lines;
}

function clock() {
  let t = 1_000_000;
  return {
    now: () => t,
    advance: (ms: number) => {
      t += ms;
    },
  };
}

/** Progress drawn on a fake terminal (`columns` wide when given), on a clock the test moves. */
function terminal(columns?: number) {
  const s = fakeStream(true);
  if (columns !== undefined) Object.assign(s.stream, { columns });
  const c = clock();
  const p = createProgress({ tty: true, quiet: false, stream: s.stream as unknown as NodeJS.WriteStream, now: c.now });
  return { s, c, p };
}

describe('quiet', () => {
  it('prints nothing at all', () => {
    const s = fakeStream(false);
    const p = createProgress({ tty: false, quiet: true, stream: s.stream });
    p.listener({ type: 'phase', phase: 'connect-source' });
    p.listener({ type: 'reconnect', side: 'pop3', attempt: 1, delayMs: 1000, reason: 'x' });
    p.stop();
    expect(s.text()).toBe('');
  });
});

describe('plain lines (not a terminal)', () => {
  it('prints phases, the plan and a progress line per 10% step', () => {
    const s = fakeStream(false);
    const c = clock();
    const p = createProgress({ tty: false, quiet: false, stream: s.stream, now: c.now, intervalMs: 60_000 });
    p.listener({ type: 'phase', phase: 'connect-source', detail: 'alice@pop.example.net:995' });
    p.listener({ type: 'phase', phase: 'connect-destination' });
    p.listener({ type: 'phase', phase: 'listing' });
    p.listener({ type: 'plan', toCopy: 20, toCopyBytes: 20 * 1024, alreadyCopied: 3, newToJournal: false });
    p.listener({ type: 'phase', phase: 'copying' });
    for (let i = 0; i < 20; i++) {
      c.advance(100);
      p.listener({ type: 'message', uidl: `u${i}`, bytes: 1024, outcome: i === 4 ? 'failed' : 'copied' });
    }
    p.listener({ type: 'phase', phase: 'finishing' });
    p.stop();

    const lines = s.text().split('\n');
    expect(lines.slice(0, 5)).toEqual([
      'popsync: connecting to the source: alice@pop.example.net:995',
      'popsync: connecting to the destination',
      'popsync: listing messages',
      'popsync: 20 messages (20.0 KiB) to copy, 3 already copied',
      'popsync: copying',
    ]);
    const progress = lines.filter((l) => l.includes('/20 messages'));
    expect(progress).toHaveLength(10);
    expect(progress[0]).toBe(
      'popsync: 2/20 messages (10%), 2.0 KiB of 20.0 KiB, 10.0 KiB/s while copying, about 1.8s left',
    );
    expect(progress[2]).toBe(
      'popsync: 6/20 messages (30%), 1 failed, 6.0 KiB of 20.0 KiB, 10.0 KiB/s while copying, about 1.4s left',
    );
    expect(progress[9]).toBe(
      'popsync: 20/20 messages (100%), 1 failed, 20.0 KiB of 20.0 KiB, 10.0 KiB/s while copying',
    );
    expect(lines.at(-2)).toBe('popsync: finishing');
    expect(s.text()).not.toContain('\x1b');
  });

  it('says so when messages are adopted or recognised rather than copied', () => {
    const s = fakeStream(false);
    const c = clock();
    const p = createProgress({ tty: false, quiet: false, stream: s.stream, now: c.now, intervalMs: 60_000 });
    p.listener({ type: 'plan', toCopy: 4, toCopyBytes: 4096, alreadyCopied: 0, newToJournal: false });
    p.listener({ type: 'phase', phase: 'copying' });
    const outcomes = ['adopted', 'adopted', 'recognised', 'copied'] as const;
    for (const [i, outcome] of outcomes.entries()) {
      c.advance(100);
      p.listener({ type: 'message', uidl: `u${i}`, bytes: 1024, outcome });
    }
    const lines = s.text().split('\n');
    // Each explanation once, before the first count that includes it.
    expect(lines.filter((l) => l.includes('adopting them'))).toEqual([
      'popsync: found copies already in the destination that this journal did not know of: ' +
        'adopting them (recorded, not copied again)',
    ]);
    expect(lines.filter((l) => l.includes('another UIDL'))).toHaveLength(1);
    expect(lines.findIndex((l) => l.includes('adopting them'))).toBeLessThan(
      lines.findIndex((l) => l.includes('/4 messages')),
    );
    expect(lines.filter((l) => l.includes('/4 messages'))).toEqual([
      'popsync: 1/4 messages (25%), 1 adopted, 1.0 KiB of 4.0 KiB, 10.0 KiB/s while checking, under 1s left',
      'popsync: 2/4 messages (50%), 2 adopted, 2.0 KiB of 4.0 KiB, 10.0 KiB/s while checking, under 1s left',
      'popsync: 3/4 messages (75%), 2 adopted, 1 recognised, 3.0 KiB of 4.0 KiB, 10.0 KiB/s while checking, ' +
        'under 1s left',
      'popsync: 4/4 messages (100%), 2 adopted, 1 recognised, 4.0 KiB of 4.0 KiB, 10.0 KiB/s while copying',
    ]);
  });

  it('says under 1s left, never about 0.0s, when the estimate rounds to nothing', () => {
    const s = fakeStream(false);
    const c = clock();
    const p = createProgress({ tty: false, quiet: false, stream: s.stream, now: c.now, intervalMs: 60_000 });
    p.listener({ type: 'plan', toCopy: 10, toCopyBytes: 10_000, alreadyCopied: 0, newToJournal: false });
    p.listener({ type: 'phase', phase: 'copying' });
    // Nine small messages over 9 s, then the estimate for the last 10 bytes is 9 ms.
    for (let i = 0; i < 9; i++) {
      c.advance(1000);
      p.listener({ type: 'message', uidl: `u${i}`, bytes: i === 8 ? 9990 - 8 * 10 : 10, outcome: 'copied' });
    }
    const last = s
      .text()
      .split('\n')
      .filter((l) => l.includes('9/10 messages'));
    expect(last).toEqual(['popsync: 9/10 messages (90%), 9.8 KiB of 9.8 KiB, 1.1 KiB/s while copying, under 1s left']);
  });

  it('prints at most one line per interval between 10% steps', () => {
    const s = fakeStream(false);
    const c = clock();
    const p = createProgress({ tty: false, quiet: false, stream: s.stream, now: c.now, intervalMs: 5000 });
    p.listener({ type: 'plan', toCopy: 1000, toCopyBytes: 1000 * 500, alreadyCopied: 0, newToJournal: false });
    p.listener({ type: 'phase', phase: 'copying' });
    for (let i = 0; i < 21; i++) {
      c.advance(1000);
      p.listener({ type: 'message', uidl: `u${i}`, bytes: 500, outcome: 'copied' });
    }
    const progress = s
      .text()
      .split('\n')
      .filter((l) => l.includes('/1000 messages'));
    expect(progress.map((l) => l.slice(0, l.indexOf(' messages')))).toEqual([
      'popsync: 5/1000',
      'popsync: 10/1000',
      'popsync: 15/1000',
      'popsync: 20/1000',
    ]);
    expect(progress[0]).toBe(
      'popsync: 5/1000 messages (0%), 2.4 KiB of 488.3 KiB, 500 B/s while copying, about 16m 35s left',
    );
  });

  it('prints reconnects as they happen, escaping what the server sent', () => {
    const s = fakeStream(false);
    const p = createProgress({ tty: false, quiet: false, stream: s.stream });
    p.listener({ type: 'reconnect', side: 'pop3', attempt: 2, delayMs: 2000, reason: 'read ECONNRESET' });
    p.listener({ type: 'reconnect', side: 'imap', attempt: 1, delayMs: 30_000, reason: '* BYE \x1b[31mthrottled' });
    expect(s.text()).toBe(
      'popsync: POP3 connection failed (read ECONNRESET); reconnecting in 2.0s, attempt 2\n' +
        'popsync: IMAP connection failed (* BYE \\x1b[31mthrottled); reconnecting in 30s, attempt 1\n',
    );
  });
});

describe('terminal', () => {
  beforeAll(() => loadTtyLibraries());
  it('draws a spinner, then message and byte bars, on the given stream only', () => {
    const stdout = vi.spyOn(process.stdout, 'write');
    const { s, c, p } = terminal();
    const events: ProgressEvent[] = [
      { type: 'phase', phase: 'connect-source', detail: 'alice@pop.example.net:995' },
      { type: 'phase', phase: 'listing' },
      { type: 'plan', toCopy: 4, toCopyBytes: 4096, alreadyCopied: 1, newToJournal: false },
      { type: 'phase', phase: 'copying' },
    ];
    events.forEach(p.listener);
    for (let i = 0; i < 4; i++) {
      c.advance(500);
      p.listener({ type: 'message', uidl: `u${i}`, bytes: 1024, outcome: i === 0 ? 'failed' : 'copied' });
    }
    p.listener({ type: 'reconnect', side: 'imap', attempt: 1, delayMs: 1000, reason: 'socket hang up' });
    p.stop();

    const out = s.text();
    expect(out).toContain('connecting to the source: alice@pop.example.net:995');
    expect(out).toContain('4 messages (4.0 KiB) to copy, 1 already copied\n');
    expect(out).toContain('IMAP connection failed (socket hang up); reconnecting in 1.0s, attempt 1\n');
    expect(out).toMatch(/ messages \S+ 100% 4\/4, 1 failed \| ETA 0s/);
    expect(out).toMatch(/ bytes {4}\S+ 100% 4\.0 KiB\/4\.0 KiB \| 2\.0 KiB\/s/);
    expect(out).toContain('\x1b[');
    expect(stdout).not.toHaveBeenCalled();
  });

  it('a journal with no record of the mailbox claims no count of copies already made', () => {
    const { s, p } = terminal();
    p.listener({ type: 'plan', toCopy: 2, toCopyBytes: 2048, alreadyCopied: 0, newToJournal: true });
    // With nothing to copy there is nothing to adopt either: the usual line.
    p.listener({ type: 'plan', toCopy: 0, toCopyBytes: 0, alreadyCopied: 0, newToJournal: true });
    p.stop();
    const out = s.text();
    expect(out).toContain(
      '2 messages (2.0 KiB) to copy, or to adopt if the destination has them already ' +
        '(this journal has no record of them)\n',
    );
    expect(out).toContain('0 messages (0 B) to copy, 0 already copied\n');
  });

  it('counts adopted messages apart on the bar and says once what adopting means', () => {
    const { s, c, p } = terminal();
    p.listener({ type: 'plan', toCopy: 2, toCopyBytes: 2048, alreadyCopied: 0, newToJournal: false });
    p.listener({ type: 'phase', phase: 'copying' });
    for (let i = 0; i < 2; i++) {
      c.advance(500);
      p.listener({ type: 'message', uidl: `u${i}`, bytes: 1024, outcome: 'adopted' });
    }
    p.stop();
    const out = s.text();
    expect(out.split('adopting them (recorded, not copied again)\n')).toHaveLength(2);
    expect(out).toMatch(/ messages \S+ 100% 2\/2, 2 adopted \| ETA 0s/);
  });

  it('names both sides on the spinner while they connect side by side, the source first', () => {
    vi.useFakeTimers();
    const s = fakeStream(true);
    const p = createProgress({ tty: true, quiet: false, stream: s.stream as unknown as NodeJS.WriteStream });
    p.listener({ type: 'phase', phase: 'connect-source', detail: 'alice@pop.example.net:995' });
    p.listener({ type: 'phase', phase: 'connect-destination', detail: 'alice@imap.example.net:993' });
    // ora draws the new text at its next frame.
    vi.advanceTimersByTime(200);
    const spinnerLine = () => render(s.text()).findLast((l) => l.trim() !== '') ?? '';
    expect(spinnerLine()).toContain(
      'connecting to the source: alice@pop.example.net:995 and the destination: alice@imap.example.net:993',
    );
    // Once the source answered the spinner moves on, and a later connect (a reconnect) starts afresh.
    p.listener({ type: 'phase', phase: 'listing' });
    vi.advanceTimersByTime(200);
    expect(spinnerLine()).toMatch(/listing messages$/);
    p.listener({ type: 'phase', phase: 'connect-destination', detail: 'alice@imap.example.net:993' });
    vi.advanceTimersByTime(200);
    expect(spinnerLine()).toMatch(/. connecting to the destination: alice@imap.example.net:993$/);
    p.stop();
  });

  it('fits the bars into 80 columns, also with the widest counts, rates and ETA', () => {
    const { s, c, p } = terminal(80);
    p.listener({
      type: 'plan',
      toCopy: 12345,
      toCopyBytes: 1023.9 * 1024 * 1024,
      alreadyCopied: 0,
      newToJournal: false,
    });
    p.listener({ type: 'phase', phase: 'copying' });
    // Failures to widen the messages line; 1 GiB messages for the widest byte counts and rate.
    for (let i = 0; i < 12; i++) {
      c.advance(1000);
      p.listener({ type: 'message', uidl: `u${i}`, bytes: 1000 * 1024 * 1024, outcome: i < 2 ? 'copied' : 'failed' });
    }
    c.advance(3_900_000);
    p.listener({ type: 'message', uidl: 'last', bytes: 1, outcome: 'failed' });
    p.stop();
    // Each drawn line, without its escapes (cursor moves and colours).
    const drawn = s
      .text()
      .replace(new RegExp(`${String.fromCharCode(27)}\\[[0-9;?]*[A-Za-z]`, 'g'), '\n')
      .split(/[\r\n]+/)
      .filter((l) => / (messages|bytes) /.test(l));
    expect(drawn.length).toBeGreaterThan(0);
    for (const l of drawn) expect(l.length, l).toBeLessThanOrEqual(80);
    expect(barSize(80)).toBe(21);
    expect(barSize(200)).toBe(30);
    expect(barSize(40)).toBe(10);
  });

  it('a notice announced while the bars are drawn stays on the screen above them', () => {
    vi.useFakeTimers();
    const { s, c, p } = terminal();
    p.listener({ type: 'plan', toCopy: 4, toCopyBytes: 4096, alreadyCopied: 0, newToJournal: false });
    p.listener({ type: 'phase', phase: 'copying' });
    c.advance(500);
    p.listener({ type: 'message', uidl: 'u0', bytes: 1024, outcome: 'copied' });
    // The bars on the screen (cli-progress redraws on its timer), then the notice.
    vi.advanceTimersByTime(400);
    expect(render(s.text()).some((l) => /^ messages .* 1\/4/.test(l))).toBe(true);
    announce('popsync: SIGINT: finishing the batches already being stored', s.stream);
    for (let i = 1; i < 4; i++) {
      c.advance(500);
      p.listener({ type: 'message', uidl: `u${i}`, bytes: 1024, outcome: 'copied' });
    }
    p.stop();
    const screen = render(s.text());
    expect(screen).toContain('popsync: SIGINT: finishing the batches already being stored');
    expect(screen.findIndex((l) => l.includes('SIGINT'))).toBeLessThan(screen.findIndex((l) => /^ messages /.test(l)));
    expect(screen.filter((l) => /^ messages /.test(l))).toEqual([expect.stringMatching(/ 4\/4 /)]);
    // With no bars on the screen it is a line of its own, as before.
    const plain = fakeStream(false);
    announce('popsync: SIGTERM: finishing', plain.stream);
    expect(plain.text()).toBe('\npopsync: SIGTERM: finishing\n');
  });

  it("sets the bars' figures as they are drawn, not for every message", () => {
    vi.useFakeTimers();
    const s = fakeStream(true);
    let reads = 0;
    const now = (): number => 1_000_000 + 10 * ++reads;
    const p = createProgress({ tty: true, quiet: false, stream: s.stream as unknown as NodeJS.WriteStream, now });
    p.listener({ type: 'plan', toCopy: 1000, toCopyBytes: 1000 * 1024, alreadyCopied: 0, newToJournal: false });
    p.listener({ type: 'phase', phase: 'copying' });
    const before = reads;
    for (let i = 0; i < 1000; i++) p.listener({ type: 'message', uidl: `u${i}`, bytes: 1024, outcome: 'copied' });
    // The rate and the ETA read the clock: set for every message, that was 2,000 reads here.
    expect(reads - before).toBe(0);
    // cli-progress's next redraw (5 per second) sets them, and shows where the run is.
    vi.advanceTimersByTime(250);
    expect(reads - before).toBeGreaterThan(0);
    expect(render(s.text()).some((l) => /^ messages .* 1000\/1000 /.test(l))).toBe(true);
    p.stop();
  });

  it('stop() is safe before anything happened and twice', () => {
    const s = fakeStream(true);
    const p = createProgress({ tty: true, quiet: false, stream: s.stream as unknown as NodeJS.WriteStream });
    p.stop();
    p.stop();
    expect(s.text()).not.toContain('messages');
  });
});
