/**
 * The shape of popsync.yml, as zod schemas. Everything a user can get wrong is checked here,
 * at load time, with the exact key path (load.ts adds the line): unknown keys (`.strict`
 * objects), bad regexes, templates, durations, sizes, dates, SPECIAL-USE roles and flags. So
 * a broken config stops before any connection, and compiling rules later cannot fail.
 *
 * Keys are snake_case and mirror the migrate flags (`--batch-mb` is `batch_mb`); see README
 * "Configuration file" for the reference.
 */
import { z } from 'zod';
import { flagProblem, folderNameProblem, SPECIAL_USE_ROLES, specialUseRole } from '../mapping/rules.js';
import { regexProblem } from '../mapping/patterns.js';
import { parseTemplate } from '../mapping/template.js';
import { MAX_APPEND_CONNECTIONS } from '../defaults.js';
import { PROVIDER_NAMES } from './providers.js';
import {
  MAX_INTERVAL_DAYS,
  MAX_TIMEOUT_SECONDS,
  parseDay,
  parseDuration,
  parseInterval,
  parseRate,
  parseSize,
} from './units.js';

const text = z.string().min(1, 'must not be empty');

const duration = z
  .string()
  .refine((s) => parseDuration(s) !== null, { message: 'invalid duration; write e.g. 30d, 12h, 90s, 2w, 1y' });
const size = z
  .union([z.number(), z.string()])
  .refine((s) => parseSize(s) !== null, { message: 'invalid size; write e.g. 10MB, 512KB, 2048' });
const rate = z
  .union([z.number(), z.string()])
  .refine((s) => parseRate(s) !== null, { message: 'invalid rate; write bytes per second, e.g. 2M, 512KB/s, 100000' });
const budget = z
  .union([z.number(), z.string()])
  .refine((s) => (parseSize(s) ?? 0) > 0, { message: 'invalid size; write e.g. 500MB, 2GB (more than 0)' });
const day = z
  .string()
  .refine((s) => parseDay(s) !== null, { message: 'invalid date; write YYYY-MM-DD or an ISO 8601 time with a zone' });

/** A system flag a client may set, or a keyword atom; rules.ts flagProblem says why not. */
const flag = z.string().superRefine((s, ctx) => {
  const bad = flagProblem(s);
  if (bad !== null) ctx.addIssue({ code: 'custom', message: bad });
});

/** A folder template or a SPECIAL-USE role. */
const folder = text.superRefine((s, ctx) => {
  const bad = folderNameProblem(s);
  if (bad !== null) {
    ctx.addIssue({ code: 'custom', message: bad });
    return;
  }
  if (s.startsWith('\\')) {
    if (!specialUseRole(s))
      ctx.addIssue({
        code: 'custom',
        message: `unknown SPECIAL-USE role "${s}"; known: ${SPECIAL_USE_ROLES.join(', ')}`,
      });
    return;
  }
  const t = parseTemplate(s);
  if (!t.ok) ctx.addIssue({ code: 'custom', message: `invalid template: ${t.error}` });
  else if (s.split('/').some((l) => l.trim() === ''))
    ctx.addIssue({ code: 'custom', message: "empty folder level; use '/' only between levels" });
});

/** RE2 syntax (mapping/patterns.ts): what the linear-time engine cannot run is an error here. */
const regexSource = text.superRefine((s, ctx) => {
  const bad = regexProblem(s);
  if (bad !== null) ctx.addIssue({ code: 'custom', message: bad });
});

const patternItem = z.union([
  text,
  z.strictObject({ glob: text, case_sensitive: z.boolean().optional() }),
  z.strictObject({ regex: regexSource, case_sensitive: z.boolean().optional() }),
]);
export type PatternItem = z.infer<typeof patternItem>;
const pattern = z.union([patternItem, z.array(patternItem).min(1)]);

const match = z.strictObject({
  from: pattern.optional(),
  to: pattern.optional(),
  cc: pattern.optional(),
  delivered_to: pattern.optional(),
  x_original_to: pattern.optional(),
  list_id: pattern.optional(),
  subject: pattern.optional(),
  larger_than: size.optional(),
  smaller_than: size.optional(),
  before: day.optional(),
  after: day.optional(),
  older_than: duration.optional(),
  newer_than: duration.optional(),
});
export type MatchConfig = z.infer<typeof match>;

const rule = z.strictObject({
  name: text.optional(),
  match: match.optional(),
  folder,
  flags: z.array(flag).optional(),
});

import { SEEN_STEP_RE } from './units.js';
const seenStep = z.string().superRefine((s, ctx) => {
  const m = SEEN_STEP_RE.exec(s.trim());
  if (!m)
    ctx.addIssue({
      code: 'custom',
      message: `unknown seen step "${s}"; use status-header, older-than: 30d, all or none`,
    });
  else if (m[2] !== undefined && parseDuration(m[2]) === null)
    ctx.addIssue({ code: 'custom', message: `invalid duration "${m[2]}" in seen step; write e.g. 30d` });
});

const seconds = z
  .union([z.number().int().positive(), duration])
  .refine((v) => (typeof v === 'number' ? v : Math.round(parseDuration(v)! / 1000)) <= MAX_TIMEOUT_SECONDS, {
    message: `at most ${MAX_TIMEOUT_SECONDS} seconds (24 days)`,
  });
const interval = z.union([z.number(), z.string()]).refine((v) => parseInterval(v) !== null, {
  message: `invalid interval; write e.g. 5m, 90s or 300 (seconds), at least 1s and at most ${MAX_INTERVAL_DAYS} days`,
});

/** What an account and `defaults` share: how copies look and how they travel. */
const routingKeys = {
  folder: folder.optional(),
  flags: z.array(flag).optional(),
  arrival_date: z.boolean().optional(),
  skip_larger_than: size.optional(),
  seen: z.array(seenStep).optional(),
  rules: z.array(rule).optional(),
  batch_messages: z.number().int().positive().optional(),
  batch_mb: z.number().int().positive().optional(),
  timeout: seconds.optional(),
  reconnect_attempts: z.number().int().min(0).optional(),
  /** `sync` keeps running and syncs the account this often (`sync --every`). */
  every: interval.optional(),
  /** Upload at most this many bytes per second on average (`--max-rate`). */
  max_rate: rate.optional(),
  /** Upload at most this much in any 24 hours, counted in the journal across runs (`--daily-budget`). */
  daily_budget: budget.optional(),
};

const endpointKeys = {
  url: text.optional(),
  host: text.optional(),
  port: z.number().int().min(1).max(65535).optional(),
  user: text.optional(),
  tls: z.enum(['implicit', 'starttls', 'none']).optional(),
  ca_file: text.optional(),
  insecure: z.boolean().optional(),
  password_env: text.optional(),
  password_file: text.optional(),
  password_command: text.optional(),
  /** Run for every login; its first output line is an OAuth2 access token. */
  oauth2_token_command: text.optional(),
  /** Log in as this admin (with the password given) on behalf of the endpoint's user. */
  admin_user: text.optional(),
};

function onePassword(
  v: {
    password_env?: string | undefined;
    password_file?: string | undefined;
    password_command?: string | undefined;
    oauth2_token_command?: string | undefined;
    admin_user?: string | undefined;
  },
  ctx: z.RefinementCtx,
): void {
  const given = (['password_env', 'password_file', 'password_command'] as const).filter((k) => v[k] !== undefined);
  if (given.length > 1)
    ctx.addIssue({
      code: 'custom',
      path: [given[1]!],
      message: `give the password one way only, not ${given.join(' and ')}`,
    });
  if (v.oauth2_token_command !== undefined && given.length > 0)
    ctx.addIssue({
      code: 'custom',
      path: ['oauth2_token_command'],
      message: `an access token replaces the password: give oauth2_token_command or ${given[0]}, not both`,
    });
  if (v.oauth2_token_command !== undefined && v.admin_user !== undefined)
    ctx.addIssue({
      code: 'custom',
      path: ['admin_user'],
      message: 'an admin login uses the admin password (SASL PLAIN), not an access token',
    });
}

const source = z
  .strictObject({
    ...endpointKeys,
    auth: z.enum(['auto', 'user', 'apop', 'plain', 'login', 'xoauth2', 'oauthbearer']).optional(),
  })
  .superRefine(onePassword);
/** `provider:` names the service (config/providers.ts): its host and its published limits. */
const destination = z
  .strictObject({
    ...endpointKeys,
    provider: z.enum(PROVIDER_NAMES).optional(),
    auth: z.enum(['auto', 'plain', 'login', 'xoauth2', 'oauthbearer']).optional(),
    /** APPEND connections at most, one per folder (`--append-connections`, imap/append-pool.ts). */
    append_connections: z.number().int().min(1).max(MAX_APPEND_CONNECTIONS).optional(),
  })
  .superRefine(onePassword);
export type EndpointConfig = Omit<z.infer<typeof destination>, 'auth'> & { auth?: string | undefined };

const account = z.strictObject({
  name: text.optional(),
  source,
  destination,
  journal: text.optional(),
  ...routingKeys,
});
export type AccountConfig = z.infer<typeof account>;

const defaults = z.strictObject(routingKeys);
export type DefaultsConfig = z.infer<typeof defaults>;

export const configFile = z
  .strictObject({
    defaults: defaults.optional(),
    accounts: z.array(account).min(1, 'list at least one account'),
  })
  .superRefine((c, ctx) => {
    const names = new Map<string, number>();
    c.accounts.forEach((a, i) => {
      if (a.name === undefined) return;
      if (names.has(a.name))
        ctx.addIssue({
          code: 'custom',
          path: ['accounts', i, 'name'],
          message: `duplicate account name "${a.name}" (also accounts[${names.get(a.name)}])`,
        });
      else names.set(a.name, i);
    });
  });
export type ConfigFile = z.infer<typeof configFile>;
