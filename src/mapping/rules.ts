/**
 * Rule-based routing: which folder, which flags, which arrival date, and why. Pure and
 * synchronous: it reads only header fields and a size, so `popsync plan` can route from
 * `TOP n 0` output and the real run from the full message with the same code, and the
 * planner's prediction is the run's decision.
 *
 * Folder rules are ordered; the first whose every condition holds wins; none matching means
 * the default folder. Everything that can be wrong with a rule (regex, template, role) is
 * checked by the config loader, so compiling here cannot fail on user input; patterns are
 * compiled once, not per message.
 *
 * Header conditions look at decoded values (RFC 2047, see decode.ts). For address fields
 * (From, To, Cc, Delivered-To, X-Original-To) a pattern is tried on each address and on the
 * whole decoded field; for List-Id on the identifier inside <...> and on the whole field. A
 * glob must match a whole candidate ('*@example.org'); a regex may match anywhere in it (add
 * ^...$ to anchor). Both ignore case unless case_sensitive is set.
 */
import type { Router, Routing } from './types.js';
import { DEFAULT_FOLDER } from '../defaults.js';
import { PopsyncError } from '../errors.js';
import { arrivalDate } from './date.js';
import { addressesOf, decodeHeaderValue, listIdOf } from './decode.js';
import { allHeaders, type HeaderField } from './headers.js';
import { compileGlob, compileRegex, type Matcher } from './patterns.js';
import { decideSeen, type SeenStep } from './seen.js';
import { parseTemplate, renderTemplate, type TemplateName, type TemplatePart } from './template.js';

const HEADER_KEYS = ['from', 'to', 'cc', 'delivered-to', 'x-original-to', 'list-id', 'subject'] as const;
export type HeaderKey = (typeof HEADER_KEYS)[number];
const ADDRESS_HEADERS: ReadonlySet<HeaderKey> = new Set(['from', 'to', 'cc', 'delivered-to', 'x-original-to']);

export const SPECIAL_USE_ROLES = [
  '\\All',
  '\\Archive',
  '\\Drafts',
  '\\Flagged',
  '\\Junk',
  '\\Sent',
  '\\Trash',
] as const;
export type SpecialUseRole = (typeof SPECIAL_USE_ROLES)[number];

/** The canonical spelling of a SPECIAL-USE role (RFC 6154), or null when `s` is not one. */
export function specialUseRole(s: string): SpecialUseRole | null {
  return SPECIAL_USE_ROLES.find((r) => r.toLowerCase() === s.toLowerCase()) ?? null;
}

export interface PatternSpec {
  kind: 'glob' | 'regex';
  source: string;
  caseSensitive: boolean;
}

export interface MatchSpec {
  /** Every listed header must match one of its patterns. */
  headers: Array<{ header: HeaderKey; patterns: PatternSpec[] }>;
  largerThan?: number;
  smallerThan?: number;
  before?: Date;
  after?: Date;
  olderThanMs?: number;
  newerThanMs?: number;
}

export interface RuleSpec {
  name: string;
  match: MatchSpec;
  /** A template ('Archive/{year}') or a SPECIAL-USE role ('\Archive'). */
  folder: string;
  /** Added to copies this rule routes, on top of the account's flags. */
  flags: string[];
}

export interface RoutingSpec {
  rules: RuleSpec[];
  /** Where messages no rule matches go (a template is allowed; roles too). */
  defaultFolder: string;
  /** Flags and keywords added to every copy. */
  flags: string[];
  seen: SeenStep[];
  /** false: INTERNALDATE is the copy time (--no-arrival-date); rules still see the arrival date. */
  arrivalDate: boolean;
  /**
   * skip_larger_than, in bytes: such messages are not copied at all. Applied by the engine and
   * the planner on LIST sizes (engine/plan.ts), not here, so no body is fetched for them.
   */
  skipLargerThan?: number | null;
}

interface RouteInput {
  fields: HeaderField[];
  /** Bytes; the message length in a run, the LIST size in a plan. */
  size: number;
}

/** 'inbox' in any case is INBOX (RFC 3501 5.1); leading and trailing '/' mean nothing. */
function normaliseFolder(name: string): string {
  const trimmed = name.replace(/^\/+|\/+$/g, '');
  return /^inbox$/i.test(trimmed) ? 'INBOX' : trimmed;
}

const CONTROL_NAMES: Record<string, string> = { '\r': 'CR', '\n': 'a line break (LF)', '\0': 'NUL', '\t': 'a tab' };

/**
 * Why `name` cannot be a folder name, or null. A name travels inside IMAP commands: CR or LF
 * would end the command line early (a newline was retried five times as a lost connection),
 * NUL is refused by every server, and no server takes other control characters.
 */
export function folderNameProblem(name: string): string | null {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: finding control characters is the point
  const m = /[\x00-\x1f\x7f]/.exec(name);
  if (!m) return null;
  const c = m[0];
  const what =
    CONTROL_NAMES[c] ?? `the control character U+${c.charCodeAt(0).toString(16).toUpperCase().padStart(4, '0')}`;
  return `the folder name contains ${what}; folder names cannot hold line breaks, NUL or other control characters`;
}

/**
 * Why `flag` cannot be added to copies, or null. Checked where the user writes flags (config
 * and --flag), so nothing the user asked for is dropped later: imapflow silently leaves out a
 * keyword that is not an IMAP atom (RFC 3501 atom: printable ASCII without `(){%*"\]`).
 */
export function flagProblem(flag: string): string | null {
  if (/^\\deleted$/i.test(flag))
    return (
      'the flag \\Deleted is refused: copies would arrive marked for deletion, and the next EXPUNGE ' +
      'would remove them'
    );
  if (/^\\recent$/i.test(flag)) return 'the flag \\Recent is refused: only the server sets it (RFC 3501 2.3.2)';
  if (/^\\(seen|answered|flagged|draft)$/i.test(flag)) return null;
  if (/^[\x21-\x7e]+$/.test(flag) && !/[(){%*"\\\]]/.test(flag)) return null;
  return (
    `invalid flag "${flag}": use \\Seen, \\Answered, \\Flagged, \\Draft or a keyword of printable ASCII ` +
    `without spaces or ( ) { % * " \\ ] (e.g. $Migrated)`
  );
}

/** Linear-time matchers (patterns.ts): a header a stranger wrote must not be able to hang the run. */
function compilePattern(p: PatternSpec): Matcher {
  return p.kind === 'glob' ? compileGlob(p.source, p.caseSensitive) : compileRegex(p.source, p.caseSensitive);
}

/**
 * `fixed`: the folder a template naming no field gives every message, rendered and normalised
 * once rather than per message (a string built and two patterns run on it for each copy).
 */
type Target = { role: SpecialUseRole } | { parts: TemplatePart[]; fixed: string | null };

interface CompiledRule {
  name: string;
  headers: Array<{ header: HeaderKey; res: Matcher[] }>;
  match: MatchSpec;
  target: Target;
  flags: string[];
}

function compileTarget(folder: string, where: string): Target {
  const bad = folderNameProblem(folder);
  if (bad !== null) throw new PopsyncError('config', `${where}: ${bad}`);
  const role = specialUseRole(folder);
  if (role) return { role };
  if (folder.startsWith('\\'))
    throw new PopsyncError(
      'config',
      `${where}: unknown SPECIAL-USE role "${folder}"; known: ${SPECIAL_USE_ROLES.join(', ')}`,
    );
  const t = parseTemplate(folder);
  if (!t.ok) throw new PopsyncError('config', `${where}: ${t.error}`);
  const fixed = t.parts.every((p) => typeof p === 'string') ? normaliseFolder(t.parts.join('')) : null;
  return { parts: t.parts, fixed };
}

/** Per-message lazily computed values, so a rule on Subject does not parse addresses. */
class MessageView {
  /** Made on first use: most messages meet no rule that reads a field, and a Map each was garbage. */
  private cache: Map<string, unknown> | null = null;
  constructor(
    readonly fields: HeaderField[],
    readonly size: number,
    readonly arrival: Date | null,
  ) {}

  private memo<T>(key: string, f: () => T): T {
    this.cache ??= new Map();
    if (!this.cache.has(key)) this.cache.set(key, f());
    return this.cache.get(key) as T;
  }

  candidates(h: HeaderKey): string[] {
    return this.memo(`c:${h}`, () => {
      const whole = allHeaders(this.fields, h).map(decodeHeaderValue);
      if (ADDRESS_HEADERS.has(h)) return [...addressesOf(this.fields, h), ...whole];
      if (h === 'list-id') {
        const id = listIdOf(this.fields);
        return id === null ? whole : [id, ...whole];
      }
      return whole.slice(0, 1);
    });
  }

  /** The recipient this copy was delivered for: Delivered-To, else X-Original-To, else To. */
  private recipient(): string | null {
    return this.memo('rcpt', () => {
      for (const h of ['delivered-to', 'x-original-to', 'to'] as const) {
        const a = addressesOf(this.fields, h)[0];
        if (a) return a;
      }
      return null;
    });
  }

  value(name: TemplateName): string | null {
    const d = this.arrival;
    const two = (n: number) => String(n).padStart(2, '0');
    const split = (addr: string | null | undefined, part: 0 | 1): string | null => {
      if (!addr) return null;
      const at = addr.lastIndexOf('@');
      if (at < 0) return part === 0 ? addr : null;
      return part === 0 ? addr.slice(0, at) : addr.slice(at + 1);
    };
    const from = addressesOf(this.fields, 'from')[0] ?? null;
    switch (name) {
      case 'year':
        return d ? String(d.getUTCFullYear()) : null;
      case 'month':
        return d ? two(d.getUTCMonth() + 1) : null;
      case 'day':
        return d ? two(d.getUTCDate()) : null;
      case 'list-id':
        return listIdOf(this.fields);
      case 'from':
        return from;
      case 'from-local':
        return split(from, 0);
      case 'from-domain':
        return split(from, 1);
      case 'to':
        return this.recipient();
      case 'to-local':
        return split(this.recipient(), 0);
      case 'to-domain':
        return split(this.recipient(), 1);
    }
  }
}

function matches(rule: CompiledRule, v: MessageView, now: Date): boolean {
  const m = rule.match;
  if (m.largerThan !== undefined && !(v.size > m.largerThan)) return false;
  if (m.smallerThan !== undefined && !(v.size < m.smallerThan)) return false;
  const t = v.arrival?.getTime();
  const needsDate =
    m.before !== undefined || m.after !== undefined || m.olderThanMs !== undefined || m.newerThanMs !== undefined;
  if (needsDate && t === undefined) return false;
  if (t !== undefined) {
    if (m.before !== undefined && !(t < m.before.getTime())) return false;
    if (m.after !== undefined && !(t >= m.after.getTime())) return false;
    if (m.olderThanMs !== undefined && !(now.getTime() - t > m.olderThanMs)) return false;
    if (m.newerThanMs !== undefined && !(now.getTime() - t <= m.newerThanMs)) return false;
  }
  for (const h of rule.headers) {
    const cands = v.candidates(h.header);
    if (!h.res.some((re) => cands.some((c) => re.test(c)))) return false;
  }
  return true;
}

function dedupeFlags(flags: string[]): string[] {
  const seen = new Set<string>();
  return flags.filter((f) => {
    const k = f.toLowerCase();
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

interface RouteContext {
  now: Date;
  /** SPECIAL-USE role -> folder path ('/' levels), from the destination; needed only when rules name roles. */
  roles?: ReadonlyMap<string, string> | null;
}

export interface CompiledRouting {
  /** Roles the rules (or the default) name: the caller resolves them on the server first. */
  readonly roles: SpecialUseRole[];
  route(input: RouteInput, ctx: RouteContext): Routing;
  /**
   * The folder every message goes to whatever its fields (no folder rules, a default that names
   * no field), known before any message arrives; null when a message's fields decide it, or when
   * the default is a role the destination has not resolved yet.
   */
  onlyFolder(roles: ReadonlyMap<string, string> | null): string | null;
}

export function compileRouting(spec: RoutingSpec): CompiledRouting {
  const rules: CompiledRule[] = spec.rules.map((r) => ({
    name: r.name,
    match: r.match,
    headers: r.match.headers.map((h) => ({ header: h.header, res: h.patterns.map(compilePattern) })),
    target: compileTarget(r.folder, `rule "${r.name}"`),
    flags: r.flags,
  }));
  const fallback = compileTarget(spec.defaultFolder, 'default folder');
  const roles = [...new Set([...rules.map((r) => r.target), fallback].flatMap((t) => ('role' in t ? [t.role] : [])))];

  const resolve = (t: Target, v: MessageView | null, ctx: RouteContext): string | null => {
    if ('role' in t) {
      const path = ctx.roles?.get(t.role);
      if (path === undefined) {
        throw new PopsyncError('config', `the destination has no folder marked ${t.role} (SPECIAL-USE)`, {
          hint: `name a folder instead of ${t.role} in the config`,
        });
      }
      return path;
    }
    if (t.fixed !== null) return t.fixed;
    // A template naming a field has a view: route() makes one whenever a target can be one.
    const name = renderTemplate(t.parts, (n) => v!.value(n));
    return name === null ? null : normaliseFolder(name);
  };

  const fixed = rules.length === 0 && ('role' in fallback || fallback.fixed !== null);
  // Without rules and with a default naming no field, nothing reads a message's view: most runs.
  const viewed = !fixed;
  // The flags of a copy that neither X-Status nor its rule adds to, by whether it is seen: one
  // array each for the run (never changed by a reader) instead of four arrays and a Set per copy.
  const plainFlags = dedupeFlags([...spec.flags]);
  const seenFlags = dedupeFlags(['\\Seen', ...spec.flags]);

  return {
    roles,
    onlyFolder(known) {
      if (!fixed) return null;
      if ('role' in fallback) return known?.get(fallback.role) ?? null;
      return fallback.fixed;
    },
    route({ fields, size }, ctx) {
      const arrival = arrivalDate(fields, ctx.now);
      const v = viewed ? new MessageView(fields, size, arrival.date) : null;
      let folder: string | null = null;
      let rule: CompiledRule | null = null;
      // Indexed: a for-of is an iterator object per message even with no rules, until optimised.
      for (let i = 0; i < rules.length; i++) {
        const r = rules[i]!;
        if (!matches(r, v!, ctx.now)) continue;
        // A template whose value this message lacks ({list-id} without List-Id) cannot name a
        // folder: the next rule gets its chance, as if this one had not matched.
        folder = resolve(r.target, v, ctx);
        if (folder !== null) {
          rule = r;
          break;
        }
      }
      // The default may be a template as well; with a missing value it falls back to INBOX.
      if (folder === null) folder = resolve(fallback, v, ctx) ?? DEFAULT_FOLDER;
      const seen = decideSeen(spec.seen, fields, arrival.date, ctx.now);
      const flags =
        seen.extraFlags.length === 0 && (rule === null || rule.flags.length === 0)
          ? seen.seen
            ? seenFlags
            : plainFlags
          : dedupeFlags([...(seen.seen ? ['\\Seen'] : []), ...seen.extraFlags, ...spec.flags, ...(rule?.flags ?? [])]);
      return {
        folder,
        flags,
        internalDate: spec.arrivalDate ? arrival.date : null,
        dateSource: spec.arrivalDate ? arrival.source : 'copy-time',
        seenSource: seen.source,
        folderRule: rule?.name ?? null,
      };
    },
  };
}

/**
 * The engine's Router over compiled rules. `roles` is read at each call because it is filled
 * in after the destination connects (the engine connects after the router is built).
 */
export function engineRouter(
  c: CompiledRouting,
  o: { roles?: () => ReadonlyMap<string, string> | null; now?: () => Date } = {},
): Router {
  const now = o.now ?? (() => new Date());
  // The message itself is the route's input: it has the size and fields route reads.
  return (message) => c.route(message, { now: now(), roles: o.roles?.() ?? null });
}
