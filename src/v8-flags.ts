/**
 * The V8 flags popsync changes while it runs (tier-up.ts, young-generation.ts, old-generation.ts),
 * each one's value now, and a way to run code with them at V8's defaults.
 *
 * Why: V8 accepts code compiled in an earlier run (code-cache.ts) only when a hash of every flag
 * that is not at its default matches the hash the cache was made under; the GC flags above change
 * after every GC, and the interrupt budget once more when the copy begins. So each file of the
 * program is compiled, and the cache made, with these flags at V8's defaults for that moment: a
 * compile reads none of them (the budget is read when a function first runs, the GC flags when a
 * GC runs), and they are set back at once, before the code compiled runs.
 */
import { setFlagsFromString } from 'node:v8';

/** V8 11.3's defaults (Node 20) for the flags popsync sets; it sets them only there. */
const DEFAULTS: Readonly<Record<string, string>> = {
  'interrupt-budget': String(66 * 1024),
  'semi-space-growth-factor': '2',
  'heap-growing-percent': '0',
};

/** Each flag popsync set, by name, to what it set last. */
const current = new Map<string, string>();

/** Sets one flag, `--name=value` (as setFlagsFromString), remembering its value. */
export function setV8Flag(flag: string): void {
  const m = /^--([a-z0-9-]+)=(\S+)$/.exec(flag);
  if (m === null || DEFAULTS[m[1]!] === undefined) {
    // A programming error: a flag set here must have its default above, or compiles would
    // run under it and the cache would be rejected, unnoticed.
    throw new Error(`v8-flags: ${flag} is not a flag popsync knows the default of`);
  }
  current.set(m[1]!, m[2]!);
  setFlagsFromString(flag);
}

/** Runs `fn` with every flag popsync set at V8's default, then sets them back. */
export function withV8FlagsAtDefault<T>(fn: () => T): T {
  const changed = [...current].filter(([name, value]) => value !== DEFAULTS[name]);
  for (const [name] of changed) setFlagsFromString(`--${name}=${DEFAULTS[name]}`);
  try {
    return fn();
  } finally {
    for (const [name, value] of changed) setFlagsFromString(`--${name}=${value}`);
  }
}
