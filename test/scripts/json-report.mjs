// Vitest's JSON reporter, plus the errors of describes. A describe whose beforeAll or afterAll
// throws fails its file and skips its tests, but the stock report carries neither the error nor
// the describe (the file's `message` is its own errors only, empty here), so failed-attempts.mjs
// could not list it. Each file's entry gains `suiteErrors`: [{ suite: 'outer > inner', errors:
// [stack, ...] }], only where a describe has errors.
// Usage (test.sh): vitest run --reporter=./test/scripts/json-report.mjs --outputFile.json=REPORT.json
import { JsonReporter } from 'vitest/node';

/** Every describe under `task` with errors of its own, named by its path of describes. */
function suiteErrors(task, path = []) {
  const found = [];
  for (const child of task.tasks ?? []) {
    if (child.type !== 'suite') continue;
    const named = [...path, child.name];
    const errors = child.result?.errors ?? [];
    if (errors.length > 0) found.push({ suite: named.join(' > '), errors: errors.map((e) => e.stack || e.message) });
    found.push(...suiteErrors(child, named));
  }
  return found;
}

export default class JsonReportWithSuiteErrors extends JsonReporter {
  /** By file path, as the report names files; filled as the run ends, read as the report is written. */
  bySuite = new Map();

  async onTestRunEnd(testModules, ...rest) {
    this.bySuite = new Map(testModules.map((m) => [m.task.filepath, suiteErrors(m.task)]));
    return super.onTestRunEnd(testModules, ...rest);
  }

  async writeReport(report) {
    const parsed = JSON.parse(report);
    for (const file of parsed.testResults ?? []) {
      const errors = this.bySuite.get(file.name) ?? [];
      if (errors.length > 0) file.suiteErrors = errors;
    }
    return super.writeReport(JSON.stringify(parsed));
  }
}
