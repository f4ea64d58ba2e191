/**
 * The patterns users write in rules (globs and regexes), compiled for a linear-time engine.
 *
 * They are matched against headers a stranger wrote. With JavaScript's backtracking RegExp a
 * pattern like `(a+)+$` and one crafted Subject took exponential time: the run hung, its lock
 * heartbeat stopped, and nothing bounded it. RE2 (here re2js, a pure-JavaScript port with no
 * native build) matches in time linear in the subject, whatever the pattern; the price is
 * RE2 syntax: no lookahead/lookbehind and no backreferences, which the config loader reports
 * as errors before any connection. Globs go through the same engine: `*a*a*a*b` is polynomial
 * under backtracking too.
 */
import { createRequire } from 'node:module';
import type { RE2JS as RE2JSClass } from 're2js';

/**
 * Loaded on the first pattern, synchronously (routing is synchronous): a run without rules,
 * like most cron runs, does not pay the ~30 ms it costs at start-up.
 */
let loaded: typeof RE2JSClass | null = null;
function re2(): typeof RE2JSClass {
  loaded ??= (createRequire(import.meta.url)('re2js') as { RE2JS: typeof RE2JSClass }).RE2JS;
  return loaded;
}

export interface Matcher {
  /** Whether the pattern matches anywhere in `s` (globs are anchored at both ends). */
  test(s: string): boolean;
}

/** Escapes for RE2 every glob character that would otherwise mean something. */
function globSource(glob: string): string {
  let re = '';
  for (const ch of glob) {
    if (ch === '*') re += '.*';
    else if (ch === '?') re += '.';
    else re += ch.replace(/[\\^$.+*?()[\]{}|/-]/g, '\\$&');
  }
  return `^${re}$`;
}

/** A glob (`*` any run, `?` one character) that must match a whole value. */
export function compileGlob(glob: string, caseSensitive: boolean): Matcher {
  // DOTALL: a folded header value may hold a newline, and `*` means anything.
  const RE2JS = re2();
  return RE2JS.compile(globSource(glob), RE2JS.DOTALL | (caseSensitive ? 0 : RE2JS.CASE_INSENSITIVE));
}

/** A regex in RE2 syntax, matching anywhere unless anchored. Throws on a bad one (see regexProblem). */
export function compileRegex(source: string, caseSensitive: boolean): Matcher {
  const RE2JS = re2();
  return RE2JS.compile(source, caseSensitive ? 0 : RE2JS.CASE_INSENSITIVE);
}

/** Why `source` cannot be a rule regex, or null. For the config loader, which names the key. */
export function regexProblem(source: string): string | null {
  try {
    compileRegex(source, true);
    return null;
  } catch (e) {
    const detail = (e instanceof Error ? e.message : String(e)).replace(/^error parsing regexp: /, '');
    // Say why a pattern that works in JavaScript is refused here.
    const why = /\(\?<?[=!]|\\[1-9]/.test(source)
      ? ' (lookahead, lookbehind and backreferences are not supported: popsync matches with RE2, which takes ' +
        'time linear in the header, never exponential)'
      : '';
    return `invalid regular expression: ${detail}${why}`;
  }
}
