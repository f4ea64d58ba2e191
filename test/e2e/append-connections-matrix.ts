/**
 * What the tests of several APPEND connections (imap/append-pool.ts) share: a corpus that a
 * config's rules route into three folders by subject, the digests each folder must end with,
 * and the crash tests of crash-matrix.ts with two APPEND connections: a SIGKILL just before and
 * just after every journal step of a small run, then random SIGKILLs at bytes of a larger one;
 * after a resume every message is in its folder exactly once, and one more run changes nothing.
 * Each append-connections*.test.ts runs them against one Dovecot (with and without UIDPLUS: a
 * copy without a UID is found by content from its folder's floor, which relies on the folder's
 * batches staying in order on one connection).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { realisticMix } from '../../lab/corpus.js';
import type { Lab, StartOptions } from '../../lab/dovecot.js';
import { runCli, startCli } from '../support/cli.js';
import { killAtRandomBytes, startKillRelay } from '../support/kill-relay.js';
import { useLab } from '../support/lab-fixture.js';
import { destinationMessages, digests } from '../support/mailboxes.js';

export const FOLDERS = ['Alpha', 'Beta', 'INBOX'] as const;
const TAGS = ['alpha', 'beta', 'other'] as const;

/** Message i goes to FOLDERS[i % 3] by its subject (routingConfig's rules), or all to INBOX. */
export function routedCorpus(count: number, seed: number, oneFolder = false): Buffer[] {
  return realisticMix(count, seed).map((m, i) =>
    Buffer.concat([Buffer.from(`Subject: route-${oneFolder ? 'other' : TAGS[i % 3]} ${i}\r\n`), m]),
  );
}

/** The digests each folder that gets mail must hold. */
export function expectedByFolder(messages: Buffer[]): Record<string, string[]> {
  const out: Record<string, Buffer[]> = {};
  for (const m of messages) {
    const f = FOLDERS[TAGS.indexOf(/route-(\w+)/.exec(m.toString('latin1'))![1] as (typeof TAGS)[number])]!;
    out[f] = [...(out[f] ?? []), m];
  }
  return Object.fromEntries(Object.entries(out).map(([f, ms]) => [f, digests(ms)]));
}

/** What the folders of `expected` hold (a folder popsync should not have created is not read). */
export async function storedByFolder(
  lab: Lab,
  imap: string,
  expected: Record<string, string[]>,
): Promise<Record<string, string[]>> {
  const out: Record<string, string[]> = {};
  for (const f of Object.keys(expected)) out[f] = digests((await destinationMessages(lab, imap, f)).map((m) => m.body));
  return out;
}

/** A config for one account whose rules route routedCorpus's messages; `extra` lines go under it. */
export function routingConfig(
  dir: string,
  pop: string,
  imap: string,
  ports: { pop3: number; imap: number },
  extra: string[] = [],
): string {
  const file = join(dir, `${pop}.yml`);
  writeFileSync(
    file,
    [
      'accounts:',
      `  - source: { url: 'pop3://${pop}@127.0.0.1:${ports.pop3}', tls: none, password_env: PW }`,
      `    destination: { url: 'imap://${imap}@127.0.0.1:${ports.imap}', tls: none, password_env: PW }`,
      `    journal: ${pop}.sqlite`,
      '    rules:',
      '      - match: { subject: "route-alpha *" }',
      '        folder: Alpha',
      '      - match: { subject: "route-beta *" }',
      '        folder: Beta',
      ...extra,
      '',
    ].join('\n'),
  );
  return file;
}

export interface FolderCrashVariant {
  name: string;
  labOptions: StartOptions;
  randomMessages: number;
  randomKills: number;
  /**
   * Which side of each step to kill on (both by default). 'before' a step is the window that
   * matters most: the APPENDs it records were sent, nothing of them journaled yet.
   */
  killSides?: ReadonlyArray<'before' | 'after'>;
}

export function defineFolderCrashTests(v: FolderCrashVariant): { lab(): Lab; dir(): string } {
  let lab: Lab;
  let dir: string;
  useLab('append-conns', v.labOptions, (l, d) => {
    lab = l;
    dir = d;
  });
  const migrate = (pop: string, imap: string, ports: { pop3: number; imap: number }, batch: number) => [
    'migrate',
    '--config',
    routingConfig(dir, pop, imap, ports, [`    batch_messages: ${batch}`]),
    '--append-connections',
    '2',
    '--no-progress',
    '--json',
  ];
  const direct = () => ({ pop3: lab.pop3.port, imap: lab.imap.port });

  describe(`two APPEND connections, killed and resumed (${v.name})`, () => {
    it('ends with every message once in its folder for a kill at every journal step', async () => {
      // Batches of 3 that each span two or three folders; identical messages within a batch
      // and across batches, in one folder (what a match by content can get wrong).
      const r = routedCorpus(6, 11);
      const messages = [r[0]!, r[1]!, r[1]!, r[2]!, r[3]!, r[1]!, r[3]!, r[4]!, r[5]!];
      const expected = expectedByFolder(messages);
      const pop0 = lab.newUser('src');
      await lab.seedPop3(pop0, messages);
      const stepsFile = join(dir, 'steps');
      const logFile = join(dir, 'clean.log');
      const clean = await runCli([...migrate(pop0, lab.newUser('dst'), direct(), 3), '--log-file', logFile], {
        env: { PW: lab.password },
        hooks: { stepsFile },
      });
      expect(clean.code, clean.stderr).toBe(0);
      expect(readFileSync(logFile, 'utf8'), 'a clean run uses 2 APPEND connections').toMatch(
        /opened a further IMAP APPEND connection/,
      );
      const steps = Number(readFileSync(stepsFile, 'utf8').trim());
      expect(steps).toBeGreaterThanOrEqual(6);
      for (let k = 1; k <= steps; k++) {
        for (const when of v.killSides ?? (['before', 'after'] as const)) {
          const pop = lab.newUser('src');
          const imap = lab.newUser('dst');
          await lab.seedPop3(pop, messages);
          const killed = await runCli(migrate(pop, imap, direct(), 3), {
            env: { PW: lab.password },
            hooks: { killAt: `${k}:${when}` },
          });
          expect(killed.signal, `step ${k} ${when}: ${killed.stderr}`).toBe('SIGKILL');
          const resumed = await runCli(migrate(pop, imap, direct(), 3), { env: { PW: lab.password } });
          expect(resumed.code, `resume after ${k}:${when}: ${resumed.stderr}`).toBe(0);
          expect(await storedByFolder(lab, imap, expected), `after a kill at ${k}:${when}`).toEqual(expected);
          const again = await runCli(migrate(pop, imap, direct(), 3), { env: { PW: lab.password } });
          expect(again.code, again.stderr).toBe(0);
          expect(JSON.parse(again.stdout)).toMatchObject({ copied: 0, reconciled: 0 });
        }
      }
      const points = steps * (v.killSides ?? ['before', 'after']).length;
      console.log(`folder crash test (${v.name}): ${steps} journal steps, ${points} kill points`);
    }, 600_000);

    it('survives SIGKILLs at random bytes of a run; the resume ends exactly once', async () => {
      const messages = routedCorpus(v.randomMessages, 31);
      const relay = await startKillRelay({ pop: lab.pop3.port, imap: lab.imap.port });
      const viaRelay = () => ({ pop3: relay.popPort, imap: relay.imapPort });
      try {
        const pop0 = lab.newUser('src');
        await lab.seedPop3(pop0, messages);
        relay.arm(null, () => {});
        const clean = await runCli(migrate(pop0, lab.newUser('dst'), viaRelay(), 5), { env: { PW: lab.password } });
        expect(clean.code, clean.stderr).toBe(0);
        const span = relay.carried();

        const pop = lab.newUser('src');
        const imap = lab.newUser('dst');
        await lab.seedPop3(pop, messages);
        const { kills, finished } = await killAtRandomBytes(relay, span, v.randomKills, 4242, () =>
          startCli(migrate(pop, imap, viaRelay(), 5), { env: { PW: lab.password } }),
        );
        if (finished) expect(finished.code, finished.stderr).toBe(0);
        console.log(`random kills (${v.name}): ${kills} SIGKILLs at random bytes of ${span}`);
        expect(kills).toBeGreaterThan(0);
        const final = await runCli(migrate(pop, imap, viaRelay(), 5), { env: { PW: lab.password } });
        expect(final.code, final.stderr).toBe(0);
        const expected = expectedByFolder(messages);
        expect(await storedByFolder(lab, imap, expected), 'every message once, in its folder').toEqual(expected);
        const again = await runCli(migrate(pop, imap, viaRelay(), 5), { env: { PW: lab.password } });
        expect(again.code, again.stderr).toBe(0);
        expect(JSON.parse(again.stdout)).toMatchObject({ copied: 0, reconciled: 0 });
      } finally {
        await relay.close();
      }
    }, 300_000);
  });
  return { lab: () => lab, dir: () => dir };
}
