/**
 * The crash matrix (crash-matrix.ts) against Dovecot as it is: popsync sends each batch as
 * MULTIAPPEND commands with LITERAL+ literals on its own connection and learns every copy's
 * UID from APPENDUID's UID set. The step corpus's batches of 3 and 2 are each one MULTIAPPEND,
 * so a kill between the confirms of one leaves stored copies 'appending'.
 */
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { realisticMix } from '../../lab/corpus.js';
import { labArgs } from '../support/lab-fixture.js';
import { runCli } from '../support/cli.js';
import { startCuttingProxy, type CuttingProxy } from '../support/cutting-proxy.js';
import { destinationMessages, digests, sourceMessages } from '../support/mailboxes.js';
import { defineCrashMatrix } from './crash-matrix.js';

const m = defineCrashMatrix({
  name: 'MULTIAPPEND, LITERAL+',
  labOptions: {},
  appendPath: 'multiappend',
  randomMessages: 400,
  randomKills: 25,
});

/**
 * A MULTIAPPEND is atomic (RFC 3502): the link cut in the middle of one leaves none of its
 * messages stored, and cut after Dovecot stored them all but before its OK arrives leaves all.
 * Either way the run reconnects, reconciles by content and ends with each message once: in the
 * first case nothing is found and all are copied again, in the second all are found.
 */

const proxies: CuttingProxy[] = [];
afterAll(async () => {
  await Promise.all(proxies.map((p) => p.close()));
});

describe('a dropped link during a MULTIAPPEND', () => {
  /** Three messages of about 300 KB: one MULTIAPPEND that spans many TCP chunks. */
  const corpus = (seed: number): Buffer[] =>
    realisticMix(3, seed).map((m, i) => Buffer.concat([m, Buffer.from(`${`pad ${i} `.repeat(40)}\r\n`.repeat(800))]));

  async function viaProxy(rules: Parameters<typeof startCuttingProxy>[1], seed: number) {
    const lab = m.lab();
    const pop = lab.newUser('src');
    const imap = lab.newUser('dst');
    await lab.seedPop3(pop, corpus(seed));
    const expected = digests(await sourceMessages(lab, pop));
    const proxy = await startCuttingProxy(lab.imap.port, rules);
    proxies.push(proxy);
    const args = labArgs('migrate', lab, pop, imap, join(m.dir(), `${pop}.sqlite`), ['--no-progress', '--json']);
    args[args.indexOf(`imap://${imap}@127.0.0.1:${lab.imap.port}`)] = `imap://${imap}@127.0.0.1:${proxy.port}`;
    const r = await runCli(args, { env: { PW: lab.password } });
    expect(proxy.cuts(), 'the link was cut once').toBe(1);
    expect(r.code, r.stderr).toBe(0);
    const dest = await destinationMessages(lab, imap);
    expect(digests(dest.map((d) => d.body)), 'each message once').toEqual(expected);
    return JSON.parse(r.stdout) as { copied: number; reconciled: number; reconnects: number };
  }

  it('cut mid-command: none of the batch was stored, all are copied again', async () => {
    let appendBytes = -1;
    let cut = false;
    const summary = await viaProxy(
      {
        cutClientData: ({ chunk }) => {
          if (cut) return false;
          if (appendBytes < 0 && / APPEND /.test(chunk.toString('latin1'))) appendBytes = 0;
          if (appendBytes < 0) return false;
          appendBytes += chunk.length;
          // Past the first message (~300 KB) and short of the third: inside the command.
          cut = appendBytes > 450_000;
          return cut;
        },
      },
      61,
    );
    expect(summary).toMatchObject({ reconnects: 1, reconciled: 0, copied: 3 });
  });

  it('cut after Dovecot stored the batch, before its OK: all are found, none copied again', async () => {
    let cut = false;
    const summary = await viaProxy(
      {
        cutServerData: ({ chunk }) => {
          if (cut || !/^P\d+ OK \[APPENDUID /m.test(chunk.toString('latin1'))) return false;
          cut = true;
          return true;
        },
      },
      62,
    );
    expect(summary).toMatchObject({ reconnects: 1, reconciled: 3 });
  });
});
