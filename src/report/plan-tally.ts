/**
 * Counts a report's messages into its totals, per-folder rows and seen/date source tallies.
 * One function for both kinds of report (what `plan` would do, what a run did) so the two
 * can never count the same status differently.
 */
import type { PlanFolder, PlanMessage, PlanReport } from './plan-types.js';

export interface Tally {
  totals: PlanReport['totals'];
  folders: PlanFolder[];
  seenSources: Record<string, number>;
  dateSources: Record<string, number>;
}

export interface TallyOptions {
  /** What the destination said about a folder before anything was copied. */
  exists: (folder: string) => boolean;
  /** A run report: also count copied / failed / skipped, and a folder a copy went to exists. */
  run: boolean;
}

export function tallyMessages(messages: readonly PlanMessage[], o: TallyOptions): Tally {
  const totals: PlanReport['totals'] = {
    messages: 0,
    bytes: 0,
    new: 0,
    newBytes: 0,
    retry: 0,
    alreadyCopied: 0,
    wouldFail: 0,
  };
  if (o.run) Object.assign(totals, { copied: 0, copiedBytes: 0, failed: 0, skippedByRule: 0 });
  const folders = new Map<string, PlanFolder>();
  const seenSources: Record<string, number> = {};
  const dateSources: Record<string, number> = {};
  const sources = (m: PlanMessage) => {
    seenSources[m.seenSource ?? 'none'] = (seenSources[m.seenSource ?? 'none'] ?? 0) + 1;
    dateSources[m.dateSource] = (dateSources[m.dateSource] ?? 0) + 1;
  };
  for (const m of messages) {
    totals.messages++;
    totals.bytes += m.size;
    let f = folders.get(m.folder);
    if (!f) {
      f = {
        folder: m.folder,
        exists: o.exists(m.folder),
        messages: 0,
        bytes: 0,
        new: 0,
        newBytes: 0,
        retry: 0,
        alreadyCopied: 0,
        wouldFail: 0,
      };
      if (o.run) Object.assign(f, { copied: 0, failed: 0, skippedByRule: 0 });
      folders.set(m.folder, f);
    }
    f.messages++;
    f.bytes += m.size;
    switch (m.status) {
      case 'new':
      case 'retry':
        if (m.status === 'new') totals.new++;
        else {
          totals.retry++;
          f.retry++;
        }
        totals.newBytes += m.size;
        f.new++;
        f.newBytes += m.size;
        sources(m);
        break;
      case 'copied':
        totals.copied = (totals.copied ?? 0) + 1;
        totals.copiedBytes = (totals.copiedBytes ?? 0) + m.size;
        f.copied = (f.copied ?? 0) + 1;
        f.exists = true;
        sources(m);
        break;
      case 'already-copied':
        totals.alreadyCopied++;
        f.alreadyCopied++;
        if (o.run) f.exists = true;
        break;
      case 'skipped-by-rule':
        totals.skippedByRule = (totals.skippedByRule ?? 0) + 1;
        f.skippedByRule = (f.skippedByRule ?? 0) + 1;
        break;
      case 'failed':
        totals.failed = (totals.failed ?? 0) + 1;
        f.failed = (f.failed ?? 0) + 1;
        break;
      case 'would-fail':
        totals.wouldFail++;
        f.wouldFail++;
        break;
    }
  }
  return {
    totals,
    folders: [...folders.values()].sort((a, b) => b.messages - a.messages || a.folder.localeCompare(b.folder)),
    seenSources,
    dateSources,
  };
}
