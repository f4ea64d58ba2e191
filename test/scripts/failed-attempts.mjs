// Prints, from vitest's JSON report, every test that failed at least once and the errors of its
// failed attempts, and every file or describe that failed outside its tests (an import, a
// beforeAll or afterAll that threw) with its errors. Vitest's own output shows a test that passed
// on its retry as "retry x1" only, and test.sh deletes the report: without this the error of a
// flaky first attempt was lost.
// Usage: node test/scripts/failed-attempts.mjs REPORT.json (prints nothing when none failed).
// REPORT.json is written by json-report.mjs, vitest's JSON reporter plus the describes' errors.
import { readFileSync } from 'node:fs';
import { relative } from 'node:path';

/** Enough for the message and the test's own frames; a flood of frames or output is cut. */
const MAX_LINES = 30;
const MAX_CHARS = 4000;

/** Frames of vitest's runner and of Node's internals say nothing about the test. */
const NOISE = /^\s*at (.*[/\\]node_modules[/\\]|node:internal[/:]|new Promise \(<anonymous>\))/;

function clip(text) {
  const lines = String(text)
    .slice(0, MAX_CHARS)
    .split('\n')
    .filter((l) => !NOISE.test(l));
  const kept = lines.slice(0, MAX_LINES);
  const more = text.length > MAX_CHARS || lines.length > MAX_LINES;
  return kept.join('\n') + (more ? '\n… (cut)' : '');
}

let report;
try {
  report = JSON.parse(readFileSync(process.argv[2], 'utf8'));
} catch (e) {
  // Vitest stopped before writing it: its own output and the exit status tell that story.
  console.log(`(no list of failed attempts: ${e.message})`);
  process.exit(0);
}
const out = [];
function listErrors(errors) {
  errors.forEach((e, i) => {
    out.push(`  error ${i + 1} of ${errors.length}:`, clip(e).replace(/^/gm, '    '));
  });
  out.push('');
}
for (const file of report.testResults ?? []) {
  const where = relative(process.cwd(), file.name ?? '?');
  // A file that failed outside its tests (an import, a top-level beforeAll).
  if (file.status === 'failed' && file.message) out.push(`[file failed] ${where}`, clip(file.message), '');
  // A describe's beforeAll or afterAll that threw: its tests are skipped, not failed, so nothing
  // below names it (json-report.mjs adds these; the stock JSON report does not carry them).
  for (const s of file.suiteErrors ?? []) {
    out.push(`[describe failed] ${where} > ${s.suite}`);
    listErrors(s.errors);
  }
  for (const t of file.assertionResults ?? []) {
    // Vitest keeps the errors of every failed try, a retry that passed included.
    const errors = t.failureMessages ?? [];
    if (errors.length === 0) continue;
    const how = t.status === 'passed' ? 'passed on retry' : t.status;
    out.push(`[${how}] ${where} > ${t.fullName ?? t.title}`);
    listErrors(errors);
  }
}
if (out.length > 0) {
  console.log(
    '\nTests that failed at least once (a retry that passed included), and files or describes that ' +
      'failed outside their tests, with their errors:\n',
  );
  console.log(out.join('\n'));
}
