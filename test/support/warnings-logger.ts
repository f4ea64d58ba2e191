/**
 * A logger that keeps the message of each warning and error, in order, for the tests that check
 * what popsync said once (and did not say again).
 */
import type { Logger } from '../../src/log.js';

export function warningsLogger(): { logger: Logger; warnings: string[] } {
  const warnings: string[] = [];
  const logger: Logger = {
    debug: () => {},
    info: () => {},
    warn: (_o, m) => void warnings.push(String(m)),
    error: (_o, m) => void warnings.push(String(m)),
    child: () => logger,
  };
  return { logger, warnings };
}
