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
import type { PlanMessage, PlanReport } from './plan-types.js';
import { tallyMessages } from './plan-tally.js';

/** `name`: the account's, in a batch (`--report-dir`), so a report read alone says whose it is. */
export function buildRunReport(result: RunResult, generatedAt: Date, name?: string): PlanReport {
  const details = result.messages ?? [];
  const messages = details.map(toPlanMessage);
  // Folders exist when a copy went there (now or before); one only failures name may not.
  const { totals, folders, seenSources, dateSources } = tallyMessages(messages, { exists: () => false, run: true });
  // The engine's byte count is of the bodies as copied; LIST sizes above are the server's hint.
  totals.copiedBytes = result.copiedBytes;
  return {
    version: 1,
    ...(name === undefined ? {} : { name }),
    generatedAt: generatedAt.toISOString(),
    source: result.source,
    destination: result.destination,
    run: {
      command: result.command,
      startedAt: result.startedAt,
      durationMs: result.durationMs,
      copiedBytes: result.copiedBytes,
    },
    totals,
    folders,
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
