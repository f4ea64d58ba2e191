/**
 * Loads the program's files (dist/bundle/*.cjs, CommonJS) for bin/popsync.js, compiled with a V8
 * code cache kept across runs in `$XDG_CACHE_HOME/popsync/` (else `~/.cache/popsync/`).
 *
 * Why: compiling the program is much of a run's start-up, and a run from cron or one of thousands
 * of accounts' migrations compiles the same code every time. V8 can hand back what it compiled
 * (functions compiled lazily during the run included) and take it at the next compile. Node 20's
 * ES module loader takes no such data (and module.enableCompileCache is Node 22's), so the bundle
 * is CommonJS (lab/bundle.ts), its lazy chunks kept as files of their own, each compiled here
 * with vm.Script and its own part of the cache.
 *
 * A cache is code: it is read only from a directory and a file owned by the user and writable by
 * no one else (a directory this creates is 0700, a file 0600), and it carries a SHA-256 of its
 * bytes, checked before V8 sees any of them: V8 checks its version, the flags' hash and the
 * source's length, but a cache damaged otherwise crashed V8 (8 bytes flipped: V8_Fatal, SIGSEGV or
 * an endless loop). It is written whole under a temporary name and renamed, so a process reading
 * it (a shard, cron's next run) sees the old file or the new one. Whatever goes wrong with it
 * (no home, a read-only file system, a full disk, a damaged or stale file) only costs the compile
 * it would have saved: popsync runs without it and says nothing, unless
 * POPSYNC_DEBUG_CODE_CACHE=1 asks for a line on stderr. POPSYNC_NO_CODE_CACHE (any value but
 * empty) turns it off.
 *
 * This file imports only Node's modules: bin/popsync.js requires it before anything else of the
 * program, and no chunk of the bundle is shared with it.
 */
import { createHash, randomBytes } from 'node:crypto';
import {
  closeSync,
  constants,
  fstatSync,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  renameSync,
  type Stats,
  statSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { createRequire, Module } from 'node:module';
import { homedir } from 'node:os';
import { dirname, isAbsolute, join } from 'node:path';
import { Script } from 'node:vm';

/** What lab/bundle.ts writes here: a hash of the bundle's files, so a rebuilt program gets a cache of its own. */
const BUILD_ID = '@@POPSYNC_BUILD_ID@@';

const MAGIC = Buffer.from('popsync-code-cache 1\n');
const DIGEST_BYTES = 32;
/** Larger than any cache popsync makes (1.2 MB after a migration) by far: anything larger is not one. */
const MAX_BYTES = 64 * 1024 * 1024;
/** A cache for another build or Node.js not written for this long is removed when one is written. */
const STALE_MS = 30 * 24 * 3600 * 1000;

/** Runs a compile, or the cache's making, under the flags V8 hashes into the cache (v8-flags.ts). */
type Guard = <T>(fn: () => T) => T;

export interface Program {
  /** A file of the bundle's directory (`popsync.cjs`): its exports, compiled through the cache. */
  load(name: string): unknown;
  /** From now on, every compile and the cache's making run inside `guard`. */
  guardCompiles(guard: Guard): void;
  /** Writes the cache if this run compiled a file it did not hold. Never throws. */
  save(): void;
}

interface Entry {
  readonly sourceLength: number;
  readonly data: Buffer;
}

interface Compiled {
  readonly name: string;
  readonly script: Script;
  readonly sourceLength: number;
  readonly accepted: boolean;
}

export interface ProgramOptions {
  readonly env?: NodeJS.ProcessEnv;
  readonly buildId?: string;
  /** Where debug lines go (POPSYNC_DEBUG_CODE_CACHE=1). */
  readonly say?: (line: string) => void;
}

/** The cache's directory under `env`, or null when there is no home to put it in. */
export function cacheDirectory(env: NodeJS.ProcessEnv): string | null {
  const xdg = env.XDG_CACHE_HOME;
  // The XDG base directory spec: a relative path is invalid and is ignored.
  if (xdg !== undefined && isAbsolute(xdg)) return join(xdg, 'popsync');
  const home = homedir();
  return home === '' ? null : join(home, '.cache', 'popsync');
}

/** Why a directory or file cannot be trusted to hold code, or null if it can. */
function untrusted(st: { uid: number; mode: number }, what: string): string | null {
  const uid = process.getuid?.();
  if (uid !== undefined && st.uid !== uid) return `${what} is owned by uid ${st.uid}, not ${uid}`;
  if ((st.mode & 0o022) !== 0) return `${what} is writable by others (mode ${(st.mode & 0o777).toString(8)})`;
  return null;
}

export function openProgram(dir: string, options: ProgramOptions = {}): Program {
  const env = options.env ?? process.env;
  const buildId = options.buildId ?? BUILD_ID;
  const debug = env.POPSYNC_DEBUG_CODE_CACHE === '1';
  const say = (line: string): void => {
    if (debug) (options.say ?? ((l) => process.stderr.write(l)))(`popsync: code cache: ${line}\n`);
  };
  const off = (env.POPSYNC_NO_CODE_CACHE ?? '') !== '';
  const nodeRequire = createRequire(join(dir, 'popsync.cjs'));
  const loaded = new Map<string, Module>();
  const compiled: Compiled[] = [];
  let guard: Guard = (fn) => fn();

  let where: { readonly dir: string; readonly file: string; readonly key: string } | null = null;
  let entries = new Map<string, Entry>();
  if (off) say('off (POPSYNC_NO_CODE_CACHE)');
  else {
    try {
      where = locate(env, buildId);
      if (where !== null) entries = readCache(where.dir, where.file, where.key, say);
    } catch (e) {
      say(`not read: ${describe(e)}`);
      entries = new Map();
    }
  }

  const requireFor = (id: string): unknown => {
    // The bundle's own files ask for each other as './name.cjs' (lab/bundle.ts); anything else
    // (Node's modules, better-sqlite3's addon, the deferred files) is Node's to find.
    if (/^\.\/[^/]+\.cjs$/.test(id)) return load(id.slice(2));
    return nodeRequire(id);
  };
  const bundleRequire = Object.assign(requireFor, {
    resolve: nodeRequire.resolve,
    cache: nodeRequire.cache,
    main: undefined,
  }) as NodeJS.Require;

  function load(name: string): unknown {
    const done = loaded.get(name);
    if (done !== undefined) return done.exports;
    const file = join(dir, name);
    let source: string;
    try {
      source = Module.wrap(readFileSync(file, 'utf8'));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      // As Node's require would have said it: bin/popsync.js and errors.ts's missingModule read this.
      throw Object.assign(new Error(`Cannot find module '${file}'`), { code: 'MODULE_NOT_FOUND' });
    }
    const entry = entries.get(name);
    const cachedData = entry !== undefined && entry.sourceLength === source.length ? entry.data : undefined;
    const script = guard(() => new Script(source, { filename: file, cachedData }));
    const accepted = cachedData !== undefined && script.cachedDataRejected === false;
    if (cachedData !== undefined && !accepted) say(`${name}: rejected by V8`);
    compiled.push({ name, script, sourceLength: source.length, accepted });
    const mod = new Module(file, undefined);
    mod.filename = file;
    mod.loaded = true;
    // In require's cache, as a file Node loaded would be: what a run loaded can be listed from there.
    nodeRequire.cache[file] = mod;
    loaded.set(name, mod);
    const wrapper = script.runInThisContext() as (...args: unknown[]) => void;
    wrapper.call(mod.exports, mod.exports, bundleRequire, mod, file, dir);
    return mod.exports;
  }

  function save(): void {
    if (where === null || compiled.every((c) => c.accepted)) {
      if (where !== null) say(`used for ${compiled.length} of ${compiled.length} files`);
      return;
    }
    const used = compiled.filter((c) => c.accepted).length;
    const t0 = process.cpuUsage();
    try {
      // Where it goes first: a cache that cannot be written (read-only, not the user's) costs no
      // createCachedData, which is most of a write's CPU.
      const out = openTemporary(where.dir, where.file);
      const next = new Map(entries);
      const bytes = out.write(() => {
        guard(() => {
          for (const c of compiled)
            next.set(c.name, { sourceLength: c.sourceLength, data: c.script.createCachedData() });
        });
        return serializeCache(where!.key, next);
      });
      const t = process.cpuUsage(t0);
      const ms = ((t.user + t.system) / 1000).toFixed(1);
      say(`used for ${used} of ${compiled.length} files; written ${where.file} (${bytes} bytes, ${ms} ms CPU)`);
    } catch (e) {
      say(`used for ${used} of ${compiled.length} files; not written: ${describe(e)}`);
    }
  }

  return {
    load,
    guardCompiles: (g) => {
      guard = g;
    },
    save,
  };
}

function describe(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** The cache's directory, file name and key (build, Node.js, V8, architecture), or null without a home. */
function locate(env: NodeJS.ProcessEnv, buildId: string): { dir: string; file: string; key: string } | null {
  const dir = cacheDirectory(env);
  if (dir === null) return null;
  const key = createHash('sha256')
    .update([buildId, process.versions.node, process.versions.v8, process.arch, process.platform].join('\n'))
    .digest('hex')
    .slice(0, 32);
  return { dir, file: `code-${key}.bin`, key };
}

/** The cache's entries by file name; none when it is absent, untrusted, damaged or another build's. */
function readCache(dir: string, file: string, key: string, say: (line: string) => void): Map<string, Entry> {
  const none = new Map<string, Entry>();
  let dst: Stats;
  try {
    dst = lstatSync(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
      say(`absent (${dir})`);
      return none;
    }
    throw e;
  }
  if (!dst.isDirectory()) {
    say(`ignored: ${dir} is not a directory`);
    return none;
  }
  const badDir = untrusted(dst, dir);
  if (badDir !== null) {
    say(`ignored: ${badDir}`);
    return none;
  }
  let fd: number;
  try {
    fd = openSync(join(dir, file), constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
      say(`absent (${join(dir, file)})`);
      return none;
    }
    throw e;
  }
  let bytes: Buffer;
  try {
    const st = fstatSync(fd);
    const bad = !st.isFile() ? `${file} is not a regular file` : untrusted(st, join(dir, file));
    if (bad !== null) {
      say(`ignored: ${bad}`);
      return none;
    }
    if (st.size > MAX_BYTES) {
      say(`ignored: ${file} is ${st.size} bytes`);
      return none;
    }
    bytes = Buffer.allocUnsafe(st.size);
    let got = 0;
    while (got < bytes.length) {
      const n = readSync(fd, bytes, got, bytes.length - got, got);
      if (n === 0) break;
      got += n;
    }
    bytes = bytes.subarray(0, got);
  } finally {
    closeSync(fd);
  }
  const parsed = parseCache(bytes, key);
  if (typeof parsed === 'string') {
    say(`ignored: ${file}: ${parsed}`);
    return none;
  }
  return parsed;
}

/**
 * The cache's layout: MAGIC, a 4-byte length and a JSON header (key, and each file's name, source
 * length and data length), the data, then the SHA-256 of everything before it.
 */
export function parseCache(bytes: Buffer, key: string): Map<string, Entry> | string {
  if (bytes.length < MAGIC.length + 4 + DIGEST_BYTES || !bytes.subarray(0, MAGIC.length).equals(MAGIC)) {
    return 'not a popsync code cache';
  }
  const body = bytes.subarray(0, bytes.length - DIGEST_BYTES);
  const digest = createHash('sha256').update(body).digest();
  if (!digest.equals(bytes.subarray(bytes.length - DIGEST_BYTES))) return 'damaged (its SHA-256 does not match)';
  const headerLength = body.readUInt32LE(MAGIC.length);
  let at = MAGIC.length + 4 + headerLength;
  if (at > body.length) return 'damaged (header)';
  const header = JSON.parse(body.subarray(MAGIC.length + 4, at).toString('utf8')) as {
    key: string;
    files: Array<[string, number, number]>;
  };
  if (header.key !== key) return 'made for another build';
  const entries = new Map<string, Entry>();
  for (const [name, sourceLength, length] of header.files) {
    if (at + length > body.length) return 'damaged (data)';
    entries.set(name, { sourceLength, data: body.subarray(at, at + length) });
    at += length;
  }
  return entries;
}

export function serializeCache(key: string, entries: ReadonlyMap<string, Entry>): Buffer {
  const files = [...entries].map(([name, e]) => [name, e.sourceLength, e.data.length]);
  const header = Buffer.from(JSON.stringify({ key, files }));
  const length = Buffer.alloc(4);
  length.writeUInt32LE(header.length);
  const body = Buffer.concat([MAGIC, length, header, ...[...entries.values()].map((e) => e.data)]);
  return Buffer.concat([body, createHash('sha256').update(body).digest()]);
}

/**
 * A temporary file for the cache in `dir` (created 0700 if missing, and checked as a read is),
 * whose write() fills it with what `make` returns and renames it over `file`: readers see the old
 * cache or the new one, never part of one. Returns the bytes written.
 */
function openTemporary(dir: string, file: string): { write(make: () => Buffer): number } {
  makeDirectory(dir);
  const dst = lstatSync(dir);
  if (!dst.isDirectory()) throw new Error(`${dir} is not a directory`);
  const bad = untrusted(dst, dir);
  if (bad !== null) throw new Error(bad);
  const tmp = join(dir, `.${file}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  const fd = openSync(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
  return {
    write(make) {
      try {
        let bytes: Buffer;
        try {
          bytes = make();
          let put = 0;
          while (put < bytes.length) put += writeSync(fd, bytes, put, bytes.length - put);
        } finally {
          closeSync(fd);
        }
        renameSync(tmp, join(dir, file));
        pruneStale(dir, file);
        return bytes.length;
      } catch (e) {
        try {
          unlinkSync(tmp);
        } catch {
          // Gone already, or the directory went read-only: nothing more to do for a cache.
        }
        throw e;
      }
    },
  };
}

/**
 * `dir`, and its parent if that is missing too (~/.cache on a new account), made 0700. Not
 * mkdirSync's `recursive`: where a directory cannot be made with ENOENT (under /proc, as a
 * XDG_CACHE_HOME there would ask), Node 20's looped forever, and the run never ended.
 */
function makeDirectory(dir: string): void {
  for (const d of [dirname(dir), dir]) {
    try {
      mkdirSync(d, { mode: 0o700 });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
  }
}

/** Removes other builds' and Node.js versions' caches not written for STALE_MS. */
function pruneStale(dir: string, keep: string): void {
  const now = Date.now();
  for (const name of readdirSync(dir)) {
    if (name === keep || !/^code-[0-9a-f]+\.bin$/.test(name)) continue;
    try {
      const p = join(dir, name);
      if (now - statSync(p).mtimeMs > STALE_MS) unlinkSync(p);
    } catch {
      // Removed by another process meanwhile.
    }
  }
}
