/**
 * `popsync journal forget-folder --folder NAME`: the journal forgets one destination folder,
 * its record and what it says was copied into it, so the next run treats the folder as never
 * seen: it searches the folder for copies (adoption, engine/adopter.ts), records the ones it
 * recognises and copies only what is missing. This is how a folder is re-copied (after the user
 * emptied or lost it) or released from a state popsync cannot settle by itself, without
 * starting a new journal, which would make every other folder search itself again too.
 *
 * Messages already deleted from the source stay recorded (they cannot be copied again). The
 * account lock is held, so a running sync is never changed under its feet. Contacts no server.
 */
import type { Command } from 'commander';
import { PopsyncError } from '../../errors.js';
import { withLockedJournal } from '../../engine/lock.js';
import { Journal } from '../../journal/journal.js';
import { printable } from '../../report/summary.js';
import { resolvePop3Endpoint } from '../endpoints.js';
import { locateJournal, missingJournal, refuseDirectory, sameMailbox } from '../journal-identity.js';
import { createLogger } from '../logger.js';
import { addLockOptions, sideFlags } from '../options.js';

export function registerJournal(program: Command): void {
  const journal = program
    .command('journal')
    .description('Maintain a journal: forget what it records about one destination folder.');
  const forget = journal
    .command('forget-folder')
    .description(
      'Forget one destination folder: its UIDVALIDITY and the messages recorded as copied into it. The next ' +
        'run searches the folder, adopts the copies it recognises by content and copies only what is ' +
        'missing. Messages deleted from the source stay recorded. Contacts no server.',
    )
    .requiredOption(
      '--folder <name>',
      "the destination folder, as given to --folder or a rule (UTF-8, '/' between levels)",
    )
    .option('--journal <path>', 'the state journal (default: the one of the --pop account)')
    .option('--pop <url>', 'the POP3 source account (user@host[:port]) whose default journal to use')
    .option('--pop-host <host>', 'POP3 source host (overrides the URL)')
    .option('--pop-port <port>', 'POP3 source port')
    .option('--pop-user <user>', 'POP3 source user name')
    .option('--json', 'print one JSON object on stdout');
  addLockOptions(forget);
  forget.action(async (opts: Record<string, unknown>) => {
    const folder = opts.folder as string;
    const pop = sideFlags(opts, 'pop');
    const explicit = typeof opts.journal === 'string' ? opts.journal : undefined;
    let path: string;
    let named: string | null = null;
    let given: string | undefined;
    if (pop.url !== undefined || pop.host !== undefined) {
      const endpoint = resolvePop3Endpoint(pop);
      given = endpoint.display;
      ({ path, sourceKey: named } = locateJournal(endpoint, explicit));
    } else if (explicit !== undefined) path = refuseDirectory(explicit);
    else
      throw new PopsyncError('usage', 'journal forget-folder needs --journal PATH or the source account (--pop URL)');

    const snap = Journal.inspect(path);
    if (snap === null || snap.source === null)
      throw missingJournal('journal forget-folder', path, explicit === undefined ? named : null);
    const source = snap.source;
    // Named as a run names it: the source as given with --pop, the journal key without one.
    const name = given ?? source;
    if (named !== null && !sameMailbox(named, source)) {
      throw new PopsyncError('journal-bound', `journal ${path} belongs to source account ${source}, not ${name}`, {
        account: name,
      });
    }
    const result = await withLockedJournal(
      path,
      source,
      {
        command: 'journal forget-folder',
        name,
        logger: createLogger({ verbose: false, quiet: false }),
        waitSeconds: typeof opts.wait === 'number' ? opts.wait : 0,
      },
      async (j) => {
        const known = j.folderUidValidity(source, folder) !== null;
        const r = j.forgetFolder(source, folder);
        if (!known && r.forgotten === 0 && r.kept === 0) {
          throw new PopsyncError('usage', `journal ${path} records nothing about destination folder "${folder}"`, {
            account: name,
            folder,
            hint:
              'give the folder name exactly as popsync used it (see the run report); names are ' +
              'case-sensitive except INBOX',
          });
        }
        return r;
      },
    );
    if (opts.json === true) {
      process.stdout.write(JSON.stringify({ journal: path, account: source, folder, ...result }) + '\n');
      return;
    }
    process.stdout.write(
      `${printable(name)}: forgot destination folder "${printable(folder)}" and ${result.forgotten} ` +
        `message(s) recorded for it` +
        (result.kept > 0 ? ` (${result.kept} deleted from the source stay recorded)` : '') +
        `.\nThe next run searches "${printable(folder)}" for their copies, adopts the ones it recognises and ` +
        `copies only what is missing.\n`,
    );
  });
}
