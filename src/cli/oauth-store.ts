/**
 * Where `popsync auth login` keeps a sign-in: one JSON file per name under the XDG state
 * directory (`$XDG_STATE_HOME/popsync/oauth/NAME.json`, else `~/.local/state/...`), mode 0600
 * in a 0700 folder, replaced atomically (private-file.ts) so a refresh that rotates the
 * refresh token never leaves a half-written file. Only the refresh token and what is needed
 * to use it are stored; access tokens are minted per login and never written anywhere.
 */
import { chmodSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { PopsyncError } from '../errors.js';
import type { OAuthEndpoints, OAuthProviderName } from '../oauth/providers.js';
import { writePrivateFile } from './private-file.js';
import { makeDirs } from './make-dirs.js';

export interface StoredSignIn {
  version: 1;
  name: string;
  provider: OAuthProviderName;
  endpoints: OAuthEndpoints;
  scope: string;
  clientId: string;
  clientSecret?: string;
  refreshToken: string;
  /** ISO time of the login, for `auth list`. */
  signedInAt: string;
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$/;

export function checkSignInName(name: string): string {
  if (!NAME.test(name)) {
    throw new PopsyncError('usage', `invalid sign-in name "${name}": letters, digits, '.', '_', '@' and '-' only`);
  }
  return name;
}

function oauthDir(env: NodeJS.ProcessEnv = process.env): string {
  const base = env.XDG_STATE_HOME || join(homedir(), '.local', 'state');
  return join(base, 'popsync', 'oauth');
}

function signInPath(name: string, env: NodeJS.ProcessEnv = process.env): string {
  return join(oauthDir(env), `${checkSignInName(name)}.json`);
}

export function saveSignIn(s: StoredSignIn, env: NodeJS.ProcessEnv = process.env): string {
  const dir = oauthDir(env);
  makeDirs(dir, 0o700);
  chmodSync(dir, 0o700);
  const path = signInPath(s.name, env);
  writePrivateFile(path, `${JSON.stringify(s, null, 2)}\n`);
  return path;
}

export function loadSignIn(name: string, env: NodeJS.ProcessEnv = process.env): StoredSignIn {
  const path = signInPath(name, env);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new PopsyncError('auth', `no stored sign-in named "${name}" (${path})`, {
        hint: `sign in first: popsync auth login --provider ... --name ${name}`,
      });
    }
    throw new PopsyncError('config', `cannot read ${path}: ${(e as Error).message}`);
  }
  const mode = statSync(path).mode & 0o077;
  if (mode !== 0) {
    throw new PopsyncError(
      'config',
      `${path} is readable by others (mode ${(statSync(path).mode & 0o777).toString(8)})`,
      {
        hint: `chmod 600 ${path}`,
      },
    );
  }
  let s: StoredSignIn;
  try {
    s = JSON.parse(text) as StoredSignIn;
  } catch {
    throw new PopsyncError('config', `${path} is not a popsync sign-in file`);
  }
  if (s.version !== 1 || typeof s.refreshToken !== 'string' || typeof s.clientId !== 'string')
    throw new PopsyncError('config', `${path} is not a popsync sign-in file`);
  return s;
}

export function listSignIns(env: NodeJS.ProcessEnv = process.env): StoredSignIn[] {
  let names: string[];
  try {
    names = readdirSync(oauthDir(env)).filter((f) => f.endsWith('.json'));
  } catch {
    return [];
  }
  const out: StoredSignIn[] = [];
  for (const f of names.sort()) {
    try {
      out.push(loadSignIn(f.slice(0, -'.json'.length), env));
    } catch {
      // a foreign or damaged file is not a sign-in; `auth token` on it says why
    }
  }
  return out;
}

export function removeSignIn(name: string, env: NodeJS.ProcessEnv = process.env): boolean {
  const path = signInPath(name, env);
  try {
    statSync(path);
  } catch {
    return false;
  }
  rmSync(path, { force: true });
  return true;
}
