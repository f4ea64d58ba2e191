/**
 * The logger every module takes. It is pino's shape, so imapflow can be handed the same object
 * (its default logs to stdout at info, which would corrupt our report output). Protocol
 * clients take it as an optional dependency and default to `silentLogger`.
 */
export interface Logger {
  debug(obj: object | string, msg?: string): void;
  info(obj: object | string, msg?: string): void;
  warn(obj: object | string, msg?: string): void;
  error(obj: object | string, msg?: string): void;
  child(bindings: Record<string, unknown>): Logger;
  /**
   * pino's: whether a level is logged. Code that logs per message asks once and builds nothing
   * when it is not; a logger without it is taken to log every level.
   */
  isLevelEnabled?(level: string): boolean;
}

const noop = (): void => {};

export const silentLogger: Logger = {
  debug: noop,
  info: noop,
  warn: noop,
  error: noop,
  child: () => silentLogger,
  isLevelEnabled: () => false,
};
