/**
 * Draws a batch's progress (batch-view.ts) on stderr while its accounts run.
 *
 * On a terminal: a block of a few lines at the bottom, redrawn a few times a second in place.
 * Anything else written meanwhile (a warning, an account's error, a summary on stdout when
 * stdout is the same terminal) would land inside the block and be overwritten by the next
 * redraw, so while the block is up, writes to those streams first erase it; it comes back at
 * the next redraw, below what was written. The streams' write functions are restored by
 * stop(), which leaves the last block on screen for the grand total printed after it.
 *
 * Elsewhere (a pipe, a log, NO_COLOR): one plain line now and then, when another tenth of the
 * accounts has finished or `plainIntervalMs` has passed, so a long batch shows it is alive
 * without filling a log.
 */
import { type BatchTally, batchPlainLine, batchViewLines } from './batch-view.js';

export interface BatchScreenOptions {
  tally: BatchTally;
  tty: boolean;
  /** Default process.stderr. */
  stream?: NodeJS.WriteStream;
  /** Streams that share the terminal with `stream` (stdout), whose writes must not tear the block. */
  shared?: NodeJS.WriteStream[];
  now?: () => number;
  /** Terminal redraw interval; default 250 ms. */
  redrawMs?: number;
  /** Plain mode: longest gap between two lines; default 30 s. */
  plainIntervalMs?: number;
}

export interface BatchScreen {
  /** An account started or ended: the plain renderer may have a line to write. */
  changed(): void;
  stop(): void;
}

const ERASE_BLOCK = (lines: number) => `\x1b[${lines}F\x1b[J`;

export function startBatchScreen(o: BatchScreenOptions): BatchScreen {
  const stream = o.stream ?? process.stderr;
  const now = o.now ?? Date.now;
  return o.tty ? ttyScreen(o.tally, stream, o.shared ?? [], now, o.redrawMs ?? 250) : plainScreen(o, stream, now);
}

function ttyScreen(
  tally: BatchTally,
  stream: NodeJS.WriteStream,
  shared: NodeJS.WriteStream[],
  now: () => number,
  redrawMs: number,
): BatchScreen {
  const write = stream.write.bind(stream);
  let shown = 0;
  const erase = () => {
    if (shown > 0) write(ERASE_BLOCK(shown));
    shown = 0;
  };
  const draw = () => {
    const lines = batchViewLines(tally, now(), stream.columns || 80);
    write(`${shown > 0 ? ERASE_BLOCK(shown) : ''}${lines.join('\n')}\n`);
    shown = lines.length;
  };
  const restore: Array<() => void> = [];
  for (const s of new Set([stream, ...shared])) {
    const original = s.write;
    // Same signature as the original: whatever a caller passes goes through untouched.
    s.write = function (this: NodeJS.WriteStream, ...args: Parameters<typeof original>) {
      erase();
      return original.apply(this, args);
    } as typeof original;
    restore.push(() => {
      s.write = original;
    });
  }
  draw();
  const timer = setInterval(draw, redrawMs);
  timer.unref();
  let stopped = false;
  return {
    changed: () => undefined,
    stop() {
      if (stopped) return;
      stopped = true;
      clearInterval(timer);
      for (const r of restore) r();
      draw();
      shown = 0;
    },
  };
}

function plainScreen(o: BatchScreenOptions, stream: NodeJS.WriteStream, now: () => number): BatchScreen {
  const t = o.tally;
  const interval = o.plainIntervalMs ?? 30_000;
  let lastAt = now();
  let lastStep = 0;
  const line = () => {
    lastAt = now();
    stream.write(`${batchPlainLine(t, lastAt)}\n`);
  };
  const timer = setInterval(
    () => {
      if (now() - lastAt >= interval) line();
    },
    Math.min(interval, 5_000),
  );
  timer.unref();
  return {
    changed() {
      const step = t.accounts > 0 ? Math.floor((t.finished * 10) / t.accounts) : 0;
      if (step > lastStep) {
        lastStep = step;
        line();
      }
    },
    stop: () => clearInterval(timer),
  };
}
