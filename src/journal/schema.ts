/**
 * The journal's on-disk layout as an ordered list of migrations, with the version kept in the
 * file itself (OfflineIMAP's `metadata.db_version`; isync's version line). A journal outlives
 * the popsync that wrote it, so every open reads the version and either upgrades step by step or
 * refuses: a journal written by a newer popsync may hold states this code does not understand,
 * and guessing about which messages were copied is how mail gets duplicated or lost.
 *
 * Callers run `migrate` inside one write transaction, so a crash mid-upgrade leaves the old
 * version intact rather than half a schema.
 */
import type Database from 'better-sqlite3';
import { PopsyncError } from '../errors.js';

export interface Migration {
  /** The schema_version the file has after this migration. */
  version: number;
  description: string;
  sql: string;
}

/**
 * Version 1.
 * - UIDVALIDITY is TEXT holding a decimal bigint: it is an unsigned 32-bit value and JS numbers
 *   from SQLite must never silently lose precision in a field whose change means "stop".
 * - The partial unique index makes "one destination UID settles at most one row" a property of
 *   the file, not only of the reconcile code.
 * - No column or meta key exists for a password or token: the journal never holds secrets.
 */
const V1 = `
CREATE TABLE meta (
  key   TEXT PRIMARY KEY NOT NULL,
  value TEXT NOT NULL
);

CREATE TABLE messages (
  account          TEXT    NOT NULL,
  uidl             TEXT    NOT NULL,
  state            TEXT    NOT NULL CHECK (state IN ('appending', 'done', 'failed')),
  size             INTEGER NOT NULL CHECK (size >= 0),
  sha256           TEXT,
  message_id       TEXT,
  folder           TEXT,
  dest_uidvalidity TEXT,
  dest_uidnext     INTEGER,
  dest_uid         INTEGER,
  attempts         INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
  last_error       TEXT,
  first_seen_at    TEXT    NOT NULL,
  updated_at       TEXT    NOT NULL,
  copied_at        TEXT,
  PRIMARY KEY (account, uidl)
);

CREATE INDEX messages_by_state ON messages (account, state);

CREATE UNIQUE INDEX messages_done_uid ON messages (account, folder, dest_uidvalidity, dest_uid)
  WHERE state = 'done' AND dest_uid IS NOT NULL;

CREATE TABLE folders (
  account     TEXT NOT NULL,
  folder      TEXT NOT NULL,
  uidvalidity TEXT NOT NULL,
  first_seen_at TEXT NOT NULL,
  PRIMARY KEY (account, folder)
);
`;

/**
 * Version 2: how each copy was made, so reports and `status` can say why a message went where
 * it went and looks how it looks (folder rule, seen rule, flags, arrival date and its source).
 * All nullable: rows written by version 1 simply have no provenance.
 */
const V2 = `
ALTER TABLE messages ADD COLUMN flags TEXT;
ALTER TABLE messages ADD COLUMN internal_date TEXT;
ALTER TABLE messages ADD COLUMN date_source TEXT;
ALTER TABLE messages ADD COLUMN seen_source TEXT;
ALTER TABLE messages ADD COLUMN folder_rule TEXT;
`;

/**
 * Version 3: what cron-driven `sync` needs.
 * - Two more states, 'deleting' and 'deleted'. SQLite cannot change a CHECK constraint in
 *   place, so the messages table is rebuilt (inside the caller's transaction, rows copied in
 *   rowid order so "ORDER BY rowid" still means "first seen first").
 * - header_hash and list_size: the second identity key beside the UIDL (engine/identity.ts).
 *   Nullable: rows from older journals have neither; list_size is back-filled from the next
 *   listing, header_hash is only known for messages copied from v3 on.
 * - deleted_at / vanished_at: when popsync removed a message from the source, and when a copied
 *   message disappeared from the listing without popsync deleting it (windowed sources).
 * - A destination UID stays claimed after its source message is deleted, so the unique index
 *   now covers every state that owns a copy.
 * - locks: one row per account held by a running process (journal/lock.ts).
 * - runs: one row per run, for `status` and windowed-source detection.
 */
const V3 = `
CREATE TABLE messages_v3 (
  account          TEXT    NOT NULL,
  uidl             TEXT    NOT NULL,
  state            TEXT    NOT NULL CHECK (state IN ('appending', 'done', 'failed', 'deleting', 'deleted')),
  size             INTEGER NOT NULL CHECK (size >= 0),
  sha256           TEXT,
  message_id       TEXT,
  folder           TEXT,
  dest_uidvalidity TEXT,
  dest_uidnext     INTEGER,
  dest_uid         INTEGER,
  attempts         INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
  last_error       TEXT,
  first_seen_at    TEXT    NOT NULL,
  updated_at       TEXT    NOT NULL,
  copied_at        TEXT,
  flags            TEXT,
  internal_date    TEXT,
  date_source      TEXT,
  seen_source      TEXT,
  folder_rule      TEXT,
  header_hash      TEXT,
  list_size        INTEGER,
  deleted_at       TEXT,
  vanished_at      TEXT,
  PRIMARY KEY (account, uidl)
);

INSERT INTO messages_v3 (account, uidl, state, size, sha256, message_id, folder, dest_uidvalidity, dest_uidnext,
                         dest_uid, attempts, last_error, first_seen_at, updated_at, copied_at, flags, internal_date,
                         date_source, seen_source, folder_rule)
  SELECT account, uidl, state, size, sha256, message_id, folder, dest_uidvalidity, dest_uidnext, dest_uid,
         attempts, last_error, first_seen_at, updated_at, copied_at, flags, internal_date, date_source,
         seen_source, folder_rule
  FROM messages ORDER BY rowid;

DROP TABLE messages;
ALTER TABLE messages_v3 RENAME TO messages;

CREATE INDEX messages_by_state ON messages (account, state);

CREATE UNIQUE INDEX messages_done_uid ON messages (account, folder, dest_uidvalidity, dest_uid)
  WHERE state IN ('done', 'deleting', 'deleted') AND dest_uid IS NOT NULL;

CREATE INDEX messages_by_header ON messages (account, header_hash, list_size) WHERE header_hash IS NOT NULL;

CREATE TABLE locks (
  account      TEXT    PRIMARY KEY NOT NULL,
  pid          INTEGER NOT NULL,
  hostname     TEXT    NOT NULL,
  holder_id    TEXT    NOT NULL,
  command      TEXT    NOT NULL,
  started_at   TEXT    NOT NULL,
  heartbeat_at TEXT    NOT NULL
);

CREATE TABLE runs (
  id          INTEGER PRIMARY KEY AUTOINCREMENT,
  account     TEXT    NOT NULL,
  command     TEXT    NOT NULL,
  started_at  TEXT    NOT NULL,
  finished_at TEXT,
  listed      INTEGER,
  new_count   INTEGER,
  copied      INTEGER,
  failed      INTEGER,
  deleted     INTEGER,
  result      TEXT,
  error       TEXT
);

CREATE INDEX runs_by_account ON runs (account, id);
`;

/**
 * Version 4: what a run moved and how long it took, so `plan` can estimate at the rate this
 * account really achieved. Added columns only, nullable: runs recorded before have no rate.
 */
const V4 = `
ALTER TABLE runs ADD COLUMN copied_bytes INTEGER;
ALTER TABLE runs ADD COLUMN duration_ms INTEGER;
`;

/**
 * Version 5: recognising a copy the destination server rewrote, and adopting copies a journal
 * never made (engine/reconcile.ts).
 * - fingerprint: the normalised content fingerprint (engine/fingerprint.ts) of what was
 *   appended. sha256 proves a byte-exact copy; the fingerprint recognises the copy after the
 *   server changed line ends, NUL or 8-bit header bytes. Null on rows written before v5.
 * - folders.adopt_below: the folder held mail this journal did not put there (first seen with
 *   messages, or its UIDVALIDITY changed); messages with a UID below it are searched for
 *   copies before anything is appended, until a run has gone through the whole listing
 *   (then adopt_below is cleared). Null: nothing to adopt.
 */
const V5 = `
ALTER TABLE messages ADD COLUMN fingerprint TEXT;
ALTER TABLE folders ADD COLUMN adopt_below INTEGER;
`;

/**
 * Version 6: no index on header_hash. No query ever looked a row up by it (identity.ts matches
 * header hashes in memory, over the rows indexByUidl reads), yet a hash-keyed index puts each
 * new row on a random page of it: of the 86 pages a step recording 100 intents wrote to the WAL
 * and fsynced, 70 were that index's, and it was a third of beginAppend's CPU (10,000 small
 * messages: 8,572 WAL frames for the intents with it, 2,031 without).
 */
const V6 = `
DROP INDEX IF EXISTS messages_by_header;
`;

/**
 * Version 7: how many copies a run found already in the destination and adopted (recorded as
 * copied, not copied again). Without it, a new journal over a destination that already held
 * the mail showed its run as "new 2, copied 0". Nullable: runs recorded before do not know.
 */
const V7 = `
ALTER TABLE runs ADD COLUMN adopted INTEGER;
`;

/**
 * Version 8: no index on (account, state). Its only readers are once-a-run look-ups (rows still
 * 'appending' or 'deleting', counts by state for status), each a scan of a table every run reads
 * whole anyway (at 10,000 rows: 1.1 ms for the scan, 13 ms for indexByUidl); yet every copied
 * message paid for it three times, an entry written with its intent and moved by its outcome.
 * Copying 10,000 small messages without it: the journal's writes 151 -> 115 ms CPU, the whole
 * popsync process 1.22 -> 1.17 s.
 */
const V8 = `
DROP INDEX IF EXISTS messages_by_state;
`;

/**
 * Version 9: the messages table's state tests are comparisons, not IN lists. SQLite evaluates a
 * CHECK constraint and a partial index's WHERE for every row a statement writes, and it builds
 * an IN list of three or more values as a temporary table each time, not once per statement as
 * in a query: every intent built one (the CHECK), every outcome three (the CHECK, and
 * messages_done_uid's WHERE for the row before and after), opened, filled and cleared per row.
 * Same constraint, same index, same rows: the table is rebuilt (SQLite cannot change a CHECK in
 * place) with each row's rowid kept, since "ORDER BY rowid" means "first seen first". The index's
 * WHERE is OWNS_COPY, which the queries that read the index must spell the same way (SQLite uses a
 * partial index only for a query whose WHERE holds its terms as written). A copy's intents and
 * outcomes alone, 10,000 small messages in batches of 100: 62 -> 49 ms CPU (medians of 20 runs).
 * Upgrading a journal of 100,000 rows takes 0.25 s CPU, once.
 */
const V9 = `
CREATE TABLE messages_v9 (
  account          TEXT    NOT NULL,
  uidl             TEXT    NOT NULL,
  state            TEXT    NOT NULL CHECK (state = 'appending' OR state = 'done' OR state = 'failed' OR
                                           state = 'deleting' OR state = 'deleted'),
  size             INTEGER NOT NULL CHECK (size >= 0),
  sha256           TEXT,
  message_id       TEXT,
  folder           TEXT,
  dest_uidvalidity TEXT,
  dest_uidnext     INTEGER,
  dest_uid         INTEGER,
  attempts         INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
  last_error       TEXT,
  first_seen_at    TEXT    NOT NULL,
  updated_at       TEXT    NOT NULL,
  copied_at        TEXT,
  flags            TEXT,
  internal_date    TEXT,
  date_source      TEXT,
  seen_source      TEXT,
  folder_rule      TEXT,
  header_hash      TEXT,
  list_size        INTEGER,
  deleted_at       TEXT,
  vanished_at      TEXT,
  fingerprint      TEXT,
  PRIMARY KEY (account, uidl)
);

INSERT INTO messages_v9 (rowid, account, uidl, state, size, sha256, message_id, folder, dest_uidvalidity,
                         dest_uidnext, dest_uid, attempts, last_error, first_seen_at, updated_at, copied_at, flags,
                         internal_date, date_source, seen_source, folder_rule, header_hash, list_size, deleted_at,
                         vanished_at, fingerprint)
  SELECT rowid, account, uidl, state, size, sha256, message_id, folder, dest_uidvalidity, dest_uidnext, dest_uid,
         attempts, last_error, first_seen_at, updated_at, copied_at, flags, internal_date, date_source,
         seen_source, folder_rule, header_hash, list_size, deleted_at, vanished_at, fingerprint
  FROM messages ORDER BY rowid;

DROP TABLE messages;
ALTER TABLE messages_v9 RENAME TO messages;

CREATE UNIQUE INDEX messages_done_uid ON messages (account, folder, dest_uidvalidity, dest_uid)
  WHERE (state = 'done' OR state = 'deleting' OR state = 'deleted') AND dest_uid IS NOT NULL;
`;

/**
 * The states whose row owns its copy's UID, as messages_done_uid's WHERE has them since v9. A
 * query that reads the index by UID must say it this way: `state IN (...)` is the same set, but
 * SQLite would not see that it implies the index's WHERE, and would read every row of the account.
 */
export const OWNS_COPY = `(state = 'done' OR state = 'deleting' OR state = 'deleted')`;

export const MIGRATIONS: readonly Migration[] = [
  { version: 1, description: 'messages, folders, meta', sql: V1 },
  { version: 2, description: 'routing provenance per message', sql: V2 },
  { version: 3, description: 'deletion states, second identity key, locks, runs', sql: V3 },
  { version: 4, description: 'bytes and duration per run (measured transfer rate)', sql: V4 },
  { version: 5, description: 'content fingerprint per copy, folders to adopt copies from', sql: V5 },
  { version: 6, description: 'no index on header_hash (never read, written on a random page)', sql: V6 },
  { version: 7, description: 'copies adopted per run', sql: V7 },
  { version: 8, description: 'no index on message state (read once a run, written with every outcome)', sql: V8 },
  { version: 9, description: 'state tests without IN lists (evaluated for every row written)', sql: V9 },
];

export const SCHEMA_VERSION: number = MIGRATIONS[MIGRATIONS.length - 1]?.version ?? 0;

/** 0 for a fresh (empty) file. Throws 'journal' when the file is SQLite but not a popsync journal. */
export function readSchemaVersion(db: Database.Database, path: string): number {
  const hasMeta = db.prepare(`SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'`).get() !== undefined;
  if (!hasMeta) {
    const anyTable = db.prepare(`SELECT name FROM sqlite_master WHERE type = 'table' LIMIT 1`).get() as
      | { name: string }
      | undefined;
    if (anyTable !== undefined) {
      throw new PopsyncError(
        'journal',
        `${path} is an SQLite database but not a popsync journal (it has a table "${anyTable.name}" and no meta table)`,
        {
          hint: "point popsync at its own journal file; it will not write into another program's database",
        },
      );
    }
    return 0;
  }
  const row = db.prepare(`SELECT value FROM meta WHERE key = 'schema_version'`).get() as { value: string } | undefined;
  const version = row === undefined ? NaN : Number(row.value);
  if (!Number.isSafeInteger(version) || version < 1) {
    throw new PopsyncError(
      'journal',
      `${path} has no valid schema_version (found ${row === undefined ? 'none' : JSON.stringify(row.value)})`,
      {
        hint:
          'the journal is damaged; restore it from a backup or move it aside (a fresh journal forgets ' +
          'what was already copied)',
      },
    );
  }
  return version;
}

/**
 * Brings the file up to the newest version `migrations` knows. Must run inside a write
 * transaction (Journal uses BEGIN IMMEDIATE). Returns the versions before and after.
 */
export function migrate(
  db: Database.Database,
  path: string,
  migrations: readonly Migration[] = MIGRATIONS,
): { from: number; to: number } {
  const latest = migrations[migrations.length - 1]?.version ?? 0;
  const from = readSchemaVersion(db, path);
  if (from > latest) {
    throw new PopsyncError(
      'journal',
      `${path} has journal schema version ${from}, but this popsync only knows up to version ${latest}`,
      {
        hint: 'a newer popsync wrote this journal; upgrade popsync to use it',
      },
    );
  }
  let current = from;
  for (const m of migrations) {
    if (m.version <= current) continue;
    if (m.version !== current + 1) {
      throw new PopsyncError(
        'internal',
        `journal migrations are not contiguous: ${current} is followed by ${m.version}`,
      );
    }
    db.exec(m.sql);
    db.prepare(
      `INSERT INTO meta (key, value) VALUES ('schema_version', ?) ON CONFLICT (key) DO UPDATE SET value = ` +
        `excluded.value`,
    ).run(String(m.version));
    current = m.version;
  }
  return { from, to: current };
}
