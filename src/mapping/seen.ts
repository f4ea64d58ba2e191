/**
 * The seen policy: an ordered chain the user writes, where the first step that decides wins
 * and the step's name is recorded with the copy (seenSource), so a report can say how many
 * messages were marked read by which step.
 *
 *   status-header  `Status:` present: R in it means seen, anything else (O, RO without R...)
 *                  unseen. Does not decide when there is no Status: header. While this step is
 *                  in the chain, `X-Status:` A adds \Answered and F adds \Flagged, whichever
 *                  step decides \Seen (mbox-backed POP servers keep both headers).
 *   older-than:N   decides "seen" when the arrival date is more than N ago; a newer message,
 *                  or one without a date, goes on to the next step.
 *   all / none     always decide: seen / unseen.
 *
 * When no step decides, the copy arrives unread and seenSource is null.
 */
import { firstHeader, type HeaderField } from './headers.js';

export type SeenStep =
  | { kind: 'status-header' }
  | { kind: 'older-than'; ms: number; label: string }
  | { kind: 'all' }
  | { kind: 'none' };

export interface SeenDecision {
  seen: boolean;
  source: string | null;
  /** \Answered / \Flagged from X-Status. */
  extraFlags: string[];
}

const NO_FLAGS: string[] = [];

export function stepName(step: SeenStep): string {
  return step.kind === 'older-than' ? `older-than:${step.label}` : step.kind;
}

export function decideSeen(
  steps: readonly SeenStep[],
  fields: HeaderField[],
  arrival: Date | null,
  now: Date,
): SeenDecision {
  // Shared while empty (it is never added to once returned): an array per message routed was garbage.
  let extraFlags: string[] = NO_FLAGS;
  // Indexed loops, here and below: a for-of or a callback is an object per message routed
  // while this runs unoptimised, as it does for most of a run.
  let statusHeader = false;
  for (let i = 0; i < steps.length; i++) if (steps[i]!.kind === 'status-header') statusHeader = true;
  if (statusHeader) {
    const x = firstHeader(fields, 'x-status');
    if (x !== undefined && (x.includes('A') || x.includes('F'))) {
      extraFlags = [];
      if (x.includes('A')) extraFlags.push('\\Answered');
      if (x.includes('F')) extraFlags.push('\\Flagged');
    }
  }
  for (let i = 0; i < steps.length; i++) {
    const step = steps[i]!;
    switch (step.kind) {
      case 'status-header': {
        const st = firstHeader(fields, 'status');
        if (st !== undefined) return { seen: st.includes('R'), source: stepName(step), extraFlags };
        break;
      }
      case 'older-than':
        if (arrival !== null && now.getTime() - arrival.getTime() > step.ms)
          return { seen: true, source: stepName(step), extraFlags };
        break;
      case 'all':
        return { seen: true, source: 'all', extraFlags };
      case 'none':
        return { seen: false, source: 'none', extraFlags };
    }
  }
  return { seen: false, source: null, extraFlags };
}
