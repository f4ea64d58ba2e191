// Whether node_modules holds what package-lock.json lists: exit 0 if so, 1 if `npm ci` is needed.
// ensure-env.sh asks only when the lock file is newer than npm's own record of the install
// (node_modules/.package-lock.json). A newer lock alone is no reason to reinstall: git rewrites
// the file on every checkout, clone and merge that touches it, and a change to the project's own
// entry (a script, a devDependency already installed as another package's) installs nothing.
// Reinstalling a node_modules hard-linked from another checkout would rebuild better-sqlite3's
// native binding from source for minutes, when nothing in it changed.
// Usage: node test/scripts/lock-installed.mjs (from the repository root).
import { readFileSync } from 'node:fs';

const packagesOf = (file) => JSON.parse(readFileSync(file, 'utf8')).packages ?? {};
let installed;
try {
  installed = packagesOf('node_modules/.package-lock.json');
} catch {
  process.exit(1);
}
const locked = packagesOf('package-lock.json');
const same = (a, b) => a.version === b.version && a.integrity === b.integrity && a.resolved === b.resolved;
for (const [path, entry] of Object.entries(locked)) {
  // '' is the project itself, not something installed.
  if (path === '') continue;
  const got = installed[path];
  // npm skips optional packages for other platforms (esbuild's and biome's binaries).
  if (got === undefined ? entry.optional !== true : !same(entry, got)) process.exit(1);
}
for (const path of Object.keys(installed)) if (!(path in locked)) process.exit(1);
