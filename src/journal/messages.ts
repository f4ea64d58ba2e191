/**
 * Message rows and their state transitions: the intent before an APPEND, its outcome, copies
 * adopted or whose UID was learned later, copies proven missing, the intent before a DELE and
 * its settlement. Every transition goes through states.ts (an illegal one is a bug and changes
 * nothing), and every write is one step of db.ts, fsynced when it is an intent. A copy's intents
 * and outcomes, a hundred rows a batch, are written a chunk of rows per statement, by statements
 * that take only rows in a state the checks allow; anything else is judged by the row-by-row
 * checks, as if the batched write had never been tried (stepEitherWay).
 */
import type { Statement } from 'better-sqlite3';
import { PopsyncError } from '../errors.js';
import type { Durability, JournalDb } from './db.js';
import type { Folders } from './folders.js';
import { checkCount, checkUidValidity, MAX_ERROR_CHARS, type MessageRecord } from './rows.js';
import { OWNS_COPY } from './schema.js';
import { assertTransition, statesBefore } from './states.js';
import type { Adopted, AppendSettlement, BeginAppend, RowState } from './types.js';

/** A withdrawn retry's error, when it had none: an earlier copy was interrupted and not found since. */
const WITHDRAWN_RETRY =
  'an earlier copy was interrupted and not found in the destination; it is copied again by the next run';

/** Rows read by one statement of rowsOf(); SQLite allows far more parameters, this bounds the statements kept. */
const ROWS_PER_LOOKUP = 64;

/** A row's state and folder as a step's checks read them. */
type RowLook = Pick<MessageRecord, 'uidl' | 'state' | 'folder'>;

/**
 * Rows per multi-row write. A batch is written in chunks whose sizes are powers of two up to
 * this (100 rows: 64 + 32 + 4), so a run prepares at most 7 statements of each kind whatever
 * its batch sizes: preparing a 64-row upsert takes 0.35 ms, a 100-row one 0.9 ms.
 */
const ROWS_PER_WRITE = 64;

/**
 * beginAppend's upsert: the columns, one row's placeholders (BEGIN_PARAMS of them, and the
 * values every row of a statement shares, bound once by name: BeginShared), the retry.
 */
const BEGIN_INSERT = `
  INSERT INTO messages (account, uidl, state, size, sha256, message_id, folder, dest_uidvalidity, dest_uidnext,
                        dest_uid, attempts, last_error, first_seen_at, updated_at, copied_at,
                        flags, internal_date, date_source, seen_source, folder_rule, header_hash, list_size,
                        fingerprint)`;
const BEGIN_ROW = `(@account, ?, 'appending', ?, ?, ?, @folder, @validity, @uidNext, NULL, 1, NULL, @now, @now, NULL,
  ?, ?, ?, ?, ?, ?, ?, ?)`;
const BEGIN_PARAMS = 12;

/**
 * What the rows of one intent statement share, bound once instead of once a row: binding was
 * 40% of beginAppend's CPU (a type check per value, and a UTF-8 copy per string), and the copier's
 * batch for a folder is one folder at one UIDVALIDITY and UIDNEXT. Raw statements alone, 10,000
 * small messages: 18 values bound a row 107 ms, 15 (account, clock) 101, 12 (and these three) 97.
 */
interface BeginShared {
  account: string;
  now: string;
  folder: string;
  validity: string;
  uidNext: number;
}
const BEGIN_CONFLICT = `
  ON CONFLICT (account, uidl) DO UPDATE SET
    state = 'appending', size = excluded.size, sha256 = excluded.sha256, message_id = excluded.message_id,
    folder = excluded.folder, dest_uidvalidity = excluded.dest_uidvalidity, dest_uidnext = excluded.dest_uidnext,
    dest_uid = NULL, attempts = attempts + 1, updated_at = excluded.updated_at,
    flags = excluded.flags, internal_date = excluded.internal_date, date_source = excluded.date_source,
    seen_source = excluded.seen_source, folder_rule = excluded.folder_rule,
    header_hash = excluded.header_hash, list_size = COALESCE(excluded.list_size, list_size),
    fingerprint = excluded.fingerprint`;

/**
 * Writes one intent's own BEGIN_PARAMS values into `out` from `at`, in BEGIN_ROW's order: positional,
 * straight from the item (an object of named ones built, spread and bound per row was a measurable
 * part of a batch's cost); what the rows share is BeginShared's, bound once per statement.
 */
function putBegin(out: unknown[], at: number, it: BeginAppend): void {
  const p = it.provenance;
  out[at] = it.uidl;
  out[at + 1] = it.size;
  out[at + 2] = it.sha256;
  out[at + 3] = it.messageId;
  out[at + 4] = p ? flagsJson(p.flags) : null;
  out[at + 5] = p?.internalDate ?? null;
  out[at + 6] = p?.dateSource ?? null;
  out[at + 7] = p?.seenSource ?? null;
  out[at + 8] = p?.folderRule ?? null;
  out[at + 9] = it.headerHash ?? null;
  out[at + 10] = it.listSize ?? null;
  out[at + 11] = it.fingerprint ?? null;
}

/** Flags as the journal stores them; most copies carry none, and a string per row was garbage. */
function flagsJson(flags: readonly string[]): string {
  return flags.length === 0 ? '[]' : JSON.stringify(flags);
}

/**
 * checkCount for one item's field, its message built only when it fails: two template strings
 * per row, built for an error that never comes, were garbage on every batch.
 */
function checkItemCount(n: number, min: number, step: string, uidl: string, field: string): void {
  if (!Number.isSafeInteger(n) || n < min) checkCount(n, `${step} ${uidl}: ${field}`, min);
}

/**
 * checkUidValidity over a batch's items in order, the last value's text reused: a batch is one
 * folder's, so one string serves all its rows instead of one per row.
 */
class ValidityTexts {
  private last: bigint | undefined;
  private text = '';

  of(v: bigint, step: string, uidl: string): string {
    if (v !== this.last || typeof v !== 'bigint') {
      this.text = checkUidValidity(v, `${step} ${uidl}`);
      this.last = v;
    }
    return this.text;
  }
}

/** The chunk sizes `n` rows are written in: powers of two up to ROWS_PER_WRITE, largest first. */
function chunkSizes(n: number): number[] {
  const out: number[] = [];
  let left = n;
  for (let size = ROWS_PER_WRITE; left > 0; size >>= 1) {
    while (left >= size) {
      out.push(size);
      left -= size;
    }
  }
  return out;
}

/** A copy's outcome (the server stored it). */
type Copied = Extract<AppendSettlement, { ok: true }>;

/**
 * The folder and UIDVALIDITY pairs already checked against the folders table within one step,
 * which does not write that table. A batch is one folder's: the pair of the row before is
 * recognised without building a key per row.
 */
class CheckedPairs {
  private lastFolder: string | undefined;
  private lastValue: string | undefined;
  private readonly seen = new Set<string>();

  /** Whether the pair is new in this step; from now on it counts as checked. */
  first(folder: string, v: string): boolean {
    if (folder === this.lastFolder && v === this.lastValue) return false;
    this.lastFolder = folder;
    this.lastValue = v;
    const pair = `${v}/${folder}`;
    if (this.seen.has(pair)) return false;
    this.seen.add(pair);
    return true;
  }
}

/** A batched write did not do what the row-by-row checks require: those checks decide instead. */
class Anomaly extends Error {}

/** The step's name in an error, as the single-row steps were named. */
function stepName(o: AppendSettlement): string {
  return o.ok ? 'recording a copied message' : 'recording a failed message';
}

export class Messages {
  private readonly db: JournalDb;
  private readonly folders: Folders;
  private readonly sql;
  private readonly lookups = new Map<number, Statement<string[], RowLook>>();
  private readonly writes = new Map<string, Statement<unknown[]>>();

  constructor(db: JournalDb, folders: Folders) {
    this.db = db;
    this.folders = folders;
    const c = db.conn;
    this.sql = {
      get: c.prepare<[string, string], MessageRecord>(`SELECT * FROM messages WHERE account = ? AND uidl = ?`),
      begin: c.prepare<unknown[]>(`${BEGIN_INSERT} VALUES ${BEGIN_ROW} ${BEGIN_CONFLICT}`),
      adopt: c.prepare(`
        INSERT INTO messages (account, uidl, state, size, sha256, message_id, folder, dest_uidvalidity, dest_uidnext,
                              dest_uid, attempts, last_error, first_seen_at, updated_at, copied_at,
                              flags, internal_date, date_source, seen_source, folder_rule, header_hash, list_size,
                              fingerprint)
        VALUES (@account, @uidl, 'done', @size, @sha256, @messageId, @folder, @destUidValidity, @destUid,
                @destUid, 0, NULL, @now, @now, @now, @flags, @internalDate, @dateSource, @seenSource, @folderRule,
                @headerHash, @listSize, @fingerprint)
        ON CONFLICT (account, uidl) DO UPDATE SET
          state = 'done', size = excluded.size, sha256 = excluded.sha256, message_id = excluded.message_id,
          folder = excluded.folder, dest_uidvalidity = excluded.dest_uidvalidity, dest_uidnext = excluded.dest_uidnext,
          dest_uid = excluded.dest_uid, copied_at = excluded.copied_at, updated_at = excluded.updated_at,
          flags = excluded.flags, internal_date = excluded.internal_date, date_source = excluded.date_source,
          seen_source = excluded.seen_source, folder_rule = excluded.folder_rule,
          header_hash = excluded.header_hash, list_size = COALESCE(excluded.list_size, list_size),
          fingerprint = excluded.fingerprint`),
      learnUid: c.prepare(`
        UPDATE messages SET dest_uid = @destUid, updated_at = @now
        WHERE account = @account AND uidl = @uidl AND dest_uid IS NULL AND ${OWNS_COPY}`),
      confirm: c.prepare<[string, number | null, string, string, string, string]>(`
        UPDATE messages SET state = 'done', dest_uidvalidity = ?, dest_uid = ?, copied_at = ?, updated_at = ?
        WHERE account = ? AND uidl = ?`),
      fail: c.prepare<[string, string, string, string]>(
        `UPDATE messages SET state = 'failed', last_error = ?, updated_at = ? WHERE account = ? AND uidl = ?`,
      ),
      // A refusal settles an intent: 'appending' is the one state failRow lets become 'failed' here.
      failAppending: c.prepare<[string, string, string, string]>(
        `UPDATE messages SET state = 'failed', last_error = ?, updated_at = ?
         WHERE account = ? AND uidl = ? AND state = 'appending'`,
      ),
      copyMissing: c.prepare(
        `UPDATE messages SET state = 'failed', last_error = @error, dest_uid = NULL, copied_at = NULL, updated_at = @now
         WHERE account = @account AND uidl = @uidl`,
      ),
      uidOwner: c.prepare<[string, string, string, number], { uidl: string }>(
        `SELECT uidl FROM messages WHERE account = ? AND folder = ? AND dest_uidvalidity = ? AND dest_uid = ?
         AND ${OWNS_COPY}`,
      ),
      setListSize: c.prepare(
        `UPDATE messages SET list_size = @listSize, vanished_at = NULL WHERE account = @account AND uidl = @uidl`,
      ),
      setVanished: c.prepare(
        `UPDATE messages SET vanished_at = @now WHERE account = @account AND uidl = @uidl AND vanished_at IS NULL`,
      ),
      rekey: c.prepare(`UPDATE messages SET uidl = @to, updated_at = @now WHERE account = @account AND uidl = @from`),
      withdrawNew: c.prepare<[string, string]>(`DELETE FROM messages WHERE account = ? AND uidl = ?`),
      withdrawRetry: c.prepare<[string, string, string, string]>(
        `UPDATE messages SET state = 'failed', attempts = attempts - 1, last_error = COALESCE(last_error, ?),
           updated_at = ? WHERE account = ? AND uidl = ?`,
      ),
    };
  }

  /** The UID must not already be some row's copy: two rows on one copy lose a message. */
  private claimable(account: string, folder: string, uidValidity: string, uid: number, uidl: string): void {
    const owner = this.sql.uidOwner.get(account, folder, uidValidity, uid);
    if (owner !== undefined && owner.uidl !== uidl) {
      throw new PopsyncError(
        'internal',
        `UID ${uid} in ${folder} already belongs to message ${owner.uidl}; it cannot also be the copy of ${uidl}`,
        {
          account,
          uidl,
          folder,
          hint: 'this is a bug in popsync; the journal was left unchanged',
        },
      );
    }
  }

  /**
   * Records the intent to APPEND every item, in one transaction (one fsync for the batch, as
   * isync does before copying). New rows start at attempts 1; a retried row counts up. An empty
   * batch writes nothing and is not a step.
   */
  beginAppend(account: string, items: readonly BeginAppend[]): void {
    if (items.length === 0) return;
    const seen = new Set<string>();
    const texts = new ValidityTexts();
    const values = items.map((it) => {
      if (seen.has(it.uidl))
        throw new PopsyncError('internal', `beginAppend: message ${it.uidl} appears twice in one batch`, {
          account,
          uidl: it.uidl,
        });
      seen.add(it.uidl);
      checkItemCount(it.size, 0, 'beginAppend', it.uidl, 'size');
      checkItemCount(it.destUidNext, 1, 'beginAppend', it.uidl, 'destUidNext');
      return texts.of(it.destUidValidity, 'beginAppend', it.uidl);
    });
    this.stepEitherWay(
      'recording messages about to be copied',
      'intent',
      () => this.beginBatched(account, items, values, this.db.nowIso()),
      () => this.beginChecked(account, items, values, this.db.nowIso(), seen),
    );
  }

  /**
   * The intents as multi-row upserts whose retry clause only takes a row in a state that may
   * go to 'appending': one statement per chunk instead of a lookup and an upsert per row. A row
   * it did not write means some check fails, and beginChecked, on the journal as it was, says which.
   */
  private beginBatched(account: string, items: readonly BeginAppend[], values: readonly string[], now: string): void {
    const sameChecked = new CheckedPairs();
    for (let i = 0; i < items.length; i++)
      this.sameUidValidityOnce(account, items[i]!.folder, values[i]!, items[i]!.uidl, sameChecked);
    // In order, each run of items sharing what BeginShared binds once (one run for a folder's batch).
    for (let start = 0; start < items.length; ) {
      const first = items[start]!;
      let end = start + 1;
      while (
        end < items.length &&
        items[end]!.folder === first.folder &&
        values[end] === values[start] &&
        items[end]!.destUidNext === first.destUidNext
      )
        end++;
      const shared: BeginShared = {
        account,
        now,
        folder: first.folder,
        validity: values[start]!,
        uidNext: first.destUidNext,
      };
      let at = start;
      for (const n of chunkSizes(end - start)) {
        const params = new Array<unknown>(n * BEGIN_PARAMS);
        for (let k = 0; k < n; k++) putBegin(params, k * BEGIN_PARAMS, items[at + k]!);
        if (this.beginMany(n).run(params, shared).changes !== n) throw new Anomaly();
        at += n;
      }
      start = end;
    }
  }

  /** Each intent checked and written on its own, in order: the rules beginBatched must agree with. */
  private beginChecked(
    account: string,
    items: readonly BeginAppend[],
    values: readonly string[],
    now: string,
    seen: Set<string>,
  ): void {
    // No row of the batch is written before all are read: the uidls are distinct, so each
    // row's state is the one it had before the step, as a lookup per row would see it.
    const rows = this.rowsOf(account, [...seen]);
    // The folders table is not written in this step: one look per folder and UIDVALIDITY.
    const sameChecked = new CheckedPairs();
    const params = new Array<unknown>(BEGIN_PARAMS);
    for (let i = 0; i < items.length; i++) {
      const it = items[i]!;
      const v = values[i]!;
      assertTransition(rows.get(it.uidl)?.state ?? null, 'appending', { account, uidl: it.uidl });
      this.sameUidValidityOnce(account, it.folder, v, it.uidl, sameChecked);
      putBegin(params, 0, it);
      const shared: BeginShared = { account, now, folder: it.folder, validity: v, uidNext: it.destUidNext };
      this.sql.begin.run(params, shared);
    }
  }

  /**
   * One step written by `batched`, or, when that finds anything the row-by-row checks must judge
   * (a check's PopsyncError, a row it did not write), rolled back whole and written again by
   * `checked`, which then writes or refuses exactly as it would alone: on the journal as it was,
   * with its own errors and messages. The crash hook counts only the step that commits. Not a
   * savepoint inside the step: its journal of the pages changed spilled to a temporary file each
   * batch (10,000 small messages: 3,978 more pwrite and 184 more openat calls than main).
   */
  private stepEitherWay(doing: string, durability: Durability, batched: () => void, checked: () => void): void {
    let bailed = false;
    try {
      this.db.step(
        doing,
        () => {
          try {
            batched();
          } catch (e) {
            bailed = e instanceof Anomaly || e instanceof PopsyncError;
            throw e;
          }
        },
        durability,
      );
    } catch (e) {
      if (!bailed) throw e;
      this.db.step(doing, checked, durability);
    }
  }

  /** The `n`-row upsert of beginBatched; a retry takes only a row in a state that may become 'appending'. */
  private beginMany(n: number): Statement<unknown[]> {
    return this.many(`begin ${n}`, () => {
      const from = statesBefore('appending')
        .map((st) => `'${st}'`)
        .join(', ');
      const rows = Array(n).fill(BEGIN_ROW).join(', ');
      // OR IGNORE: a statement that may stop half-way on a constraint needs SQLite's journal of the
      // pages it changed (spilled to a temporary file); one that skips such a row cannot stop, and
      // the skipped row is caught by the count.
      const insert = BEGIN_INSERT.replace('INSERT', 'INSERT OR IGNORE');
      return `${insert} VALUES ${rows} ${BEGIN_CONFLICT} WHERE state IN (${from})`;
    });
  }

  /** A multi-row statement, prepared once per kind and size (chunkSizes bounds the sizes). */
  private many<R = unknown>(key: string, sql: () => string): Statement<unknown[], R> {
    let stmt = this.writes.get(key);
    if (stmt === undefined) {
      stmt = this.db.conn.prepare<unknown[]>(sql());
      this.writes.set(key, stmt);
    }
    return stmt as Statement<unknown[], R>;
  }

  /**
   * The state and folder of those of `uidls` that have a row, read a chunk at a time: one
   * lookup per row cost 4 µs, one per chunk about 1.4 µs a row. The uidls are bound like any
   * parameter, so a row is found exactly when the lookup of its own uidl would find it.
   */
  private rowsOf(account: string, uidls: readonly string[]): Map<string, RowLook> {
    const out = new Map<string, RowLook>();
    for (let at = 0; at < uidls.length; at += ROWS_PER_LOOKUP) {
      const chunk = uidls.slice(at, at + ROWS_PER_LOOKUP);
      for (const r of this.lookup(chunk.length).all(account, ...chunk)) out.set(r.uidl, r);
    }
    return out;
  }

  /** The statement reading `n` rows by uidl, prepared once per n (at most ROWS_PER_LOOKUP of them). */
  private lookup(n: number): Statement<string[], RowLook> {
    let stmt = this.lookups.get(n);
    if (stmt === undefined) {
      stmt = this.db.conn.prepare<string[], RowLook>(
        `SELECT uidl, state, folder FROM messages WHERE account = ? AND uidl IN (${Array(n).fill('?').join(', ')})`,
      );
      this.lookups.set(n, stmt);
    }
    return stmt;
  }

  /** Folders.sameUidValidity, once per folder and UIDVALIDITY within one step. */
  private sameUidValidityOnce(account: string, folder: string, v: string, uidl: string, checked: CheckedPairs): void {
    if (checked.first(folder, v)) this.folders.sameUidValidity(account, folder, v, uidl);
  }

  /**
   * The copy exists in the destination. `destUid` is null when the server gave no UID and none
   * was searched for. A UID already owned by another done row is refused: two rows pointing at
   * one copy would mean one message was never copied.
   */
  confirm(account: string, uidl: string, to: { destUidValidity: bigint; destUid: number | null }): void {
    this.settleAppends(account, [{ uidl, ok: true, ...to }]);
  }

  /** The destination refused this message. The error text is kept (also across a later retry). */
  fail(account: string, uidl: string, error: string): void {
    this.settleAppends(account, [{ uidl, ok: false, error }]);
  }

  /**
   * The outcomes of APPENDs, in the order the server gave them, as one step: a MULTIAPPEND's
   * fifty replies cost one transaction instead of fifty. Each row is checked as confirm() and
   * fail() describe, in order and against the rows before it in the same list (a UID handed out
   * twice within the list is refused like one owned by an older row); any refusal leaves the
   * journal unchanged for the whole list, whose rows stay 'appending' for reconciliation.
   */
  settleAppends(account: string, outcomes: readonly AppendSettlement[]): void {
    if (outcomes.length === 0) return;
    // Each copy's UIDVALIDITY as the journal stores it, by index ('' for a refusal).
    const texts = new ValidityTexts();
    const values = outcomes.map((o) => {
      if (!o.ok) return '';
      const v = texts.of(o.destUidValidity, 'confirm', o.uidl);
      if (o.destUid !== null) checkItemCount(o.destUid, 1, 'confirm', o.uidl, 'destUid');
      return v;
    });
    this.stepEitherWay(
      outcomes.length === 1 ? stepName(outcomes[0]!) : 'recording copied and refused messages',
      'outcome',
      () => this.settleBatched(account, outcomes, values, this.db.nowIso()),
      () => this.settleChecked(account, outcomes, values, this.db.nowIso()),
    );
  }

  /**
   * The copies as multi-row updates of rows still 'appending', and the refusals one by one (they
   * are rare). No per-row lookup of the UID's owner: messages_done_uid, the unique index over
   * exactly the rows uidOwner reads (states included), keeps a UID that is taken, by an older row
   * or one of this list, from being written. Anything not as the checks require (a uidl listed
   * twice, a row not 'appending', no folder, another UIDVALIDITY, a UID taken) leaves it to
   * settleChecked. With 10,000 small messages, 6 alternating in-process runs against main:
   * settleAppends 148 -> 97 ms CPU, beginAppend 122 -> 112, the journal's whole 267 -> 211.
   */
  private settleBatched(
    account: string,
    outcomes: readonly AppendSettlement[],
    values: readonly string[],
    now: string,
  ): void {
    // The copies, by index into outcomes.
    const copies: number[] = [];
    const uidls = new Set<string>();
    for (let i = 0; i < outcomes.length; i++) {
      const o = outcomes[i]!;
      if (uidls.has(o.uidl)) throw new Anomaly();
      uidls.add(o.uidl);
      if (o.ok) copies.push(i);
      else if (this.sql.failAppending.run(o.error.slice(0, MAX_ERROR_CHARS), now, account, o.uidl).changes !== 1)
        throw new Anomaly();
    }
    const shared = { account, now };
    let at = 0;
    for (const n of chunkSizes(copies.length)) {
      const params = new Array<unknown>(n * 3);
      for (let k = 0; k < n; k++) {
        const i = copies[at + k]!;
        const o = outcomes[i] as Copied;
        params[3 * k] = o.uidl;
        params[3 * k + 1] = values[i];
        params[3 * k + 2] = o.destUid;
      }
      if (this.confirmMany(n).run(params, shared).changes !== n) throw new Anomaly();
      at += n;
    }
  }

  /**
   * The `n`-row update of settleBatched: only rows confirmRow would confirm, still 'appending',
   * with a folder, whose folder's recorded UIDVALIDITY (if any) is the copy's. OR IGNORE as in
   * beginMany: a taken UID skips its row instead of stopping the statement. The folder checks are
   * in the statement, not read back per row (RETURNING each row's folder and UIDVALIDITY for
   * sameUidValidity): that returned an array and three strings per copy, and SQLite's RETURNING
   * buffers its rows (10,000 small messages, raw statements alone: 106 -> 99 ms). The UIDVALIDITY
   * is bound per row, not once by name like the clock: with a subquery that did not depend on the
   * VALUES rows, SQLite's planner made the account's rows the outer loop, reading all of them per
   * statement (settling 10,000 messages took 1 s instead of 50 ms; the differential test checks
   * every batched statement's plan).
   */
  private confirmMany(n: number): Statement<unknown[]> {
    return this.many(
      `confirm ${n}`,
      () => `
        UPDATE OR IGNORE messages SET state = 'done', dest_uidvalidity = o.column2, dest_uid = o.column3,
          copied_at = @now, updated_at = @now
        FROM (VALUES ${Array(n).fill('(?, ?, ?)').join(', ')}) AS o
        WHERE messages.account = @account AND messages.uidl = o.column1 AND messages.state = 'appending'
          AND messages.folder IS NOT NULL
          AND NOT EXISTS (SELECT 1 FROM folders AS f
                          WHERE f.account = messages.account AND f.folder = messages.folder
                            AND f.uidvalidity <> o.column2)`,
    );
  }

  /** Each outcome checked and written on its own, in order: the rules settleBatched must agree with. */
  private settleChecked(
    account: string,
    outcomes: readonly AppendSettlement[],
    values: readonly string[],
    now: string,
  ): void {
    // Read once for the list; each row written below updates its entry, so a uidl listed
    // twice meets the state its first outcome left, as a lookup per row would.
    const rows = this.rowsOf(account, [...new Set(outcomes.map((o) => o.uidl))]);
    // Folder and UIDVALIDITY pairs already checked in this step: the record cannot change within it.
    const sameChecked = new CheckedPairs();
    for (let i = 0; i < outcomes.length; i++) {
      const o = outcomes[i]!;
      if (o.ok) this.confirmRow(account, o.uidl, values[i]!, o.destUid, now, rows, sameChecked);
      else this.failRow(account, o.uidl, o.error, now, rows);
    }
  }

  private confirmRow(
    account: string,
    uidl: string,
    destUidValidity: string,
    destUid: number | null,
    now: string,
    rows: Map<string, RowLook>,
    sameChecked: CheckedPairs,
  ): void {
    const row = rows.get(uidl);
    assertTransition(row?.state ?? null, 'done', { account, uidl });
    // An APPEND's outcome settles its intent; the other ways into 'done' are adopt()'s.
    if (row?.state !== 'appending') {
      throw new PopsyncError(
        'internal',
        `illegal journal transition ${row?.state ?? '(no row)'} -> done (confirm) for message ${uidl}`,
        {
          account,
          uidl,
          hint: 'this is a bug in popsync; the journal was left unchanged',
        },
      );
    }
    const folder = row.folder;
    if (folder === null)
      throw new PopsyncError('internal', `confirm: message ${uidl} has no destination folder`, { account, uidl });
    this.sameUidValidityOnce(account, folder, destUidValidity, uidl, sameChecked);
    if (destUid !== null) {
      // Inside the step, so a row confirmed earlier in the same list counts as an owner too.
      const owner = this.sql.uidOwner.get(account, folder, destUidValidity, destUid);
      if (owner !== undefined) {
        throw new PopsyncError(
          'internal',
          `UID ${destUid} in ${folder} already belongs to message ${owner.uidl}; ` +
            `it cannot also be the copy of ${uidl}`,
          {
            account,
            uidl,
            folder,
            hint: 'this is a bug in popsync; the journal was left unchanged',
          },
        );
      }
    }
    this.sql.confirm.run(destUidValidity, destUid, now, now, account, uidl);
    rows.set(uidl, { uidl, state: 'done', folder });
  }

  private failRow(account: string, uidl: string, error: string, now: string, rows: Map<string, RowLook>): void {
    const row = rows.get(uidl);
    const from = row?.state ?? null;
    // done -> failed is legal only with the proof markCopyMissing takes, never for a refusal.
    if (from === 'done') {
      throw new PopsyncError(
        'internal',
        `illegal journal transition done -> failed for message ${uidl}: ` +
          'a confirmed copy fails only when proven missing',
        {
          account,
          uidl,
          hint: 'this is a bug in popsync; the journal was left unchanged',
        },
      );
    }
    assertTransition(from, 'failed', { account, uidl });
    this.sql.fail.run(error.slice(0, MAX_ERROR_CHARS), now, account, uidl);
    rows.set(uidl, { uidl, state: 'failed', folder: row?.folder ?? null });
  }

  /**
   * Takes back intents whose APPEND was never handed to the connection (engine/copier.ts: a batch
   * prepared while the window was full, when the run stopped before writing it). No byte of that
   * APPEND left popsync, so the destination holds no copy of it and there is nothing for the next
   * run to look for: each row goes back to what it was before the intent, as far as the row tells.
   * A row the intent created (its first attempt, no error before) goes, and the message is new
   * again. A retried row was 'failed' or an interrupted copy reconciliation found missing; it goes
   * to 'failed' (keeping its error), which means the same: no copy, copied again by the next run.
   * Only for rows still 'appending' (anything else is a bug, and nothing changes). Not an intent:
   * a crash before this commits leaves the rows 'appending', which reconciliation settles.
   */
  withdrawAppend(account: string, uidls: readonly string[]): void {
    if (uidls.length === 0) return;
    this.db.step('withdrawing messages whose copy was never sent', () => {
      const now = this.db.nowIso();
      for (const uidl of new Set(uidls)) {
        const row = this.sql.get.get(account, uidl);
        const created = row !== undefined && row.attempts === 1 && row.last_error === null;
        assertTransition(row?.state ?? null, created ? null : 'failed', { account, uidl });
        // appending -> failed is also a refusal's edge; it withdraws only an intent.
        if (row?.state !== 'appending')
          throw new PopsyncError('internal', `withdrawAppend: message ${uidl} is not 'appending'`, { account, uidl });
        if (created) this.sql.withdrawNew.run(account, uidl);
        else this.sql.withdrawRetry.run(WITHDRAWN_RETRY, now, account, uidl);
      }
    });
  }

  /**
   * Copies found in the destination before any APPEND of them (adoption): rows with no row,
   * 'failed' or 'appending' become 'done' with the UID found, in one step. The UID must be
   * free, like confirm's.
   */
  adopt(account: string, items: readonly Adopted[]): void {
    if (items.length === 0) return;
    this.db.step('recording copies found in the destination', () => {
      const now = this.db.nowIso();
      for (const it of items) {
        checkCount(it.destUid, `adopt ${it.uidl}: destUid`, 1);
        const v = checkUidValidity(it.destUidValidity, `adopt ${it.uidl}`);
        assertTransition(this.sql.get.get(account, it.uidl)?.state ?? null, 'done', { account, uidl: it.uidl });
        this.folders.sameUidValidity(account, it.folder, v, it.uidl);
        this.claimable(account, it.folder, v, it.destUid, it.uidl);
        this.sql.adopt.run({
          account,
          uidl: it.uidl,
          size: it.size,
          sha256: it.sha256,
          messageId: it.messageId,
          folder: it.folder,
          destUidValidity: v,
          destUid: it.destUid,
          flags: it.provenance ? JSON.stringify(it.provenance.flags) : null,
          internalDate: it.provenance?.internalDate ?? null,
          dateSource: it.provenance?.dateSource ?? null,
          seenSource: it.provenance?.seenSource ?? null,
          folderRule: it.provenance?.folderRule ?? null,
          headerHash: it.headerHash ?? null,
          listSize: it.listSize ?? null,
          fingerprint: it.fingerprint ?? null,
          now,
        });
      }
    });
  }

  /**
   * The UIDs of copies the server stored without saying where (no UIDPLUS), once found by
   * content: each row with a copy but no UID gets the one given. One step for all.
   */
  learnUids(account: string, found: ReadonlyArray<{ uidl: string; destUid: number }>): void {
    if (found.length === 0) return;
    this.db.step('recording the UIDs of copies', () => {
      const now = this.db.nowIso();
      for (const f of found) {
        checkCount(f.destUid, `learnUids ${f.uidl}: destUid`, 1);
        const row = this.sql.get.get(account, f.uidl);
        if (
          row === undefined ||
          row.folder === null ||
          row.dest_uidvalidity === null ||
          row.dest_uid !== null ||
          !['done', 'deleting', 'deleted'].includes(row.state)
        ) {
          throw new PopsyncError('internal', `learnUids: message ${f.uidl} is not a copy without a UID`, {
            account,
            uidl: f.uidl,
          });
        }
        this.claimable(account, row.folder, row.dest_uidvalidity, f.destUid, f.uidl);
        this.sql.learnUid.run({ account, uidl: f.uidl, destUid: f.destUid, now });
      }
    });
  }

  /**
   * Records the LIST size of rows that have none yet (journals from before v3) and clears
   * vanished_at of rows listed again. One step, and only when there is something to write.
   */
  setListSizes(account: string, entries: ReadonlyArray<{ uidl: string; listSize: number }>): void {
    if (entries.length === 0) return;
    this.db.step('recording listed sizes', () => {
      for (const e of entries) this.sql.setListSize.run({ account, uidl: e.uidl, listSize: e.listSize });
    });
  }

  /** Copied messages that left the listing although popsync did not delete them. */
  markVanished(account: string, uidls: readonly string[]): void {
    if (uidls.length === 0) return;
    this.db.step('recording vanished messages', () => {
      const now = this.db.nowIso();
      for (const uidl of uidls) this.sql.setVanished.run({ account, uidl, now });
    });
  }

  /**
   * Gives rows new keys in one step: a message the server now lists under another UIDL, or an
   * old row moved aside because its UIDL now names a different message. The target key must be
   * free; the source row keeps its state, copy and history.
   */
  rekey(account: string, moves: ReadonlyArray<{ from: string; to: string }>): void {
    if (moves.length === 0) return;
    this.db.step('re-keying messages', () => {
      const now = this.db.nowIso();
      for (const m of moves) {
        if (this.sql.get.get(account, m.from) === undefined)
          throw new PopsyncError('internal', `rekey: no message ${m.from}`, { account, uidl: m.from });
        if (this.sql.get.get(account, m.to) !== undefined)
          throw new PopsyncError('internal', `rekey: ${m.to} is already taken`, { account, uidl: m.to });
        this.sql.rekey.run({ account, from: m.from, to: m.to, now });
      }
    });
  }

  /**
   * done -> failed for a copy proven absent: `seen` says where it was looked for, and must be
   * exactly the copy this row records (folder, UIDVALIDITY, UID), else nothing is written: a
   * look at another folder or an older UIDVALIDITY proves nothing about this copy. The row then
   * is an ordinary failed message with `reason`, and the next run copies it again.
   */
  markCopyMissing(
    account: string,
    uidl: string,
    seen: { folder: string; uidValidity: bigint; uid: number },
    reason: string,
  ): void {
    const v = checkUidValidity(seen.uidValidity, `markCopyMissing ${uidl}`);
    this.db.step('recording a copy missing from the destination', () => {
      const row = this.sql.get.get(account, uidl);
      assertTransition(row?.state ?? null, 'failed', { account, uidl });
      if (row === undefined || row.folder !== seen.folder || row.dest_uidvalidity !== v || row.dest_uid !== seen.uid) {
        throw new PopsyncError(
          'internal',
          `markCopyMissing: message ${uidl} was copied to UID ${row?.dest_uid ?? '?'} in ${row?.folder ?? '?'} ` +
            `(UIDVALIDITY ${row?.dest_uidvalidity ?? '?'}), not where it was looked for`,
          {
            account,
            uidl,
            hint: 'this is a bug in popsync; the journal was left unchanged',
          },
        );
      }
      this.sql.copyMissing.run({
        account,
        uidl,
        error: reason.slice(0, MAX_ERROR_CHARS),
        now: this.db.nowIso(),
      });
    });
  }

  /** done -> deleting for every row, committed before the first DELE is sent (an intent). */
  markDeleting(account: string, uidls: readonly string[]): void {
    if (uidls.length === 0) return;
    this.db.step(
      'recording messages about to be deleted',
      () => {
        const rows = this.rowsOf(account, [...new Set(uidls)]);
        this.checkMoves(account, uidls, 'deleting', rows);
        this.writeMoves(account, uidls, 'deleting', this.db.nowIso());
      },
      'intent',
    );
  }

  /**
   * Settles 'deleting' rows: `deleted` ones are gone from the server (QUIT said +OK, or they
   * are no longer listed), `kept` ones are still there and go back to 'done'. One step.
   */
  settleDeleting(account: string, outcome: { deleted: readonly string[]; kept: readonly string[] }): void {
    if (outcome.deleted.length === 0 && outcome.kept.length === 0) return;
    this.db.step('recording deleted messages', () => {
      const rows = this.rowsOf(account, [...new Set([...outcome.deleted, ...outcome.kept])]);
      this.checkMoves(account, outcome.deleted, 'deleted', rows);
      this.checkMoves(account, outcome.kept, 'done', rows);
      const now = this.db.nowIso();
      this.writeMoves(account, outcome.deleted, 'deleted', now);
      this.writeMoves(account, outcome.kept, 'done', now);
    });
  }

  /**
   * Checks each move in order, against the rows as read and the moves before it (`rows` is
   * updated as it goes), as a lookup per row inside the step would: a uidl listed twice meets
   * the state its first move left. Nothing is written until every move passed, and a refusal
   * rolls the step back whole either way, so the journal ends as it would row by row.
   */
  private checkMoves(account: string, uidls: readonly string[], to: RowState, rows: Map<string, RowLook>): void {
    for (const uidl of uidls) {
      const row = rows.get(uidl);
      assertTransition(row?.state ?? null, to, { account, uidl });
      rows.set(uidl, { uidl, state: to, folder: row?.folder ?? null });
    }
  }

  /**
   * Writes checked moves a chunk of rows per statement: a lookup and an update per row cost
   * 15 µs each, 300 ms for deleting 10,000 messages. A uidl without a row (a kept message
   * the journal never had) changes nothing, as its single-row update did not.
   */
  private writeMoves(account: string, uidls: readonly string[], to: RowState, now: string): void {
    let at = 0;
    for (const n of chunkSizes(uidls.length)) {
      const chunk = uidls.slice(at, at + n);
      const where = `WHERE account = ? AND uidl IN (${Array(n).fill('?').join(', ')})`;
      if (to === 'deleted') {
        this.many(
          `deleted ${n}`,
          () => `UPDATE messages SET state = 'deleted', deleted_at = ?, updated_at = ? ${where}`,
        ).run(now, now, account, ...chunk);
      } else {
        this.many(`move ${n}`, () => `UPDATE messages SET state = ?, updated_at = ? ${where}`).run(
          to,
          now,
          account,
          ...chunk,
        );
      }
      at += n;
    }
  }
}
