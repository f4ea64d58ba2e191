/**
 * The journal of the bench's safe relay (bench-raw.ts): the least journal a copier can keep and
 * still copy exactly once, so the relay's rate is a ceiling for any copier with popsync's
 * guarantees. Per batch, an intent row for each message (uidl, size, sha256, fingerprint)
 * committed and fsynced BEFORE its APPEND is written, so that a crash can never hide a copy
 * from the next run; after the APPEND's tagged OK, one transaction recording each message's
 * APPENDUID (UIDVALIDITY and UID), so the next run knows it is done without looking.
 *
 * The durability is popsync's own (src/journal/db.ts), no more and no less: WAL, intents
 * committed with synchronous=FULL (the WAL is fsynced at their commit), outcomes with
 * synchronous=NORMAL (in the WAL before the call returns, made durable by the next intent's
 * fsync), each a BEGIN IMMEDIATE transaction. One table keyed by uidl (WITHOUT ROWID: the key
 * is the table, no second index), which is all a resumed run needs to find what it did.
 */
import Database from 'better-sqlite3';

/** One message as the relay journals it before its APPEND. */
export interface Intent {
  uidl: string;
  size: number;
  sha256: string;
  fingerprint: string;
}

export class SafeJournal {
  private readonly db: Database.Database;
  private readonly intend: Database.Transaction<(rows: readonly Intent[]) => void>;
  private readonly confirm: Database.Transaction<(uidls: readonly string[], validity: string, uids: number[]) => void>;

  /** Creates the journal at `path`, which must not exist yet (a relay run starts from nothing). */
  constructor(path: string) {
    this.db = new Database(path);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = NORMAL');
    this.db.exec(`CREATE TABLE copies (
      uidl        TEXT PRIMARY KEY NOT NULL,
      size        INTEGER NOT NULL,
      sha256      TEXT NOT NULL,
      fingerprint TEXT NOT NULL,
      uidvalidity TEXT,
      uid         INTEGER
    ) WITHOUT ROWID`);
    const insert = this.db.prepare('INSERT INTO copies (uidl, size, sha256, fingerprint) VALUES (?, ?, ?, ?)');
    const update = this.db.prepare('UPDATE copies SET uidvalidity = ?, uid = ? WHERE uidl = ? AND uid IS NULL');
    this.intend = this.db.transaction((rows) => {
      for (const r of rows) insert.run(r.uidl, r.size, r.sha256, r.fingerprint);
    });
    this.confirm = this.db.transaction((uidls, validity, uids) => {
      for (const [i, uidl] of uidls.entries())
        if (update.run(validity, uids[i], uidl).changes !== 1) throw new Error(`no open intent for ${uidl}`);
    });
  }

  /** The intents of one batch, fsynced when this returns: only then may its APPEND be written. */
  intents(rows: readonly Intent[]): void {
    this.db.pragma('synchronous = FULL');
    try {
      this.intend.immediate(rows);
    } finally {
      this.db.pragma('synchronous = NORMAL');
    }
  }

  /** The APPENDUID of one batch: `uids[i]` is the copy of `uidls[i]`. */
  confirmed(uidls: readonly string[], uidValidity: bigint, uids: number[]): void {
    this.confirm.immediate(uidls, String(uidValidity), uids);
  }

  close(): void {
    this.db.close();
  }
}

/** Rows in all, and rows whose copy is confirmed, in the journal at `path` (read-only). */
export function journalCounts(path: string): { rows: number; confirmed: number } {
  const db = new Database(path, { readonly: true, fileMustExist: true });
  try {
    return db.prepare('SELECT count(*) AS rows, count(uid) AS confirmed FROM copies').get() as {
      rows: number;
      confirmed: number;
    };
  } finally {
    db.close();
  }
}
