/**
 * Builds the run's Logger (src/log.ts) on pino. stdout is the report's, so every log line goes
 * to stderr (human text, warnings only unless --verbose) and optionally to a --log-file at
 * debug level, created 0600 - and its missing directories 0700 - because protocol traces name
 * accounts and folders. The file gets text lines a person can read with `less` and `grep`
 * ("2026-11-29T16:40:01.123Z [4242] info: ..."), or with --log-format json pino's JSON lines
 * for log shippers.
 *
 * Secrets are kept out twice: pino's `redact` for the known key names at the top level and one
 * level down, and a deep scrub of logged objects for the same names at any depth and in any
 * letter case, since protocol code logs option objects whose shape we do not control.
 * Neither can catch a password pasted into a message string; constructors of log messages
 * must not do that (PopsyncError contexts carry no credentials by contract).
 */

import { fchmodSync, fstatSync, openSync, writeSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import pino from 'pino';
import { PopsyncError } from '../errors.js';
import type { Logger } from '../log.js';
import { printable } from '../report/summary.js';
import { makeDirs } from './make-dirs.js';

export type LogFormat = 'text' | 'json';

export interface LoggerOptions {
  /** --verbose: debug lines on stderr. */
  verbose?: boolean;
  /** --quiet: only errors on stderr (warnings still reach the log file). */
  quiet?: boolean;
  /** --log-file PATH: lines at debug level, appended. */
  logFile?: string;
  /** --log-format: the log file's lines as text (default) or JSON. */
  logFormat?: LogFormat;
  /** Where human lines go; process.stderr unless a test says otherwise. */
  stderr?: NodeJS.WritableStream;
}

/** Key names whose values never reach a log line, compared case-insensitively. */
const SECRET_KEYS: readonly string[] = [
  'password',
  'pass',
  'passwd',
  'pw',
  'secret',
  'token',
  'accessToken',
  'refreshToken',
  'auth',
  'authorization',
];

export const REDACTED = '[redacted]';

const SECRET_SET = new Set(SECRET_KEYS.map((k) => k.toLowerCase()));
const MAX_SCRUB_DEPTH = 10;

/**
 * Creates the logger; throws PopsyncError('usage') if the log file cannot be opened. Writes are
 * synchronous, so a crash loses no line and there is nothing to flush or close: the file
 * descriptor lives as long as the process.
 */
export function createLogger(opts: LoggerOptions = {}): Logger {
  const stderr = opts.stderr ?? process.stderr;
  const stderrLevel = opts.verbose === true ? 'debug' : opts.quiet === true ? 'error' : 'warn';
  // Opened now, not with the logger: a file that cannot be opened is a usage error at start.
  const fd = opts.logFile === undefined ? null : openLogFile(opts.logFile);
  const level = fd !== null ? 'debug' : stderrLevel;
  return new DeferredLogger(LEVEL_VALUES[level]!, () => {
    const streams: pino.StreamEntry[] = [{ level: stderrLevel, stream: humanStream(stderr, opts.verbose === true) }];
    if (fd !== null) {
      const file = opts.logFormat === 'json' ? pino.destination({ fd, sync: true }) : textFileStream(fd);
      streams.push({ level: 'debug', stream: file });
    }
    const instance = pino(
      {
        level,
        base: { pid: process.pid },
        timestamp: pino.stdTimeFunctions.isoTime,
        redact: { paths: SECRET_KEYS.flatMap((k) => [k, `*.${k}`]), censor: REDACTED },
        formatters: {
          log: (obj) => scrubSecrets(obj) as Record<string, unknown>,
          bindings: (b) => scrubSecrets(b) as Record<string, unknown>,
        },
      },
      pino.multistream(streams),
    );
    // pino's logger is a structural superset of ours (and keeps trace/fatal for imapflow); only
    // its overloaded method types keep TypeScript from seeing that.
    return instance as unknown as PinoShaped;
  });
}

type Level = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal';

/** pino's levels, to tell without pino whether a line would be logged. */
const LEVEL_VALUES: Readonly<Record<string, number>> & Readonly<Record<Level, number>> = {
  trace: 10,
  debug: 20,
  info: 30,
  warn: 40,
  error: 50,
  fatal: 60,
};

type LogMethod = (...args: unknown[]) => void;
/** What imapflow calls on the logger it is handed: ours and pino's trace and fatal. */
type PinoShaped = Logger & { trace: LogMethod; fatal: LogMethod };

/**
 * A Logger that builds its pino logger (and loads pino) at its first line at an enabled level.
 * Most runs log nothing: a `sync` with nothing new, `status`, a refused login (its error is the
 * report's, not a log line); loading pino and building the logger (redaction paths, streams)
 * cost ~4 ms a process (README "Start-up"). A child is made the same way, when it first logs;
 * its lines are the pino child's of the parent's pino logger, as before.
 */
class DeferredLogger implements PinoShaped {
  private real: PinoShaped | undefined;

  constructor(
    private readonly threshold: number,
    private readonly make: () => PinoShaped,
  ) {}

  private logger(): PinoShaped {
    this.real ??= this.make();
    return this.real;
  }

  private write(level: Level, args: unknown[]): void {
    if (LEVEL_VALUES[level] < this.threshold) return;
    (this.logger()[level] as LogMethod)(...args);
  }

  trace(...args: unknown[]): void {
    this.write('trace', args);
  }
  debug(...args: unknown[]): void {
    this.write('debug', args);
  }
  info(...args: unknown[]): void {
    this.write('info', args);
  }
  warn(...args: unknown[]): void {
    this.write('warn', args);
  }
  error(...args: unknown[]): void {
    this.write('error', args);
  }
  fatal(...args: unknown[]): void {
    this.write('fatal', args);
  }

  isLevelEnabled(level: string): boolean {
    const value = LEVEL_VALUES[level];
    return value !== undefined && value >= this.threshold;
  }

  child(bindings: Record<string, unknown>): Logger {
    return new DeferredLogger(this.threshold, () => this.logger().child(bindings) as PinoShaped);
  }
}

/**
 * A copy of `value` with every property named like a secret replaced by "[redacted]", at any
 * depth. Only plain objects and arrays are walked; errors, buffers and dates pass unchanged.
 */
export function scrubSecrets(value: unknown, depth = 0, seen = new WeakSet<object>()): unknown {
  if (value === null || typeof value !== 'object' || depth > MAX_SCRUB_DEPTH) return value;
  if (seen.has(value)) return value;
  if (Array.isArray(value)) {
    seen.add(value);
    return value.map((v) => scrubSecrets(v, depth + 1, seen));
  }
  const proto = Object.getPrototypeOf(value) as unknown;
  if (proto !== Object.prototype && proto !== null) return value;
  seen.add(value);
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    out[k] = SECRET_SET.has(k.toLowerCase()) ? REDACTED : scrubSecrets(v, depth + 1, seen);
  }
  return out;
}

const LEVEL_NAMES: Record<number, string> = {
  10: 'trace',
  20: 'debug',
  30: 'info',
  40: 'warning',
  50: 'error',
  60: 'fatal',
};
const NOT_SHOWN = new Set(['level', 'time', 'pid', 'hostname', 'msg']);

/**
 * One pino JSON line as a human stderr line:
 *   popsync: warning: password file /p can be read by other users (path=/p mode=0644)
 * and with `withTime` (--verbose): "12:03:04.123 debug: <msg> key=value ...".
 */
export function formatLogLine(json: string, withTime: boolean): string {
  const line = logRecord(json);
  if (line === null) return printable(json.trimEnd()) + '\n';
  const { rec, level, msg, fields } = line;
  if (withTime) {
    const t = typeof rec.time === 'string' ? rec.time.slice(11, 23) : '';
    return printable(`${t} ${level}: ${msg}${fields.length > 0 ? ` ${fields.join(' ')}` : ''}`) + '\n';
  }
  return printable(`popsync: ${level}: ${msg}${fields.length > 0 ? ` (${fields.join(' ')})` : ''}`) + '\n';
}

/** A pino JSON line taken apart for both text forms; null when it is not JSON (shown as it is). */
function logRecord(
  json: string,
): { rec: Record<string, unknown>; level: string; msg: string; fields: string[] } | null {
  let rec: Record<string, unknown>;
  try {
    rec = JSON.parse(json) as Record<string, unknown>;
  } catch {
    return null;
  }
  return {
    rec,
    level: LEVEL_NAMES[Number(rec.level)] ?? String(rec.level),
    msg: typeof rec.msg === 'string' ? rec.msg : '',
    fields: Object.entries(rec)
      .filter(([k, v]) => !NOT_SHOWN.has(k) && v !== undefined)
      .map(([k, v]) => `${k}=${fieldText(k, v)}`),
  };
}

function fieldText(key: string, v: unknown): string {
  if (key === 'err' && typeof v === 'object' && v !== null && 'message' in v) {
    // The stack belongs in the log file; on stderr the message is what helps.
    return JSON.stringify(String((v as { message: unknown }).message));
  }
  if (typeof v === 'string') return /^[^\s"=]+$/.test(v) ? v : JSON.stringify(v);
  return JSON.stringify(v) ?? String(v);
}

/**
 * One pino JSON line as a log-file text line: the full time (a log spans days), the process
 * (runs of cron and a long-running sync interleave in one file), the level, the message and
 * its fields.
 */
export function formatLogFileLine(json: string): string {
  const line = logRecord(json);
  if (line === null) return printable(json.trimEnd()) + '\n';
  const { rec, level, msg, fields } = line;
  const time = typeof rec.time === 'string' ? rec.time : '';
  const pid = typeof rec.pid === 'number' ? ` [${rec.pid}]` : '';
  return printable(`${time}${pid} ${level}: ${msg}${fields.length > 0 ? ` ${fields.join(' ')}` : ''}`) + '\n';
}

function textFileStream(fd: number): pino.DestinationStream {
  return {
    write(line: string) {
      // Synchronous, as the JSON destination is: a crash loses no line.
      writeSync(fd, formatLogFileLine(line));
    },
  };
}

function humanStream(out: NodeJS.WritableStream, withTime: boolean): pino.DestinationStream {
  return {
    write(line: string) {
      out.write(formatLogLine(line, withTime));
    },
  };
}

/**
 * One descriptor per log file for the life of the process: `sync --every` builds a logger per
 * cycle, and a descriptor opened per cycle would run out after a few days.
 */
const openLogFiles = new Map<string, number>();

function openLogFile(path: string): number {
  const key = resolve(path);
  const open = openLogFiles.get(key);
  if (open !== undefined) return open;
  const fd = openNewLogFile(path);
  openLogFiles.set(key, fd);
  return fd;
}

function openNewLogFile(path: string): number {
  // A cron line's first run must not fail on ~/.local/state/popsync/ not existing yet. Only
  // directories created here get 0700 (the log names accounts); existing ones are left alone.
  // A failure here is reported by the open below, whose error code names the real obstacle.
  try {
    makeDirs(dirname(path), 0o700);
  } catch {
    // reported below
  }
  let fd: number;
  try {
    fd = openSync(path, 'a', 0o600);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? 'error';
    throw new PopsyncError('usage', `--log-file: cannot open ${path} (${code})`, {}, { cause: e });
  }
  // openSync's mode applies only when it creates the file; an older log that others can read
  // is tightened, since it is about to receive protocol traces.
  try {
    if (process.platform !== 'win32' && (fstatSync(fd).mode & 0o077) !== 0) fchmodSync(fd, 0o600);
  } catch {
    // Not our file to chmod (e.g. /dev/stderr): log into it anyway.
  }
  return fd;
}
