/**
 * One entry point for every way `popsync plan` and `migrate`/`sync --report` print a
 * PlanReport. The CLI validates `--format` against PLAN_FORMATS and writes the returned text as
 * is: every format ends with its own line terminator (CRLF for csv), so stdout and `--output`
 * files get the same bytes.
 *
 * Renderers are pure: same report, same text (no clock, no locale, no environment).
 */

import { renderPlanCsv } from './plan-csv.js';
import { renderPlanHtml } from './plan-html.js';
import { renderPlanMarkdown } from './plan-markdown.js';
import { renderPlanTable } from './plan-table.js';
import { PLAN_FORMATS, type PlanFormat, type PlanReport } from './plan-types.js';

export { PLAN_FORMATS, type PlanFormat };

export interface PlanRenderOptions {
  /** json: one line instead of two-space indentation. */
  compact?: boolean;
  /** table, markdown: failed messages listed before "and N more" (csv and html list all). */
  maxFailures?: number;
}

export function renderPlan(report: PlanReport, format: PlanFormat, options: PlanRenderOptions = {}): string {
  switch (format) {
    case 'table':
      return renderPlanTable(report, { maxFailures: options.maxFailures });
    case 'json':
      return renderPlanJson(report, options.compact ?? false);
    case 'csv':
      return renderPlanCsv(report);
    case 'markdown':
      return renderPlanMarkdown(report, { maxFailures: options.maxFailures });
    case 'html':
      return renderPlanHtml(report);
    default: {
      const never: never = format;
      throw new Error(`unknown plan format: ${String(never)}`);
    }
  }
}

/**
 * The report itself, with keys in a fixed order whatever order the planner built its objects
 * in, so two plans of the same mailbox diff cleanly: the order of plan-types.ts for known
 * keys, then any keys added later in alphabetical order; tally maps (seenSources, dateSources)
 * alphabetically. Nothing is added or dropped.
 */
export function renderPlanJson(report: PlanReport, compact = false): string {
  return `${JSON.stringify(canonical(report, 'report'), null, compact ? undefined : 2)}\n`;
}

type Shape = 'report' | 'totals' | 'folder' | 'message' | 'estimate' | 'run' | 'tally';

const KEY_ORDER: Record<Exclude<Shape, 'tally'>, readonly string[]> = {
  report: [
    'version',
    'name',
    'generatedAt',
    'source',
    'destination',
    'run',
    'totals',
    'folders',
    'seenSources',
    'dateSources',
    'estimate',
    'messages',
  ],
  totals: [
    'messages',
    'bytes',
    'new',
    'newBytes',
    'retry',
    'alreadyCopied',
    'wouldFail',
    'copied',
    'copiedBytes',
    'failed',
    'skippedByRule',
  ],
  folder: [
    'folder',
    'exists',
    'messages',
    'bytes',
    'new',
    'newBytes',
    'retry',
    'alreadyCopied',
    'wouldFail',
    'copied',
    'failed',
    'skippedByRule',
  ],
  message: [
    'n',
    'uidl',
    'size',
    'status',
    'folder',
    'folderRule',
    'flags',
    'seenSource',
    'internalDate',
    'dateSource',
    'subject',
    'from',
    'messageId',
    'reason',
    'serverResponse',
  ],
  estimate: ['bytesPerSecond', 'seconds', 'basis'],
  run: ['command', 'startedAt', 'durationMs', 'copiedBytes'],
};

const CHILD_SHAPE: Partial<Record<string, Shape>> = {
  totals: 'totals',
  folders: 'folder',
  messages: 'message',
  estimate: 'estimate',
  run: 'run',
  seenSources: 'tally',
  dateSources: 'tally',
};

function canonical(value: unknown, shape: Shape): unknown {
  if (Array.isArray(value)) return value.map((v) => canonical(v, shape));
  if (value === null || typeof value !== 'object') return value;
  const obj = value as Record<string, unknown>;
  const known = shape === 'tally' ? [] : KEY_ORDER[shape];
  const rest = Object.keys(obj)
    .filter((k) => !known.includes(k))
    .sort();
  // A null prototype keeps a key named __proto__ an ordinary key.
  const out = Object.create(null) as Record<string, unknown>;
  for (const k of [...known, ...rest]) {
    if (!(k in obj)) continue;
    const child = shape === 'report' ? CHILD_SHAPE[k] : undefined;
    out[k] = child ? canonical(obj[k], child) : obj[k];
  }
  return out;
}
