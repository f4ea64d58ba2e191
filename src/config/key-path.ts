/**
 * How config errors name a key, `accounts[0].source.url`, and where: `FILE:LINE: key`. Apart
 * from load.ts so that the CLI, which names keys in errors found after loading (a URL, a
 * journal that is a directory), does not load yaml and zod for it.
 */

export function formatKey(path: ReadonlyArray<PropertyKey>): string {
  let out = '';
  for (const p of path) out += typeof p === 'number' ? `[${p}]` : `${out === '' ? '' : '.'}${String(p)}`;
  return out;
}

/** A loaded config file as far as naming its keys goes (load.ts's LoadedConfig). */
export interface KeyedFile {
  path: string;
  /** The line that writes the key at `path`; null when the file does not (a `defaults:` value). */
  lineOf?: (path: ReadonlyArray<PropertyKey>) => number | null;
}

/** `FILE:LINE: accounts[0].source.url`, without `:LINE` when the file does not write that key. */
export function keyAt(file: KeyedFile, path: ReadonlyArray<PropertyKey>): string {
  const line = file.lineOf?.(path) ?? null;
  return `${file.path}${line === null ? '' : `:${line}`}: ${formatKey(path)}`;
}
