/**
 * Live progress on stderr while the engine runs (stdout is reserved for the final report).
 *
 * On a terminal: an ora spinner while connecting, listing and reconciling, then two cli-progress
 * bars (messages and bytes, with rate and ETA) while copying; reconnects and the plan are
 * printed as lines above them. Elsewhere (cron, a pipe, a CI log): plain lines with no escape
 * codes, and copy progress throttled to one line per 10% step or per interval, so a 50,000
 * message run does not fill a cron mail. Quiet: nothing at all.
 *
 * The engine only emits ProgressEvents; which of these renderers listens is decided here, so
 * the engine never knows whether anyone is watching.
 */

import type { MultiBar, SingleBar } from 'cli-progress';
import type { Ora } from 'ora';
import type { Phase, ProgressEvent, ProgressListener } from '../engine/types.js';
import { formatBytes, formatDuration, formatEta, printable, rateText } from './summary.js';

export interface ProgressOptions {
  /** Draw spinners and bars. Only when stderr is a terminal and the user did not opt out. */
  tty: boolean;
  /** Print nothing (--quiet, --no-progress, --json). */
  quiet: boolean;
  /** Default process.stderr. */
  stream?: NodeJS.WritableStream;
  /** Plain mode: longest gap between two progress lines while copying. Default 5 s. */
  intervalMs?: number;
  /** Clock, for tests. */
  now?: () => number;
}

export interface Progress {
  listener: ProgressListener;
  /** Stops spinner and bars and restores the cursor. Safe to call more than once. */
  stop(): void;
}

const PHASE_TEXT: Record<Phase, string> = {
  'connect-source': 'connecting to the source',
  'connect-destination': 'connecting to the destination',
  listing: 'listing messages',
  reconciling: 'checking copies an earlier run left unfinished',
  copying: 'copying',
  finishing: 'finishing',
};

const SIDE_LABEL = { pop3: 'POP3', imap: 'IMAP' } as const;
const SIDE_TEXT = { 'connect-source': 'the source', 'connect-destination': 'the destination' } as const;

/** Picks the renderer for this run. */
/**
 * ora and cli-progress are loaded only for a terminal, and only for a run that may draw (main.ts
 * calls this before migrate or sync with progress on): a cron run never draws a bar and should not
 * pay ~85 ms of start-up for them, nor `status` or `--version` at a terminal their ~20 ms.
 */
let ttyLibraries: { ora: typeof import('ora').default; MultiBar: typeof MultiBar } | null = null;

export async function loadTtyLibraries(): Promise<void> {
  if (ttyLibraries) return;
  const [oraModule, cliProgress] = await Promise.all([import('ora'), import('cli-progress')]);
  // cli-progress is CommonJS: the bundle's ES chunk of it exports only `default` (module.exports),
  // so `cliProgress.MultiBar` was undefined there and the first bar threw. Node's own loader gives
  // `default` too, so one spelling serves both builds.
  ttyLibraries = { ora: oraModule.default, MultiBar: cliProgress.default.MultiBar };
}

/**
 * Where a line from outside the engine (main.ts's signal notice) goes while bars are drawn:
 * written straight to the terminal, it sat on the line the next redraw moves the cursor up to,
 * and the bars drew over it, so Ctrl-C seemed to do nothing. Null while no bars are shown.
 */
let aboveBars: ((s: string) => void) | null = null;

/**
 * A line for the user on stderr: above the progress bars when they are drawn (and drawn at
 * once, as the run may end before the next redraw), else as it is.
 */
export function announce(text: string, stream: NodeJS.WritableStream = process.stderr): void {
  if (aboveBars !== null) aboveBars(text);
  else stream.write(`\n${text}\n`);
}

export function createProgress(opts: ProgressOptions): Progress {
  if (opts.quiet) return { listener: () => {}, stop: () => {} };
  const stream = opts.stream ?? process.stderr;
  const now = opts.now ?? Date.now;
  // Without the terminal libraries loaded (see loadTtyLibraries) plain lines are still right.
  return opts.tty && ttyLibraries ? ttyProgress(stream, now) : plainProgress(stream, now, opts.intervalMs ?? 5000);
}

/** Counters both renderers keep. */
class Tally {
  toCopy = 0;
  toCopyBytes = 0;
  done = 0;
  doneBytes = 0;
  failed = 0;
  /** Settled without a copy: found already in the destination, or known under another UIDL. */
  adopted = 0;
  recognised = 0;
  startedAt: number | null = null;

  constructor(private readonly now: () => number) {}

  start(): void {
    this.startedAt ??= this.now();
  }

  add(e: Extract<ProgressEvent, { type: 'message' }>): void {
    this.start();
    this.done++;
    this.doneBytes += e.bytes;
    if (e.outcome === 'failed') this.failed++;
    else if (e.outcome === 'adopted') this.adopted++;
    else if (e.outcome === 'recognised') this.recognised++;
  }

  /**
   * The settled messages that were not copies, for the counts ("2/2 messages, 2 adopted"): a
   * new journal over a destination that already has the mail settles every message without
   * one APPEND, and "2/2 messages" alone read as two copies made.
   */
  notCopiedText(): string {
    const parts: string[] = [];
    if (this.adopted > 0) parts.push(`${this.adopted} adopted`);
    if (this.recognised > 0) parts.push(`${this.recognised} recognised`);
    if (this.failed > 0) parts.push(`${this.failed} failed`);
    return parts.map((p) => `, ${p}`).join('');
  }

  elapsedMs(): number {
    return this.startedAt === null ? 0 : this.now() - this.startedAt;
  }

  /** Remaining time from the byte rate (bytes, not messages, decide how long RETR+APPEND take). */
  etaMs(): number | null {
    const elapsed = this.elapsedMs();
    if (elapsed <= 0) return null;
    if (this.toCopyBytes > 0 && this.doneBytes > 0) {
      return Math.max(0, ((this.toCopyBytes - this.doneBytes) * elapsed) / this.doneBytes);
    }
    if (this.toCopy > 0 && this.done > 0) return Math.max(0, ((this.toCopy - this.done) * elapsed) / this.done);
    return null;
  }
}

function etaText(t: Tally): string {
  if (t.done >= t.toCopy) return 'ETA 0s';
  const eta = t.etaMs();
  return eta === null ? 'ETA -' : `ETA ${formatEta(eta)}`;
}

function detailText(detail: string | undefined): string {
  return detail === undefined || detail === '' ? '' : `: ${printable(detail)}`;
}

function phaseText(phase: Phase, detail?: string): string {
  return PHASE_TEXT[phase] + detailText(detail);
}

/**
 * What the journal knows, said as such. A journal with no record of the mailbox cannot tell
 * what the destination already holds: "30 to copy, 0 already copied" there read as a promise of
 * 30 copies (duplicates, to a user who migrated before) that the run then did not make. So that
 * case says up front that copies found in the destination are adopted, and claims no count of
 * what is already copied.
 */
function planText(e: Extract<ProgressEvent, { type: 'plan' }>): string {
  const toCopy = `${e.toCopy} message${e.toCopy === 1 ? '' : 's'} (${formatBytes(e.toCopyBytes)}) to copy`;
  if (e.newToJournal && e.toCopy > 0) {
    return `${toCopy}, or to adopt if the destination has them already (this journal has no record of them)`;
  }
  return `${toCopy}, ${e.alreadyCopied} already copied`;
}

/**
 * Said once, at the first message settled without a copy: the plan line before it could only
 * count what the journal knows (a journal that knows the mailbox may still adopt: a first run
 * it did not finish), so "to copy" would otherwise stand uncorrected.
 */
const FIRST_TEXT = {
  adopted:
    'found copies already in the destination that this journal did not know of: ' +
    'adopting them (recorded, not copied again)',
  recognised: 'recognised messages copied before under another UIDL: not copied again',
} as const;

/** Returns the line to print for this event, if it is the first of its kind. */
function firstOfKind(): (e: Extract<ProgressEvent, { type: 'message' }>) => string | null {
  const seen = new Set<string>();
  return (e) => {
    if (e.outcome !== 'adopted' && e.outcome !== 'recognised') return null;
    if (seen.has(e.outcome)) return null;
    seen.add(e.outcome);
    return FIRST_TEXT[e.outcome];
  };
}

function reconnectText(e: Extract<ProgressEvent, { type: 'reconnect' }>): string {
  return (
    `${SIDE_LABEL[e.side]} connection failed (${printable(e.reason)}); reconnecting in ` +
    `${formatDuration(e.delayMs)}, attempt ${e.attempt}`
  );
}

/**
 * Cron and pipe output. Phase, plan and reconnect lines are printed as they happen (they are
 * few); copy progress only when it crosses a 10% step or `intervalMs` passed since the last line.
 */
function plainProgress(stream: NodeJS.WritableStream, now: () => number, intervalMs: number): Progress {
  const t = new Tally(now);
  const line = (s: string) => stream.write(`popsync: ${s}\n`);
  let lastLineAt = 0;
  let lastStep = 0;
  const first = firstOfKind();

  const progressLine = (): string => {
    const parts = [`${t.done}/${t.toCopy} messages`];
    if (t.toCopy > 0) parts[0] += ` (${Math.floor((t.done * 100) / t.toCopy)}%)`;
    parts[0] += t.notCopiedText();
    parts.push(`${formatBytes(t.doneBytes)} of ${formatBytes(t.toCopyBytes)}`);
    // Measured from the first copy, not the start of the run as the summary's: said, so the two
    // figures for one run do not read as a contradiction.
    const rate = rateText(t.doneBytes, t.elapsedMs());
    // A run that only found its copies already made (a new journal) copied nothing to have a rate of.
    const copied = t.done - t.failed - t.adopted - t.recognised;
    if (rate !== null)
      parts.push(`${rate} while ${copied === 0 && t.adopted + t.recognised > 0 ? 'checking' : 'copying'}`);
    const eta = t.etaMs();
    if (eta !== null && t.done < t.toCopy) parts.push(eta < 1000 ? 'under 1s left' : `about ${formatEta(eta)} left`);
    return parts.join(', ');
  };

  const listener: ProgressListener = (e) => {
    switch (e.type) {
      case 'phase':
        if (e.phase === 'copying') {
          t.start();
          lastLineAt = now();
        }
        line(phaseText(e.phase, e.detail));
        break;
      case 'plan':
        t.toCopy = e.toCopy;
        t.toCopyBytes = e.toCopyBytes;
        line(planText(e));
        break;
      case 'message': {
        if (t.startedAt === null) lastLineAt = now();
        t.add(e);
        const said = first(e);
        if (said !== null) line(said);
        const step = t.toCopy > 0 ? Math.floor((t.done * 10) / t.toCopy) : 0;
        if (step > lastStep || now() - lastLineAt >= intervalMs) {
          lastStep = step;
          lastLineAt = now();
          line(progressLine());
        }
        break;
      }
      case 'reconnect':
        line(reconnectText(e));
        break;
    }
  };
  return { listener, stop: () => {} };
}

/**
 * The longest bar text besides the bar, at its widest: " messages " + " 100% " + "12345/12345"
 * + ", 12345 failed" + " | ETA 1h 05m 00s" (58), against " bytes    " + " 100% " +
 * "1023.9 MiB/1023.9 MiB" + " | 1023.9 MiB/s" (52).
 */
const BAR_TEXT = 58;

/** Bars as wide as fits: 30 on a wide terminal, 21 at 80 columns, never under 10. */
export function barSize(columns: number | undefined): number {
  return Math.max(10, Math.min(30, (columns ?? 80) - 1 - BAR_TEXT));
}

/** A terminal: spinner for the waiting phases, two bars while copying. */
function ttyProgress(stream: NodeJS.WritableStream, now: () => number): Progress {
  const t = new Tally(now);
  // discardStdin would put stdin into raw mode and take Ctrl-C's SIGINT away from main.ts.
  const { ora, MultiBar } = ttyLibraries!;
  const spinner: Ora = ora({ stream, isEnabled: true, discardStdin: false, hideCursor: true });
  let bars: { multi: MultiBar; messages: SingleBar; bytes: SingleBar } | null = null;

  const payload = () => {
    return {
      doneBytes: formatBytes(t.doneBytes),
      totalBytes: formatBytes(t.toCopyBytes),
      byteRate: rateText(t.doneBytes, t.elapsedMs()) ?? '- B/s',
      notCopied: t.notCopiedText(),
      // One ETA for both bars, from the overall byte rate: cli-progress's own estimate works per
      // bar from its last few updates, so the two bars disagreed (8 s vs 40 s, seen in a demo).
      etaText: etaText(t),
    };
  };

  const startBars = () => {
    spinner.stop();
    // Nothing to copy: no empty 0/0 bars, the plan line already said so.
    if (t.toCopy === 0) return;
    t.start();
    const multi = new MultiBar({
      stream: stream as NodeJS.WritableStream & { isTTY: true },
      // {rate} is the bytes' only (messages per second says little), the ETA the messages'.
      format: ' {label} {bar} {percentage}% {counts}{notCopied}{rate}{etaText}',
      barsize: barSize((stream as { columns?: number }).columns),
      hideCursor: true,
      clearOnComplete: false,
      stopOnComplete: false,
      emptyOnZero: true,
      gracefulExit: false, // main.ts owns the signals; stop() restores the cursor
      fps: 5,
    });
    // The bars' figures are set as they are drawn (cli-progress's timer, 5 a second, and each
    // forced redraw), not for every message settled: a redraw shows the same, and formatting the
    // bytes, rate and ETA and updating both bars per message cost 23-28 ms of CPU per 10,000
    // messages (4% of a small run's main-thread samples at a terminal).
    multi.on('redraw-pre', updateBars);
    const p = payload();
    bars = {
      multi,
      messages: multi.create(t.toCopy, 0, {
        label: 'messages',
        counts: `${t.done}/${t.toCopy}`,
        rate: '',
        etaText: ` | ${p.etaText}`,
        notCopied: p.notCopied,
      }),
      bytes: multi.create(t.toCopyBytes, 0, {
        label: 'bytes   ',
        counts: `${p.doneBytes}/${p.totalBytes}`,
        rate: ` | ${p.byteRate}`,
        etaText: '',
        notCopied: '',
      }),
    };
    aboveBars = (text) => {
      const b = bars;
      if (b === null) return;
      b.multi.log(`${text}\n`);
      b.multi.update();
    };
  };

  const stopBars = () => {
    if (bars !== null) {
      aboveBars = null;
      // log() only buffers until the next redraw; draw once more so no line is lost.
      bars.multi.update();
      bars.multi.stop();
      bars = null;
    }
  };

  const updateBars = () => {
    if (bars === null) return;
    const p = payload();
    bars.messages.setTotal(t.toCopy);
    bars.bytes.setTotal(t.toCopyBytes);
    bars.messages.update(t.done, {
      counts: `${t.done}/${t.toCopy}`,
      etaText: ` | ${p.etaText}`,
      notCopied: p.notCopied,
    });
    bars.bytes.update(t.doneBytes, { counts: `${p.doneBytes}/${p.totalBytes}`, rate: ` | ${p.byteRate}` });
  };

  const logLine = (s: string) => {
    // Above the bars, or above the spinner (ora clears and redraws around foreign writes).
    if (bars !== null) bars.multi.log(`${s}\n`);
    else stream.write(`${s}\n`);
  };

  // Both sides connect side by side, so the spinner names each side still being connected: the
  // destination's phase replacing the source's would blame the destination for a silent source.
  let connecting: string[] = [];
  const first = firstOfKind();

  const listener: ProgressListener = (e) => {
    switch (e.type) {
      case 'phase':
        if (e.phase === 'copying') {
          connecting = [];
          startBars();
        } else {
          stopBars();
          let text = phaseText(e.phase, e.detail);
          if (e.phase === 'connect-source' || e.phase === 'connect-destination') {
            connecting = [...connecting, SIDE_TEXT[e.phase] + detailText(e.detail)];
            text = `connecting to ${connecting.join(' and ')}`;
          } else {
            connecting = [];
          }
          if (spinner.isSpinning) spinner.text = text;
          else spinner.start(text);
        }
        break;
      case 'plan':
        t.toCopy = e.toCopy;
        t.toCopyBytes = e.toCopyBytes;
        logLine(planText(e));
        updateBars();
        break;
      case 'message': {
        t.add(e);
        const said = first(e);
        if (said !== null) logLine(said);
        break;
      }
      case 'reconnect':
        logLine(reconnectText(e));
        break;
    }
  };

  return {
    listener,
    stop() {
      stopBars();
      spinner.stop();
    },
  };
}
