/**
 * From a validated config to what the commands run: per account, the connection input for
 * cli/account.ts and the RoutingSpec for mapping/rules.ts. Pure (no I/O, no environment).
 *
 * Precedence, most specific first: command-line flag > the account's key > `defaults:` >
 * built-in default. Relative paths (journal, ca_file, password_file) are relative to the
 * config file's folder, so a config works from any working directory (cron).
 */
import { isAbsolute, join } from 'node:path';
import {
  DEFAULT_ARRIVAL_DATE,
  DEFAULT_BATCH_MB,
  DEFAULT_BATCH_MESSAGES,
  DEFAULT_FOLDER,
  DEFAULT_RECONNECT_ATTEMPTS,
  DEFAULT_TIMEOUT_SECONDS,
} from '../defaults.js';
import { PopsyncError } from '../errors.js';
import type { HeaderKey, MatchSpec, PatternSpec, RoutingSpec, RuleSpec } from '../mapping/rules.js';
import type { SeenStep } from '../mapping/seen.js';
import type { LoadedConfig } from './load.js';
import type { AccountConfig, DefaultsConfig, EndpointConfig, MatchConfig, PatternItem } from './schema.js';
import { providerProfile } from './providers.js';
import type { SideFlags } from './side-flags.js';
import { parseDay, parseDuration, parseInterval, parseRate, parseSize, SEEN_STEP_RE } from './units.js';

/** The values a config or command line that says nothing gets (from ../defaults.ts). */
export const BUILTIN = {
  folder: DEFAULT_FOLDER,
  batchMessages: DEFAULT_BATCH_MESSAGES,
  batchMb: DEFAULT_BATCH_MB,
  timeoutSeconds: DEFAULT_TIMEOUT_SECONDS,
  arrivalDate: DEFAULT_ARRIVAL_DATE,
  reconnectAttempts: DEFAULT_RECONNECT_ATTEMPTS,
  /**
   * A `Status:` header with R means read (mbox-era servers keep it); mail without one arrives
   * unread, which is right for new mail. `none` keeps everything unread.
   */
  seen: ['status-header'],
} as const;

/** What a command line says about routing and transfer; undefined means "not given on the command line". */
export interface RoutingOverrides {
  folder?: string | undefined;
  flags?: string[] | undefined;
  arrivalDate?: boolean | undefined;
  /** --seen: the seen chain's steps as written ("status-header", "older-than:30d", "none"). */
  seen?: readonly string[] | undefined;
  batchMessages?: number | undefined;
  batchMb?: number | undefined;
  timeoutSeconds?: number | undefined;
  reconnectAttempts?: number | undefined;
  /** --max-rate in bytes per second. */
  maxRate?: number | undefined;
  /** --daily-budget in bytes. */
  dailyBudget?: number | undefined;
}

export interface ConfiguredAccount {
  /** The account's `name`, or null (the source's user@host:port is used). */
  name: string | null;
  index: number;
  pop: SideFlags;
  imap: SideFlags;
  journal?: string;
  timeoutSeconds: number;
  batchMessages: number;
  batchMb: number;
  reconnectAttempts: number;
  routing: RoutingSpec;
  /** `every:` (account, else defaults): how often `sync` syncs it when it keeps running. */
  everyMs?: number;
  /** `max_rate:` in bytes per second (flag, account, defaults); absent: no bound of the user's. */
  maxRate?: number;
  /** `daily_budget:` in bytes (flag, account, defaults); absent: the provider's, if any. */
  dailyBudget?: number;
}

function pathIn(dir: string, p: string | undefined): string | undefined {
  return p === undefined ? undefined : isAbsolute(p) ? p : join(dir, p);
}

function sideOf(e: EndpointConfig, dir: string): SideFlags {
  const f: SideFlags = {};
  const set = <K extends keyof SideFlags>(k: K, v: SideFlags[K] | undefined) => {
    if (v !== undefined) f[k] = v;
  };
  set('url', e.url);
  set('host', e.host);
  set('port', e.port);
  set('user', e.user);
  set('tls', e.tls);
  set('auth', e.auth);
  set('caFile', pathIn(dir, e.ca_file));
  set('insecure', e.insecure);
  set('passwordEnv', e.password_env);
  set('passwordFile', pathIn(dir, e.password_file));
  set('passwordCommand', e.password_command);
  set('oauth2TokenCommand', e.oauth2_token_command);
  set('adminUser', e.admin_user);
  set('provider', e.provider);
  set('appendConnections', e.append_connections);
  // `provider:` without a URL or host: the service's own IMAP host (config/providers.ts).
  if (e.provider !== undefined && e.url === undefined && e.host === undefined)
    f.host = providerProfile(e.provider).imap.host;
  return f;
}

function patternsOf(v: PatternItem | PatternItem[]): PatternSpec[] {
  return (Array.isArray(v) ? v : [v]).map((p) => {
    if (typeof p === 'string') return { kind: 'glob', source: p, caseSensitive: false };
    if ('regex' in p) return { kind: 'regex', source: p.regex, caseSensitive: p.case_sensitive ?? false };
    return { kind: 'glob', source: p.glob, caseSensitive: p.case_sensitive ?? false };
  });
}

const HEADER_OF: Record<string, HeaderKey> = {
  from: 'from',
  to: 'to',
  cc: 'cc',
  delivered_to: 'delivered-to',
  x_original_to: 'x-original-to',
  list_id: 'list-id',
  subject: 'subject',
};

function matchOf(m: MatchConfig | undefined): MatchSpec {
  const spec: MatchSpec = { headers: [] };
  if (!m) return spec;
  for (const [key, header] of Object.entries(HEADER_OF)) {
    const v = m[key as keyof MatchConfig] as PatternItem | PatternItem[] | undefined;
    if (v !== undefined) spec.headers.push({ header, patterns: patternsOf(v) });
  }
  // The schema has checked every unit, so the parsers cannot return null here.
  if (m.larger_than !== undefined) spec.largerThan = parseSize(m.larger_than)!;
  if (m.smaller_than !== undefined) spec.smallerThan = parseSize(m.smaller_than)!;
  if (m.before !== undefined) spec.before = parseDay(m.before)!;
  if (m.after !== undefined) spec.after = parseDay(m.after)!;
  if (m.older_than !== undefined) spec.olderThanMs = parseDuration(m.older_than)!;
  if (m.newer_than !== undefined) spec.newerThanMs = parseDuration(m.newer_than)!;
  return spec;
}

export function seenStepOf(s: string): SeenStep {
  const m = SEEN_STEP_RE.exec(s.trim())!;
  const word = m[1]!.toLowerCase();
  if (m[2] !== undefined) return { kind: 'older-than', ms: parseDuration(m[2])!, label: m[2] };
  return { kind: word as 'status-header' | 'all' | 'none' };
}

function timeoutOf(v: number | string | undefined): number | undefined {
  if (v === undefined) return undefined;
  return typeof v === 'number' ? v : Math.max(1, Math.round(parseDuration(v)! / 1000));
}

export function routingSpecOf(
  a: Partial<AccountConfig> & DefaultsConfig,
  d: DefaultsConfig,
  o: RoutingOverrides = {},
): RoutingSpec {
  const rules = a.rules ?? d.rules ?? [];
  return {
    rules: rules.map(
      (r, i): RuleSpec => ({
        name: r.name ?? `rule ${i + 1}`,
        match: matchOf(r.match),
        folder: r.folder,
        flags: r.flags ?? [],
      }),
    ),
    defaultFolder: o.folder ?? a.folder ?? d.folder ?? BUILTIN.folder,
    flags: o.flags ?? a.flags ?? d.flags ?? [],
    seen: (o.seen ?? a.seen ?? d.seen ?? BUILTIN.seen).map(seenStepOf),
    arrivalDate: o.arrivalDate ?? a.arrival_date ?? d.arrival_date ?? BUILTIN.arrivalDate,
    skipLargerThan: ((v) => (v === undefined ? null : parseSize(v)))(a.skip_larger_than ?? d.skip_larger_than),
  };
}

/** The accounts of a config, or the one named `select` (by name, or by its 1-based position). */
export function configuredAccounts(
  loaded: LoadedConfig,
  o: RoutingOverrides = {},
  select?: string,
): ConfiguredAccount[] {
  const { config, dir } = loaded;
  const d = config.defaults ?? {};
  const all = config.accounts.map((a, index): ConfiguredAccount => {
    const journal = pathIn(dir, a.journal);
    const every = a.every ?? d.every;
    const rate = a.max_rate ?? d.max_rate;
    const budget = a.daily_budget ?? d.daily_budget;
    const maxRate = o.maxRate ?? (rate === undefined ? undefined : parseRate(rate)!);
    const dailyBudget = o.dailyBudget ?? (budget === undefined ? undefined : parseSize(budget)!);
    return {
      name: a.name ?? null,
      index,
      pop: sideOf(a.source, dir),
      imap: sideOf(a.destination, dir),
      ...(journal !== undefined ? { journal } : {}),
      timeoutSeconds: o.timeoutSeconds ?? timeoutOf(a.timeout) ?? timeoutOf(d.timeout) ?? BUILTIN.timeoutSeconds,
      batchMessages: o.batchMessages ?? a.batch_messages ?? d.batch_messages ?? BUILTIN.batchMessages,
      batchMb: o.batchMb ?? a.batch_mb ?? d.batch_mb ?? BUILTIN.batchMb,
      reconnectAttempts:
        o.reconnectAttempts ?? a.reconnect_attempts ?? d.reconnect_attempts ?? BUILTIN.reconnectAttempts,
      routing: routingSpecOf(a, d, o),
      ...(every !== undefined ? { everyMs: parseInterval(every)! } : {}),
      ...(maxRate !== undefined ? { maxRate } : {}),
      ...(dailyBudget !== undefined ? { dailyBudget } : {}),
    };
  });
  if (select === undefined) return all;
  const byName = all.filter((a) => a.name === select);
  if (byName.length === 1) return byName;
  if (/^\d+$/.test(select) && all[Number(select) - 1]) return [all[Number(select) - 1]!];
  const names = all.map((a, i) => a.name ?? `${i + 1}`).join(', ');
  throw new PopsyncError('usage', `--account ${select}: no such account in ${loaded.path} (accounts: ${names})`);
}
