/**
 * The units a config file writes: durations (`30d`), sizes (`10MB`) and days (`2020-01-01`).
 * Each parser returns null for a malformed value so the schema can report it with its key
 * and line. Sizes are binary (1 KB = 1024 bytes), as mail servers and quota tools count them.
 */

/**
 * The longest --timeout / `timeout:` in seconds. Node's timers hold at most 2^31-1 ms
 * (24.8 days); a longer delay fires after 1 ms instead, which turned `--timeout 2147484`
 * into a timeout on every command.
 */
export const MAX_TIMEOUT_SECONDS = Math.floor(0x7fffffff / 1000);

const DURATION_UNITS: Record<string, number> = {
  s: 1000,
  m: 60_000,
  min: 60_000,
  h: 3600_000,
  d: 86_400_000,
  w: 7 * 86_400_000,
  y: 365 * 86_400_000,
};

/** Milliseconds of `30d`, `12h`, `90s`, `2w`, `1y` (`m` is minutes); null when malformed. */
/** Seen-policy steps: `status-header`, `older-than: 30d` (or `older-than 30d`), `all`, `none`. */
export const SEEN_STEP_RE = /^(status-header|all|none|older-than[:\s]\s*(\S+))$/i;

export function parseDuration(text: string): number | null {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(s|m|min|h|d|w|y)\s*$/i.exec(text);
  if (!m) return null;
  return Math.round(Number(m[1]) * DURATION_UNITS[m[2]!.toLowerCase()]!);
}

/** Shortest `sync --every` / `every:` interval: tests use 1s; real deployments want minutes. */
export const MIN_INTERVAL_MS = 1000;
/** Longest: a typo like `5d` for `5m` is plausible, `50y` is not; and well inside Node's timer range. */
export const MAX_INTERVAL_DAYS = 20;

/** `5m`, `90s`, `1h`, or plain seconds (`300`, or a number in YAML); null when malformed or out of range. */
export function parseInterval(text: string | number): number | null {
  const s = String(text);
  const ms = /^\s*\d+(\.\d+)?\s*$/.test(s) ? Math.round(Number(s) * 1000) : parseDuration(s);
  return ms === null || !Number.isFinite(ms) || ms < MIN_INTERVAL_MS || ms > MAX_INTERVAL_DAYS * 86_400_000 ? null : ms;
}

const SIZE_UNITS: Record<string, number> = {
  '': 1,
  b: 1,
  k: 1024,
  kb: 1024,
  kib: 1024,
  m: 1024 ** 2,
  mb: 1024 ** 2,
  mib: 1024 ** 2,
  g: 1024 ** 3,
  gb: 1024 ** 3,
  gib: 1024 ** 3,
};

/** Bytes of `10MB`, `512k`, `1.5 GiB`, `2048`; null when malformed. */
export function parseSize(text: string | number): number | null {
  if (typeof text === 'number') return Number.isFinite(text) && text >= 0 ? Math.floor(text) : null;
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(text);
  if (!m) return null;
  const unit = SIZE_UNITS[m[2]!.toLowerCase()];
  return unit === undefined ? null : Math.floor(Number(m[1]) * unit);
}

/** `2020-01-01` (midnight UTC) or a full ISO 8601 time with a zone; null when malformed or impossible. */
export function parseDay(text: string): Date | null {
  const day = /^(\d{4})-(\d{2})-(\d{2})$/.exec(text.trim());
  if (day) {
    const [y, mo, d] = [Number(day[1]), Number(day[2]) - 1, Number(day[3])];
    const date = new Date(Date.UTC(y, mo, d));
    // Date.UTC rolls 31 Feb into March; a config date that does not exist is a typo.
    return date.getUTCFullYear() === y && date.getUTCMonth() === mo && date.getUTCDate() === d ? date : null;
  }
  if (/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$/.test(text.trim())) {
    const t = Date.parse(text);
    return Number.isNaN(t) ? null : new Date(t);
  }
  return null;
}

/**
 * `--max-rate` / `max_rate:` in bytes per second: a size with an optional `/s` (`2M`, `512KB/s`);
 * null when malformed or 0.
 */
export function parseRate(text: string | number): number | null {
  const n = parseSize(typeof text === 'string' ? text.replace(/\s*\/\s*s(ec(ond)?)?\s*$/i, '') : text);
  return n === null || n <= 0 ? null : n;
}
