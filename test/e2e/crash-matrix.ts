/**
 * isync's crash test, against real Dovecot, for one kind of server: a clean run is counted in
 * journal steps; then for every step k the run is SIGKILLed just before and just after step k
 * commits (the journal's test-only hook), resumed, and the destination must hold every source
 * message exactly once, byte for byte; one more run must change nothing. Then random SIGKILLs
 * over a larger mailbox, each at a random byte of the run's traffic (test/support/kill-relay.ts),
 * so a kill lands inside the copy however fast the machine is.
 *
 * Each crash-resume*.test.ts file runs this against one Dovecot: as it is (popsync's pipelined
 * LITERAL+/UIDPLUS APPEND path), without LITERAL+ (imapflow's one-at-a-time path, UIDs still
 * known) and without UIDPLUS and LITERAL+ (no UID for any copy). The corpora hold several
 * exact duplicates bound for the same folder: identical source messages are legal, and each
 * must arrive, which is what a reconciliation that matches by content can get wrong.
 *
 * Separate files so vitest runs them side by side; the kill points are every step of a small
 * corpus (a b b c b: the identical-pair hole needs only two b's in one batch and one in the
 * next) plus a handful of random kills on a larger one, to keep the suite's time sane.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { realisticMix } from '../../lab/corpus.js';
import type { Lab, StartOptions } from '../../lab/dovecot.js';
import { labArgs, useLab } from '../support/lab-fixture.js';
import { runCli, startCli } from '../support/cli.js';
import { killAtRandomBytes, startKillRelay } from '../support/kill-relay.js';
import { destinationMessages, digests, sourceMessages } from '../support/mailboxes.js';

export interface CrashVariant {
  /** Shown in test names. */
  name: string;
  labOptions: StartOptions;
  /** The APPEND path popsync must take against this server (checked in its debug log). */
  appendPath: keyof typeof PATH_LOG;
  /**
   * Which side of each step to kill on. Both by default; a variant whose reconciliation is
   * proven elsewhere with both (same identity rules, other APPEND path) may take one, to keep
   * the suite's time.
   */
  killSides?: ReadonlyArray<'before' | 'after'>;
  /** Messages in the random-kill mailbox, and how many kills to aim for (at least 3). */
  randomMessages: number;
  randomKills: number;
}

/** The debug-log line each path writes when a sink opens (src/imap/pipeline.ts, writer.ts). */
const PATH_LOG = {
  /** MULTIAPPEND commands with LITERAL+ literals. */
  multiappend: /IMAP APPEND connection ready \(pipelined LITERAL\+, MULTIAPPEND\)/,
  /** MULTIAPPEND commands whose literals each wait for the server's '+'. */
  'multiappend-sync': /IMAP APPEND connection ready \(pipelined synchronising literals, MULTIAPPEND\)/,
  /** One APPEND per message, pipelined with LITERAL+. */
  pipelined: /IMAP APPEND connection ready \(pipelined LITERAL\+\)/,
  imapflow: /IMAP APPEND goes through imapflow, one at a time/,
};

/** a b b c b d d: three copies of b (two in one batch of 3, one in the next), a pair of d across batches. */
export function duplicateCorpus(seed: number): Buffer[] {
  const [a, b, c, d] = realisticMix(4, seed);
  return [a!, b!, b!, c!, b!, d!, d!];
}

/** The step matrix's corpus: a b b c b, three copies of b, two in one batch of 3 and one in the next. */
function stepCorpus(seed: number): Buffer[] {
  const [a, b, c] = realisticMix(3, seed);
  return [a!, b!, b!, c!, b!];
}

/** A realistic mix where every 7th message repeats the one before it, some more than once. */
export function mixWithDuplicates(count: number, seed: number): Buffer[] {
  const mix = realisticMix(count, seed);
  return mix.map((m, i) => (i % 7 === 6 ? mix[i - 1]! : i % 19 === 18 ? mix[i - 2]! : m));
}

/** The file's lab and temp dir, for further tests in the same file (valid inside tests). */
export interface MatrixLab {
  lab(): Lab;
  dir(): string;
}

export function defineCrashMatrix(v: CrashVariant): MatrixLab {
  let lab: Lab;
  let dir: string;
  useLab('crash', v.labOptions, (l, d) => {
    lab = l;
    dir = d;
  });
  const migrateArgs = (pop: string, imap: string, journal: string, extra: string[] = []): string[] =>
    labArgs('migrate', lab, pop, imap, journal, ['--no-progress', '--json', ...extra]);

  describe(`kill at every journal step, then resume (${v.name})`, () => {
    it('ends with every source message exactly once, identical ones included, for every kill point', async () => {
      const messages = stepCorpus(11);
      const extra = ['--batch-messages', '3'];

      const pop0 = lab.newUser('src');
      await lab.seedPop3(pop0, messages);
      const expected = digests(await sourceMessages(lab, pop0));
      const stepsFile = join(dir, 'steps');
      const logFile = join(dir, 'clean.log');
      const clean = await runCli(
        migrateArgs(pop0, lab.newUser('dst'), join(dir, 'clean.sqlite'), [...extra, '--log-file', logFile]),
        {
          env: { PW: lab.password },
          hooks: { stepsFile },
        },
      );
      expect(clean.code, clean.stderr).toBe(0);
      expect(readFileSync(logFile, 'utf8'), `${v.name}: APPEND path`).toMatch(PATH_LOG[v.appendPath]);
      const steps = Number(readFileSync(stepsFile, 'utf8').trim());
      // Per batch, its intent and its outcomes (one step for all of a batch's), at least.
      expect(steps).toBeGreaterThanOrEqual(4);

      let killPoints = 0;
      for (let k = 1; k <= steps; k++) {
        for (const when of v.killSides ?? (['before', 'after'] as const)) {
          const pop = lab.newUser('src');
          const imap = lab.newUser('dst');
          await lab.seedPop3(pop, messages);
          const journal = join(dir, `${pop}.sqlite`);
          const killed = await runCli(migrateArgs(pop, imap, journal, extra), {
            env: { PW: lab.password },
            hooks: { killAt: `${k}:${when}` },
          });
          expect(killed.signal, `step ${k} ${when}: ${killed.stderr}`).toBe('SIGKILL');
          killPoints++;

          const resumed = await runCli(migrateArgs(pop, imap, journal, extra), { env: { PW: lab.password } });
          expect(resumed.code, `resume after ${k}:${when}: ${resumed.stderr}`).toBe(0);
          const after = await destinationMessages(lab, imap);
          expect(digests(after.map((m) => m.body)), `${v.name}: destination after kill at ${k}:${when}`).toEqual(
            expected,
          );

          const again = await runCli(migrateArgs(pop, imap, journal, extra), { env: { PW: lab.password } });
          expect(again.code, again.stderr).toBe(0);
          expect(JSON.parse(again.stdout)).toMatchObject({ copied: 0, reconciled: 0 });
          expect(await destinationMessages(lab, imap)).toHaveLength(expected.length);
        }
      }
      if (v.appendPath === 'imapflow' || v.appendPath === 'multiappend-sync')
        expect(lab.imapWire()?.nonSyncLiterals ?? 0).toBe(0);
      console.log(`crash test (${v.name}): ${steps} journal steps, ${killPoints} kill points covered`);
    }, 600_000);

    it('survives SIGKILL at random instants', async () => {
      const messages = mixWithDuplicates(v.randomMessages, 23);
      const extra = ['--batch-messages', '5'];
      const relay = await startKillRelay({ pop: lab.pop3.port, imap: lab.imap.port });
      const viaRelay = (pop: string, imap: string, journal: string): string[] =>
        migrateArgs(pop, imap, journal, extra).map((a) =>
          a === `pop3://${pop}@127.0.0.1:${lab.pop3.port}`
            ? `pop3://${pop}@127.0.0.1:${relay.popPort}`
            : a === `imap://${imap}@127.0.0.1:${lab.imap.port}`
              ? `imap://${imap}@127.0.0.1:${relay.imapPort}`
              : a,
        );
      try {
        // The bytes a whole run carries, both servers, both directions: the span the kills are drawn from.
        const pop0 = lab.newUser('src');
        await lab.seedPop3(pop0, messages);
        relay.arm(null, () => {});
        const clean = await runCli(viaRelay(pop0, lab.newUser('dst'), join(dir, `${pop0}.sqlite`)), {
          env: { PW: lab.password },
        });
        expect(clean.code, clean.stderr).toBe(0);
        const span = relay.carried();

        const pop = lab.newUser('src');
        const imap = lab.newUser('dst');
        await lab.seedPop3(pop, messages);
        const expected = digests(await sourceMessages(lab, pop));
        const journal = join(dir, `${pop}.sqlite`);
        const { kills, finished } = await killAtRandomBytes(relay, span, v.randomKills, 12345, () =>
          startCli(viaRelay(pop, imap, journal), { env: { PW: lab.password } }),
        );
        if (finished) expect(finished.code, finished.stderr).toBe(0);
        console.log(`random kills (${v.name}): ${kills} SIGKILLs at random bytes of ${span} before a run completed`);
        expect(kills).toBeGreaterThan(0);
        const final = await runCli(migrateArgs(pop, imap, journal), { env: { PW: lab.password } });
        expect(final.code, final.stderr).toBe(0);
        const dest = await destinationMessages(lab, imap);
        expect(digests(dest.map((m) => m.body)), `${v.name}: destination after random kills`).toEqual(expected);
      } finally {
        await relay.close();
      }
    }, 300_000);
  });
  return { lab: () => lab, dir: () => dir };
}
