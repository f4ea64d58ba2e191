/**
 * The state journal: one SQLite file per source account recording, per POP3 message, how far
 * its copy to IMAP got. It carries popsync's central invariant, "a message is deleted from the
 * POP3 server only after the journal durably records its copy" (how: db.ts).
 *
 * This class is only a facade over the parts, each owning one job:
 *   db.ts        the file, its pragmas and durability, schema migration, binding; every write is a step
 *   messages.ts  message rows and their state transitions (states.ts is the whitelist)
 *   queries.ts   reading message rows on the open journal
 *   folders.ts   destination folders and their UIDVALIDITY
 *   lock-row.ts  the account's lock row (with lock.ts, the decision, and lock-file.ts, the kernel lock)
 *   runs.ts      run history
 *   readonly.ts  read-only views for status, plan and dry runs (its own connection, never writes)
 * The facade exists so the engine and the CLI keep one object to hand around and call as before
 * (`journal.confirm(...)`, `Journal.inspect(path)`): the parts share one connection and one
 * write guard, which only make sense together, and a caller should not have to know which part
 * owns a method to use it.
 *
 * Every method is synchronous: a state change is committed when the call returns.
 */
import { type JournalDb, type JournalOpenOptions, openJournalDb } from './db.js';
import { Folders } from './folders.js';
import { LockRows } from './lock-row.js';
import { Messages } from './messages.js';
import { MessageQueries } from './queries.js';
import { boundSource, inspect, lockHolderAt, measuredRate, peekRows } from './readonly.js';
import { Runs } from './runs.js';
import type { JournalBinding } from './types.js';

export { BUSY_TIMEOUT_MS, type JournalOpenOptions } from './db.js';
export type { LockOptions } from './lock-row.js';
export type { JournalSnapshot, MeasuredRate, MessageSummary } from './readonly.js';
export type { RunRecord } from './runs.js';

export class Journal {
  readonly path: string;
  readonly source: string;

  /** Read-only views: see readonly.ts. */
  static readonly peek = peekRows;
  static readonly measuredRate = measuredRate;
  static readonly boundSource = boundSource;
  static readonly lockHolderAt = lockHolderAt;
  static readonly inspect = inspect;

  static open(path: string, binding: JournalBinding, opts: JournalOpenOptions = {}): Journal {
    return openJournalDb(path, binding, opts, (db) => new Journal(db));
  }

  // Message rows (queries.ts, messages.ts).
  readonly get: MessageQueries['get'];
  readonly indexByUidl: MessageQueries['indexByUidl'];
  readonly rowsByUidl: MessageQueries['rowsByUidl'];
  readonly rowsInState: MessageQueries['rowsInState'];
  readonly counts: MessageQueries['counts'];
  readonly uidOwner: MessageQueries['uidOwner'];
  readonly uidOwners: MessageQueries['uidOwners'];
  readonly doneUidsIn: MessageQueries['doneUidsIn'];
  readonly copiesWithoutUid: MessageQueries['copiesWithoutUid'];
  readonly beginAppend: Messages['beginAppend'];
  readonly confirm: Messages['confirm'];
  readonly fail: Messages['fail'];
  readonly settleAppends: Messages['settleAppends'];
  readonly withdrawAppend: Messages['withdrawAppend'];
  readonly adopt: Messages['adopt'];
  readonly learnUids: Messages['learnUids'];
  readonly setListSizes: Messages['setListSizes'];
  readonly markVanished: Messages['markVanished'];
  readonly rekey: Messages['rekey'];
  readonly markCopyMissing: Messages['markCopyMissing'];
  readonly markDeleting: Messages['markDeleting'];
  readonly settleDeleting: Messages['settleDeleting'];
  // Folders (folders.ts).
  readonly folderUidValidity: Folders['folderUidValidity'];
  readonly recordFolder: Folders['recordFolder'];
  readonly endAdoption: Folders['endAdoption'];
  readonly forgetFolder: Folders['forgetFolder'];
  // The lock row (lock-row.ts).
  readonly tryLock: LockRows['tryLock'];
  readonly heartbeat: LockRows['heartbeat'];
  readonly releaseLock: LockRows['releaseLock'];
  readonly lockHolder: LockRows['lockHolder'];
  // Run history (runs.ts).
  readonly beginRun: Runs['beginRun'];
  readonly finishRun: Runs['finishRun'];
  readonly recentRuns: Runs['recentRuns'];
  readonly restoreBusyTimeout: () => void;
  readonly close: () => void;

  private constructor(db: JournalDb) {
    this.path = db.path;
    this.source = db.source;
    const queries = new MessageQueries(db);
    const folders = new Folders(db);
    const messages = new Messages(db, folders);
    const locks = new LockRows(db);
    const runs = new Runs(db);
    this.get = queries.get.bind(queries);
    this.indexByUidl = queries.indexByUidl.bind(queries);
    this.rowsByUidl = queries.rowsByUidl.bind(queries);
    this.rowsInState = queries.rowsInState.bind(queries);
    this.counts = queries.counts.bind(queries);
    this.uidOwner = queries.uidOwner.bind(queries);
    this.uidOwners = queries.uidOwners.bind(queries);
    this.doneUidsIn = queries.doneUidsIn.bind(queries);
    this.copiesWithoutUid = queries.copiesWithoutUid.bind(queries);
    this.beginAppend = messages.beginAppend.bind(messages);
    this.confirm = messages.confirm.bind(messages);
    this.fail = messages.fail.bind(messages);
    this.settleAppends = messages.settleAppends.bind(messages);
    this.withdrawAppend = messages.withdrawAppend.bind(messages);
    this.adopt = messages.adopt.bind(messages);
    this.learnUids = messages.learnUids.bind(messages);
    this.setListSizes = messages.setListSizes.bind(messages);
    this.markVanished = messages.markVanished.bind(messages);
    this.rekey = messages.rekey.bind(messages);
    this.markCopyMissing = messages.markCopyMissing.bind(messages);
    this.markDeleting = messages.markDeleting.bind(messages);
    this.settleDeleting = messages.settleDeleting.bind(messages);
    this.folderUidValidity = folders.folderUidValidity.bind(folders);
    this.recordFolder = folders.recordFolder.bind(folders);
    this.endAdoption = folders.endAdoption.bind(folders);
    this.forgetFolder = folders.forgetFolder.bind(folders);
    this.tryLock = locks.tryLock.bind(locks);
    this.heartbeat = locks.heartbeat.bind(locks);
    this.releaseLock = locks.releaseLock.bind(locks);
    this.lockHolder = locks.lockHolder.bind(locks);
    this.beginRun = runs.beginRun.bind(runs);
    this.finishRun = runs.finishRun.bind(runs);
    this.recentRuns = runs.recentRuns.bind(runs);
    this.restoreBusyTimeout = db.restoreBusyTimeout.bind(db);
    this.close = db.close.bind(db);
  }
}
