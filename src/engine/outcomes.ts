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
 *
 * A UID the server hands out again is its fault, not the journal's. The journal refuses a step
 * giving a UID that already holds another message's copy (its unique index, and its checks), and
 * only then are the held UIDs looked up, in one read: the first one that already holds another
 * message's copy ends the batch with the caller's error (`reused`); the outcomes before it are
 * written, the rest stay 'appending'. A batch the journal takes costs no read at all: a read per
 * batch before each step (and before that, one per reply) was about 1% of a small-message copy's CPU.
 */
import type { Journal } from '../journal/journal.js';
import type { AppendSettlement } from '../journal/types.js';

/** A copy the server stored with a UID. */
type UidSettlement = Extract<AppendSettlement, { ok: true }> & { destUid: number };

/** The error ending a batch whose copy got a UID that already holds `owner`'s copy. */
export type ReusedUid = (settlement: UidSettlement, owner: string) => Error;

/**
 * What runs for each outcome once the step holding it committed, with the tag it was added
 * with (the copier's: the message's index in its APPEND). One function per group, not a
 * closure per copy.
 */
export type Committed<T> = (settlement: AppendSettlement, tag: T) => void;

export class OutcomeGroup<T = unknown> {
  /** The outcomes held, and beside each its tag: two arrays, not an object per copy. */
  private pending: AppendSettlement[] = [];
  private tags: T[] = [];
  /**
   * UIDs of held copies, per UIDVALIDITY (the group is one folder's): UID -> UIDL. Keyed by the
   * bigint itself, not a string made of it and the folder for every copy and every look.
   */
  readonly held = new Map<bigint, Map<number, string>>();

  constructor(
    private readonly owner: OutcomeJournal,
    readonly folder: string,
    private readonly reused: ReusedUid,
    private readonly committed: Committed<T>,
  ) {}

  /** Holds one outcome; the group's `committed` runs for it, with `tag`, once the step holding it committed. */
  add(settlement: AppendSettlement, tag: T): void {
    if (settlement.ok && settlement.destUid !== null) {
      let uids = this.held.get(settlement.destUidValidity);
      if (uids === undefined) {
        uids = new Map<number, string>();
        this.held.set(settlement.destUidValidity, uids);
      }
      uids.set(settlement.destUid, settlement.uidl);
    }
    this.pending.push(settlement);
    this.tags.push(tag);
  }

  /**
   * Writes what is held as one step (none when nothing is); throws if the journal refused it,
   * or, after writing the outcomes before it, with `reused` for a UID the journal gives another message.
   */
  flush(): void {
    const settlements = this.pending;
    const tags = this.tags;
    if (settlements.length === 0) return;
    this.pending = [];
    this.tags = [];
    this.held.clear();
    try {
      this.owner.write(settlements);
    } catch (refused) {
      // Refused whole, so the journal is as it was: is a UID another message's copy holds the reason?
      let taken: ReturnType<OutcomeJournal['firstTaken']>;
      try {
        taken = this.owner.firstTaken(this.folder, settlements);
      } catch {
        throw refused;
      }
      if (taken === null) throw refused;
      if (taken.index > 0) {
        this.owner.write(settlements.slice(0, taken.index));
        for (let i = 0; i < taken.index; i++) this.committed(settlements[i]!, tags[i]!);
      }
      throw this.reused(taken.settlement, taken.owner);
    }
    for (let i = 0; i < settlements.length; i++) this.committed(settlements[i]!, tags[i]!);
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

/** What the journal reads of a group, whatever its tags. */
interface OpenGroup {
  readonly folder: string;
  readonly held: ReadonlyMap<bigint, ReadonlyMap<number, string>>;
  flush(): void;
}

/** The groups of one pass: several batches may be outstanding at once (copier.ts's window). */
export class OutcomeJournal {
  /**
   * In the order opened. An array, not a Set: ownerOf() runs for every copy, and iterating a
   * Set is an iterator and a result object per step until it is optimised.
   */
  private readonly open: OpenGroup[] = [];

  constructor(
    private readonly journal: Journal,
    private readonly account: string,
  ) {}

  group<T>(folder: string, reused: ReusedUid, committed: Committed<T>): OutcomeGroup<T> {
    const g = new OutcomeGroup(this, folder, reused, committed);
    this.open.push(g);
    return g;
  }

  /** The UIDL whose held (not yet journaled) copy has this UID in any open group, if any. */
  ownerOf(folder: string, uidValidity: bigint, uid: number): string | undefined {
    for (let i = 0; i < this.open.length; i++) {
      const g = this.open[i]!;
      if (g.folder !== folder) continue;
      const uidl = g.held.get(uidValidity)?.get(uid);
      if (uidl !== undefined) return uidl;
    }
    return undefined;
  }

  /** Every open group written, oldest first. */
  flushAll(): void {
    for (const g of this.open) g.flush();
  }

  /**
   * @internal for OutcomeGroup: the first settlement (in order) whose UID the journal gives to
   * another message, and that message; one read per UIDVALIDITY among them.
   */
  firstTaken(
    folder: string,
    settlements: readonly AppendSettlement[],
  ): { index: number; settlement: UidSettlement; owner: string } | null {
    const uids = new Map<bigint, number[]>();
    for (let i = 0; i < settlements.length; i++) {
      const s = settlements[i]!;
      if (!s.ok || s.destUid === null) continue;
      const list = uids.get(s.destUidValidity);
      if (list === undefined) uids.set(s.destUidValidity, [s.destUid]);
      else list.push(s.destUid);
    }
    if (uids.size === 0) return null;
    const owners = new Map<bigint, Map<number, string>>();
    for (const [v, list] of uids) owners.set(v, this.journal.uidOwners(this.account, folder, v, list));
    for (let index = 0; index < settlements.length; index++) {
      const s = settlements[index]!;
      if (!s.ok || s.destUid === null) continue;
      const owner = owners.get(s.destUidValidity)?.get(s.destUid);
      if (owner !== undefined && owner !== s.uidl) return { index, settlement: { ...s, destUid: s.destUid }, owner };
    }
    return null;
  }

  /** @internal for OutcomeGroup */
  write(settlements: AppendSettlement[]): void {
    this.journal.settleAppends(this.account, settlements);
  }

  /** @internal for OutcomeGroup */
  release(g: OpenGroup): void {
    const i = this.open.indexOf(g);
    if (i >= 0) this.open.splice(i, 1);
  }
}
