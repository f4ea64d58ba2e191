/**
 * `popsync report merge FILE.json... --output all.html`: the batch reports of several shards
 * (each pod's `--report FILE.json`) as one, so whoever signs the migration off reads one page
 * with one set of totals. Reads only the files it is given; contacts no server, no journal.
 * The folding itself is report/batch-report.ts (mergeBatchReports).
 */
import { readFileSync, statSync } from 'node:fs';
import { Option, type Command } from 'commander';
import { PopsyncError } from '../../errors.js';
import { BATCH_FORMATS, mergeBatchReports, parseBatchReport, type NamedReport } from '../../report/batch-report.js';
import { batchFormatFor, writeAtomically } from '../report-file.js';

/** A batch report of 100,000 accounts is about 60 MB; anything far beyond is not one. */
const MAX_REPORT_BYTES = 512 * 1024 * 1024;

export function registerReport(program: Command): void {
  const report = program.command('report').description('Work with batch reports: merge the reports of several shards.');
  report
    .command('merge')
    .description(
      'Combine the JSON batch reports of several shards (each one --report FILE.json of --accounts) into one: ' +
        'accounts counted once by name (the latest report wins), totals recomputed. Reads only the files given.',
    )
    .argument('<files...>', 'JSON batch reports, e.g. reports/*.json')
    .option('--output <file>', 'write the merged report here; its format follows the extension (.html, .csv, .json)')
    .addOption(
      new Option('--format <format>', 'format of the merged report (default: from --output, else table)').choices([
        ...BATCH_FORMATS,
      ]),
    )
    .action(async (files: string[], opts: Record<string, unknown>) => {
      const inputs = files.map(readReport);
      const merged = mergeBatchReports(inputs, new Date());
      const output = typeof opts.output === 'string' ? opts.output : undefined;
      const format =
        output === undefined ? ((opts.format as 'table' | undefined) ?? 'table') : batchFormatFor(output, opts.format);
      // Loaded here, as report-file.ts does: the renderers are for the runs that write a report.
      const { renderBatch } = await import('../../report/batch-render.js');
      const text = renderBatch(merged, format);
      if (output === undefined) process.stdout.write(text);
      else writeAtomically(output, text);
    });
}

function readReport(file: string): NamedReport {
  let text: string;
  try {
    if (statSync(file).size > MAX_REPORT_BYTES)
      throw new PopsyncError('usage', `${file} is over ${MAX_REPORT_BYTES >> 20} MB: not a popsync batch report`);
    text = readFileSync(file, 'utf8');
  } catch (e) {
    if (e instanceof PopsyncError) throw e;
    throw new PopsyncError('usage', `cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
  }
  const parsed = parseBatchReport(text);
  if ('problem' in parsed) throw new PopsyncError('usage', `${file} is not a popsync batch report: ${parsed.problem}`);
  return { file, report: parsed };
}
