/**
 * The crash matrix (crash-matrix.ts) against a Dovecot without UIDPLUS and LITERAL+ but with
 * MULTIAPPEND: popsync sends each batch as MULTIAPPEND commands on its own connection, every
 * literal waiting for the server's '+', and never hears a UID: after each batch it learns the
 * copies' UIDs by content, and after a crash only content tells its copies apart, identical
 * source messages included.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { labArgs } from '../support/lab-fixture.js';
import { runCli } from '../support/cli.js';
import { destinationMessages, digests, sourceMessages } from '../support/mailboxes.js';
import { defineCrashMatrix, mixWithDuplicates } from './crash-matrix.js';

const m = defineCrashMatrix({
  name: 'MULTIAPPEND, synchronising literals, no UIDPLUS',
  labOptions: { imapWithout: ['UIDPLUS', 'LITERAL+'] },
  appendPath: 'multiappend-sync',
  randomMessages: 120,
  randomKills: 8,
});

describe('MULTIAPPEND without UIDPLUS', () => {
  it('sends a batch of 20 in one APPEND command and learns each UID by content', async () => {
    const lab = m.lab();
    const pop = lab.newUser('src');
    const imap = lab.newUser('dst');
    await lab.seedPop3(pop, mixWithDuplicates(20, 5));
    const expected = digests(await sourceMessages(lab, pop));
    const before = lab.imapWire()!;
    const journal = join(m.dir(), `${pop}.sqlite`);
    const r = await runCli(labArgs('migrate', lab, pop, imap, journal, ['--no-progress', '--json']), {
      env: { PW: lab.password },
    });
    expect(r.code, r.stderr).toBe(0);
    const after = lab.imapWire()!;
    expect(after.appends - before.appends, 'APPEND commands').toBe(1);
    expect(after.nonSyncLiterals - before.nonSyncLiterals).toBe(0);
    expect(digests((await destinationMessages(lab, imap)).map((d) => d.body))).toEqual(expected);
    // Every copy's UID was learnt: verify finds each one where the journal says.
    const v = await runCli(
      [
        'verify',
        '--pop',
        `pop3://${pop}@127.0.0.1:${lab.pop3.port}`,
        '--imap',
        `imap://${imap}@127.0.0.1:${lab.imap.port}`,
        '--imap-tls',
        'none',
        '--imap-password-env',
        'PW',
        '--journal',
        journal,
        '--json',
      ],
      { env: { PW: lab.password } },
    );
    expect(v.code, v.stdout + v.stderr).toBe(0);
  });
});
