/**
 * `sync --delete` looks at every copy before it deletes the original: a server that answered
 * OK to APPEND without storing (scripted), a copy removed behind popsync's back and a copy whose
 * stored bytes were changed (both on the real Dovecot, by editing its Maildir). A missing copy
 * is copied again, a changed one keeps its original, and the run exits 1 saying so. And a
 * SIGTERM that arrives while the last batch is appended stops the run before it deletes.
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { Lab } from '../../lab/dovecot.js';
import { loopbackArgs, useLab } from '../support/lab-fixture.js';
import { runCli, startCli } from '../support/cli.js';
import { FAKE_PASSWORD, FAKE_USER, startFakeImap } from '../support/fake-imap.js';
import { startFakePop3 } from '../support/fake-pop3.js';
import { hostileMessage } from '../support/hostile-mail.js';
import { destinationMessages, digests, sourceMessages } from '../support/mailboxes.js';
import { alterStored, storedFile } from '../support/stored-copies.js';
import { mail, syncArgs as base } from './sync-helpers.js';

let lab: Lab;
let dir: string;
const fakes: Array<{ close(): Promise<void> }> = [];

useLab('delete-checks', {}, (l, d) => {
  lab = l;
  dir = d;
});
afterAll(async () => {
  await Promise.all(fakes.map((f) => f.close()));
});

const syncArgs = (pop: string, imap: string, extra: string[] = []) =>
  base(lab, pop, imap, join(dir, `${pop}.sqlite`), ['--no-progress', ...extra]);

describe('sync --delete checks every copy before deleting its original', () => {
  it(
    'a server that answers OK to APPEND without storing: nothing is deleted without a copy, the lost copies ' +
      'are made again (exit 1, then 0)',
    async () => {
      let broken = true;
      const fake = await startFakeImap({
        onAppend: (a) => (broken && a.n % 2 === 0 ? { kind: 'ok', store: false } : undefined),
      });
      fakes.push(fake);
      const pop = lab.newUser('src');
      const sent = [1, 2, 3, 4, 5, 6].map((i) => mail(`ok-unstored-${i}`));
      await lab.seedPop3(pop, sent);
      const args = (extra: string[]) => [
        ...syncArgs(pop, 'unused', extra).map((a) =>
          a.replace(`imap://unused@127.0.0.1:${lab.imap.port}`, `imap://${FAKE_USER}@127.0.0.1:${fake.port}`),
        ),
        '--imap-password-env',
        'IPW',
      ];

      const first = await runCli(args(['--delete', '--json']), { env: { PW: lab.password, IPW: FAKE_PASSWORD } });
      expect(first.code, first.stderr).toBe(1);
      const r1 = JSON.parse(first.stdout);
      expect(r1).toMatchObject({ copied: 6, deleted: 3 });
      expect(r1.copyProblems).toHaveLength(3);
      for (const p of r1.copyProblems)
        expect(p).toMatchObject({
          problem: 'missing',
          folder: 'INBOX',
          detail: expect.stringMatching(/no longer in the destination.*copies it again/),
        });
      // The three whose copy exists are gone from the source; the three without one are not.
      expect((await sourceMessages(lab, pop)).map(String).sort()).toEqual(
        [sent[1], sent[3], sent[5]].map(String).sort(),
      );
      const status = JSON.parse((await runCli(['status', '--journal', join(dir, `${pop}.sqlite`), '--json'])).stdout);
      expect(status.accounts[0].failed.map((f: { error: string }) => f.error)).toEqual([
        expect.stringMatching(/copy missing/),
        expect.stringMatching(/copy missing/),
        expect.stringMatching(/copy missing/),
      ]);

      broken = false;
      const second = await runCli(args(['--delete', '--json']), { env: { PW: lab.password, IPW: FAKE_PASSWORD } });
      expect(second.code, second.stderr).toBe(0);
      expect(JSON.parse(second.stdout)).toMatchObject({ copied: 3, deleted: 3, copyProblems: [] });
      expect(await sourceMessages(lab, pop)).toHaveLength(0);
      expect(digests(fake.mailboxes.get('INBOX')!.messages.map((m) => m.body))).toEqual(digests(sent));
    },
  );

  it("Dovecot: a copy deleted behind popsync's back is copied again before its original may go", async () => {
    const pop = lab.newUser('src');
    const imap = lab.newUser('dst');
    const sent = ['a', 'b', 'c'].map((t) => mail(`behind-${t}`));
    await lab.seedPop3(pop, sent);
    let r = await runCli(syncArgs(pop, imap), { env: { PW: lab.password } });
    expect(r.code, r.stderr).toBe(0);
    rmSync(storedFile(lab.maildirOf(imap), 'behind-b'));

    r = await runCli(syncArgs(pop, imap, ['--delete']), { env: { PW: lab.password } });
    expect(r.code, r.stderr).toBe(1);
    expect(r.stdout).toMatch(/2 deleted from the source, 1 copy missing or changed in the destination/);
    expect(r.stdout).toMatch(/UIDL \S+: copy missing: its copy \(UID 2 in INBOX\) is no longer in the destination/);
    expect((await sourceMessages(lab, pop)).map(String)).toEqual([String(sent[1])]);

    r = await runCli(syncArgs(pop, imap, ['--delete']), { env: { PW: lab.password } });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^popsync: 1 new message copied .*, 1 deleted from the source\n$/);
    expect(await sourceMessages(lab, pop)).toHaveLength(0);
    expect(digests((await destinationMessages(lab, imap)).map((m) => m.body))).toEqual(digests(sent));
  });

  it('Dovecot: a copy rewritten after the APPEND keeps its original, naming the likely server setting', async () => {
    const pop = lab.newUser('src');
    const imap = lab.newUser('dst');
    const eight = Buffer.from(
      'From: a@example.org\r\nSubject: caf\xe9 munged\r\nMessage-ID: <munged@lab>\r\n\r\nbody\r\n',
      'latin1',
    );
    const body = mail('body-changed');
    const fine = mail('untouched');
    await lab.seedPop3(pop, [eight, body, fine]);
    let r = await runCli(syncArgs(pop, imap), { env: { PW: lab.password } });
    expect(r.code, r.stderr).toBe(0);
    const md = lab.maildirOf(imap);
    // What Cyrus' munge8bit does to a header, and an edit of the body that keeps size and headers.
    alterStored(md, 'munged@lab', 'caf\xe9', 'cafX');
    alterStored(md, 'body-changed@lab', 'body body-changed', 'BODY body-changed');

    // The content check sees both; the untouched copy's original goes.
    r = await runCli(syncArgs(pop, imap, ['--delete', '--verify-before-delete', '--json']), {
      env: { PW: lab.password },
    });
    expect(r.code, r.stderr).toBe(1);
    const res = JSON.parse(r.stdout);
    expect(res).toMatchObject({ deleted: 1, copied: 0 });
    expect(res.copyProblems).toEqual([
      expect.objectContaining({
        problem: 'differs',
        uid: 1,
        detail: expect.stringMatching(/UID 1 in INBOX.*same size.*Cyrus munge8bit.*not deleted from the source/),
      }),
      expect.objectContaining({
        problem: 'differs',
        uid: 2,
        detail: expect.stringMatching(/UID 2 in INBOX.*changed after the copy.*not deleted from the source/),
      }),
    ]);
    expect((await sourceMessages(lab, pop)).map(String)).toEqual([eight, body].map(String));

    // The default check (UID, size, header digest) still sees the munged header.
    r = await runCli(syncArgs(pop, imap, ['--delete']), { env: { PW: lab.password } });
    expect(r.code, r.stderr).toBe(1);
    // With the copy's fingerprint journaled (schema v5) the munged copy is recognised as rewritten.
    expect(r.stdout).toMatch(
      /copy differs: its copy \(UID 1 in INBOX\) (is not the message copied|was rewritten by the server) .*munge8bit/,
    );
    expect((await sourceMessages(lab, pop)).map(String)).toContain(String(eight));
    // Nothing was copied again: a changed copy is still a copy.
    expect(await destinationMessages(lab, imap)).toHaveLength(3);
  });

  it(
    'a SIGTERM during the last batch: the batch is finished and recorded, nothing is deleted (exit 130); ' +
      'the next run deletes',
    async () => {
      let release: () => void = () => undefined;
      const gate = new Promise<void>((r) => {
        release = r;
      });
      // The third APPEND's OK waits for the test: the run is inside its last batch until then.
      const fake = await startFakeImap({ onAppend: (a) => (a.n === 3 ? { kind: 'ok', after: gate } : undefined) });
      fakes.push(fake);
      const pop = lab.newUser('src');
      const sent = [1, 2, 3].map((i) => mail(`sigterm-${i}`));
      await lab.seedPop3(pop, sent);
      const args = (extra: string[]) => [
        ...syncArgs(pop, 'unused', extra).map((a) =>
          a.replace(`imap://unused@127.0.0.1:${lab.imap.port}`, `imap://${FAKE_USER}@127.0.0.1:${fake.port}`),
        ),
        '--imap-password-env',
        'IPW',
      ];
      const { child, done } = startCli(args(['--delete']), { env: { PW: lab.password, IPW: FAKE_PASSWORD } });
      let stderr = '';
      child.stderr!.on('data', (d: Buffer) => {
        stderr += d.toString();
      });
      const until = async (what: string, ok: () => boolean) => {
        for (let i = 0; !ok(); i++) {
          if (i > 3000) throw new Error(`timed out waiting for ${what}; stderr: ${stderr}`);
          await new Promise((r) => setTimeout(r, 10));
        }
      };
      await until('the third APPEND', () => fake.appends.length === 3);
      child.kill('SIGTERM');
      // The handler writes this just before it aborts: from here on, the run knows.
      await until('the SIGTERM notice', () => stderr.includes('SIGTERM: finishing the batches already being stored'));
      release();
      const ended = await done;
      expect(ended.code, ended.stderr).toBe(130);
      expect(ended.stderr).toMatch(/interrupted before deleting from the source: nothing was deleted/);
      expect(await sourceMessages(lab, pop)).toHaveLength(3);
      expect(fake.mailboxes.get('INBOX')!.messages).toHaveLength(3);
      const status = JSON.parse((await runCli(['status', '--journal', join(dir, `${pop}.sqlite`), '--json'])).stdout);
      expect(status.accounts[0]).toMatchObject({ copied: 3, deleted: 0, pending: { appending: 0, deleting: 0 } });

      const again = await runCli(args(['--delete', '--json']), { env: { PW: lab.password, IPW: FAKE_PASSWORD } });
      expect(again.code, again.stderr).toBe(0);
      expect(JSON.parse(again.stdout)).toMatchObject({ copied: 0, deleted: 3 });
      expect(await sourceMessages(lab, pop)).toHaveLength(0);
    },
  );

  it(
    '--verify-before-delete on what Dovecot rewrote: a copy changed only in line ends lets its original go, ' +
      'NUL stored as 0x80 keeps it; verify names both',
    async () => {
      // Each kind as a scripted POP3 server serves it; Dovecot stores bare LF as CRLF, adds a
      // final CRLF, and turns NUL into 0x80 (test/e2e/normalisation.test.ts measures it).
      const kinds = ['bare-lf', 'no-final-newline', 'nul', 'bare-cr'] as const;
      const served = kinds.map((k) => hostileMessage(k, `delete-${k}`));
      const src = await startFakePop3({ messages: served, user: 'src', password: lab.password, pipelining: true });
      fakes.push(src);
      const imap = lab.newUser('dst');
      const journal = join(dir, `hostile-${imap}.sqlite`);
      const args = (command: string, extra: string[]) =>
        loopbackArgs(command, { pop3: src.port, imap: lab.imap.port }, 'src', imap, journal, [
          '--no-progress',
          ...extra,
        ]);
      let r = await runCli(args('sync', ['--json']), { env: { PW: lab.password } });
      expect(r.code, r.stderr).toBe(0);

      r = await runCli(args('sync', ['--delete', '--verify-before-delete', '--json']), { env: { PW: lab.password } });
      expect(r.code, r.stderr).toBe(1);
      const res = JSON.parse(r.stdout);
      // bare-lf: line ends only; no-final-newline (POP3 framing adds the CRLF) and bare-cr: stored as received.
      expect(res).toMatchObject({ copied: 0, deleted: 3 });
      expect(res.copyProblems).toEqual([
        expect.objectContaining({
          problem: 'differs',
          detail: expect.stringMatching(/rewritten by the server .*NUL bytes stored as 0x80 \(Dovecot\).*not deleted/),
        }),
      ]);
      expect(src.mailbox.map((m) => m.body)).toEqual([served[2]]);

      // verify names every rewrite, the deleted originals' copies included.
      r = await runCli(['verify', ...args('x', ['--json']).slice(1)], { env: { PW: lab.password } });
      expect(r.code, r.stderr).toBe(1);
      const audit = JSON.parse(r.stdout).accounts[0];
      expect(audit).toMatchObject({ checked: 4, same: 2 });
      expect(
        audit.findings.map((f: { uidl: string; status: string; likely: string[]; originalOnSource: boolean }) => [
          f.uidl,
          f.status,
          f.originalOnSource,
          f.likely.join(' | '),
        ]),
      ).toEqual([
        ['uid-1', 'rewritten', false, expect.stringMatching(/bare LF line ends stored as CRLF/)],
        ['uid-3', 'rewritten', true, expect.stringMatching(/NUL bytes stored as 0x80/)],
      ]);
    },
  );

  it(
    "Dovecot: a destination folder removed behind popsync's back keeps every original, says how to recover, " +
      'and forget-folder brings the copies back',
    async () => {
      const pop = lab.newUser('src');
      const imap = lab.newUser('dst');
      const sent = ['x', 'y'].map((t) => mail(`folder-gone-${t}`));
      await lab.seedPop3(pop, sent);
      const archive = ['--folder', 'Archive'];
      let r = await runCli(syncArgs(pop, imap, archive), { env: { PW: lab.password } });
      expect(r.code, r.stderr).toBe(0);
      rmSync(join(lab.maildirOf(imap), '.Archive'), { recursive: true, force: true });

      r = await runCli(syncArgs(pop, imap, [...archive, '--delete']), { env: { PW: lab.password } });
      expect(r.code, r.stderr).toBe(1);
      expect(r.stdout).toContain(
        'copy unknown: folder Archive no longer exists in the destination ' +
          '(`popsync journal forget-folder --folder Archive` lets the next run',
      );
      expect(await sourceMessages(lab, pop)).toHaveLength(2);

      r = await runCli(['journal', 'forget-folder', '--folder', 'Archive', '--journal', join(dir, `${pop}.sqlite`)]);
      expect(r.code, r.stderr).toBe(0);
      r = await runCli(syncArgs(pop, imap, [...archive, '--delete', '--json']), { env: { PW: lab.password } });
      expect(r.code, r.stderr).toBe(0);
      expect(JSON.parse(r.stdout)).toMatchObject({ copied: 2, deleted: 2, copyProblems: [] });
      expect(await sourceMessages(lab, pop)).toHaveLength(0);
      expect(digests((await destinationMessages(lab, imap, 'Archive')).map((m) => m.body))).toEqual(digests(sent));
    },
  );
});
