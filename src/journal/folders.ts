/**
 * The destination folders a journal knows: each folder's UIDVALIDITY (every UID the journal
 * records is only meaningful under it) and how far the search for copies made before this
 * journal knew the folder has come (adopt_below). Message rows consult it before recording a
 * UID (sameUidValidity); forgetting a folder also forgets the rows copied into it.
 */
import { PopsyncError } from '../errors.js';
import type { JournalDb } from './db.js';
import { checkUidValidity } from './rows.js';
import type { FolderRecord, RowState } from './types.js';

export class Folders {
  private readonly db: JournalDb;
  private readonly sql;

  constructor(db: JournalDb) {
    this.db = db;
    const c = db.conn;
    this.sql = {
      get: c.prepare<[string, string], { uidvalidity: string; adopt_below: number | null }>(
        `SELECT uidvalidity, adopt_below FROM folders WHERE account = ? AND folder = ?`,
      ),
      add: c.prepare(
        `INSERT INTO folders (account, folder, uidvalidity, first_seen_at, adopt_below) VALUES (?, ?, ?, ?, ?)`,
      ),
      replace: c.prepare(`UPDATE folders SET uidvalidity = ?, adopt_below = ? WHERE account = ? AND folder = ?`),
      adoptionPending: c.prepare(`SELECT 1 FROM folders WHERE account = ? AND adopt_below IS NOT NULL LIMIT 1`),
      endAdoption: c.prepare(`UPDATE folders SET adopt_below = NULL WHERE account = ? AND adopt_below IS NOT NULL`),
      rowStates: c.prepare<[string, string], { state: RowState; n: number }>(
        `SELECT state, COUNT(*) AS n FROM messages WHERE account = ? AND folder = ? GROUP BY state`,
      ),
      forgetRows: c.prepare(
        `DELETE FROM messages WHERE account = ? AND folder = ? AND state IN ('appending', 'done', 'failed')`,
      ),
      forget: c.prepare(`DELETE FROM folders WHERE account = ? AND folder = ?`),
    };
  }

  /**
   * A row's folder must still have the UIDVALIDITY the journal recorded for it, if any. Called
   * inside the step that records the row, so the check and the write see the same folder.
   */
  sameUidValidity(account: string, folder: string, value: string, uidl: string): void {
    const known = this.sql.get.get(account, folder);
    if (known !== undefined && known.uidvalidity !== value)
      throw uidValidityChanged(account, folder, known.uidvalidity, value, uidl);
  }

  folderUidValidity(account: string, folder: string): bigint | null {
    return this.db.read('reading a folder', () => {
      const r = this.sql.get.get(account, folder);
      return r === undefined ? null : BigInt(r.uidvalidity);
    });
  }

  /**
   * What the journal knows of a folder a run opens, recording what changed (a step, only when
   * something did). First sight records its UIDVALIDITY, and when the folder already holds mail
   * that this journal did not put there, `adoptBelow` (its UIDNEXT): copies below it are looked
   * for before anything is appended (engine/adopter.ts). A changed UIDVALIDITY (the folder was
   * deleted and recreated, or Courier renumbered a fresh INBOX) is accepted the same way: every
   * UID recorded under the old value may now name another message, so rows done under it keep
   * their history but claim nothing, rows still 'appending' under it are settled by content
   * (engine/reconciler.ts), and the folder's mail is searched again like a folder never seen.
   */
  recordFolder(
    account: string,
    folder: string,
    uidValidity: bigint,
    seen: { uidNext: number; messages: number | null } = { uidNext: 0, messages: null },
  ): FolderRecord {
    const v = checkUidValidity(uidValidity, `recordFolder ${folder}`);
    // A folder that holds no message has nothing to adopt; an unknown count may hold some.
    const adoptBelow = seen.messages === 0 || seen.uidNext <= 1 ? null : seen.uidNext;
    const known = this.db.read('reading a folder', () => this.sql.get.get(account, folder));
    if (known !== undefined && known.uidvalidity === v)
      return { first: false, replaced: null, adoptBelow: known.adopt_below };
    return this.db.step('recording a folder', () => {
      // Re-read inside the write lock: another process may have recorded it meanwhile.
      const again = this.sql.get.get(account, folder);
      if (again === undefined) {
        this.sql.add.run(account, folder, v, this.db.nowIso(), adoptBelow);
        return { first: true, replaced: null, adoptBelow };
      }
      if (again.uidvalidity === v) return { first: false, replaced: null, adoptBelow: again.adopt_below };
      this.sql.replace.run(v, adoptBelow, account, folder);
      return { first: false, replaced: BigInt(again.uidvalidity), adoptBelow };
    });
  }

  /**
   * A run went through its whole listing: every message that could have a copy made before
   * this journal knew the folder has been looked for, so later runs stop searching.
   */
  endAdoption(account: string): void {
    const pending = this.db.read('reading folders', () => this.sql.adoptionPending.get(account));
    if (pending === undefined) return;
    this.db.step('recording folders searched for copies', () => {
      this.sql.endAdoption.run(account);
    });
  }

  /**
   * Forgets one destination folder: its record and the rows of messages copied (or being
   * copied, or refused) into it, so the next run treats the folder as never seen, adopts the
   * copies still there and copies only what is missing. Rows deleted from the source stay (they
   * cannot be copied again and their UIDs stay claimed). Refused while a deletion is in
   * flight. Returns how many rows were forgotten and how many deleted ones were kept.
   */
  forgetFolder(account: string, folder: string): { forgotten: number; kept: number } {
    return this.db.step('forgetting a folder', () => {
      const counts = new Map(this.sql.rowStates.all(account, folder).map((r) => [r.state, r.n] as const));
      if ((counts.get('deleting') ?? 0) > 0) {
        throw new PopsyncError(
          'usage',
          `${counts.get('deleting')} message(s) copied into "${folder}" are being deleted from the source`,
          {
            account,
            folder,
            hint: 'run sync once more to settle the deletion (no mail is copied twice), then forget the folder',
          },
        );
      }
      const forgotten = this.sql.forgetRows.run(account, folder).changes;
      this.sql.forget.run(account, folder);
      return { forgotten, kept: counts.get('deleted') ?? 0 };
    });
  }
}

function uidValidityChanged(account: string, folder: string, was: string, now: string, uidl?: string): PopsyncError {
  return new PopsyncError(
    'uidvalidity',
    `UIDVALIDITY of destination folder "${folder}" changed from ${was} to ${now}`,
    {
      account,
      folder,
      ...(uidl === undefined ? {} : { uidl }),
      hint:
        'the folder was deleted and recreated while this run used it; run again: popsync then takes the new value ' +
        'and recognises the copies in it by content, copying nothing twice',
    },
  );
}
