/**
 * The version `popsync --version` prints, read from the package.json that ships beside dist/
 * (dist/cli/version.js, the bundle's dist/bundle/*.js (lab/bundle.ts) and src/cli/version.ts all
 * sit two levels below it), so a release only ever changes one number and an installed tarball
 * reports what it is.
 */
import { readFileSync } from 'node:fs';

export function packageVersion(): string {
  const raw = readFileSync(new URL('../../package.json', import.meta.url), 'utf8');
  const version = (JSON.parse(raw) as { version?: unknown }).version;
  if (typeof version !== 'string') throw new Error('package.json has no version');
  return version;
}
