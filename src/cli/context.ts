/**
 * What every command gets from the program: the interrupt signal, and a way to set up its
 * output (logger on stderr/log file, progress on stderr, report on stdout) from the shared
 * output options. `finish` prints a run's summary and says which exit code it calls for, so
 * "some messages failed" means exit 1 for every command alike.
 */
import { Writable } from 'node:stream';
import type { RunResult, ProgressListener } from '../engine/types.js';
import { exitCodeForResult } from './exit.js';
import type { Logger } from '../log.js';
import { createProgress } from '../report/progress.js';
import { SUMMARY_JSON_VERSION, formatSummary, summaryJson } from '../report/summary.js';
import { colorAllowed } from './color.js';
import { createLogger } from './logger.js';
import type { OutputOptions } from './options.js';

interface CommandOutput {
  logger: Logger;
  progress: ProgressListener;
  /** Prints the summary (text or JSON); returns the exit code the result calls for. */
  finish(result: RunResult): number;
  stop(): void;
}

export interface CommandContext {
  signal: AbortSignal;
  /**
   * Set by `sync --every` while it waits between cycles: a signal then has no batch to finish,
   * so main.ts just stops instead of promising to finish one.
   */
  idle: { between: boolean };
  /**
   * `account`: name the account on every log line, progress line and summary (batches, where
   * accounts run side by side and a bare "3 copied" says nothing).
   */
  startOutput(o: OutputOptions, account?: string): CommandOutput;
}

export function createContext(signal: AbortSignal, idle = { between: false }): CommandContext {
  return {
    signal,
    idle,
    startOutput(o, account) {
      const base = createLogger({
        verbose: o.verbose,
        quiet: o.quiet,
        ...(o.logFile ? { logFile: o.logFile } : {}),
        ...(o.logFormat ? { logFormat: o.logFormat } : {}),
      });
      // `name`, not `account`: engine and lock lines bind `account` to the source's user@host.
      const logger = account === undefined ? base : base.child({ name: account });
      // Bars redraw one screen region: accounts side by side get plain, named lines instead.
      // A terminal that reports no width (script(1), some `docker run -t`) gets plain lines too:
      // ora divides by the width to know what to clear, and 0 made it clear forever.
      const tty =
        process.stderr.isTTY === true &&
        (process.stderr.columns ?? 0) > 0 &&
        o.progress &&
        !o.json &&
        account === undefined &&
        colorAllowed(process.env, o.color);
      const progress = createProgress({
        tty,
        quiet: o.quiet || !o.progress,
        ...(account === undefined ? {} : { stream: prefixLines(process.stderr, `${account}: `) }),
      });
      return {
        logger,
        progress: progress.listener,
        finish(result) {
          progress.stop();
          if (o.json)
            process.stdout.write(
              (account === undefined
                ? summaryJson(result)
                : JSON.stringify({ version: SUMMARY_JSON_VERSION, name: account, ...result }, null, 2)) + '\n',
            );
          else if (!o.quiet || result.failed.length > 0)
            process.stdout.write(
              (account === undefined ? formatSummary(result) : prefix(formatSummary(result), `${account}: `)) + '\n',
            );
          return exitCodeForResult(result);
        },
        stop: () => progress.stop(),
      };
    },
  };
}

function prefix(text: string, p: string): string {
  return text
    .split('\n')
    .map((l) => (l === '' ? l : p + l))
    .join('\n');
}

/** A stream that puts `p` before every line written to `out` (progress renderers write whole lines). */
function prefixLines(out: NodeJS.WritableStream, p: string): NodeJS.WritableStream {
  return new Writable({
    write(chunk: Buffer | string, _enc, cb) {
      out.write(prefix(chunk.toString(), p));
      cb();
    },
  });
}
