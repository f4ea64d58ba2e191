// Prints, from vitest's JSON report, every test that failed at least once and the errors of its
// failed attempts. Vitest's own output shows a test that passed on its retry as "retry x1" only,
// and test.sh deletes the report: without this the error of a flaky first attempt was lost.
// Usage: node test/scripts/failed-attempts.mjs REPORT.json (prints nothing when none failed).
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
for (const file of report.testResults ?? []) {
  const where = relative(process.cwd(), file.name ?? '?');
  // A file that failed outside its tests (an import, a top-level beforeAll). A describe's
  // failed beforeAll is not in the report: vitest's own output shows it.
  if (file.status === 'failed' && file.message) out.push(`[file failed] ${where}`, clip(file.message), '');
  for (const t of file.assertionResults ?? []) {
    // Vitest keeps the errors of every failed try, a retry that passed included.
    const errors = t.failureMessages ?? [];
    if (errors.length === 0) continue;
    const how = t.status === 'passed' ? 'passed on retry' : t.status;
    out.push(`[${how}] ${where} > ${t.fullName ?? t.title}`);
    errors.forEach((e, i) => {
      out.push(`  error ${i + 1} of ${errors.length}:`, clip(e).replace(/^/gm, '    '));
    });
    out.push('');
  }
}
if (out.length > 0) {
  console.log('\nTests that failed at least once (a retry that passed included), with their errors:\n');
  console.log(out.join('\n'));
}
