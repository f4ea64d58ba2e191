/**
 * `plan` is the run with its side effects switched off (issue 13 part 1): on a POP3 server
 * without UIDL, and on one that renumbers its UIDLs between runs, `plan --format json`
 * predicts per message what the `migrate` right after it does, compared message by message
 * with that run's `--report`. The sources are scripted (Dovecot always has UIDL and never
 * renumbers); the destination is the real Dovecot lab.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { Lab } from '../../lab/dovecot.js';
import type { PlanMessage, PlanReport } from '../../src/report/plan-types.js';
import { startFakePop3, type FakePop3, type FakePop3Options } from '../support/fake-pop3.js';
import { useLab } from '../support/lab-fixture.js';
import { runCli, type CliResult } from '../support/cli.js';
import { destinationMessages } from '../support/mailboxes.js';

let lab: Lab;
let dir: string;
useLab('predict', {}, (l, d) => {
  lab = l;
  dir = d;
});

let sources: FakePop3[] = [];
afterEach(async () => {
  await Promise.all(sources.map((s) => s.close()));
  sources = [];
});

const POP_PW = 'predict-pop-secret';
const SIZE_RULE = '20KB';

function mail(id: string, h: Record<string, string> = {}, body = `body of ${id}\r\n`): Buffer {
  const lines = Object.entries({ 'Message-ID': `<${id}@test.example>`, Subject: id, ...h }).map(
    ([k, v]) => `${k}: ${v}`,
  );
  return Buffer.from(`${lines.join('\r\n')}\r\n\r\n${body}`);
}
const listMail = (id: string) => mail(id, { 'List-Id': '<dev.lists.example.org>' });
const bigMail = (id: string) => mail(id, {}, `${'x'.repeat(78)}\r\n`.repeat(400));

interface Account {
  pop: FakePop3;
  imap: string;
  run(args: string[]): Promise<CliResult>;
}

async function account(name: string, o: FakePop3Options): Promise<Account> {
  const pop = await startFakePop3({ user: 'src', password: POP_PW, ...o });
  sources.push(pop);
  const imap = lab.newUser(name);
  name = imap;
  const config = join(dir, `${name}.yml`);
  writeFileSync(
    config,
    `accounts:
  - name: ${name}
    source: { url: 'pop3://src@127.0.0.1:${pop.port}', tls: none, password_env: POP_PW }
    destination: { url: 'imap://${imap}@127.0.0.1:${lab.imap.port}', tls: none, password_env: IMAP_PW }
    journal: '${join(dir, `${name}.sqlite`)}'
    folder: Archive
    skip_larger_than: ${SIZE_RULE}
    rules:
      - name: lists
        match: { list_id: '*' }
        folder: Lists/{list-id}
`,
  );
  const env = { POP_PW, IMAP_PW: lab.password };
  return { pop, imap, run: (args) => runCli([...args, '--config', config], { env }) };
}

type Outcome = { n: number; uidl: string; status: string; reason: string | null; folder?: string };

/** A message the plan could not read the headers of, which the run recognises or copies by content. */
const BY_CONTENT = 'copied, or already-copied if its content is a copy no longer listed';
const decidedByContent = (p: PlanMessage | undefined): boolean =>
  p?.status === 'new' && /compares its content/.test(p.reason ?? '');

/** What the run's report should say of a message the plan predicted. */
function expected(p: PlanMessage): Outcome {
  const base = { n: p.n, uidl: p.uidl };
  switch (p.status) {
    case 'new':
    case 'retry':
      if (decidedByContent(p)) return { ...base, status: BY_CONTENT, reason: null };
      // Folder '': the server refused TOP, so only the run (from RETR) knows where it goes.
      return p.folder === ''
        ? { ...base, status: 'copied', reason: null }
        : { ...base, status: 'copied', reason: null, folder: p.folder };
    case 'already-copied':
      return { ...base, status: 'already-copied', reason: null, folder: p.folder };
    case 'would-fail':
      // The size rule is a deliberate skip in a run; anything else the plan sees coming fails.
      return {
        ...base,
        status: /^over the size rule/.test(p.reason ?? '') ? 'skipped-by-rule' : 'failed',
        reason: p.reason,
      };
    default:
      throw new Error(`a plan has no status ${p.status}`);
  }
}

/** A run routes only what it copies: a folder is compared where both have one. */
function actual(m: PlanMessage, planned: PlanMessage | undefined): Outcome {
  if (decidedByContent(planned) && (m.status === 'copied' || m.status === 'already-copied'))
    return { n: m.n, uidl: m.uidl, status: BY_CONTENT, reason: null };
  const o: Outcome = { n: m.n, uidl: m.uidl, status: m.status, reason: m.reason };
  const routed = m.status === 'copied' || m.status === 'already-copied';
  return routed && planned?.folder !== '' ? { ...o, folder: m.folder } : o;
}

/** plan --format json, then migrate --report: the report must be the plan, message by message. */
async function planThenMigrate(
  a: Account,
  report: string,
): Promise<{ plan: PlanReport; run: PlanReport; code: number }> {
  const p = await a.run(['plan', '--format', 'json']);
  expect(p.code, p.stderr).toBe(0);
  const plan = JSON.parse(p.stdout) as PlanReport;
  const m = await a.run(['migrate', '--no-progress', '--quiet', '--report', report]);
  expect(m.code === 0 || m.code === 1, m.stderr).toBe(true);
  const run = JSON.parse(readFileSync(report, 'utf8')) as PlanReport;
  expect(run.messages.map((m, i) => actual(m, plan.messages[i]))).toEqual(plan.messages.map(expected));
  return { plan, run, code: m.code! };
}

async function folderSubjects(imap: string, folder: string[]): Promise<string[]> {
  return (await destinationMessages(lab, imap, folder))
    .map((s) => /^Subject: (.*)$/m.exec(s.body.toString('latin1'))![1]!.trim())
    .sort();
}

describe('plan predicts migrate, message by message', () => {
  it('on a POP3 server without UIDL: identity by headers, identical twins, a refused TOP, the size rule', async () => {
    const noUidl = new Set<string>();
    const a = await account('nouidl', {
      capa: ['TOP', 'USER', 'RESP-CODES'],
      messages: [listMail('list-1'), mail('plain-1'), mail('twin'), mail('twin'), bigMail('big-1')],
      handlers: {
        UIDL: (ctx) => ctx.reply('-ERR UIDL not supported'),
        // TOP refused for one message: without UIDL it cannot be identified, so it is never copied.
        TOP: (ctx, args) => {
          const m = ctx.messages[Number(args[0]) - 1];
          if (m?.body.includes('no-top')) return ctx.reply('-ERR TOP refused for this one');
          return ctx.useDefault();
        },
      },
    });
    const first = await planThenMigrate(a, join(dir, 'nouidl-1.json'));
    expect(first.plan.messages.map((x) => x.status)).toEqual(['new', 'new', 'new', 'new', 'would-fail']);
    expect(first.code).toBe(0);
    for (const m of first.plan.messages) noUidl.add(m.uidl);
    expect(noUidl.size).toBe(5);
    expect([...noUidl].every((k) => k.startsWith('header:'))).toBe(true);

    // Between runs the first message goes (numbers shift), a third twin and new mail arrive.
    a.pop.mailbox.shift();
    a.pop.mailbox.push(
      { uidl: 'unused', body: mail('twin') },
      { uidl: 'unused', body: listMail('list-2') },
      { uidl: 'unused', body: mail('no-top') },
      { uidl: 'unused', body: bigMail('big-2') },
    );
    const second = await planThenMigrate(a, join(dir, 'nouidl-2.json'));
    expect(second.plan.messages.map((x) => x.status)).toEqual([
      'already-copied',
      'already-copied',
      'already-copied',
      'would-fail',
      'new',
      'new',
      'would-fail',
      'would-fail',
    ]);
    expect(second.plan.messages[6]!.reason).toMatch(/no UIDL/);
    expect(second.code).toBe(1);

    // And the destination holds each copied message exactly once.
    expect(await folderSubjects(a.imap, ['Archive'])).toEqual(['plain-1', 'twin', 'twin', 'twin']);
    expect(await folderSubjects(a.imap, ['Lists', 'dev_lists_example_org'])).toEqual(['list-1', 'list-2']);
    expect(a.pop.commands('DELE')).toEqual([]);
  }, 120_000);

  it('after the server renumbers its UIDLs (and reuses an old one for a new message)', async () => {
    const a = await account('renumber', {
      // TOP refused for one message: with a UIDL it is still identified, and copied from its RETR.
      handlers: {
        TOP: (ctx, args) => {
          const m = ctx.messages[Number(args[0]) - 1];
          if (m?.body.includes('no-top')) return ctx.reply('-ERR TOP refused for this one');
          return ctx.useDefault();
        },
      },
      messages: [
        { uidl: 'old-1', body: mail('r1') },
        { uidl: 'old-2', body: listMail('r2') },
        { uidl: 'old-3', body: mail('r3') },
        { uidl: 'old-4', body: bigMail('r4') },
      ],
    });
    const first = await planThenMigrate(a, join(dir, 'renumber-1.json'));
    expect(first.plan.messages.map((x) => x.status)).toEqual(['new', 'new', 'new', 'would-fail']);

    // A server move: every message gets a new UIDL, and old-2 now names a new, larger message.
    for (const m of a.pop.mailbox) m.uidl = m.uidl.replace('old-', 'new-');
    a.pop.mailbox.push(
      { uidl: 'old-2', body: mail('reused', {}, 'a new message under an old UIDL, longer than r2\r\n') },
      { uidl: 'new-5', body: listMail('r5') },
      { uidl: 'new-6', body: listMail('no-top') },
    );
    const second = await planThenMigrate(a, join(dir, 'renumber-2.json'));
    expect(second.plan.messages.map((x) => [x.uidl, x.status])).toEqual([
      ['new-1', 'already-copied'],
      ['new-2', 'already-copied'],
      ['new-3', 'already-copied'],
      ['new-4', 'would-fail'],
      ['old-2', 'new'],
      ['new-5', 'new'],
      ['new-6', 'new'],
    ]);
    expect(second.code).toBe(0);
    expect(second.run.messages[6]).toMatchObject({ status: 'copied', folder: 'Lists/dev_lists_example_org' });
    expect(await folderSubjects(a.imap, ['Archive'])).toEqual(['r1', 'r3', 'reused']);
    expect(await folderSubjects(a.imap, ['Lists', 'dev_lists_example_org'])).toEqual(['no-top', 'r2', 'r5']);
  }, 120_000);

  it('after a renumbering, a copied message refusing TOP is recognised by content; twins are counted', async () => {
    const refuseTop = new Set<string>();
    const a = await account('bycontent', {
      handlers: {
        TOP: (ctx, args) => {
          const m = ctx.messages[Number(args[0]) - 1];
          const subject = m ? /^Subject: (.*)\r$/m.exec(m.body.toString('latin1'))?.[1] : undefined;
          if (subject !== undefined && refuseTop.has(subject)) return ctx.reply('-ERR TOP refused for this one');
          return ctx.useDefault();
        },
      },
      // Two genuinely distinct messages with identical bytes: both are copied, and stay two copies.
      messages: [
        { uidl: 'old-1', body: mail('c1') },
        { uidl: 'old-2', body: mail('twin') },
        { uidl: 'old-3', body: mail('twin') },
        { uidl: 'old-4', body: mail('c4') },
      ],
    });
    const first = await planThenMigrate(a, join(dir, 'bycontent-1.json'));
    expect(first.plan.messages.map((x) => x.status)).toEqual(['new', 'new', 'new', 'new']);

    // A server move renumbers every UIDL, TOP is now refused for c1 and the twins, and a third
    // twin (a new message with the same bytes) arrives.
    for (const m of a.pop.mailbox) m.uidl = m.uidl.replace('old-', 'new-');
    a.pop.mailbox.push({ uidl: 'new-5', body: mail('twin') });
    refuseTop.add('c1').add('twin');
    const second = await planThenMigrate(a, join(dir, 'bycontent-2.json'));
    expect(second.plan.messages.map((x) => [x.uidl, x.status])).toEqual([
      ['new-1', 'new'],
      ['new-2', 'new'],
      ['new-3', 'new'],
      ['new-4', 'already-copied'],
      ['new-5', 'new'],
    ]);
    for (const i of [0, 1, 2, 4]) expect(second.plan.messages[i]!.reason).toMatch(/3 copied messages are no longer/);
    expect(second.code).toBe(0);
    expect(second.run.messages.map((x) => [x.uidl, x.status, x.folder])).toEqual([
      ['new-1', 'already-copied', 'Archive'],
      ['new-2', 'already-copied', 'Archive'],
      ['new-3', 'already-copied', 'Archive'],
      ['new-4', 'already-copied', 'Archive'],
      ['new-5', 'copied', 'Archive'],
    ]);
    // Each source message exactly once: no second c1, and three twins for three twins.
    expect(await folderSubjects(a.imap, ['Archive'])).toEqual(['c1', 'c4', 'twin', 'twin', 'twin']);

    // The journal now knows every message by its new UIDL: the plan after says so, and a run copies nothing.
    const third = await planThenMigrate(a, join(dir, 'bycontent-3.json'));
    expect(third.plan.messages.map((x) => x.status)).toEqual(Array(5).fill('already-copied'));
    expect(await folderSubjects(a.imap, ['Archive'])).toEqual(['c1', 'c4', 'twin', 'twin', 'twin']);
  }, 120_000);
});
