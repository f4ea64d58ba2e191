/**
 * Reads popsync.yml: YAML (duplicate keys are errors) validated by schema.ts, every problem
 * reported as `file:line: key.path: what is wrong`, so the user can go straight to the line.
 * Throws PopsyncError('config') (exit 2) before anything connects. Reads no secret: password
 * keys are names of variables, files and commands, resolved later by cli/secrets.ts.
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { isMap, isSeq, LineCounter, parseDocument, type Document, type Node } from 'yaml';
import type { z } from 'zod';
import { PopsyncError } from '../errors.js';
import { formatKey, type KeyedFile } from './key-path.js';
import { configFile, type ConfigFile } from './schema.js';
import { knownKeysAt, nearestKey } from './suggest.js';

/**
 * A hand-written config is a few kilobytes; 1,900 accounts with a rule each fit in this.
 * Parsing costs up to several hundred times the file's size in memory (a 19.5 MB file took
 * 2.4 GB; 512 KB of nested brackets, the worst shape measured, 400 MB), so anything larger is
 * refused before it is parsed.
 */
export const MAX_CONFIG_BYTES = 512 * 1024;
/**
 * YAML aliases expand on use: a few lines of nested `*a` references (a "billion laughs")
 * become gigabytes. A config needs an anchor for shared settings now and then, not hundreds.
 */
const MAX_CONFIG_ALIASES = 100;

export interface LoadedConfig extends KeyedFile {
  /** Absolute path of the file; relative paths inside it are relative to its folder. */
  path: string;
  dir: string;
  config: ConfigFile;
}

interface ConfigProblem {
  line: number | null;
  /** `accounts[0].rules[2].match.subject`, or '' for the whole file. */
  key: string;
  message: string;
}

/** The deepest node of `path` that exists, and its key's node when the last step names a map key. */
function locate(doc: Document, path: ReadonlyArray<PropertyKey>, wantKey: boolean): Node | null {
  let node: unknown = doc.contents;
  let found: Node | null = (node as Node | null) ?? null;
  for (const [i, step] of path.entries()) {
    if (isMap(node)) {
      const pair = node.items.find((p) => (p.key as { value?: unknown } | null)?.value === step);
      if (!pair) break;
      const last = i === path.length - 1;
      found = (last && wantKey ? (pair.key as Node) : ((pair.value as Node | null) ?? (pair.key as Node))) ?? found;
      node = pair.value;
    } else if (isSeq(node) && typeof step === 'number') {
      const item = node.items[step] as Node | undefined;
      if (!item) break;
      found = item;
      node = item;
    } else break;
  }
  return found;
}

function lineOf(doc: Document, lc: LineCounter, path: ReadonlyArray<PropertyKey>, wantKey = false): number | null {
  const node = locate(doc, path, wantKey);
  const offset = node?.range?.[0];
  return offset === undefined ? null : lc.linePos(offset).line;
}

/**
 * The line of the key at `path` when the file writes exactly that key, else null: for errors
 * found after loading, where a nearby line (the account's, for a url that `defaults:` supplied)
 * would point at the wrong place. Schema errors use lineOf's nearest line instead: a missing
 * key is best shown where it is missing.
 */
function exactLineOf(doc: Document, lc: LineCounter, path: ReadonlyArray<PropertyKey>): number | null {
  let node: unknown = doc.contents;
  let keyNode: Node | null = null;
  for (const step of path) {
    if (isMap(node)) {
      const pair = node.items.find((p) => (p.key as { value?: unknown } | null)?.value === step);
      if (!pair) return null;
      keyNode = pair.key as Node;
      node = pair.value;
    } else if (isSeq(node) && typeof step === 'number') {
      node = node.items[step];
      if (node === undefined) return null;
      keyNode = node as Node;
    } else return null;
  }
  const offset = keyNode?.range?.[0];
  return offset === undefined ? null : lc.linePos(offset).line;
}

/** Union failures list every branch's complaint; the custom one (bad regex...) is what the user needs. */
function pickIssue(issue: z.core.$ZodIssue): { path: PropertyKey[]; message: string } {
  if (issue.code === 'invalid_union') {
    for (const branch of issue.errors) {
      const custom = branch.find((i) => i.code === 'custom' || i.code === 'too_small');
      if (custom) return { path: [...issue.path, ...custom.path], message: custom.message };
    }
    for (const branch of issue.errors) {
      const keys = branch.find((i) => i.code === 'unrecognized_keys');
      if (
        keys &&
        keys.code === 'unrecognized_keys' &&
        !branch.some((i) => i.code === 'invalid_type' && i.path.length === 0)
      ) {
        return { path: [...issue.path, ...keys.path, keys.keys[0]!], message: 'unknown key' };
      }
    }
    const last = issue.path[issue.path.length - 1];
    const hint =
      ['from', 'to', 'cc', 'delivered_to', 'x_original_to', 'list_id', 'subject'].includes(String(last)) ||
      typeof last === 'number'
        ? 'expected a glob string, {glob: ..., case_sensitive: true} or {regex: ..., case_sensitive: true}, ' +
          'or a list of them'
        : issue.message;
    return { path: [...issue.path], message: hint };
  }
  return { path: [...issue.path], message: issue.message };
}

/** The command line's words for the two sides, as people carry them over into a config. */
const SIDE_NAMES: Readonly<Record<string, string>> = {
  pop: 'source',
  pop3: 'source',
  imap: 'destination',
};

/** What an unknown key was probably meant as: a typo of a key here, a side's name, a side's key. */
function unknownKeyMessage(key: string, at: ReadonlyArray<PropertyKey>): string {
  const known = knownKeysAt(configFile, at);
  const meant = nearestKey(key, known) ?? (known.includes(SIDE_NAMES[key] ?? '') ? SIDE_NAMES[key]! : null);
  if (meant !== null) return `unknown key (did you mean ${meant}?)`;
  // password_env and the like written beside source: instead of under it (or misspelt there too).
  const sideKey = known.includes('source') ? nearestKey(key, knownKeysAt(configFile, [...at, 'source'])) : null;
  if (sideKey !== null) return `unknown key here (${sideKey} belongs under source: or destination:)`;
  return 'unknown key';
}

/** "expected object, received string" where a side was written as its URL alone. */
function sideAsUrl(issue: z.core.$ZodIssue): string | null {
  const side = issue.path[issue.path.length - 1];
  if (issue.code !== 'invalid_type' || (side !== 'source' && side !== 'destination')) return null;
  if (!/received string/.test(issue.message)) return null;
  const scheme = side === 'source' ? 'pop3s' : 'imaps';
  return (
    `expected keys, not a URL on its own: write the URL as url: under ${side}:, beside the password key ` +
    `(${side}: { url: '${scheme}://user@host', password_env: NAME })`
  );
}

function problemsOf(doc: Document, lc: LineCounter, issues: readonly z.core.$ZodIssue[]): ConfigProblem[] {
  const out: ConfigProblem[] = [];
  for (const issue of issues) {
    if (issue.code === 'unrecognized_keys') {
      for (const k of issue.keys) {
        const path = [...issue.path, k];
        out.push({
          line: lineOf(doc, lc, path, true),
          key: formatKey(path),
          message: unknownKeyMessage(k, issue.path),
        });
      }
      continue;
    }
    const { path, message } = pickIssue(issue);
    out.push({
      line: lineOf(doc, lc, path),
      key: formatKey(path),
      message:
        sideAsUrl(issue) ??
        message.replace(/^Invalid input: /, '').replace(/^expected (.+), received undefined$/, 'missing (expected $1)'),
    });
  }
  return out.sort((a, b) => (a.line ?? 0) - (b.line ?? 0));
}

function formatProblems(file: string, problems: ConfigProblem[]): string {
  return problems
    .map((p) => `${file}${p.line === null ? '' : `:${p.line}`}: ${p.key === '' ? '' : `${p.key}: `}${p.message}`)
    .join('\n');
}

/** Parses and validates config text; `file` is only used in messages. */
export function parseConfig(textIn: string, file: string): ConfigFile {
  return parseConfigLines(textIn, file).config;
}

/** parseConfig, and where each key is written (LoadedConfig.lineOf). */
function parseConfigLines(
  textIn: string,
  file: string,
): { config: ConfigFile; lineOf: (path: ReadonlyArray<PropertyKey>) => number | null } {
  const lc = new LineCounter();
  const doc = parseDocument(textIn, { lineCounter: lc, uniqueKeys: true, prettyErrors: false });
  const fail = (problems: ConfigProblem[]): never => {
    throw new PopsyncError('config', formatProblems(file, problems), {
      hint: 'see README "Configuration file"; `popsync config check FILE` checks a file without connecting',
    });
  };
  if (doc.errors.length > 0) {
    fail(
      doc.errors.map((e) => ({
        line: lc.linePos(e.pos[0]).line,
        key: '',
        message: e.code === 'DUPLICATE_KEY' ? 'duplicate key' : e.message.split('\n')[0]!,
      })),
    );
  }
  let data: unknown;
  try {
    data = doc.toJS({ maxAliasCount: MAX_CONFIG_ALIASES });
  } catch (e) {
    // yaml throws a plain ReferenceError for an expansion past the limit (and for an alias to
    // no anchor, which parseDocument already reported): the user's file, not our bug.
    if (!(e instanceof ReferenceError)) throw e;
    fail([
      {
        line: null,
        key: '',
        message:
          `too many YAML alias expansions (over ${MAX_CONFIG_ALIASES}); write the settings out, or ` +
          `share them with \`defaults:\``,
      },
    ]);
  }
  if (data === null || data === undefined)
    fail([{ line: null, key: '', message: 'the file is empty; it needs an `accounts:` list' }]);
  const parsed = configFile.safeParse(data);
  if (!parsed.success) fail(problemsOf(doc, lc, parsed.error.issues));
  return { config: parsed.data!, lineOf: (path) => exactLineOf(doc, lc, path) };
}

/**
 * At most `limit` bytes of the file, or null when it holds more. Counted while reading, not
 * only from fstat: a FIFO or /dev/stdin has no size until it is read.
 */
export function readBounded(path: string, limit: number): Buffer | null {
  const fd = openSync(path, 'r');
  try {
    const st = fstatSync(fd);
    if (st.isFile() && st.size > limit) return null;
    const buf = Buffer.alloc(limit + 1);
    let n = 0;
    for (;;) {
      const got = readSync(fd, buf, n, buf.length - n, null);
      if (got === 0) break;
      n += got;
      if (n > limit) return null;
    }
    return buf.subarray(0, n);
  } finally {
    closeSync(fd);
  }
}

/** The usual reasons a config file cannot be read, in words ("ENOENT" alone read as jargon). */
const READ_FAILURE: Readonly<Record<string, string>> = {
  ENOENT: 'no such file (ENOENT)',
  EACCES: 'permission denied (EACCES)',
  EISDIR: 'it is a directory (EISDIR)',
  ENOTDIR: 'a part of the path is not a directory (ENOTDIR)',
};

export function loadConfigFile(path: string): LoadedConfig {
  const abs = resolve(path);
  let bytes: Buffer | null;
  try {
    bytes = readBounded(abs, MAX_CONFIG_BYTES);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new PopsyncError(
      'config',
      `cannot read the config file ${path}: ${READ_FAILURE[code ?? ''] ?? code ?? String(e)}`,
    );
  }
  if (bytes === null) {
    throw new PopsyncError(
      'config',
      `the config file ${path} is larger than ${MAX_CONFIG_BYTES / 1024} KB; popsync reads config files up ` +
        `to that size`,
      {
        hint: 'is this the right file? a config with many accounts can be split and run with one --config per file',
      },
    );
  }
  return { path: abs, dir: dirname(abs), ...parseConfigLines(bytes.toString('utf8'), path) };
}
