#!/usr/bin/env node
// A token command for the OAuth2 tests (oauth2-lab.ts): asks the test's OAuth2 server for an
// access token for USER (password grant) and prints it on one line, as a real token helper does.
// Usage: oauth2-token.mjs TOKEN_URL USER [COUNT_FILE]; each run appends a line to COUNT_FILE.
import { appendFileSync } from 'node:fs';

const [url, user, countFile] = process.argv.slice(2);
const res = await fetch(url, {
  method: 'POST',
  headers: { 'content-type': 'application/x-www-form-urlencoded' },
  body: new URLSearchParams({ grant_type: 'password', username: user, password: 'x', client_id: 'popsync-test' }),
});
if (!res.ok) {
  process.stderr.write(`token endpoint answered ${res.status}\n`);
  process.exit(1);
}
const { access_token: token } = await res.json();
if (countFile) appendFileSync(countFile, `${Date.now()}\n`);
process.stdout.write(`${token}\n`);
