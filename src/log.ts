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
}

const noop = (): void => {};

export const silentLogger: Logger = {
  debug: noop,
  info: noop,
  warn: noop,
  error: noop,
  child: () => silentLogger,
};
