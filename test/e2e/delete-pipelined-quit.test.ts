/**
 * `sync --delete` writes QUIT right behind its DELEs (engine/deleter.ts, 1b4be35), so QUIT reaches
 * the server whatever the DELEs' replies say. The journal must still say 'deleted' only for what
 * the server confirmed: a DELE answered -ERR keeps its message ('done', deleted by a later run),
 * and a QUIT whose reply never came leaves the rows 'deleting' for the next run to settle from
 * the listing: 'deleted' where the server did commit, 'done' (and deleted again) where it did
 * not. Scripted POP3 server (a refusing DELE, a lost QUIT reply); each copy exactly once.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runCli } from '../support/cli.js';
import { FAKE_PASSWORD, startFakeImap, type FakeImap } from '../support/fake-imap.js';
import { type FakeContext, startFakePop3, type FakePop3 } from '../support/fake-pop3.js';
import { loopbackArgs } from '../support/lab-fixture.js';
import { mail } from './sync-helpers.js';

let dir: string;
let pop: FakePop3;
let imap: FakeImap;
const fakes: Array<{ close(): Promise<void> }> = [];
beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'popsync-delete-quit-'));
  const sent = [1, 2, 3, 4, 5].map((i) => mail(`pipelined-quit-${i}-${Date.now()}`));
  pop = await startFakePop3({ messages: sent, user: 'src', password: FAKE_PASSWORD, pipelining: true });
  imap = await startFakeImap();
  fakes.push(pop, imap);
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));
afterAll(async () => {
  await Promise.all(fakes.map((f) => f.close()));
});

const sync = () =>
  runCli(
    loopbackArgs('sync', { pop3: pop.port, imap: imap.port }, 'src', 'alice', join(dir, 'j.sqlite'), [
      '--no-progress',
      '--delete',
      '--json',
    ]),
    { env: { PW: FAKE_PASSWORD } },
  );

function states(): Record<string, string> {
  const db = new Database(join(dir, 'j.sqlite'), { readonly: true });
  try {
    const rows = db.prepare(`SELECT uidl, state FROM messages ORDER BY uidl`).all() as Array<{
      uidl: string;
      state: string;
    }>;
    return Object.fromEntries(rows.map((r) => [r.uidl, r.state]));
  } finally {
    db.close();
  }
}

const uidls = (): string[] => pop.mailbox.map((m) => m.uidl);
const stored = (): number => imap.mailboxes.get('INBOX')!.messages.length;

/** The server's UPDATE state for the messages marked deleted (the first `count` of them): gone from its mailbox. */
function commitDeletes(ctx: FakeContext, count = Number.POSITIVE_INFINITY): void {
  for (const m of ctx.messages.filter((x) => x.deleted).slice(0, count)) {
    const at = ctx.server.mailbox.findIndex((x) => x.uidl === m.uidl);
    if (at >= 0) ctx.server.mailbox.splice(at, 1);
  }
}

/** A run with QUIT answered again: copies nothing, deletes all 5, each copied once. */
async function nextRunDeletesAll(): Promise<void> {
  const second = await sync();
  expect(second.code, second.stderr).toBe(0);
  expect(JSON.parse(second.stdout)).toMatchObject({ copied: 0, deleted: 5 });
  expect(uidls()).toEqual([]);
  expect(new Set(Object.values(states()))).toEqual(new Set(['deleted']));
  expect(stored(), 'each message copied once').toBe(5);
}

describe('sync --delete with QUIT written behind the DELEs', () => {
  it('a DELE answered -ERR keeps its message and its row: never journaled deleted', async () => {
    const all = uidls();
    pop.handlers.DELE = (ctx, a) =>
      a[0] === '2' ? ctx.reply('-ERR [SYS/PERM] cannot delete message 2 now') : ctx.useDefault();
    const first = await sync();
    expect(first.stderr).toMatch(/refused to delete/);
    expect(JSON.parse(first.stdout)).toMatchObject({ copied: 5, deleted: 4 });
    expect(uidls(), 'only the refused one is left').toEqual([all[1]]);
    expect(states()).toEqual(Object.fromEntries(all.map((u, i) => [u, i === 1 ? 'done' : 'deleted'])));

    delete pop.handlers.DELE;
    const second = await sync();
    expect(second.code, second.stderr).toBe(0);
    expect(JSON.parse(second.stdout)).toMatchObject({ copied: 0, deleted: 1 });
    expect(uidls()).toEqual([]);
    expect(Object.values(states())).toEqual(['deleted', 'deleted', 'deleted', 'deleted', 'deleted']);
    expect(stored(), 'each message copied once').toBe(5);
  });

  it("QUIT's reply lost after the server committed: 'deleting', settled 'deleted' by the next run", async () => {
    pop.handlers.QUIT = (ctx) => {
      // The UPDATE state ran (the DELEs are committed), then the link went before the +OK.
      commitDeletes(ctx);
      ctx.drop();
    };
    const first = await sync();
    expect(first.code, first.stdout).not.toBe(0);
    expect(uidls()).toEqual([]);
    expect(new Set(Object.values(states())), 'no row deleted before the +OK').toEqual(new Set(['deleting']));

    delete pop.handlers.QUIT;
    const second = await sync();
    expect(second.code, second.stderr).toBe(0);
    expect(JSON.parse(second.stdout)).toMatchObject({ copied: 0 });
    expect(new Set(Object.values(states()))).toEqual(new Set(['deleted']));
    expect(stored(), 'each message copied once').toBe(5);
  });

  it("QUIT's reply lost after the commit, then its UIDL given to new mail of the same size: copied", async () => {
    const all = uidls();
    pop.handlers.QUIT = (ctx) => {
      commitDeletes(ctx);
      ctx.drop();
    };
    const gone = pop.mailbox[0]!.body;
    const first = await sync();
    expect(first.code, first.stdout).not.toBe(0);
    expect(new Set(Object.values(states()))).toEqual(new Set(['deleting']));

    // A server that recycles UIDLs gives the first one to new mail, as long as the mail it named.
    const fresh = Buffer.from(gone.toString('latin1').replaceAll('pipelined-quit-1', 'pipelined-reus-1'), 'latin1');
    expect(fresh.length).toBe(gone.length);
    expect(fresh.equals(gone)).toBe(false);
    pop.mailbox.push({ uidl: all[0]!, body: fresh });
    delete pop.handlers.QUIT;
    const second = await sync();
    expect(second.code, second.stderr).toBe(0);
    expect(JSON.parse(second.stdout)).toMatchObject({ copied: 1 });
    const inbox = imap.mailboxes.get('INBOX')!.messages;
    expect(
      inbox.filter((m) => m.body.equals(fresh)),
      'the new message is copied, once',
    ).toHaveLength(1);
    expect(stored(), 'each of the five copied once, and the new one').toBe(6);
    expect(uidls(), 'deleted once its copy was confirmed').toEqual([]);
    expect(Object.values(states()).sort()).toEqual(Array(6).fill('deleted'));
  });

  // RFC 2449 [SYS/TEMP] on QUIT: the UPDATE state failed part way, so some DELEs may have been
  // committed and others not. Nothing is journaled 'deleted' on that answer.
  it("QUIT answered -ERR after removing some: 'deleting', the next run settles and deletes the rest", async () => {
    const all = uidls();
    pop.handlers.QUIT = (ctx) => {
      commitDeletes(ctx, 2);
      ctx.reply('-ERR [SYS/TEMP] some messages could not be deleted');
    };
    const first = await sync();
    expect(first.code, first.stdout).toBe(75);
    expect(JSON.parse(first.stdout).error.message).toMatch(/refused QUIT/);
    expect(uidls()).toEqual(all.slice(2));
    expect(new Set(Object.values(states())), 'no row deleted on a -ERR to QUIT').toEqual(new Set(['deleting']));

    delete pop.handlers.QUIT;
    await nextRunDeletesAll();
  });

  // A server that lists only part of the mailbox (WildDuck: the newest 250) can hide a message
  // whose deletion never happened; the next run records it 'deleted' as it is no longer listed.
  // Listed again later with the headers and size copied, it is that message, not new mail under
  // a reused UIDL: copying it again would duplicate it.
  it("a 'deleting' row hidden from one listing and listed again later is not copied a second time", async () => {
    const all = uidls();
    pop.handlers.QUIT = (ctx) => ctx.drop();
    const first = await sync();
    expect(first.code, first.stdout).not.toBe(0);
    expect(new Set(Object.values(states()))).toEqual(new Set(['deleting']));

    delete pop.handlers.QUIT;
    const hidden = pop.mailbox.splice(0, 1);
    const second = await sync();
    expect(second.code, second.stderr).toBe(0);
    expect(uidls()).toEqual([]);
    expect(states()[all[0]!], 'inferred from the listing').toBe('deleted');

    pop.mailbox.push(...hidden);
    const third = await sync();
    expect(third.code, third.stderr).toBe(0);
    expect(JSON.parse(third.stdout)).toMatchObject({ copied: 0 });
    expect(third.stderr).toMatch(new RegExp(`UIDL ${all[0]}: .*listed again`));
    expect(stored(), 'each message copied once').toBe(5);
    expect(uidls(), 'kept on the source: popsync never deletes a message twice').toEqual([all[0]]);
  });

  // A server that answers UIDL with -ERR on the next run (an upgrade, a misconfiguration) lists
  // its messages under header keys: the rows an interrupted deletion left 'deleting' under their
  // UIDLs are those messages, not deleted ones, and nothing is copied twice.
  it("'deleting' rows, then UIDL refused: recognised by headers, deleted, not copied again", async () => {
    pop.handlers.QUIT = (ctx) => ctx.drop();
    const first = await sync();
    expect(first.code, first.stdout).not.toBe(0);
    expect(new Set(Object.values(states()))).toEqual(new Set(['deleting']));

    delete pop.handlers.QUIT;
    pop.handlers.UIDL = (ctx) => ctx.reply('-ERR UIDL not supported');
    const second = await sync();
    expect(second.code, second.stderr).toBe(0);
    expect(JSON.parse(second.stdout)).toMatchObject({ copied: 0, deleted: 5, recognised: 5 });
    expect(stored(), 'each message copied once').toBe(5);
    expect(pop.mailbox).toEqual([]);
    const after = states();
    expect(Object.keys(after).every((k) => k.startsWith('header:'))).toBe(true);
    expect(new Set(Object.values(after))).toEqual(new Set(['deleted']));
  });

  it("QUIT's reply lost and nothing committed: 'deleting' until the next run, which deletes them again", async () => {
    const all = uidls();
    pop.handlers.QUIT = (ctx) => ctx.drop();
    const first = await sync();
    expect(first.code, first.stdout).not.toBe(0);
    expect(uidls()).toEqual(all);
    expect(new Set(Object.values(states()))).toEqual(new Set(['deleting']));

    delete pop.handlers.QUIT;
    await nextRunDeletesAll();
  });
});
