/**
 * What a real `migrate`/`sync` did, as a PlanReport (`--report FILE`): the same shape and
 * renderers as `popsync plan`, so the person who signed off the plan reads the outcome in the
 * same tables, and a script can join plan and report JSON on the UIDL. Pure: the engine's
 * per-message details in, a report out.
 *
 * Counting conventions: every listed message is one row; `copied` counts this run's copies
 * (including interrupted earlier copies this run found in the destination), `alreadyCopied`
 * what the journal held before. Seen and date sources are tallied over the messages this run
 * copied: they are the decisions this run made. `new`/`newBytes`/`retry`/`wouldFail` keep
 * their plan meaning and are 0 here, so no renderer mistakes a report for a plan.
 */
import type { MessageDetail, RunResult } from '../engine/types.js';
import type { PlanFolder, PlanMessage, PlanReport } from './plan-types.js';

export function buildRunReport(result: RunResult, generatedAt: Date): PlanReport {
  const details = result.messages ?? [];
  const messages = details.map(toPlanMessage);
  const totals: Required<PlanReport['totals']> = {
    messages: 0, bytes: 0, new: 0, newBytes: 0, retry: 0, alreadyCopied: 0, wouldFail: 0, copied: 0, copiedBytes: 0, failed: 0, skippedByRule: 0,
  };
  const folders = new Map<string, PlanFolder>();
  const seenSources: Record<string, number> = {};
  const dateSources: Record<string, number> = {};
  for (const m of messages) {
    totals.messages++;
    totals.bytes += m.size;
    let f = folders.get(m.folder);
    if (!f) {
      // A folder a copy went to (now or before) exists; one only failed messages name may not.
      f = { folder: m.folder, exists: false, messages: 0, bytes: 0, new: 0, newBytes: 0, retry: 0, alreadyCopied: 0, wouldFail: 0, copied: 0, failed: 0, skippedByRule: 0 };
      folders.set(m.folder, f);
    }
    f.messages++;
    f.bytes += m.size;
    switch (m.status) {
      case 'copied':
        totals.copied++;
        totals.copiedBytes += m.size;
        f.copied!++;
        f.exists = true;
        seenSources[m.seenSource ?? 'none'] = (seenSources[m.seenSource ?? 'none'] ?? 0) + 1;
        dateSources[m.dateSource] = (dateSources[m.dateSource] ?? 0) + 1;
        break;
      case 'already-copied':
        totals.alreadyCopied++;
        f.alreadyCopied++;
        f.exists = true;
        break;
      case 'skipped-by-rule':
        totals.skippedByRule++;
        f.skippedByRule!++;
        break;
      default:
        totals.failed++;
        f.failed!++;
        break;
    }
  }
  // The engine's byte count is of the bodies as copied; LIST sizes above are the server's hint.
  totals.copiedBytes = result.copiedBytes;
  return {
    version: 1,
    generatedAt: generatedAt.toISOString(),
    source: result.source,
    destination: result.destination,
    run: { command: result.command, startedAt: result.startedAt, durationMs: result.durationMs, copiedBytes: result.copiedBytes },
    totals,
    folders: [...folders.values()].sort((a, b) => b.messages - a.messages || a.folder.localeCompare(b.folder)),
    seenSources,
    dateSources,
    estimate: null,
    messages,
  };
}

function toPlanMessage(d: MessageDetail): PlanMessage {
  const p = d.provenance;
  return {
    n: d.n,
    uidl: d.uidl,
    size: d.size,
    subject: d.subject,
    from: d.from,
    messageId: d.messageId,
    folder: d.folder ?? '',
    folderRule: p?.folderRule ?? null,
    flags: p?.flags ?? [],
    seenSource: p?.seenSource ?? null,
    internalDate: p?.internalDate ?? null,
    dateSource: p?.dateSource ?? 'unknown',
    status: d.outcome,
    reason: d.reason,
    serverResponse: d.serverResponse,
  };
}
