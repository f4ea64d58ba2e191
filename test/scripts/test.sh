#!/usr/bin/env bash
# `npm test`: the whole suite, on a fresh machine too. Installs what it needs (Debian's Dovecot,
# npm packages, the build) through ensure-env.sh, runs vitest, and ends with one plain line
# "N passed, N failed" because CI reads that line, not vitest's own summary.
set -euo pipefail
cd "$(dirname "$0")/../.."
bash test/scripts/ensure-env.sh
# Vitest strips types without checking them: check the tests (and src) against the types first.
if ! npx --no-install tsc -p tsconfig.test.json; then
  echo "typecheck: 0 passed, 1 failed"
  exit 1
fi
# Format, lint (Biome, rules in biome.jsonc; warnings fail too, so none pile up) and line length.
if ! npm run --silent lint; then
  echo "lint: 'npx biome check --write <files>' fixes formatting and the safe findings; split long strings by hand"
  echo "lint: 0 passed, 1 failed"
  exit 1
fi
# No unused file, export, type or dependency (knip.jsonc); code only tests use does not belong in src/.
if ! npm run --silent knip; then
  echo "knip: remove what nothing uses, or drop 'export' where only its own file uses it"
  echo "knip: 0 passed, 1 failed"
  exit 1
fi
report="$(mktemp -t popsync-vitest-XXXXXX.json)"
trap 'rm -f "$report"' EXIT
set +e
# json-report.mjs: vitest's JSON report plus the errors of a describe's beforeAll/afterAll.
npx --no-install vitest run --reporter=default --reporter=./test/scripts/json-report.mjs \
  --outputFile.json="$report" "$@"
status=$?
set -e
# What vitest's output loses: the errors of a test's failed tries, also when its retry passed.
# Informational only: it never changes the exit status or the summary line.
node test/scripts/failed-attempts.mjs "$report" || true
node -e '
  const fs = require("node:fs");
  let r = {};
  try { r = JSON.parse(fs.readFileSync(process.argv[1], "utf8")); } catch {}
  const passed = r.numPassedTests ?? 0;
  // A file that failed outside its tests (a beforeAll that threw) fails none of them, only skips
  // them: counted here as one failure, so the line never says 0 failed when vitest did not pass.
  const filesFailedOutside = (r.testResults ?? []).filter(
    (f) => f.status === "failed" && !(f.assertionResults ?? []).some((a) => a.status === "failed"),
  ).length;
  const failed = (r.numFailedTests ?? 0) + (r.numRuntimeErrors ?? 0) + filesFailedOutside;
  const skipped = (r.numPendingTests ?? 0) + (r.numTodoTests ?? 0);
  console.log(`${passed} passed, ${failed} failed` + (skipped ? `, ${skipped} skipped` : ""));
' "$report"
exit "$status"
