/**
 * ImapSink against a real Dovecot 2.3 (the lab): what the fake server cannot vouch for, i.e.
 * TLS verification, modified UTF-7 names with the server's own delimiter (Maildir: '.'),
 * flags and INTERNALDATE as stored, APPENDUID, and Dovecot's own refusal of a large message.
 * Results are checked through a second, independent imapflow session where it matters.
 */

import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { ImapFlow } from 'imapflow';
import { connectImap, type ImapOptions, type ImapSink } from '../../src/imap/index.js';
import { PopsyncError } from '../../src/errors.js';
import { startDovecot, type Lab } from '../../lab/dovecot.js';

const MAX_SIZE = 100_000;
let lab: Lab;
let ca: Buffer;

beforeAll(async () => {
  lab = await startDovecot({ maxMessageSize: MAX_SIZE });
  ca = readFileSync(lab.caFile);
});

afterAll(async () => {
  await lab?.stop();
});

function options(user: string, extra: Partial<ImapOptions> = {}): ImapOptions {
  return {
    host: lab.imap.host,
    port: lab.imap.port,
    tls: 'starttls',
    ca: [ca],
    user,
    password: lab.password,
    timeoutMs: 10_000,
    ...extra,
  };
}

async function withSink<T>(user: string, fn: (sink: ImapSink) => Promise<T>): Promise<T> {
  const sink = await connectImap(options(user));
  try {
    return await fn(sink);
  } finally {
    await sink.close();
  }
}

/** A second client, to look at the result without going through the code under test. */
async function withInspector<T>(user: string, fn: (client: ImapFlow) => Promise<T>): Promise<T> {
  const client = new ImapFlow({
    host: lab.imap.host,
    port: lab.imap.port,
    secure: false,
    doSTARTTLS: false,
    auth: { user, pass: lab.password },
    logger: false,
  });
  client.on('error', () => {});
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.logout().catch(() => client.close());
  }
}

/** RFC 3501 5.1.3, written out here so the check does not trust imapflow's encoder. */
function modifiedUtf7(name: string): string {
  return name
    .replace(/&/g, '&-')
    .replace(
      /[^\x20-\x7e]+/g,
      (run) =>
        '&' + Buffer.from(run, 'utf16le').swap16().toString('base64').replace(/=+$/, '').replace(/\//g, ',') + '-',
    );
}

function message(id: string, extraBody = ''): Buffer {
  return Buffer.concat([
    Buffer.from(
      `From: Jörg <joerg@example.org>\r\nTo: you@example.org\r\nSubject: ` +
        `=?UTF-8?Q?Gr=C3=BC=C3=9Fe?=\r\nMessage-ID: <${id}@popsync.test>\r\nDate: Tue, 2 Apr 2019 10:00:00 ` +
        `+0200\r\n\r\n`,
    ),
    Buffer.from('8-bit line: Grüße \xff\r\n.leading dot\r\n', 'latin1'),
    Buffer.from(extraBody),
    Buffer.from('last line\r\n'),
  ]);
}

async function rejection(p: Promise<unknown>): Promise<PopsyncError> {
  const err = await p.then(
    () => {
      throw new Error('expected a rejection');
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(PopsyncError);
  return err as PopsyncError;
}

describe('ImapSink against Dovecot', () => {
  it('STARTTLS verifies against the lab CA, and fails with tls without it', async () => {
    const user = lab.newUser('tls');
    const stdout = vi.spyOn(process.stdout, 'write');
    try {
      await withSink(user, async (sink) => {
        expect(sink.capabilities.has('UIDPLUS')).toBe(true);
      });
      const implicit = await connectImap(options(user, { port: lab.imaps.port, tls: 'implicit' }));
      await implicit.close();

      const noCa = await rejection(connectImap(options(user, { ca: undefined })));
      expect(noCa.kind).toBe('tls');
      const noCaImplicit = await rejection(
        connectImap(options(user, { port: lab.imaps.port, tls: 'implicit', ca: undefined })),
      );
      expect(noCaImplicit.kind).toBe('tls');

      // imapflow's default logger would have written here
      expect(stdout).not.toHaveBeenCalled();
    } finally {
      stdout.mockRestore();
    }
  });

  it('creates nested and non-ASCII folders that LIST shows decoded, modified UTF-7 on the wire', async () => {
    const user = lab.newUser('folders');
    const names = ['Archive/2019', 'Entwürfe', 'Отправленные', '日本語'];
    const statuses = await withSink(user, async (sink) => {
      const first = [];
      for (const name of names) first.push(await sink.ensureFolder(name));
      // a second call finds them and reports the same identity
      for (const [i, name] of names.entries()) {
        const again = await sink.ensureFolder(name);
        expect(again).toEqual(first[i]);
      }
      expect((await sink.ensureFolder('INBOX')).path).toBe('INBOX');
      return first;
    });
    for (const [i, st] of statuses.entries()) {
      expect(st.path).toBe(names[i]);
      expect(st.uidNext).toBe(1);
      expect(typeof st.uidValidity).toBe('bigint');
    }

    const listed = await withInspector(user, (c) => c.list());
    const delimiter = listed[0]!.delimiter;
    expect(delimiter).toBe('.');
    const byPath = new Map(listed.map((f) => [f.path, f]));
    for (const name of names) {
      const serverPath = name.split('/').join(delimiter);
      const entry = byPath.get(serverPath);
      expect(entry, `LIST shows ${serverPath}`).toBeDefined();
      expect(entry!.pathAsListed).toBe(modifiedUtf7(serverPath));
      expect(entry!.subscribed).toBe(true);
    }
    expect(byPath.get('Entwürfe')!.pathAsListed).toBe('Entw&APw-rfe');
    expect(byPath.get('日本語')!.pathAsListed).toBe('&ZeVnLIqe-');
    expect(byPath.get('Archive')!.subscribed).toBe(true); // the parent, created on its own
  });

  it('appends with flags and INTERNALDATE, returns APPENDUID, and reads back identical bytes', async () => {
    const user = lab.newUser('append');
    const body = message('flags', 'x'.repeat(6000) + '\r\n'); // > 4 KiB: the synchronizing literal path
    const internalDate = new Date('2019-04-02T08:00:07Z');
    const { st, outcome, fetched } = await withSink(user, async (sink) => {
      const st = await sink.ensureFolder('Entwürfe');
      const [outcome] = await sink.appendBatch('Entwürfe', [{ body, flags: ['\\Seen', '$Migrated'], internalDate }]);
      if (!outcome?.ok || outcome.uid === null) throw new Error(`append failed: ${JSON.stringify(outcome)}`);
      const fetched = await sink.fetchBody('Entwürfe', outcome.uid);
      return { st, outcome, fetched };
    });
    expect(outcome).toEqual({ ok: true, uid: 1, uidValidity: st.uidValidity });
    expect(fetched.equals(body)).toBe(true);

    const seen = await withInspector(user, async (c) => {
      await c.mailboxOpen('Entwürfe', { readOnly: true });
      return c.fetchOne('1', { uid: true, flags: true, internalDate: true, source: true }, { uid: true });
    });
    if (!seen) throw new Error('message not found');
    expect(seen.source!.equals(body)).toBe(true);
    expect([...seen.flags!].filter((f) => f !== '\\Recent').sort()).toEqual(['$Migrated', '\\Seen']);
    expect(new Date(seen.internalDate!).getTime()).toBe(internalDate.getTime());
  });

  it('lists messages since a UID, and keeps flags when appending to the folder it just read', async () => {
    const user = lab.newUser('list');
    await withSink(user, async (sink) => {
      await sink.ensureFolder('Archive/2019');
      const first = await sink.appendBatch(
        'Archive/2019',
        ['a', 'b', 'c'].map((id) => ({ body: message(id), flags: [] })),
      );
      expect(first.map((o) => o.ok && o.uid)).toEqual([1, 2, 3]);

      const since2 = await sink.listSince('Archive/2019', 2);
      expect(since2).toEqual([
        { uid: 2, size: message('b').length, messageId: '<b@popsync.test>' },
        { uid: 3, size: message('c').length, messageId: '<c@popsync.test>' },
      ]);
      // Dovecot answers 9:* with UID 3; the sink must not
      expect(await sink.listSince('Archive/2019', 9)).toEqual([]);
      expect(await sink.listSince('Archive/2019', 0)).toHaveLength(3);

      // the folder is now open (read-only); the next append must still store its flags
      const [d] = await sink.appendBatch('Archive/2019', [{ body: message('d'), flags: ['\\Flagged', '$Migrated'] }]);
      expect(d).toMatchObject({ ok: true, uid: 4 });
      expect((await sink.status('Archive/2019')).uidNext).toBe(5);
    });
    const flags = await withInspector(user, async (c) => {
      await c.mailboxOpen(['Archive', '2019'], { readOnly: true });
      const m = await c.fetchOne('4', { flags: true }, { uid: true });
      return m ? [...m.flags!].filter((f) => f !== '\\Recent').sort() : null;
    });
    expect(flags).toEqual(['$Migrated', '\\Flagged']);
  });

  it("reports an oversized message as an ok:false outcome with Dovecot's text and goes on", async () => {
    const user = lab.newUser('big');
    await withSink(user, async (sink) => {
      await sink.ensureFolder('INBOX');
      const big =
        message('big', 'y'.repeat(76) + '\r\n'.repeat(1)).toString() +
        ('z'.repeat(998) + '\r\n').repeat(Math.ceil((MAX_SIZE * 1.5) / 1000));
      const seen: number[] = [];
      const outcomes = await sink.appendBatch(
        'INBOX',
        [
          { body: message('small1'), flags: [] },
          { body: Buffer.from(big), flags: [] },
          { body: message('small2'), flags: [] },
        ],
        (i) => seen.push(i),
      );
      expect(seen).toEqual([0, 1, 2]);
      expect(outcomes.map((o) => o.ok)).toEqual([true, false, true]);
      // Dovecot refused the MULTIAPPEND of all three as a whole; each then went alone.
      expect(sink.appendCounts).toMatchObject({ multiappend: 3, pipelined: 6 });
      const failed = outcomes[1]!;
      if (failed.ok) throw new Error('unreachable');
      expect(failed.error.kind).toBe('message');
      expect(failed.error.context.folder).toBe('INBOX');
      expect(failed.error.context.responseCode).toBe('LIMIT');
      expect(failed.error.context.serverResponse).toMatch(/^NO \[LIMIT\] Mail size is larger than the maximum size/);
      expect(failed.error.message).toContain(failed.error.context.serverResponse);
      // and the session is still fine
      expect((await sink.listSince('INBOX', 1)).map((m) => m.messageId)).toEqual([
        '<small1@popsync.test>',
        '<small2@popsync.test>',
      ]);
    });
  });

  // Last: Dovecot's auth penalty slows every later login from 127.0.0.1 by seconds.
  it('maps a rejected password to auth with the server text and no password', async () => {
    const user = lab.newUser('auth');
    const err = await rejection(connectImap(options(user, { password: 'not-the-password' })));
    expect(err.kind).toBe('auth');
    expect(err.context.responseCode).toBe('AUTHENTICATIONFAILED');
    expect(err.context.serverResponse).toMatch(/^NO \[AUTHENTICATIONFAILED\]/);
    expect(JSON.stringify([err.message, err.context])).not.toContain('not-the-password');
  });
});

describe('pipelined APPEND against Dovecot (STARTTLS, lab CA)', () => {
  it('stores the same bytes, flags and INTERNALDATE as the imapflow path, with matching APPENDUIDs', async () => {
    const user = lab.newUser('pipelined');
    const items = [0, 1, 2, 3, 4, 5].map((n) => ({
      body: message(`pipe-${n}`, n === 5 ? 'x'.repeat(60_000) : ''), // one above imapflow's 4 KiB LITERAL+ limit
      flags: n % 2 ? ['\\Seen', '$Migrated'] : [],
      internalDate: new Date(Date.UTC(2019, 3, 2, 8, n, 7)),
    }));
    const results: Record<string, Array<{ ok: boolean; uid?: number | null }>> = {};
    for (const path of ['imapflow', 'pipelined'] as const) {
      const sink = await connectImap(options(user, { appendPath: path }));
      try {
        await sink.ensureFolder(`Via/${path}`);
        results[path] = (await sink.appendBatch(`Via/${path}`, items)) as Array<{ ok: boolean; uid?: number | null }>;
        expect(sink.appendCounts).toEqual(
          path === 'pipelined'
            ? { pipelined: 6, imapflow: 0, streamed: 0, multiappend: 6 }
            : { pipelined: 0, imapflow: 6, streamed: 0, multiappend: 0 },
        );
      } finally {
        await sink.close();
      }
    }
    // auto picks the pipelined path on Dovecot, in one MULTIAPPEND
    await withSink(user, async (sink) => {
      await sink.appendBatch('INBOX', items.slice(0, 2));
      expect(sink.appendCounts).toEqual({ pipelined: 2, imapflow: 0, streamed: 0, multiappend: 2 });
    });
    const stored = await withInspector(user, async (client) => {
      const out: Record<string, Array<{ uid: number; flags: string[]; date: string; source: string }>> = {};
      for (const path of ['imapflow', 'pipelined']) {
        await client.mailboxOpen(`Via.${path}`, { readOnly: true });
        const rows = await client.fetchAll(
          '1:*',
          { uid: true, flags: true, internalDate: true, source: true },
          { uid: true },
        );
        out[path] = rows.map((r) => ({
          uid: r.uid,
          flags: [...(r.flags ?? [])].sort(),
          date: new Date(r.internalDate!).toISOString(),
          source: r.source!.toString('latin1'),
        }));
        await client.mailboxClose();
      }
      return out;
    });
    expect(stored.pipelined).toEqual(stored.imapflow);
    expect(stored.pipelined!.map((r) => r.source)).toEqual(items.map((it) => it.body.toString('latin1')));
    expect(stored.pipelined!.map((r) => r.date)).toEqual(items.map((it) => it.internalDate.toISOString()));
    expect(results.pipelined!.map((o) => o.uid)).toEqual(stored.pipelined!.map((r) => r.uid));
    expect(results.pipelined!.every((o) => o.ok)).toBe(true);
  });
});
