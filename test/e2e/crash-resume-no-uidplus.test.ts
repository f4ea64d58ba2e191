/**
 * The crash matrix (crash-matrix.ts) against a Dovecot without UIDPLUS and LITERAL+: popsync
 * appends through imapflow and never learns a copy's UID, so after a crash only content tells
 * its copies apart - and identical source messages have identical copies.
 *
 * Plus the hole of issue 12 part 3, on its own: identical messages a and b for one folder; a
 * is copied, b's intent is journalled, and then the run dies or loses its IMAP link before b
 * is sent. A resume that lets a's UID-less copy settle b marks b done and never copies it.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { realisticMix } from '../../lab/corpus.js';
import { labArgs } from '../support/lab-fixture.js';
import { runCli } from '../support/cli.js';
import { startCuttingProxy, type CuttingProxy } from '../support/cutting-proxy.js';
import { destinationMessages, digests, sourceMessages } from '../support/mailboxes.js';
import { defineCrashMatrix } from './crash-matrix.js';

const m = defineCrashMatrix({
  name: 'imapflow APPEND, no UIDPLUS',
  labOptions: { imapWithout: ['UIDPLUS', 'LITERAL+', 'MULTIAPPEND'] },
  appendPath: 'imapflow',
  randomMessages: 120,
  randomKills: 8,
});

const proxies: CuttingProxy[] = [];
afterAll(async () => {
  await Promise.all(proxies.map((p) => p.close()));
});

/** A source of two identical messages (after a distinct one), and its digests. */
async function identicalPair(): Promise<{ pop: string; imap: string; expected: string[] }> {
  const lab = m.lab();
  const [x, a] = realisticMix(2, 41);
  const pop = lab.newUser('src');
  await lab.seedPop3(pop, [x!, a!, a!]);
  return { pop, imap: lab.newUser('dst'), expected: digests(await sourceMessages(lab, pop)) };
}

describe('identical messages without UIDPLUS', () => {
  it('copies both when the IMAP link drops after the first is stored and before the second is sent', async () => {
    const lab = m.lab();
    const { pop, imap, expected } = await identicalPair();
    let appends = 0;
    // imapflow sends one APPEND at a time: cutting the chunk that starts the 3rd means the
    // first two (x and a) are stored and confirmed and b's intent is journalled, unsent.
    const proxy = await startCuttingProxy(lab.imap.port, {
      cutClientData: ({ connection, chunk }) => {
        if (connection > 1 || !/^\S+ APPEND /m.test(chunk.toString('latin1'))) return false;
        appends++;
        return appends === 3;
      },
    });
    proxies.push(proxy);
    const args = labArgs('migrate', lab, pop, imap, join(m.dir(), `${pop}.sqlite`), ['--no-progress', '--json']);
    args[args.indexOf(`imap://${imap}@127.0.0.1:${lab.imap.port}`)] = `imap://${imap}@127.0.0.1:${proxy.port}`;
    const r = await runCli(args, { env: { PW: lab.password } });
    expect(proxy.cuts(), 'the link was cut once').toBe(1);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ reconnects: 1, failed: [] });
    const dest = await destinationMessages(lab, imap);
    expect(digests(dest.map((d) => d.body)), 'both identical messages arrive, once each').toEqual(expected);
  });

  it(
    'copies both when the run is killed after the second identical message is journalled and before it ' + 'is sent',
    async () => {
      const lab = m.lab();
      const dir = m.dir();
      const probe = await identicalPair();
      const stepsFile = join(dir, 'pair-steps');
      const extra = ['--no-progress', '--json', '--batch-messages', '1'];
      const clean = await runCli(
        labArgs('migrate', lab, probe.pop, probe.imap, join(dir, `${probe.pop}.sqlite`), extra),
        {
          env: { PW: lab.password },
          hooks: { stepsFile },
        },
      );
      expect(clean.code, clean.stderr).toBe(0);
      const steps = Number(readFileSync(stepsFile, 'utf8').trim());
      // The kill point is found, not assumed: the step after which the journal holds x and a
      // done and b 'appending', and the destination holds only x and a (b unsent).
      for (let k = steps - 1; k >= 1; k--) {
        const { pop, imap, expected } = await identicalPair();
        const journal = join(dir, `${pop}.sqlite`);
        const killed = await runCli(labArgs('migrate', lab, pop, imap, journal, extra), {
          env: { PW: lab.password },
          hooks: { killAt: `${k}:after` },
        });
        expect(killed.signal, `step ${k}: ${killed.stderr}`).toBe('SIGKILL');
        const status = await runCli(['status', '--journal', journal, '--json']);
        const account = JSON.parse(status.stdout).accounts[0];
        if (account?.copied !== 2 || account?.pending?.appending !== 1) continue;
        expect(await destinationMessages(lab, imap), 'b was not sent before the kill').toHaveLength(2);
        const resumed = await runCli(labArgs('migrate', lab, pop, imap, journal, extra), { env: { PW: lab.password } });
        expect(resumed.code, `resume after ${k}:after: ${resumed.stderr}`).toBe(0);
        const dest = await destinationMessages(lab, imap);
        expect(digests(dest.map((d) => d.body)), `after a kill just after journal step ${k} of ${steps}`).toEqual(
          expected,
        );
        return;
      }
      expect.fail(`no journal step of ${steps} left x and a done and b appending`);
    },
  );
});
