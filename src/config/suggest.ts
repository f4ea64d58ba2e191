/**
 * "did you mean" for an unknown config key: the known keys at the same place in the schema
 * (walked from the zod definitions, so a new key is suggested without a list to keep), and
 * the nearest of them by edit distance, when it is near enough to be a typo.
 */
import type { z } from 'zod';

interface Def {
  type: string;
  shape?: Record<string, z.ZodType>;
  innerType?: z.ZodType;
  element?: z.ZodType;
  options?: z.ZodType[];
  in?: z.ZodType;
}

const defOf = (s: z.ZodType): Def => (s as unknown as { _zod: { def: Def } })._zod.def;

/** The schemas a value may be checked against, wrappers (optional, default, union...) removed. */
function unwrap(s: z.ZodType): z.ZodType[] {
  const d = defOf(s);
  if (d.innerType !== undefined) return unwrap(d.innerType);
  if (d.type === 'pipe' && d.in !== undefined) return unwrap(d.in);
  if (d.type === 'union' && d.options !== undefined) return d.options.flatMap(unwrap);
  return [s];
}

/** Keys an object at `path` may have (several shapes at once where a union allows them). */
export function knownKeysAt(schema: z.ZodType, path: ReadonlyArray<PropertyKey>): string[] {
  let nodes = unwrap(schema);
  for (const step of path) {
    nodes = nodes.flatMap((n) => {
      const d = defOf(n);
      if (d.type === 'object' && typeof step === 'string' && d.shape?.[step] !== undefined)
        return unwrap(d.shape[step]);
      if (d.type === 'array' && typeof step === 'number' && d.element !== undefined) return unwrap(d.element);
      return [];
    });
  }
  return [...new Set(nodes.flatMap((n) => (defOf(n).type === 'object' ? Object.keys(defOf(n).shape ?? {}) : [])))];
}

/** Levenshtein distance; keys are short, so the plain table is enough. */
function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++)
      cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = cur;
  }
  return prev[b.length]!;
}

/**
 * The known key `key` was probably meant to be, or null. `-` for `_` and case count as no
 * difference (people write `password-env`); beyond that, up to 2 edits, 3 for long keys.
 */
export function nearestKey(key: string, known: readonly string[]): string | null {
  const norm = (s: string) => s.toLowerCase().replace(/-/g, '_');
  const limit = key.length >= 10 ? 3 : key.length >= 4 ? 2 : 1;
  let best: { key: string; d: number } | null = null;
  for (const k of known) {
    const d = editDistance(norm(key), norm(k));
    if (d <= limit && (best === null || d < best.d)) best = { key: k, d };
  }
  return best?.key ?? null;
}
