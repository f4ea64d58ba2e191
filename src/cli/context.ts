/**
 * What every command gets from the program: the interrupt signal, and a way to set up its
 * output (logger on stderr/log file, progress on stderr, report on stdout) from the shared
 * output options. `finish` prints a run's summary and says which exit code it calls for, so
 * "some messages failed" means exit 1 for every command alike.
 */
import type { RunResult, ProgressListener } from '../engine/types.js';
import { ExitCode } from '../errors.js';
import type { Logger } from '../log.js';
import { createProgress } from '../report/progress.js';
import { formatSummary, summaryJson } from '../report/summary.js';
import { createLogger } from './logger.js';
import type { OutputOptions } from './options.js';

export interface CommandOutput {
  logger: Logger;
  progress: ProgressListener;
  /** Prints the summary (text or JSON); returns the exit code the result calls for. */
  finish(result: RunResult): number;
  stop(): void;
}

export interface CommandContext {
  signal: AbortSignal;
  startOutput(o: OutputOptions): CommandOutput;
}

export function createContext(signal: AbortSignal): CommandContext {
  return {
    signal,
    startOutput(o) {
      const logger = createLogger({ verbose: o.verbose, quiet: o.quiet, ...(o.logFile ? { logFile: o.logFile } : {}) });
      const tty = process.stderr.isTTY === true && o.progress && !o.json;
      const progress = createProgress({ tty, quiet: o.quiet || !o.progress });
      return {
        logger,
        progress: progress.listener,
        finish(result) {
          progress.stop();
          if (o.json) process.stdout.write(summaryJson(result) + '\n');
          else if (!o.quiet || result.failed.length > 0) process.stdout.write(formatSummary(result) + '\n');
          return result.failed.length > 0 ? ExitCode.partial : ExitCode.ok;
        },
        stop: () => progress.stop(),
      };
    },
  };
}
