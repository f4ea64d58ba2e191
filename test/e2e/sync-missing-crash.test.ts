/**
 * The way back for a lost copy (done -> failed, then copied again) under SIGKILL at every
 * journal step. The destination (scripted) answers OK to the first APPEND of one message
 * without storing it; `sync --delete` finds that copy missing before deleting, keeps the
 * original and copies it again on the next run. Killed before or after any step of the first
 * run, then resumed until done: every message on at least one side at every moment, and in
 * the end each in the destination exactly once and none left on the source.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { Lab } from '../../lab/dovecot.js';
import { useLab } from '../support/lab-fixture.js';
import { runCli } from '../support/cli.js';
import { FAKE_PASSWORD, FAKE_USER, startFakeImap, type FakeImap } from '../support/fake-imap.js';
import { digests, sourceMessages } from '../support/mailboxes.js';
import { mail, syncArgs } from './sync-helpers.js';

let lab: Lab;
let dir: string;
let fake: FakeImap;

useLab('missing-crash', {}, (l, d) => {
  lab = l;
  dir = d;
});
afterAll(async () => {
  await fake?.close();
});

describe('a copy lost by the server, with a kill at every journal step', () => {
  it('is copied again exactly once, and no message is ever on neither side', async () => {
    // Per destination folder: the first APPEND of the message tagged "lost" is acknowledged, not stored.
    const lostIn = new Set<string>();
    fake = await startFakeImap({
      onAppend: (a) => {
        if (!a.body.includes('lost-one') || lostIn.has(a.mailbox)) return undefined;
        lostIn.add(a.mailbox);
        return { kind: 'ok', store: false };
      },
    });
    const messages = ['first', 'lost-one', 'last'].map((t) => mail(`${t}`));
    const env = { PW: lab.password, IPW: FAKE_PASSWORD };
    const args = (pop: string, folder: string) => [
      ...syncArgs(lab, pop, 'unused', join(dir, `${pop}.sqlite`), [
        '--delete',
        '--folder',
        folder,
        '--no-progress',
      ]).map((a) =>
        a.replace(`imap://unused@127.0.0.1:${lab.imap.port}`, `imap://${FAKE_USER}@127.0.0.1:${fake.port}`),
      ),
      '--imap-password-env',
      'IPW',
    ];
    const stored = (folder: string) => (fake.mailboxes.get(folder)?.messages ?? []).map((m) => m.body);

    // The clean run, counted: folder, begin, the batch's 3 outcomes (one step), the missing copy,
    // deleting, deleted.
    const pop0 = lab.newUser('src');
    await lab.seedPop3(pop0, messages);
    const stepsFile = join(dir, 'steps');
    const clean = await runCli(args(pop0, 'clean'), { env, hooks: { stepsFile } });
    expect(clean.code, clean.stderr).toBe(1);
    expect(clean.stdout).toMatch(/copy missing/);
    const steps = Number(readFileSync(stepsFile, 'utf8').trim());
    expect(steps).toBe(6);

    for (let k = 1; k <= steps; k++) {
      for (const when of ['before', 'after'] as const) {
        const label = `step ${k} ${when}`;
        const pop = lab.newUser('src');
        const folder = `k${k}-${when}`;
        await lab.seedPop3(pop, messages);
        const killed = await runCli(args(pop, folder), { env, hooks: { killAt: `${k}:${when}` } });
        expect(killed.signal, `${label}: ${killed.stderr}`).toBe('SIGKILL');

        let code: number | null = null;
        for (let run = 0; run < 3 && code !== 0; run++) {
          // Nothing lost: every message is on the source or really stored in the destination.
          const both = digests([...(await sourceMessages(lab, pop)), ...stored(folder)]);
          for (const d of digests(messages)) expect(both, `${label}, before resume ${run + 1}`).toContain(d);
          const r = await runCli(args(pop, folder), { env });
          expect([0, 1], `${label}, resume ${run + 1}: ${r.stderr}`).toContain(r.code);
          code = r.code;
        }
        expect(code, label).toBe(0);
        expect(digests(stored(folder)), label).toEqual(digests(messages));
        expect(await sourceMessages(lab, pop), label).toHaveLength(0);
      }
    }
    // 16 kill points and up to 48 resumes: bounded by work, not by this machine's load.
  }, 300_000);
});
