/**
 * Refusing a journal that lost its write-ahead log, instead of taking it for a new one.
 *
 * In WAL mode a run's writes live in `<journal>-wal` until a checkpoint copies them into the
 * main file. A journal copied or restored without its `-wal`, or whose `-wal` a cleanup
 * deleted after a killed run, still opens: SQLite simply reads the main file as it was at the
 * last checkpoint. For a journal created and killed in the same run that is a 4 KB file with
 * no tables, which used to be taken for a new journal: every message was copied again.
 *
 * Two facts, kept in the main file, make the loss visible:
 * - A new journal gets its schema in rollback mode, straight into the main file, before WAL is
 *   switched on (journal.ts). So a journal file with bytes but no tables never comes from
 *   popsync's own crashes: its tables are in a WAL that is gone.
 * - A writer marks the journal "in use" and checkpoints the mark into the main file when it
 *   opens, and clears it when it closes cleanly. The opening checkpoint does not truncate the
 *   WAL, so from then on the writer's `-wal` is never empty: a killed run leaves the mark and
 *   a `-wal` with frames. So "marked, and the -wal is missing or empty" means either that the
 *   log holding that run's records is gone, or that another program (an sqlite3 shell, a
 *   backup tool, a popsync open that failed), the last to close the journal, checkpointed all
 *   of the log into the main file and deleted it, as SQLite does. (Empty, not only missing: a
 *   read-only open, e.g. `status`, creates an empty `-wal` where none was.)
 *
 * Telling those two apart: every write transaction of a writer (bookkeeping too) counts itself
 * in the main file (meta `wal_step`, 0 with the mark), and after each commit returns, before the
 * run acts on it, the writer writes the count beside the journal with its mark (wal-step.ts,
 * `<journal>-step`). A main file that names the same mark and holds the same count holds every
 * transaction the run acted on: the journal is sound, and is used, by read-only looks as by
 * writers. (The count is written after the commit, not before it: a commit that returned with
 * its count unwritten was followed by nothing the run did, so the main file lacking it is the
 * state of a kill just before it, which every run resumes from. Written before, a kill anywhere
 * inside the transaction, fsync included, would be refused.) Anything else is refused:
 * - a main file behind the count is one whose log was lost after an (auto-)checkpoint;
 * - one transaction ahead is a run killed inside a commit, after its frames were written and
 *   before the count. That is sound if a program checkpointed all of the log; but a kill in the
 *   checkpoint SQLite runs inside a commit (every thousand pages) leaves a main file torn
 *   between two states, which only the lost `-wal` could repair, and pages are copied in page
 *   order, meta's among the first: its count may be the new one. The count moves with every
 *   commit so that a file torn so does not match -step (one page aside, below). A narrow false
 *   refusal, the safe side;
 *   the hint says how to accept the journal for whoever knows no one deleted the `-wal`;
 * - no `-step` file, or one of another mark: a journal of an earlier popsync, a copy made
 *   without it, a run killed while it opened the journal.
 * What it cannot tell, said plainly:
 * - the `-step` file is not fsynced (an fsync after each transaction would add one to every
 *   transaction of a run whose outcomes are not fsynced at all, db.ts). A power cut can leave it
 *   with an older count, which matches the main file if the last checkpoint before the cut was
 *   at that count. So a power cut followed by deleting the `-wal` by hand (a double fault) can be
 *   taken for a sound journal, and the records fsynced into that `-wal` since the checkpoint are
 *   lost. A power cut alone leaves the `-wal` in place, and SQLite repairs the journal from it.
 * - a main file torn by a kill during a checkpoint that a reader's snapshot kept partial, or
 *   during the checkpoint of a clean close (which removes the mark), whose `-wal` is then
 *   deleted by hand: SQLite cannot read such a file correctly either.
 * The count is also kept in the header page (user_version, page 1), and both must match. Meta
 * is page 2, and checkpoints copy pages in page order (measured: a batch's frames were pages 1,
 * 2, 4, 6, 20...): a kill between those two writes, in the checkpoint SQLite runs inside commit
 * c+1 when the main file already held all of commit c, would leave meta's count c under the
 * header of c+1, and that file, its `-wal` deleted by hand, would match -step. The header's
 * count is the first page a checkpoint writes, so any file a checkpoint began is one ahead.
 * Its cost: the header page in every transaction's WAL frames, where most had none (a journal
 * of 50 batches of 100, each message confirmed on its own: 229 of 233 commits wrote page 1,
 * against 8 of 297 without it), one 4 KB frame more per transaction; 10,000 small messages
 * in 5 pairs: CPU 0.48 against 0.50 s, lower in 3 of 5, within the noise.
 * - a journal copied without its `-wal` while a run wrote, `-step` copied before the main file:
 *   copy a journal with its `-wal` and `-step`, or while no run uses it.
 *
 * The opening checkpoint can be kept from the mark: SQLite never copies into the main file a
 * page newer than the snapshot a reader still holds (that reader may read the page from the
 * main file), so a process reading the journal since before the mark was committed (an sqlite3
 * shell with a transaction open, a backup) keeps it in the `-wal` alone, where losing the
 * `-wal` loses it with the records it guards. The checkpoint waits for such a reader as long
 * as for a writer (busy_timeout); a writer whose mark is still not in the main file then does
 * not run (checkpointMark).
 * Journals written before the mark existed are only protected by the first rule.
 */
import { existsSync, statSync } from 'node:fs';
import type Database from 'better-sqlite3';
import { PopsyncError } from '../errors.js';
import { printable } from '../printable.js';
import { journalFile } from './sidecars.js';
import { readStepFile, stepFilePath } from './wal-step.js';

const IN_USE_KEY = 'wal_in_use';
/** The writer's committed write transactions since its mark; see the module comment. */
const STEP_KEY = 'wal_step';

/** The file's state before popsync opened it: what SQLite will hide once it is open. */
export interface FileState {
  bytes: number;
  /** Size of `-wal`; 0 when there is none. */
  walBytes: number;
}

export function fileState(path: string): FileState {
  const wal = walPath(path);
  return { bytes: statSync(path).size, walBytes: existsSync(wal) ? statSync(wal).size : 0 };
}

/** Where SQLite keeps the journal's -wal: beside the file itself, through a symlink (sidecars.ts). */
function walPath(path: string): string {
  return `${journalFile(path)}-wal`;
}

/**
 * `unproven`: a journal file that may hold every record, which only the lost -wal could show
 * (no count: a journal of an earlier popsync; one transaction ahead: a kill inside a commit).
 * Whoever knows how the -wal went can then say so, by taking the mark out of the file.
 */
function walLost(path: string, why: string, unproven = false): PopsyncError {
  const wal = walPath(path);
  const back =
    `put the ${wal} file back beside it (from wherever the journal was copied or backed up from, ` +
    `with ${stepFilePath(path)} if that is missing too) and run again. ` +
    'popsync will not treat it as a new journal: that would copy again every message it had recorded';
  return new PopsyncError(
    'journal',
    `journal ${path} has lost its write-ahead log (${wal}): ${why}; what it recorded since its last ` +
      `checkpoint ${unproven ? 'may be' : 'is'} gone`,
    {
      hint: unproven
        ? `${back}. If instead no one deleted the -wal by hand, but a program that opened the journal after ` +
          'the run was killed (an sqlite3 shell, a backup tool) emptied it into the journal file as it ' +
          `closed, nothing was lost: ${takeMarkOut(path)} and run again`
        : back,
    },
  );
}

/**
 * The hint's sqlite3 command, a line to paste into a POSIX shell as the CLI prints it: a journal
 * in "~/Mail backups/" or named with a quote would otherwise run sqlite3 on another file, or none.
 * A relative path sqlite3 would read as an option (-j.sqlite) or a URI (file:j.sqlite, which
 * names j.sqlite) goes behind "./". A path holding what the CLI prints escaped (printable(): a
 * line break, a control or bidi character) cannot be written in the line itself, whose printed
 * "\x0a" a shell keeps as four characters: printf makes it from octal escapes. (The command
 * substitution drops a trailing line break, as SQLite does: given "j.sqlite\n" it opens j.sqlite.)
 */
function takeMarkOut(path: string): string {
  const sql = `"DELETE FROM meta WHERE key = '${IN_USE_KEY}'"`;
  const p = path.startsWith('-') || path.startsWith('file:') ? `./${path}` : path;
  if (printable(p) === p) return `sqlite3 ${shellWord(p)} ${sql}`;
  let format = '';
  for (const c of p) {
    if (printable(c) !== c) for (const b of Buffer.from(c)) format += `\\${b.toString(8).padStart(3, '0')}`;
    else format += c === '%' ? '%%' : c === '\\' ? '\\\\' : c;
  }
  return `sqlite3 "$(printf ${shellWord(format)})" ${sql}`;
}

/** A string as one word for a POSIX shell: single-quoted unless it is all [A-Za-z0-9_./,:@%+=-]. */
function shellWord(s: string): string {
  return /^[A-Za-z0-9_./,:@%+=-]+$/.test(s) ? s : `'${s.replaceAll("'", `'\\''`)}'`;
}

/** Inside the open transaction, with the schema version just read. */
export function assertWalIntact(db: Database.Database, path: string, version: number, file: FileState): void {
  if (version === 0) {
    if (file.bytes > 0)
      throw walLost(
        path,
        'the file has an SQLite header but no tables, which only a journal whose tables were never ' +
          'checkpointed leaves behind',
      );
    return;
  }
  if (file.walBytes > 0) return;
  const meta = db.prepare(`SELECT value FROM meta WHERE key = ?`);
  const mark = meta.get(IN_USE_KEY) as { value: string } | undefined;
  if (mark === undefined) return;
  // A read-only look (the journal-name lookup before a run takes its lock, status, plan) can
  // race a writer opening the journal this instant: its -wal appeared between our stat and our
  // read. From its opening checkpoint on, a live writer's -wal is never empty.
  if (fileState(path).walBytes > 0) return;
  const step = (meta.get(STEP_KEY) as { value: string } | undefined)?.value;
  const side = readStepFile(path);
  // Every transaction the run acted on is in this file: the -wal was emptied into it, not lost.
  const header = db.pragma('user_version', { simple: true }) as number;
  if (step !== undefined && side?.mark === mark.value && side.step === step && header === headerCount(Number(step)))
    return;
  const since = `a run that opened it at ${mark.value} did not close it, and its -wal file is missing or empty`;
  if (step === undefined) throw tagged(walLost(path, since, true));
  if (side === null)
    throw tagged(
      walLost(path, `${since}, with no ${stepFilePath(path)} to show that its records all reached the journal file`),
    );
  if (side.mark !== mark.value)
    throw tagged(walLost(path, `${since}, and ${stepFilePath(path)} is that of another run (${side.mark})`));
  // No count in the header: a popsync from before the header held it wrote the file last (its run
  // killed and the -wal emptied by a program: nothing lost), or a checkpoint inside a later
  // run's marking commit, which sets the header to 0, was cut short after page 1 (the -wal then
  // deleted by hand). Only whoever knows how the -wal went can tell them apart, as for a journal
  // that kept no count at all: refused, with the hint that takes the mark out.
  if (side.step === step && header === 0)
    throw tagged(
      walLost(
        path,
        `${since}; its header holds no count of its ${step} write transactions: a popsync before this one ` +
          'kept it in the meta table only, or a checkpoint cut short left the file half-written',
        true,
      ),
    );
  if (side.step === step)
    throw tagged(
      walLost(
        path,
        `${since}; the journal file was left half-written by a checkpoint cut short (its header counts ` +
          `${header} write transactions, its meta table ${step})`,
      ),
    );
  throw tagged(
    walLost(
      path,
      `${since}; the journal file holds ${step} of its write transactions, ${stepFilePath(path)} says it ` +
        `committed ${side.step}`,
      Number(step) === Number(side.step) + 1,
    ),
  );
}

const lostWal = new WeakSet<PopsyncError>();

function tagged(e: PopsyncError): PopsyncError {
  lostWal.add(e);
  return e;
}

/**
 * A lost -wal seen by a read-only look. It may also be a writer closing cleanly between that
 * look's read and its stat (the mark is cleared only in the same checkpoint that empties the
 * -wal), so such a reader looks once more before believing it.
 */
export function isLostWal(e: unknown): boolean {
  return e instanceof PopsyncError && lostWal.has(e);
}

/**
 * Inside the open transaction of a writer; the caller then checkpoints it (checkpointMark). The
 * count starts at 0 with the mark: the mark names the run, so its count need not go on from the
 * previous run's.
 */
export function markInUse(db: Database.Database, at: string): void {
  const put = db.prepare(
    `INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value`,
  );
  put.run(IN_USE_KEY, at);
  put.run(STEP_KEY, '0');
  db.pragma('user_version = 0');
}

/** user_version is a signed 32-bit field; a count past it wraps (a run commits far fewer). */
function headerCount(step: number): number {
  return step % 0x7fffffff;
}

/**
 * What each counted write transaction runs last, with its number (JournalDb). Only while the
 * journal file's mark is this run's: a second writer that opened the journal meanwhile (one the
 * lock file did not keep out) replaced it, and its clean close took it out. Counting on into a
 * row that is gone, or under another run's mark, would leave this run's writes unguarded (killed,
 * and its -wal lost, the main file read as a journal closed cleanly); the run stops instead,
 * before the transaction commits and so before it acts on it.
 */
export function stepCounter(db: Database.Database, path: string, mark: string): (step: number) => void {
  const count = db.prepare<[string, string]>(
    `UPDATE meta SET value = ? WHERE key = '${STEP_KEY}' AND (SELECT value FROM meta WHERE key = '${IN_USE_KEY}') = ?`,
  );
  return (step) => {
    if (count.run(String(step), mark).changes === 1) {
      // exec, not a prepared statement: SQLite takes a PRAGMA's value when it compiles it.
      db.exec(`PRAGMA user_version = ${headerCount(step)}`);
      return;
    }
    throw new PopsyncError(
      'locked',
      `journal ${path} was opened for writing by another process while this run used it (the journal's "in use" ` +
        "mark is no longer this run's); stopped before writing to the journal",
      {
        hint:
          'two processes wrote one journal at once: a popsync run that the lock file beside the journal did not keep ' +
          'out (another host on a network file system, an older popsync), or a hand that took the mark out. What ' +
          'this run recorded is kept; run again once no other process uses the journal',
      },
    );
  };
}

/** What `PRAGMA wal_checkpoint` answers: frames in the WAL, and how many of them the main file has. */
interface CheckpointResult {
  busy: number;
  log: number;
  checkpointed: number;
}

/**
 * Copies the WAL, the "in use" mark with it, into the main file and leaves the -wal file as it
 * is (never empty again). FULL waits (busy_timeout) for readers of older snapshots to move on;
 * one that does not leaves the checkpoint partial, which SQLite reports instead of failing, so
 * the answer is read: a writer whose mark is not in the main file is refused here.
 */
export function checkpointMark(db: Database.Database, path: string, waitedMs: number): void {
  const [r] = db.pragma('wal_checkpoint(FULL)') as CheckpointResult[];
  if (r !== undefined && r.busy === 0 && r.checkpointed >= r.log) return;
  const got = r === undefined ? '' : ` (${r.checkpointed} of its ${r.log} WAL frames copied)`;
  throw new PopsyncError(
    'locked',
    `journal ${path} is being read or written by another process: this run's "in use" mark could not be ` +
      `written into the journal file within ${Math.round(waitedMs / 1000)} s${got}`,
    {
      hint:
        'let that process finish (an sqlite3 shell with a transaction open, a backup of the journal, a popsync ' +
        'status or plan still reading) and run again. popsync does not run without the mark in the file: a ' +
        `${walPath(path)} lost after a killed run would then go unnoticed, and its messages would be copied again`,
    },
  );
}

/**
 * Takes the mark back without a checkpoint, for a writer that will not run after all: left in
 * the WAL, the next checkpoint (that of a last connection closing included) would put it in the
 * main file and delete -wal, and the next run would refuse a sound journal as one that lost it.
 * Only this run's own `mark`: one that another writer put in its place (stepCounter) guards that
 * writer's run. True when it was this run's.
 */
export function withdrawMark(db: Database.Database, mark: string): boolean {
  return (
    db
      .prepare(`DELETE FROM meta WHERE key IN (?, ?) AND (SELECT value FROM meta WHERE key = ?) = ?`)
      .run(IN_USE_KEY, STEP_KEY, IN_USE_KEY, mark).changes > 0
  );
}

/**
 * A clean close. The clearing is a write like any other: it reaches the main file with the
 * checkpoint, and SQLite deletes `-wal` only after checkpointing all of it; so the main file
 * loses its mark exactly when nothing is left in a WAL to lose. True when the checkpoint copied
 * all of it (no reader held it back): the main file is no longer marked, and `-step` says
 * nothing more. False, and nothing done, when the mark is not this run's: `-step` is then the
 * other writer's (it reopened the same file), to leave as it is.
 */
export function clearInUse(db: Database.Database, mark: string): boolean {
  if (!withdrawMark(db, mark)) return false;
  const [r] = db.pragma('wal_checkpoint(TRUNCATE)') as CheckpointResult[];
  return r !== undefined && r.busy === 0 && r.checkpointed >= r.log;
}
