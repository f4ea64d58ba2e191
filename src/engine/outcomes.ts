/**
 * APPEND outcomes journaled per batch. A MULTIAPPEND's tagged OK names fifty copies at once, and
 * confirming each in its own transaction cost 183 ms of 2.57 s main-thread CPU on 3,000 typical
 * messages. So the outcomes of one appendBatch are held as they are reported and written, in the
 * server's order, as one journal step when the batch ends (or fails: what was reported is still
 * written). What follows each outcome (counters, report, progress) runs only once it is
 * committed, so nothing is reported that the journal does not say.
 *
 * One step per batch, never per event-loop turn: the crash tests count a clean run's steps and
 * kill at each, so the count must not depend on how replies happened to arrive.
 *
 * A crash before the step leaves those rows 'appending', which reconciliation settles by content
 * as for any outcome not yet journaled. A change of the folder's UIDVALIDITY writes what is held
 * first (flushAll), since those outcomes were checked against the old value.
 */
import type { Journal } from '../journal/journal.js';
import type { AppendSettlement } from '../journal/types.js';

export class OutcomeGroup {
  private pending: Array<{ settlement: AppendSettlement; committed: () => void }> = [];
  /** UIDs of held copies, per folder and UIDVALIDITY: UID -> UIDL. */
  readonly held = new Map<string, Map<number, string>>();

  constructor(
    private readonly owner: OutcomeJournal,
    private readonly folder: string,
  ) {}

  /** Holds one outcome; `committed` runs once the step holding it committed. */
  add(settlement: AppendSettlement, committed: () => void): void {
    if (settlement.ok && settlement.destUid !== null) {
      const key = `${settlement.destUidValidity}/${this.folder}`;
      const uids = this.held.get(key) ?? new Map<number, string>();
      this.held.set(key, uids);
      uids.set(settlement.destUid, settlement.uidl);
    }
    this.pending.push({ settlement, committed });
  }

  /** Writes what is held as one step (none when nothing is); throws if the journal refused it. */
  flush(): void {
    const batch = this.pending;
    if (batch.length === 0) return;
    this.pending = [];
    this.held.clear();
    this.owner.write(batch.map((p) => p.settlement));
    for (const p of batch) p.committed();
  }

  /** Ends the group: it is written and no longer counted by ownerOf(). */
  close(): void {
    try {
      this.flush();
    } finally {
      this.owner.release(this);
    }
  }
}

/** The groups of one pass: several batches may be outstanding at once (copier.ts's window). */
export class OutcomeJournal {
  private readonly open = new Set<OutcomeGroup>();

  constructor(
    private readonly journal: Journal,
    private readonly account: string,
  ) {}

  group(folder: string): OutcomeGroup {
    const g = new OutcomeGroup(this, folder);
    this.open.add(g);
    return g;
  }

  /** The UIDL whose held (not yet journaled) copy has this UID in any open group, if any. */
  ownerOf(folder: string, uidValidity: bigint, uid: number): string | undefined {
    const key = `${uidValidity}/${folder}`;
    for (const g of this.open) {
      const uidl = g.held.get(key)?.get(uid);
      if (uidl !== undefined) return uidl;
    }
    return undefined;
  }

  /** Every open group written, oldest first. */
  flushAll(): void {
    for (const g of this.open) g.flush();
  }

  /** @internal for OutcomeGroup */
  write(settlements: AppendSettlement[]): void {
    this.journal.settleAppends(this.account, settlements);
  }

  /** @internal for OutcomeGroup */
  release(g: OutcomeGroup): void {
    this.open.delete(g);
  }
}
